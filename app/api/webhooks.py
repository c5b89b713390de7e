"""The webhooks API: an organisation's endpoints, their secrets, delivery log and replays.

* ``POST /v1/webhooks``: register an endpoint; ``201`` with its signing secret, shown in this
  answer only. ``GET /v1/webhooks``: the organisation's endpoints (no secrets).
* ``GET``, ``PATCH``, ``DELETE /v1/webhooks/{webhook_id}``; ``POST …/rotate``: a new secret
  (shown once); the old one goes on signing beside it for ``keep_old_s`` (a day by default, 0
  for at once).
* ``GET …/deliveries``: the delivery log, newest first, each delivery with its attempts
  (outcome, status code, latency, error), a page at a time (``before``, ``limit``, ``state``).
* ``POST …/deliveries/{delivery_id}/replay`` and ``POST …/replay`` (``{"from", "to"}``):
  queue deliveries again, due now; the receiver gets the same body and ``webhook-id``.

Roles: any API key reads; only administrators write (an endpoint says where the organisation's
events go, and its secret vouches for them: like the organisation's settings, not like the
fleet). Another organisation's endpoints and deliveries answer 404 like missing ones.

A URL is refused (422, ``url``) unless it is ``http(s)`` with a host, no user name or password,
no fragment, and its host resolves only to public addresses (loopback, private, link-local and
the like are refused unless ``LASTMILE_WEBHOOK_ALLOW_ADDRESSES`` allows their class). The
delivery checks again at each connection (:mod:`adapters.webhooks`): DNS may change after the
endpoint is saved. An unknown event type is a 422 naming ``event_types[i]``.
"""

from __future__ import annotations

import base64
import secrets
from typing import Final, get_args

import httpx
from starlette.requests import Request
from starlette.responses import Response

from adapters.errors import TargetRefused
from adapters.webhooks import AddressClass, resolve_allowed
from app.auth import ADMINS, READERS
from app.errors import CLOSE_UNPROCESSABLE, ApiError, BadParameter, Conflict, Kind, NotFound
from app.http import (
    answer,
    ascii_int,
    decode,
    merge,
    path_id,
    query_int,
    request_body,
    resources_of,
)
from schemas.auth import ApiPrincipal, Role
from schemas.ids import MAX_ID
from schemas.webhooks import (
    ALL_TYPES,
    EVENT_TYPES,
    DeliveryPage,
    DeliveryState,
    Replayed,
    ReplayRange,
    RotateIn,
    WebhookIn,
    WebhookPatch,
    WebhookSecret,
)
from store import webhooks

DEFAULT_PAGE: Final = 50
MAX_PAGE: Final = 200
SECRET_BYTES: Final = 32
_STATES: Final[tuple[DeliveryState, ...]] = get_args(DeliveryState)


class RefusedField(ApiError):
    """A well-formed field this API will not take: a URL it may not send to, an unknown event
    type, a range that ends before it starts."""

    kind = Kind(422, "refused_field", CLOSE_UNPROCESSABLE)


def new_secret() -> str:
    """A Standard Webhooks signing secret: ``whsec_`` and base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


async def check_url(raw: str, allowed: frozenset[AddressClass]) -> str:
    """``raw`` if webhooks may be sent there now, else :class:`RefusedField` naming ``url``."""
    try:
        url = httpx.URL(raw)
    except httpx.InvalidURL as exc:
        raise RefusedField("url", f"expected an http(s) URL, got {raw!r} ({exc})") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise RefusedField("url", f"expected an http(s) URL with a host, got {raw!r}")
    if url.userinfo:
        raise RefusedField(
            "url", "expected no user name or password in the URL: the signature vouches for us"
        )
    if url.fragment:
        raise RefusedField("url", "expected no #fragment: it is never sent")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        await resolve_allowed(url.host, port, allowed)
    except TargetRefused as exc:
        raise RefusedField("url", exc.detail) from None
    return raw


def check_types(event_types: list[str]) -> list[str]:
    """The subscribed types without repeats, or :class:`RefusedField` naming an unknown one."""
    for n, kind in enumerate(event_types):
        if kind != ALL_TYPES and kind not in EVENT_TYPES:
            raise RefusedField(
                f"event_types[{n}]",
                f"expected {ALL_TYPES!r} or one of {', '.join(EVENT_TYPES)}, got {kind!r}",
            )
    return list(dict.fromkeys(event_types))


async def _principal(request: Request, roles: tuple[Role, ...]) -> ApiPrincipal:
    return await resources_of(request).auth.require_api_key(request, roles)


def _allowed(request: Request) -> frozenset[AddressClass]:
    return frozenset(resources_of(request).settings.webhook_allow_addresses)


def _missing(endpoint_id: int) -> NotFound:
    return NotFound(f"no webhook endpoint {endpoint_id} in this organisation")


async def collection(request: Request) -> Response:
    """``GET`` (list) and ``POST`` (create) on ``/v1/webhooks``."""
    pool = resources_of(request).pool
    if request.method == "GET":
        principal = await _principal(request, READERS)
        async with pool.connection() as conn:
            found = await webhooks.list_endpoints(conn, principal.org_id)
        return answer({"webhooks": found})
    principal = await _principal(request, ADMINS)
    body = await request_body(request)
    data = decode(body, request.headers.get("content-type"), WebhookIn)
    types = check_types(data.event_types)
    url = await check_url(data.url, _allowed(request))
    async with pool.connection() as conn:
        created = await webhooks.create(
            conn,
            principal.org_id,
            url=url,
            secret=new_secret(),
            event_types=types,
            description=data.description,
            enabled=data.enabled,
        )
    return answer(created, 201)


async def item(request: Request) -> Response:
    """``GET``, ``PATCH`` and ``DELETE`` on ``/v1/webhooks/{webhook_id}``."""
    endpoint_id = path_id(request, "webhook_id")
    pool = resources_of(request).pool
    if request.method == "GET":
        principal = await _principal(request, READERS)
        async with pool.connection() as conn:
            found = await webhooks.get(conn, principal.org_id, endpoint_id)
        if found is None:
            raise _missing(endpoint_id)
        return answer(found)
    principal = await _principal(request, ADMINS)
    if request.method == "DELETE":
        async with pool.connection() as conn:
            if not await webhooks.delete(conn, principal.org_id, endpoint_id):
                raise _missing(endpoint_id)
        return Response(status_code=204)
    body = await request_body(request)
    patch = decode(body, request.headers.get("content-type"), WebhookPatch)
    types = check_types(patch.event_types) if isinstance(patch.event_types, list) else None
    if isinstance(patch.url, str):
        await check_url(patch.url, _allowed(request))
    async with pool.connection() as conn, conn.transaction():
        current = await webhooks.get(conn, principal.org_id, endpoint_id, lock=True)
        if current is None:
            raise _missing(endpoint_id)
        merged = merge(current, patch, WebhookIn)
        updated = await webhooks.update(
            conn,
            principal.org_id,
            endpoint_id,
            url=merged.url,
            event_types=types if types is not None else merged.event_types,
            description=merged.description,
            enabled=merged.enabled,
        )
    if updated is None:
        raise _missing(endpoint_id)
    return answer(updated)


async def rotate(request: Request) -> Response:
    """``POST /v1/webhooks/{webhook_id}/rotate``: a new signing secret, shown once."""
    endpoint_id = path_id(request, "webhook_id")
    principal = await _principal(request, ADMINS)
    body = await request_body(request)
    keep = decode(body, request.headers.get("content-type"), RotateIn, empty_ok=True)
    secret = new_secret()
    async with resources_of(request).pool.connection() as conn:
        rotated = await webhooks.rotate_secret(
            conn, principal.org_id, endpoint_id, secret, keep.keep_old_s
        )
    if rotated is None:
        raise _missing(endpoint_id)
    return answer(
        WebhookSecret(
            id=endpoint_id,
            secret=secret,
            secret_rotated_at=rotated.secret_rotated_at,
            previous_secret_until=rotated.previous_secret_until,
        )
    )


def _page_params(request: Request) -> tuple[int | None, int, DeliveryState | None]:
    """``before``, ``limit`` and ``state`` of a delivery log request, or 400 naming one."""
    raw_before = request.query_params.get("before")
    before = None
    if raw_before:
        before = ascii_int(raw_before)
        if before is None or not 0 < before <= MAX_ID:
            raise BadParameter("before", f"expected a delivery id, got {raw_before!r}")
    limit = query_int(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
    raw_state = request.query_params.get("state") or None
    state = next((s for s in _STATES if s == raw_state), None)
    if raw_state is not None and state is None:
        raise BadParameter("state", f"expected one of {', '.join(_STATES)}, got {raw_state!r}")
    return before, limit, state


async def deliveries(request: Request) -> Response:
    """``GET /v1/webhooks/{webhook_id}/deliveries``: the delivery log, newest first."""
    endpoint_id = path_id(request, "webhook_id")
    principal = await _principal(request, READERS)
    before, limit, state = _page_params(request)
    async with resources_of(request).pool.connection() as conn:
        if await webhooks.get(conn, principal.org_id, endpoint_id) is None:
            raise _missing(endpoint_id)
        found = await webhooks.list_deliveries(
            conn, principal.org_id, endpoint_id, before=before, limit=limit + 1, state=state
        )
    more = len(found) > limit
    shown = found[:limit]
    return answer(
        DeliveryPage(deliveries=shown, next_before=shown[-1].id if more and shown else None)
    )


async def replay_delivery(request: Request) -> Response:
    """``POST /v1/webhooks/{webhook_id}/deliveries/{delivery_id}/replay``."""
    endpoint_id = path_id(request, "webhook_id")
    delivery_id = path_id(request, "delivery_id")
    principal = await _principal(request, ADMINS)
    async with resources_of(request).pool.connection() as conn, conn.transaction():
        result = await webhooks.replay_one(conn, principal.org_id, endpoint_id, delivery_id)
        if result == "missing":
            raise NotFound(
                f"no delivery {delivery_id} of webhook endpoint {endpoint_id} in this organisation"
            )
        if result == "sending":
            raise Conflict("delivery_id", "a sender is delivering it now; replay it afterwards")
        found = await webhooks.get_delivery(conn, principal.org_id, endpoint_id, delivery_id)
    return answer(found, 202)


async def replay_range(request: Request) -> Response:
    """``POST /v1/webhooks/{webhook_id}/replay`` with ``{"from", "to"}``."""
    endpoint_id = path_id(request, "webhook_id")
    principal = await _principal(request, ADMINS)
    body = await request_body(request)
    span = decode(body, request.headers.get("content-type"), ReplayRange)
    if span.to <= span.from_:
        raise RefusedField("to", f"expected a time after from ({span.from_.isoformat()})")
    async with resources_of(request).pool.connection() as conn, conn.transaction():
        if await webhooks.get(conn, principal.org_id, endpoint_id) is None:
            raise _missing(endpoint_id)
        count = await webhooks.replay_range(
            conn, principal.org_id, endpoint_id, span.from_, span.to
        )
    return answer(Replayed(replayed=count), 202)
