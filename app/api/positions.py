"""The read side of tracking: every driver's latest position, and one driver's track."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from app.api.checks import FIRST_DAY, LAST_DAY
from app.errors import BadParameter, NotFound
from app.http import ascii_int, path_id, resources_of
from realtime.live import latest_positions
from schemas.codecs import JSON_ENCODER
from schemas.ids import DriverId
from schemas.ping import LivePosition, Ping
from store.positions import track

DEFAULT_TRACK_LIMIT = 10_000
MAX_TRACK_LIMIT = 100_000
DEFAULT_TRACK_WINDOW = timedelta(hours=24)
GEOJSON = "application/geo+json"
EARLIEST = datetime.combine(FIRST_DAY, time(), UTC)
LATEST = datetime.combine(LAST_DAY, time(23, 59, 59), UTC)
"""The times ``from`` and ``to`` may be: a day's track before or after them can be taken
without ``datetime`` running out of years."""


class LiveSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /v1/drivers/live``: the latest position of every driver that has sent one."""

    as_of: datetime
    drivers: list[LivePosition]


class Track(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /v1/drivers/{id}/positions``: a driver's pings in a time window, oldest first."""

    driver_id: DriverId
    start: datetime
    end: datetime
    truncated: bool
    positions: list[Ping]


async def live_positions(request: Request) -> Response:
    """Every driver of the caller's organisation, latest position first by driver id."""
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request)
    drivers = await latest_positions(resources.redis, resources.names, principal.org_id)
    body = JSON_ENCODER.encode(LiveSnapshot(as_of=datetime.now(UTC), drivers=drivers))
    return Response(body, media_type="application/json")


async def driver_positions(request: Request) -> Response:
    """One driver's track as JSON, or as GeoJSON with ``?format=geojson`` or that Accept type."""
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request)
    driver_id = DriverId(path_id(request, "driver_id"))
    now = datetime.now(UTC)
    end = _time_param(request, "to") or now + timedelta(minutes=1)
    start = _time_param(request, "from") or end - DEFAULT_TRACK_WINDOW
    if start >= end:
        raise BadParameter("from", f"expected a time before to={end.isoformat()}, got {start}")
    limit_raw = request.query_params.get("limit")
    limit = DEFAULT_TRACK_LIMIT if limit_raw is None else ascii_int(limit_raw)
    if limit is None or not 1 <= limit <= MAX_TRACK_LIMIT:
        raise BadParameter("limit", f"expected 1 to {MAX_TRACK_LIMIT}, got {limit_raw!r}")
    wanted = request.query_params.get("format", "")
    if wanted not in ("", "json", "geojson"):
        raise BadParameter("format", f"expected json or geojson, got {wanted!r}")
    async with resources.pool.connection() as conn:
        pings = await track(conn, principal.org_id, driver_id, start, end, limit=limit)
    if pings is None:
        raise NotFound(f"no driver {driver_id} in this organisation")
    truncated = len(pings) == limit
    if wanted == "geojson" or (not wanted and GEOJSON in request.headers.get("accept", "")):
        return Response(
            JSON_ENCODER.encode(geojson(driver_id, pings, truncated)), media_type=GEOJSON
        )
    result = Track(driver_id=driver_id, start=start, end=end, truncated=truncated, positions=pings)
    return Response(JSON_ENCODER.encode(result), media_type="application/json")


def geojson(driver_id: DriverId, pings: list[Ping], truncated: bool) -> dict[str, object]:
    """A track as a GeoJSON FeatureCollection: one LineString, with per-vertex times."""
    coordinates = [[p.lon, p.lat] for p in pings]
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {
                    "type": "LineString" if len(pings) != 1 else "Point",
                    "coordinates": coordinates if len(pings) != 1 else coordinates[0],
                },
                "properties": {
                    "driver_id": driver_id,
                    "truncated": truncated,
                    "times": [p.time.isoformat() for p in pings],
                    "speeds_mps": [p.speed_mps for p in pings],
                },
            }
        ],
    }


def _time_param(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise BadParameter(
            name, f"expected an ISO 8601 time such as 2026-11-24T10:00:00Z, got {raw!r}"
        ) from None
    if value.tzinfo is None:
        raise BadParameter(name, f"expected a time with a zone (Z or +01:00), got {raw!r}")
    if not EARLIEST <= value <= LATEST:
        raise BadParameter(
            name, f"expected a time from {FIRST_DAY} to {LAST_DAY} (UTC), got {raw!r}"
        )
    return value
