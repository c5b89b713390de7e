"""Proof requirements and what bends them: per organisation and order, the check a delivery
must pass (422 naming what is missing), a dispatcher's override, another attempt for a failed
order, and the audit entries of these and of every stop transition; ``GET /v1/audit/verify``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from psycopg import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response

from app.api.proof_reads import override_view
from app.auth import ADMINS, FLEET_WRITERS, ORDER_WRITERS, READERS
from app.errors import CLOSE_UNPROCESSABLE, ApiError, Conflict, InvalidField, Kind, NotFound
from app.http import answer, decode, path_id, request_body, resources_of
from schemas.auth import ApiPrincipal
from schemas.ids import DriverId, OrderId, StopId
from schemas.proofs import (
    OverrideIn,
    ProofRequirements,
    Reattempt,
    ReattemptIn,
    Requirement,
)
from store import audit, proofs


class RequirementsUnmet(ApiError):
    """Closing the stop as delivered lacks what its order requires; ``field`` lists it."""

    kind = Kind(422, "requirements_unmet", CLOSE_UNPROCESSABLE)

    def __init__(self, missing: Sequence[str]) -> None:
        super().__init__(
            ", ".join(missing),
            f"the order requires {', '.join(missing)} before it is delivered; capture a proof"
            " with them, or have a dispatcher override",
        )
        self.missing = list(missing)


# --- the check ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Provided:
    """What a capture (or a bare command: nothing) brings towards the requirements."""

    photo: bool = False
    signature: bool = False
    recipient_name: bool = False
    age_verified: bool = False
    missing_parcels: tuple[str, ...] = ()


def unmet(req: ProofRequirements, given: Provided, waived: set[str]) -> list[str]:
    """What ``req`` asks that ``given`` lacks and nobody waived, in a stable order."""
    lacking: list[Requirement] = []
    if req.photo and not given.photo:
        lacking.append("photo")
    if req.signature and not given.signature:
        lacking.append("signature")
    if req.recipient_name and not given.recipient_name:
        lacking.append("recipient_name")
    if req.all_parcels and given.missing_parcels:
        lacking.append("parcels")
    if req.min_age is not None and not given.age_verified:
        lacking.append("age_verified")
    return [item for item in lacking if item not in waived]


async def waived_for(conn: AsyncConnection[Any], stop_id: StopId) -> set[str]:
    """Everything dispatchers waived for the stop."""
    return {item for row in await proofs.overrides(conn, [stop_id]) for item in row.waived}


async def check_bare_delivery(
    conn: AsyncConnection[Any], org_id: Any, stop_id: StopId, order_id: OrderId
) -> None:
    """Refuse (422) delivering a stop with no proof when its order requires any.

    For ``POST /v1/driver/stops/{id}/deliver``: a bare command brings nothing, so every
    requirement not waived is missing (parcels too, when the order has any).
    """
    req = await proofs.order_requirements(conn, org_id, order_id)
    parcels = await proofs.order_parcels(conn, org_id, order_id)
    lacking = unmet(req, Provided(missing_parcels=tuple(parcels)), await waived_for(conn, stop_id))
    if lacking:
        raise RequirementsUnmet(lacking)


def reconcile(expected: Sequence[str], scanned: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(missing, unexpected)``: the order's parcels not scanned, and scans not of the order."""
    seen = set(scanned)
    known = set(expected)
    return [p for p in expected if p not in seen], [s for s in scanned if s not in known]


async def record_transition(
    conn: AsyncConnection[Any],
    org_id: Any,
    stop_id: StopId,
    before: str,
    after: str,
    driver_id: DriverId | None,
    proof_id: int | None = None,
    **extra: Any,
) -> None:
    """Append a stop's transition to the audit chain (in the caller's transaction)."""
    data: dict[str, Any] = {"from": before, "to": after, "driver_id": driver_id}
    if proof_id is not None:
        data["proof_id"] = proof_id
    data.update(extra)
    await audit.append(conn, org_id, f"stop.{after}", f"stop:{stop_id}", data)


# --- requirements, overrides, re-attempts ----------------------------------------------------


async def org_requirements(request: Request) -> Response:
    """``GET|PUT /v1/settings/proof-requirements``: the organisation's defaults."""
    resources = resources_of(request)
    writing = request.method == "PUT"
    principal = await resources.auth.require_api_key(request, FLEET_WRITERS if writing else READERS)
    async with resources.pool.connection() as conn:
        if writing:
            await _set_requirements(request, conn, principal, None)
        return answer(await proofs.default_requirements(conn, principal.org_id))


async def order_requirements(request: Request) -> Response:
    """``GET|PUT /v1/orders/{order_id}/proof-requirements``: one order's own requirements."""
    resources = resources_of(request)
    writing = request.method == "PUT"
    principal = await resources.auth.require_api_key(request, ORDER_WRITERS if writing else READERS)
    order_id = OrderId(path_id(request, "order_id"))
    async with resources.pool.connection() as conn:
        if not await proofs.order_exists(conn, principal.org_id, order_id):
            raise NotFound(f"no order {order_id}")
        if writing:
            await _set_requirements(request, conn, principal, order_id)
        return answer(await proofs.order_requirements(conn, principal.org_id, order_id))


async def _set_requirements(
    request: Request, conn: AsyncConnection[Any], principal: ApiPrincipal, order_id: OrderId | None
) -> None:
    """Store the body's requirements as the organisation's defaults (``order_id`` None) or
    the order's own, with their audit entry."""
    req = decode(
        await request_body(request), request.headers.get("content-type"), ProofRequirements
    )
    kind, subject = (
        ("requirements.default", "org")
        if order_id is None
        else ("requirements.order", f"order:{order_id}")
    )
    async with conn.transaction():
        await proofs.set_requirements(conn, principal.org_id, order_id, req)
        await audit.append(
            conn,
            principal.org_id,
            kind,
            subject,
            {"requirements": msgspec.structs.asdict(req), "key_id": principal.key_id},
        )


async def override(request: Request) -> Response:
    """``POST /v1/stops/{stop_id}/proof-override``: a dispatcher waives requirements, with a
    reason, before the driver closes the stop; recorded and audited."""
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, FLEET_WRITERS)
    stop_id = StopId(path_id(request, "stop_id"))
    body = decode(await request_body(request), request.headers.get("content-type"), OverrideIn)
    async with resources.pool.connection() as conn, conn.transaction():
        stop = await proofs.stop_context(conn, principal.org_id, None, stop_id)
        if stop is None:
            raise NotFound(f"no stop {stop_id}")
        if stop.status not in ("pending", "arrived"):
            raise Conflict("status", f"cannot override a stop that is {stop.status}")
        if body.waive is None:
            req = await proofs.order_requirements(conn, principal.org_id, stop.order_id)
            waive = unmet(req, Provided(missing_parcels=("all",)), set())
        else:
            waive = list(dict.fromkeys(body.waive))
        row = await proofs.add_override(
            conn, principal.org_id, stop_id, waive, body.reason, principal.key_id
        )
        await audit.append(
            conn,
            principal.org_id,
            "proof.override",
            f"stop:{stop_id}",
            {"waived": waive, "reason": body.reason, "key_id": principal.key_id},
        )
    return answer(override_view(row), 201)


async def reattempt(request: Request) -> Response:
    """``POST /v1/orders/{order_id}/reattempt``: a failed order, pending again on a later day."""
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, ORDER_WRITERS)
    order_id = OrderId(path_id(request, "order_id"))
    body = decode(await request_body(request), request.headers.get("content-type"), ReattemptIn)
    async with resources.pool.connection() as conn, conn.transaction():
        state = await proofs.order_state(conn, principal.org_id, order_id)
        if state is None:
            raise NotFound(f"no order {order_id}")
        status, day = state
        if status != "failed":
            raise Conflict("status", f"expected a failed order, got one that is {status}")
        if body.day <= day:
            raise InvalidField("day", f"expected a day after {day}, got {body.day}")
        attempt = await proofs.reattempt(conn, principal.org_id, order_id, body.day)
        if attempt is None:
            raise Conflict("status", "the order changed meanwhile")
        await audit.append(
            conn,
            principal.org_id,
            "order.reattempt",
            f"order:{order_id}",
            {"from_day": day.isoformat(), "day": body.day.isoformat(), "attempt": attempt},
        )
    return answer(Reattempt(order_id=order_id, day=body.day, attempt=attempt))


async def verify_audit(request: Request) -> Response:
    """``GET /v1/audit/verify``: walk the caller's organisation's audit chain."""
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, ADMINS)
    async with resources.pool.connection() as conn:
        return answer(await audit.verify(conn, principal.org_id))
