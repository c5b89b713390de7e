"""``GET /v1/live/ws``: the dispatcher's live map feed, for one organisation (API key).

On connect: a snapshot (every driver's latest position, the day's routes with their stops, the open
stops' arrival windows; the day is today in the organisation's zone, or ``?day=``; a large day's
routes follow it in parts, see :func:`route_parts`), then the events missed since ``?since=<event
id>`` if given (all of them, or none when some are no longer kept or there are too many: the
snapshot's ``replay`` says which, see :func:`realtime.events.replay`), then live changes. Positions
and moved arrival windows go through latest-per-key subscriptions (per driver, per stop: a slow
screen skips intermediate values, never falls behind on them); the other events go through a
bounded queue and a screen that falls more than that behind is closed with 4408 and reconnects with
``?since=`` set to the last event id it saw (the replay leaves out moved windows: the new snapshot
has the current ones). ``?bbox=min_lon,min_lat,max_lon,max_lat`` limits positions to an area. Each
API process subscribes once per organisation channel, whatever the number of screens (see
:mod:`realtime.hub`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from starlette.websockets import WebSocket, WebSocketDisconnect

from app.errors import (
    CLOSE_TOO_SLOW,
    BadParameter,
    Forbidden,
    Unauthorized,
    close_reason,
    close_socket,
)
from app.metrics import WS_CONNECTIONS
from app.resources import Resources
from realtime.events import Replay, replay
from realtime.hub import LatestSubscription, Overflowed, Subscription
from realtime.live import latest_positions, open_windows
from realtime.streams import EntryId, decode_live, parse_entry_id
from schemas.codecs import EVENT_DECODER, LIVE_JSON
from schemas.eta import ArrivalWindow, EtaChanged
from schemas.events import DeliveryUpdate
from schemas.ids import OrgId
from schemas.live import (
    EventMessage,
    LiveMessage,
    Positions,
    ReplayOutcome,
    RoutesPart,
    Snapshot,
    WindowChanges,
)
from schemas.ping import LivePosition
from schemas.route import RouteView
from store import routes as route_store
from store.delivery import org_settings

BBox = tuple[float, float, float, float]


async def live_socket(websocket: WebSocket) -> None:
    """Authenticate a dispatcher screen and stream its organisation's live state."""
    resources: Resources = websocket.app.state.resources
    await websocket.accept()
    try:
        principal = await resources.auth.require_api_key(
            websocket, ("admin", "dispatcher", "integration")
        )
    except (Unauthorized, Forbidden) as exc:
        await close_socket(websocket, exc)
        return
    try:
        bbox = _bbox(websocket.query_params.get("bbox"))
    except ValueError as exc:
        await close_socket(websocket, BadParameter("bbox", str(exc)))
        return
    try:
        day = _day(websocket.query_params.get("day"))
    except ValueError as exc:
        await close_socket(websocket, BadParameter("day", str(exc)))
        return
    try:
        since = _since(websocket.query_params.get("since"))
    except ValueError as exc:
        await close_socket(websocket, BadParameter("since", str(exc)))
        return
    names = resources.names
    org_id = principal.org_id
    WS_CONNECTIONS.labels("dispatcher").inc()
    try:
        async with (
            _revocable(resources, websocket) as revoked,
            resources.hub.subscribe_latest(names.positions_channel(org_id)) as positions,
            resources.hub.subscribe_latest(names.org_windows_channel(org_id)) as windows,
            resources.hub.subscribe(names.org_events_channel(org_id)) as events,
        ):
            # Subscribed first, then the missed events and the snapshot: nothing can fall
            # between. The missed events are read first so that the snapshot can say whether
            # they follow it.
            missed = None if since is None else await replay(resources.redis, names, org_id, since)
            outcome = None if missed is None else missed.outcome
            for message in await snapshot(resources, org_id, bbox, day, outcome):
                await _send(websocket, message)
            last_id = await _send_missed(websocket, missed, since)
            tasks = [
                asyncio.create_task(_positions(websocket, positions, bbox)),
                asyncio.create_task(_windows(websocket, windows)),
                asyncio.create_task(_events(websocket, events, last_id)),
                asyncio.create_task(_until_closed(websocket)),
                asyncio.create_task(_until_revoked(websocket, revoked)),
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
    resources: Resources,
    org_id: OrgId,
    bbox: BBox | None,
    day: date | None = None,
    replayed: ReplayOutcome | None = None,
) -> list[Snapshot | RoutesPart]:
    """Every driver's latest position and the routes of ``day`` (default: the organisation's
    today); ``replayed`` tells the screen what became of its ``?since=``. A large day's routes
    come in parts (:func:`route_parts`): the snapshot, then the other parts."""
    drivers = await latest_positions(resources.redis, resources.names, org_id)
    now = datetime.now(UTC)
    async with resources.pool.connection() as conn:
        zone = (await org_settings(conn, org_id)).timezone
        if day is None:
            day = now.astimezone(ZoneInfo(zone)).date()
        present = await route_store.day_views(conn, org_id, day)
    windows = await open_windows(resources.redis, resources.names, present)
    first, *rest = route_parts(present, resources.settings.snapshot_part_stops)
    head = Snapshot(
        as_of=now,
        day=day.isoformat(),
        time_zone=zone,
        drivers=_within(drivers, bbox),
        routes=first,
        windows=_of_routes(windows, first),
        following=[route.id for part in rest for route in part],
        replay=replayed,
    )
    parts: list[Snapshot | RoutesPart] = [head]
    for n, part in enumerate(rest, start=1):
        parts.append(
            RoutesPart(routes=part, windows=_of_routes(windows, part), last=n == len(rest))
        )
    return parts


def _of_routes(windows: list[ArrivalWindow], routes: list[RouteView]) -> list[ArrivalWindow]:
    """The windows of the stops of ``routes``."""
    stops = {stop.id for route in routes for stop in route.stops}
    return [window for window in windows if window.stop_id in stops]


def route_parts(routes: list[RouteView], budget: int) -> list[list[RouteView]]:
    """``routes`` in order, cut into parts of at most ``budget`` stops (a longer route is a
    part of its own); always at least one part, possibly empty."""
    parts: list[list[RouteView]] = [[]]
    stops = 0
    for route in routes:
        if parts[-1] and stops + len(route.stops) > budget:
            parts.append([])
            stops = 0
        parts[-1].append(route)
        stops += len(route.stops)
    return parts


async def _send_missed(
    websocket: WebSocket, missed: Replay | None, since: EntryId | None
) -> EntryId | None:
    """Send the replayed events, if they follow; the id up to which live events are old."""
    if missed is None or missed.outcome != "follows":
        return None  # the snapshot stands in for what was missed: every live event is new
    for entry_id, event in missed.events:
        await _send(websocket, EventMessage(id=entry_id, event=event))
    return parse_entry_id(missed.events[-1][0]) if missed.events else since


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


async def _events(websocket: WebSocket, feed: Subscription, after: EntryId | None) -> None:
    while True:
        try:
            data = await feed.get()
        except Overflowed as exc:
            await websocket.close(CLOSE_TOO_SLOW, close_reason(f"{exc}; reconnect with ?since="))
            return
        entry_id, _, payload = data.partition(b"|")
        if after is not None and parse_entry_id(entry_id.decode()) <= after:
            continue  # already sent by the replay
        await _send(
            websocket, EventMessage(id=entry_id.decode(), event=EVENT_DECODER.decode(payload))
        )


@contextlib.asynccontextmanager
async def _revocable(resources: Resources, websocket: WebSocket) -> AsyncIterator[asyncio.Event]:
    with resources.auth.revocable(websocket) as revoked:
        yield revoked


async def _until_revoked(websocket: WebSocket, revoked: asyncio.Event) -> None:
    """Close the screen's socket once its key is revoked."""
    await revoked.wait()
    await close_socket(websocket, Unauthorized("the API key was revoked"))


async def _until_closed(websocket: WebSocket) -> None:
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


async def _send(websocket: WebSocket, message: LiveMessage) -> None:
    await websocket.send_text(LIVE_JSON.encode(message).decode())


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
            f"expected four numbers min_lon,min_lat,max_lon,max_lat, got {_echo(raw)}"
        ) from None
    if len(parts) != 4 or parts[0] > parts[2] or parts[1] > parts[3]:
        raise ValueError(
            f"expected min_lon,min_lat,max_lon,max_lat with min <= max, got {_echo(raw)}"
        )
    return parts[0], parts[1], parts[2], parts[3]


def _day(raw: str | None) -> date | None:
    """``YYYY-MM-DD``; ValueError saying what was expected and what came."""
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"expected a date YYYY-MM-DD, got {_echo(raw)}") from None


def _echo(raw: str) -> str:
    """``raw`` quoted for an error message, cut short: the message becomes a close reason,
    which a close frame limits to 123 bytes."""
    return repr(raw) if len(raw) <= 32 else f"{raw[:32]!r}..."


def _since(raw: str | None) -> EntryId | None:
    """The event id ``<ms>-<seq>`` a screen resumes after; ValueError saying what came."""
    return parse_entry_id(raw) if raw else None
