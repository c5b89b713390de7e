"""``GET /v1/live/ws``: the dispatcher's live map feed, for one organisation (API key).

On connect: a snapshot (every driver's latest position, the day's routes with their stops, the
open stops' arrival windows; the day is today in the organisation's zone, or ``?day=``),
then the events missed since ``?since=<event id>`` if given, then live changes. Positions and
moved arrival windows go through latest-per-key subscriptions (per driver, per stop: a slow
screen skips intermediate values, never falls behind on them); the other events go through a
bounded queue and a screen that falls more than that behind is closed with 4408 and reconnects
with ``?since=`` set to the last event id it saw (the replay leaves out moved windows: the new
snapshot has the current ones). ``?bbox=min_lon,min_lat,max_lon,max_lat`` limits positions to
an area. Each API process subscribes once per
organisation channel, whatever the number of screens (see :mod:`realtime.hub`).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import msgspec
from starlette.websockets import WebSocket, WebSocketDisconnect

from app.auth import AuthError, Forbidden
from app.errors import CLOSE_BAD_REQUEST, CLOSE_FORBIDDEN, CLOSE_TOO_SLOW, CLOSE_UNAUTHORIZED
from app.metrics import WS_CONNECTIONS
from app.resources import Resources
from realtime.events import is_window_change
from realtime.hub import LatestSubscription, Overflowed, Subscription
from realtime.streams import decode_live
from schemas.codecs import ARRIVAL_WINDOW_DECODER
from schemas.eta import ArrivalWindow, EtaChanged
from schemas.events import EVENT_DECODER, DeliveryUpdate
from schemas.ids import OrgId
from schemas.live import EventMessage, LiveMessage, Positions, Snapshot, WindowChanges
from schemas.ping import LivePosition
from schemas.route import RouteView
from store import routes as route_store
from store.delivery import org_settings

_JSON = msgspec.json.Encoder()
BBox = tuple[float, float, float, float]


async def live_socket(websocket: WebSocket) -> None:
    """Authenticate a dispatcher screen and stream its organisation's live state."""
    resources: Resources = websocket.app.state.resources
    await websocket.accept()
    try:
        principal = await resources.auth.require_api_key(
            websocket, ("admin", "dispatcher", "integration")
        )
    except AuthError as exc:
        await websocket.close(CLOSE_UNAUTHORIZED, exc.reason)
        return
    except Forbidden as exc:
        await websocket.close(CLOSE_FORBIDDEN, exc.reason)
        return
    try:
        bbox = _bbox(websocket.query_params.get("bbox"))
    except ValueError as exc:
        await websocket.close(CLOSE_BAD_REQUEST, f"bbox: {exc}")
        return
    try:
        day = _day(websocket.query_params.get("day"))
    except ValueError as exc:
        await websocket.close(CLOSE_BAD_REQUEST, f"day: {exc}")
        return
    since = websocket.query_params.get("since")
    names = resources.names
    org_id = principal.org_id
    WS_CONNECTIONS.labels("dispatcher").inc()
    try:
        async with (
            resources.hub.subscribe_latest(names.positions_channel(org_id)) as positions,
            resources.hub.subscribe_latest(names.org_windows_channel(org_id)) as windows,
            resources.hub.subscribe(names.org_events_channel(org_id)) as events,
        ):
            # Subscribed first, then the snapshot: nothing can fall between the two.
            await _send(websocket, await snapshot(resources, org_id, bbox, day))
            last_id = await _replay(resources, websocket, org_id, since) if since else None
            tasks = [
                asyncio.create_task(_positions(websocket, positions, bbox)),
                asyncio.create_task(_windows(websocket, windows)),
                asyncio.create_task(_events(websocket, events, last_id)),
                asyncio.create_task(_until_closed(websocket)),
            ]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(
                        asyncio.CancelledError, WebSocketDisconnect, Exception
                    ):
                        await task
    except WebSocketDisconnect:
        return
    finally:
        WS_CONNECTIONS.labels("dispatcher").dec()


async def snapshot(
    resources: Resources, org_id: OrgId, bbox: BBox | None, day: date | None = None
) -> Snapshot:
    """Every driver's latest position and the routes of ``day`` (default: the organisation's
    today)."""
    names = resources.names
    async with resources.redis.pipeline(transaction=False) as pipe:
        for shard in range(names.shards):
            pipe.hvals(names.live(shard, org_id))
        replies = await pipe.execute()
    drivers = [decode_live(v) for reply in replies for v in reply]
    now = datetime.now(UTC)
    async with resources.pool.connection() as conn:
        zone = (await org_settings(conn, org_id)).timezone
        if day is None:
            day = now.astimezone(ZoneInfo(zone)).date()
        present = await route_store.day_views(conn, org_id, day)
    return Snapshot(
        as_of=now,
        day=day.isoformat(),
        time_zone=zone,
        drivers=sorted(_within(drivers, bbox), key=lambda d: d.driver_id),
        routes=present,
        windows=await open_windows(resources, present),
    )


async def open_windows(resources: Resources, routes: list[RouteView]) -> list[ArrivalWindow]:
    """The newest arrival window of every open stop of ``routes`` (where the ETA worker has one)."""
    if not routes:
        return []
    async with resources.redis.pipeline(transaction=False) as pipe:
        for route in routes:
            pipe.hgetall(resources.names.arrival_windows(route.id))
        replies = await pipe.execute()
    windows = []
    for route, reply in zip(routes, replies, strict=True):
        open_stops = {s.id for s in route.stops if s.status in ("pending", "arrived")}
        for stop_id, raw in reply.items():
            if int(stop_id) in open_stops:
                windows.append(ARRIVAL_WINDOW_DECODER.decode(raw))
    return windows


async def _replay(
    resources: Resources, websocket: WebSocket, org_id: OrgId, since: str
) -> str | None:
    """Send the organisation's events after ``since`` from the stream; the last id sent."""
    last: str | None = None
    entries = await resources.redis.xrange(resources.names.events, min=f"({since}", count=10_000)
    for entry_id, fields in entries:
        event = EVENT_DECODER.decode(fields[b"e"])
        # Moved windows are not replayed: the snapshot just sent holds the current ones.
        if event.org_id == org_id and not is_window_change(event):
            last = entry_id.decode()
            await _send(websocket, EventMessage(id=last, event=event))
    return last


async def _positions(websocket: WebSocket, feed: LatestSubscription, bbox: BBox | None) -> None:
    while True:
        latest = await feed.take()
        drivers = _within([decode_live(v) for v in latest.values()], bbox)
        if drivers:
            await _send(websocket, Positions(drivers=drivers))


async def _windows(websocket: WebSocket, feed: LatestSubscription) -> None:
    while True:
        latest = await feed.take()
        changes = []
        for raw in latest.values():
            event = EVENT_DECODER.decode(raw)
            if isinstance(event, DeliveryUpdate) and isinstance(event.detail, EtaChanged):
                changes.append(event.detail)
        if changes:
            await _send(websocket, WindowChanges(changes=changes))


async def _events(websocket: WebSocket, feed: Subscription, after: str | None) -> None:
    while True:
        try:
            data = await feed.get()
        except Overflowed as exc:
            await websocket.close(CLOSE_TOO_SLOW, f"{exc}; reconnect with ?since=")
            return
        entry_id, _, payload = data.partition(b"|")
        if after is not None and _older_or_same(entry_id.decode(), after):
            continue  # already sent by the replay
        await _send(
            websocket, EventMessage(id=entry_id.decode(), event=EVENT_DECODER.decode(payload))
        )


async def _until_closed(websocket: WebSocket) -> None:
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


async def _send(websocket: WebSocket, message: LiveMessage) -> None:
    await websocket.send_text(_JSON.encode(message).decode())


def _within(drivers: list[LivePosition], bbox: BBox | None) -> list[LivePosition]:
    if bbox is None:
        return drivers
    min_lon, min_lat, max_lon, max_lat = bbox
    return [d for d in drivers if min_lon <= d.lon <= max_lon and min_lat <= d.lat <= max_lat]


def _bbox(raw: str | None) -> BBox | None:
    """``min_lon,min_lat,max_lon,max_lat``; ValueError saying what was expected and what came."""
    if not raw:
        return None
    try:
        parts = [float(p) for p in raw.split(",")]
    except ValueError:
        raise ValueError(
            f"expected four numbers min_lon,min_lat,max_lon,max_lat, got {raw!r}"
        ) from None
    if len(parts) != 4 or parts[0] > parts[2] or parts[1] > parts[3]:
        raise ValueError(f"expected min_lon,min_lat,max_lon,max_lat with min <= max, got {raw!r}")
    return parts[0], parts[1], parts[2], parts[3]


def _day(raw: str | None) -> date | None:
    """``YYYY-MM-DD``; ValueError saying what was expected and what came."""
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"expected a date YYYY-MM-DD, got {raw!r}") from None


def _older_or_same(entry_id: str, than: str) -> bool:
    a_ms, _, a_seq = entry_id.partition("-")
    b_ms, _, b_seq = than.partition("-")
    return (int(a_ms), int(a_seq or 0)) <= (int(b_ms), int(b_seq or 0))
