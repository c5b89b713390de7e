"""The orders API: create, list, read, change while pending, cancel, and bulk import.

Roles: any API key reads; admin, dispatcher and integration keys create, import, change and
cancel (integrations are the shop systems that own the orders). Creates and imports accept
``Idempotency-Key``. Another organisation's order answers 404.

``POST /v1/orders/import`` takes ``text/csv`` or a JSON array of order objects (the body of
``POST /v1/orders``); see :mod:`app.api.order_import` for how a CSV row becomes an order. Each bad
row is reported with its line, field and reason; the good rows are imported in one
transaction; a row whose ``external_ref`` exists is a duplicate, reported with the existing
order's id and left unchanged, so importing a file twice creates nothing the second time.
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Final, cast, get_args

from psycopg import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response

from app.api.checks import check_amounts, check_day, check_window
from app.api.order_import import Rows, read_rows
from app.api.reoptimize import after_cancel, cancel_preview
from app.auth import ORDER_WRITERS, READERS
from app.errors import BadParameter, Conflict, InvalidField, NotFound
from app.http import (
    answer,
    decode,
    encode,
    merge,
    path_id,
    query_date,
    query_int,
    request_body,
    resources_of,
)
from app.idempotency import Answer, run_create
from schemas.auth import ApiPrincipal, Role
from schemas.delivery import (
    CancelIn,
    ImportedRow,
    ImportProblem,
    ImportResult,
    OptOutIn,
    OrderIn,
    OrderPatch,
    OrderStatus,
)
from schemas.ids import OrderId
from store import orders
from store.delivery import OrgSettings, org_settings

DEFAULT_PAGE: Final = 100
MAX_PAGE: Final = 1000
_STATUSES: Final = get_args(OrderStatus)


def check_order(order: OrderIn, settings: OrgSettings) -> None:
    """Raise :class:`InvalidField` for what the schema cannot see in ``order``.

    The day is plausible; windows end after they start and lie near it; sizes name the
    organisation's dimensions; no barcode appears twice.
    """
    check_day(order.day)
    for n, window in enumerate(order.time_windows):
        check_window(window.start, window.end, f"time_windows[{n}]", order.day, settings.timezone)
    check_amounts(order.size, "size", settings.dimensions)
    seen: set[str] = set()
    for n, parcel in enumerate(order.parcels):
        if parcel.barcode in seen:
            raise InvalidField(
                f"parcels[{n}].barcode", f"expected each barcode once, got {parcel.barcode!r} again"
            )
        seen.add(parcel.barcode)


async def _principal(request: Request, roles: tuple[Role, ...]) -> ApiPrincipal:
    return await resources_of(request).auth.require_api_key(request, roles)


async def _settings(request: Request, principal: ApiPrincipal) -> OrgSettings:
    async with resources_of(request).pool.connection() as conn:
        return await org_settings(conn, principal.org_id)


async def collection(request: Request) -> Response:
    """``GET /v1/orders?day=&status=&after=&limit=`` and ``POST /v1/orders``."""
    if request.method == "GET":
        return await _list(request)
    principal = await _principal(request, ORDER_WRITERS)
    body = await request_body(request)
    order = decode(body, request.headers.get("content-type"), OrderIn)
    check_order(order, await _settings(request, principal))

    async def command(conn: AsyncConnection) -> Answer:
        created = await orders.create_order(conn, principal.org_id, order)
        return Answer(201, encode(created))

    return await run_create(request, principal, body, command)


async def _list(request: Request) -> Response:
    principal = await _principal(request, READERS)
    day: date | None = query_date(request, "day")
    status_raw = request.query_params.get("status") or None
    if status_raw is not None and status_raw not in _STATUSES:
        raise BadParameter("status", f"expected one of {', '.join(_STATUSES)}, got {status_raw!r}")
    status = cast("OrderStatus | None", status_raw)
    after = query_int(request, "after", 0, 0, 2**63 - 1)
    limit = query_int(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
    async with resources_of(request).pool.connection() as conn:
        page = await orders.list_orders(
            conn, principal.org_id, day=day, status=status, after=after, limit=limit
        )
    next_after = page[-1].id if len(page) == limit else None
    return answer({"orders": page, "next_after": next_after})


async def item(request: Request) -> Response:
    """``GET`` and ``PATCH /v1/orders/{order_id}``; a patch needs a ``pending`` order (else 409)."""
    order_id = OrderId(path_id(request, "order_id"))
    missing = NotFound(f"no order {order_id} in this organisation")
    pool = resources_of(request).pool
    if request.method == "GET":
        principal = await _principal(request, READERS)
        async with pool.connection() as conn:
            found = await orders.get_order(conn, principal.org_id, order_id)
        if found is None:
            raise missing
        return answer(found)
    principal = await _principal(request, ORDER_WRITERS)
    body = await request_body(request)
    patch = decode(body, request.headers.get("content-type"), OrderPatch)
    settings = await _settings(request, principal)
    async with pool.connection() as conn, conn.transaction():
        current = await orders.get_order(conn, principal.org_id, order_id, lock=True)
        if current is None:
            raise missing
        if current.status != "pending":
            raise Conflict(
                "status", f"expected a pending order to change, got status {current.status}"
            )
        merged = merge(current, patch, OrderIn)
        check_order(merged, settings)
        updated = await orders.update_order(conn, principal.org_id, order_id, merged)
    return answer(updated)


async def cancel(request: Request) -> Response:
    """``POST /v1/orders/{order_id}/cancel``: idempotent; 409 for a delivered order."""
    principal = await _principal(request, ORDER_WRITERS)
    order_id = OrderId(path_id(request, "order_id"))
    body = await request_body(request)
    reason = decode(body, request.headers.get("content-type"), CancelIn, empty_ok=True).reason
    resources = resources_of(request)
    async with resources.pool.connection() as conn:
        cancelled = await orders.cancel_order(conn, principal.org_id, order_id, reason)
    if cancelled is None:
        raise NotFound(f"no order {order_id} in this organisation")
    # Its stop leaves a running route, the rest is re-timed, the driver gets the new route.
    await after_cancel(resources, principal.org_id, order_id)
    return answer(cancelled)


async def cancel_what(request: Request) -> Response:
    """``POST /v1/orders/{order_id}/cancel/preview``: what cancelling would change on a running
    route; nothing is cancelled."""
    principal = await _principal(request, ORDER_WRITERS)
    order_id = OrderId(path_id(request, "order_id"))
    resources = resources_of(request)
    async with resources.pool.connection() as conn:
        found = await orders.get_order(conn, principal.org_id, order_id)
    if found is None:
        raise NotFound(f"no order {order_id} in this organisation")
    if found.status == "delivered":
        raise Conflict(
            "status", "expected an order that is not yet delivered, got status delivered"
        )
    return await cancel_preview(resources, principal.org_id, order_id)


async def opt_out(request: Request) -> Response:
    """``PUT /v1/orders/{order_id}/opt-out``: the customer gets messages or not, at any status
    (a customer who calls in is heard mid-route too); answers the order."""
    principal = await _principal(request, ORDER_WRITERS)
    order_id = OrderId(path_id(request, "order_id"))
    body = await request_body(request)
    wanted = decode(body, request.headers.get("content-type"), OptOutIn)
    async with resources_of(request).pool.connection() as conn:
        changed = await orders.set_opt_out(conn, principal.org_id, order_id, wanted.opted_out)
    if changed is None:
        raise NotFound(f"no order {order_id} in this organisation")
    return answer(changed)


Screened = tuple[Rows, list[tuple[int, OrderIn]], list[tuple[int, OrderIn]], list[ImportProblem]]


def _screen(body: bytes, content_type: str | None, settings: OrgSettings) -> Screened:
    """Read and check an import's rows: ``(rows, new refs, repeated refs, problems)``.

    Of several rows with one ``external_ref`` the first good one counts; later ones are
    repeats, reported as duplicates once the first one's order id is known.
    """
    parsed = read_rows(body, content_type, settings)
    good: list[tuple[int, OrderIn]] = []
    repeats: list[tuple[int, OrderIn]] = []
    rejected = list(parsed.rejected)
    seen: set[str] = set()
    for line, order in parsed.orders:
        try:
            check_order(order, settings)
        except InvalidField as exc:
            rejected.append(parsed.problem(line, exc))
            continue
        if order.external_ref in seen:
            repeats.append((line, order))
        else:
            seen.add(order.external_ref)
            good.append((line, order))
    return parsed, good, repeats, rejected


async def import_orders(request: Request) -> Response:
    """``POST /v1/orders/import``: CSV or a JSON array; 200 with every row's fate.

    The answer is 422 when there were rows and none of them is (or already was) an order.
    """
    principal = await _principal(request, ORDER_WRITERS)
    body = await request_body(request)
    settings = await _settings(request, principal)
    # 50,000 rows take seconds of CPU: off the event loop, so other requests keep flowing
    screened = await asyncio.to_thread(_screen, body, request.headers.get("content-type"), settings)
    parsed, good, repeats, rejected = screened

    async def command(conn: AsyncConnection) -> Answer:
        created, duplicates = await orders.import_orders(conn, principal.org_id, good)
        ids = {row.external_ref: row.order_id for row in (*created, *duplicates)}
        duplicates += [
            ImportedRow(line=line, external_ref=o.external_ref, order_id=ids[o.external_ref])
            for line, o in repeats
        ]
        result = ImportResult(
            rows=parsed.rows,
            created=created,
            duplicates=sorted(duplicates, key=lambda row: row.line),
            rejected=sorted(rejected, key=lambda problem: problem.line),
        )
        status = 422 if parsed.rows and not created and not duplicates else 200
        return Answer(status, encode(result))

    return await run_create(request, principal, body, command)
