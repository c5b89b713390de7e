"""The ways pings come in over HTTP: the native batch API, OsmAnd and OwnTracks.

Each route authenticates the device, decodes with its protocol adapter (pure code in
``realtime/protocols``), and hands the accepted pings to :func:`accept`, which puts them on the
driver's stream. A 2xx answer is sent only after Redis has the entry.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from app.auth import basic_credentials
from app.errors import Unauthorized, Unavailable
from app.http import read_body, resources_of
from app.metrics import INGEST_SECONDS, PINGS_REJECTED
from app.resources import Resources
from realtime.errors import InvalidPing, UnknownDevice
from realtime.protocols import native, osmand, owntracks
from realtime.protocols.native import MSGPACK_TYPES
from realtime.validate import check_times
from schemas.auth import DevicePrincipal
from schemas.codecs import INGEST_RESULT_JSON, INGEST_RESULT_MSGPACK
from schemas.ping import IngestResult, Ping, PingBatch, PingSource, Rejection, TimeSource


async def accept(
    resources: Resources,
    principal: DevicePrincipal,
    source: PingSource,
    pings: Sequence[Ping],
    received_at: datetime,
    time_source: TimeSource = "device",
) -> int:
    """Put ``pings`` on the driver's stream as one entry; return how many were accepted.

    Raises :class:`Unavailable` when Redis did not take the entry: then nothing was stored.
    """
    if not pings:
        return 0
    batch = PingBatch(
        org_id=principal.org_id,
        driver_id=principal.driver_id,
        source=source,
        received_at=received_at,
        pings=list(pings),
        time_source=time_source,
    )
    try:
        await resources.appender.append(batch)
    except (RedisError, OSError) as exc:
        PINGS_REJECTED.labels(source, "store_unavailable").inc(len(pings))
        raise Unavailable(f"the ping stream is unavailable ({type(exc).__name__}); retry") from exc
    return len(pings)


def count_rejections(source: PingSource, rejected: Sequence[Rejection]) -> None:
    """Count rejected pings by the field that failed."""
    for rejection in rejected:
        PINGS_REJECTED.labels(source, rejection.field).inc()


async def post_pings(request: Request) -> Response:
    """``POST /v1/pings``: a batch of the calling driver's pings, JSON or MessagePack."""
    started = time.perf_counter()
    resources = resources_of(request)
    settings = resources.settings
    principal = await resources.auth.require_device(request)
    body = await read_body(request, settings.max_body_bytes)
    content_type = request.headers.get("content-type")
    now = datetime.now(UTC)
    decoded = native.decode_batch(
        body,
        content_type,
        now=now,
        max_future_s=settings.ping_max_future_s,
        max_age_s=settings.ping_max_age_s,
    )
    accepted = await accept(resources, principal, "http", decoded.pings, now)
    count_rejections("http", decoded.rejected)
    result = IngestResult(accepted=accepted, rejected=decoded.rejected)
    status = 200 if accepted or not decoded.rejected else 422
    INGEST_SECONDS.labels("http").observe(time.perf_counter() - started)
    if content_type is not None and content_type.split(";")[0].strip() in MSGPACK_TYPES:
        return Response(INGEST_RESULT_MSGPACK.encode(result), status, media_type=MSGPACK_TYPES[0])
    return Response(INGEST_RESULT_JSON.encode(result), status, media_type="application/json")


async def osmand_fix(request: Request) -> Response:
    """The OsmAnd protocol (Traccar Client and others): GET or POST, query, form or JSON.

    A fix without a time gets ``now``, which is also its stream entry's ``received_at``, and
    the entry says ``time_source="server"``.
    """
    resources = resources_of(request)
    resources.auth.check(request)
    settings = resources.settings
    now = datetime.now(UTC)
    body = await read_body(request, settings.max_body_bytes) if request.method == "POST" else b""
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if body and content_type == "application/json":
        fix = osmand.decode_json(body, now=now)
    else:
        params: dict[str, str] = dict(request.query_params)
        if body and content_type in ("", "application/x-www-form-urlencoded", "text/plain"):
            params.update(parse_qsl(body.decode("utf-8", errors="replace")))
        fix = osmand.decode_params(params, now=now)
    principal = await resources.auth.device(fix.device_id)
    if principal is None:
        PINGS_REJECTED.labels("osmand", "unknown_device").inc()
        await resources.auth.failed(request)
        raise UnknownDevice("id", "unknown device identifier: register it as a device token")
    await _accept_one(resources, principal, "osmand", fix.ping, now, fix.time_source)
    return Response(status_code=200)


async def owntracks_location(request: Request) -> Response:
    """OwnTracks HTTP mode: ``POST /owntracks`` with Basic auth; answers ``[]``.

    An empty body or a message other than ``location`` is answered ``[]`` too, storing nothing.
    """
    resources = resources_of(request)
    resources.auth.check(request)
    credentials = basic_credentials(request)
    if credentials is None:
        raise Unauthorized(
            "OwnTracks needs HTTP Basic auth with the device token as password", challenge="Basic"
        )
    principal = await resources.auth.device(credentials[1])
    if principal is None:
        await resources.auth.failed(request)
        raise Unauthorized("unknown or revoked device token", challenge="Basic")
    now = datetime.now(UTC)
    body = await read_body(request, resources.settings.max_body_bytes)
    fix = owntracks.decode(body, now=now)
    if fix is not None:
        await _accept_one(resources, principal, "owntracks", fix.ping, now, fix.time_source)
    return Response(b"[]", media_type="application/json")


async def _accept_one(
    resources: Resources,
    principal: DevicePrincipal,
    source: PingSource,
    ping: Ping,
    now: datetime,
    time_source: TimeSource,
) -> None:
    settings = resources.settings
    accepted, rejected = check_times(
        [ping], now, max_future_s=settings.ping_max_future_s, max_age_s=settings.ping_max_age_s
    )
    if rejected:
        count_rejections(source, rejected)
        raise InvalidPing(rejected[0].field, rejected[0].reason)
    await accept(resources, principal, source, accepted, now, time_source)
