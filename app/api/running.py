"""Re-optimising routes while they run: cancel, insert, move, re-sequence.

Each operation reads the running state of the routes it touches (:func:`state`: the driver's
position now — the latest ping, else the last visited stop, else the shift's start — the
current instant, and the pending stops), asks the pure re-optimiser in ``solver/`` what to do,
and writes the answer back with an optimistic version check, so a route that changed meanwhile
is never overwritten (the caller gets a conflict and retries). Visited stops never move. After
the commit every affected driver's app gets its new route and an event records the change.

The solver drives at the speeds the routes were planned with (:func:`travel_of`): the learned
model named by their plan's outcome, when learning is on, else the configured provider. A
route planned at learned speeds and re-timed at the configured one would see every pending
arrival jump at the first insertion.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from psycopg import AsyncConnection

from app.errors import Conflict, NotFound
from app.process.solver_pool import LearnedTravel
from app.resources import Resources, drives_learned_speeds
from realtime.events import emit, push_route
from realtime.live import latest_position
from schemas.events import Event, RouteChanged
from schemas.ids import OrderId, OrgId, RouteId
from schemas.planning import Location, OrderRef, PlanningTimeWindow, VehicleRef
from schemas.reoptimize import RemainingStop, RunningRoute, Timeline
from schemas.route import RouteView
from store import routes as store
from store.delivery import DeliveryDay, aligned, load_day, org_settings
from store.plans import models_of_routes


@dataclass(frozen=True)
class State:
    """A running route as the re-optimiser sees it, with the header to write it back."""

    head: store.RouteHead
    route: RunningRoute
    timezone: str
    """The organisation's time zone (learned speeds are by local hour of week)."""


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


async def state(
    conn: AsyncConnection, resources: Resources, org_id: OrgId, route_id: RouteId
) -> State:
    """The running state of a route that can still change; 404/409 otherwise."""
    return (await states(conn, resources, org_id, [route_id]))[0]


async def states(
    conn: AsyncConnection, resources: Resources, org_id: OrgId, route_ids: Sequence[RouteId]
) -> list[State]:
    """The running states of several routes, reading each day's shifts once."""
    days: dict[date, DeliveryDay] = {}
    found = []
    for route_id in route_ids:
        head = await store.route_head(conn, org_id, route_id)
        if head is None:
            raise NotFound(f"no route {route_id} in this organisation")
        if head.status not in ("dispatched", "started"):
            raise Conflict("route_id", f"expected a running route, got one that is {head.status}")
        if head.day not in days:
            days[head.day] = await load_day(conn, org_id, head.day, statuses=())
        found.append(await _state(conn, resources, org_id, head, days[head.day]))
    return found


async def _state(
    conn: AsyncConnection,
    resources: Resources,
    org_id: OrgId,
    head: store.RouteHead,
    day: DeliveryDay,
) -> State:
    route_id = head.route_id
    shift = next((s for s in day.shifts if s.shift_id == head.shift_id), None)
    if shift is None:
        raise Conflict("route_id", f"the shift {head.shift_id} of route {route_id} is cancelled")
    now_s = max(int(time.time()), _epoch(shift.working_window.start))
    position = Location(lat=shift.start.lat, lon=shift.start.lon)
    visited = await store.last_visited(conn, route_id)
    if visited is not None:
        position = Location(lat=visited[0], lon=visited[1])
    live = await _live_position(resources, org_id, head)
    if live is not None:
        position = live
    stops = await store.open_stops(conn, route_id)
    route = RunningRoute(
        vehicle_ref=VehicleRef(str(route_id)),
        position=position,
        now_epoch_s=now_s,
        stops=[remaining(s, day.dimensions) for s in stops],
        end_location=Location(lat=shift.end.lat, lon=shift.end.lon),
        shift_end_epoch_s=_epoch(shift.working_window.end),
        route_start_epoch_s=_epoch(head.started_at or shift.working_window.start),
        max_duration_s=shift.max_duration_s,
        capacity=shift.capacity,
        skills=frozenset(shift.skills),
    )
    return State(head, route, day.timezone)


async def travel_of(
    conn: AsyncConnection, resources: Resources, org_id: OrgId, running: Sequence[State]
) -> LearnedTravel | None:
    """The learned speeds a re-optimisation of ``running`` drives at, for the solver pool; None
    for the configured provider.

    It is the learned model their plans were made with (routes of plans with different models
    take the newest of them), averaged over the hours from now to the latest end of their
    shifts, when learning is on and the provider is the great-circle model. None when it is
    off, when no plan used a model, or when the model learned no speeds. One indexed query per
    call; a model's table is read once per API process.
    """
    if not running or not drives_learned_speeds(resources.settings):
        return None
    model_ids = await models_of_routes(conn, org_id, [st.head.route_id for st in running])
    if not model_ids:
        return None
    model_id = max(model_ids)  # ids grow: the highest is the newest
    speeds_json = await resources.models.speeds_json(conn, org_id, model_id)
    if speeds_json is None:
        return None
    now_s = min(st.route.now_epoch_s for st in running)
    end_s = max(st.route.shift_end_epoch_s for st in running)
    return LearnedTravel(
        model_id=model_id,
        timezone=running[0].timezone,
        speeds_json=speeds_json,
        span_h=max(1, math.ceil((end_s - now_s) / 3600)),
    )


def remaining(stop: store.OpenStop, dimensions: Sequence[str]) -> RemainingStop:
    """An open stop (or a pending order) as the re-optimiser's remaining stop."""
    return RemainingStop(
        order_ref=OrderRef(str(stop.order_id)),
        location=Location(lat=stop.lat, lon=stop.lon),
        time_windows=[
            PlanningTimeWindow(start_epoch_s=_epoch(a), end_epoch_s=_epoch(b))
            for a, b in zip(stop.window_starts, stop.window_ends, strict=True)
        ],
        service_s=stop.service_s,
        size=aligned(stop.size, dimensions, 0),
        required_skills=frozenset(stop.required_skills),
    )


async def pending_stop(
    conn: AsyncConnection, org_id: OrgId, order_id: OrderId
) -> RemainingStop | None:
    """A pending order as a stop to insert, or None when it is not pending."""
    order = await store.pending_order(conn, org_id, order_id)
    if order is None:
        return None
    return remaining(order, (await org_settings(conn, org_id)).dimensions)


async def _live_position(
    resources: Resources, org_id: OrgId, head: store.RouteHead
) -> Location | None:
    """The driver's latest ping, when it was taken after the route started."""
    if head.started_at is None:
        return None
    live = await latest_position(resources.redis, resources.names, org_id, head.driver_id)
    if live is None or live.time < head.started_at:
        return None
    return Location(lat=live.lat, lon=live.lon)


async def write(
    conn: AsyncConnection,
    st: State,
    timeline: Timeline,
    *,
    removed: Sequence[OrderId] = (),
) -> int:
    """Store a route's new pending stops and times; the new version, or 409 if it changed."""
    version = await store.rewrite_pending(
        conn,
        st.head.org_id,
        st.head.route_id,
        st.head.version,
        [
            store.PlannedTime(
                order_id=OrderId(int(t.order_ref)),
                planned_arrival=datetime.fromtimestamp(t.arrival_epoch_s, UTC),
                planned_departure=datetime.fromtimestamp(t.departure_epoch_s, UTC),
                lateness_s=t.lateness_s,
            )
            for t in timeline.stops
        ],
        removed_order_ids=removed,
    )
    if version is None:
        raise Conflict("route_id", f"route {st.head.route_id} changed meanwhile; retry")
    return version


async def announce(
    conn: AsyncConnection,
    resources: Resources,
    org_id: OrgId,
    changes: Sequence[tuple[RouteId, str, OrderId | None]],
    extra: Sequence[Event] = (),
) -> list[RouteView]:
    """After commit: push each changed route to its driver and record the changes as events.

    Returns the routes as pushed, in the order of ``changes``, for the caller to answer with.
    """
    now = datetime.now(UTC)
    events: list[Event] = list(extra)
    views: list[RouteView] = []
    for route_id, change, order_id in changes:
        view = await store.route_view(conn, org_id, route_id)
        if view is None:
            continue
        views.append(view)
        await push_route(resources.redis, resources.names, view)
        events.append(
            RouteChanged(
                org_id=org_id,
                at=now,
                route_id=route_id,
                driver_id=view.driver_id,
                version=view.version,
                change=change,
                order_id=order_id,
            )
        )
    await emit(resources.redis, resources.names, *events)
    return views
