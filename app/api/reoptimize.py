"""Re-optimisation of running routes, by dispatchers (API key).

``POST /v1/routes/insert`` puts an urgent order into the running route where it costs least,
``POST /v1/stops/{id}/move`` gives a stop to another driver, ``POST /v1/routes/{id}/resequence``
re-orders a late driver's remaining stops, and :func:`after_cancel` takes a cancelled order's
stop off its route. Each has a ``…/preview`` twin that answers what it would change (every
pending stop of each route it rewrites, its planned arrival before and after) and changes
nothing, so a page can show the consequences before the dispatcher confirms. Visited stops
stay; the rest starts from where the driver is. The solver runs in the API process's solver
pool, at the speeds the routes were planned with (:func:`app.api.running.travel_of`: their
plan's learned model, or the configured speed), every change is an event, and the driver's app
gets the new route at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import structlog
from psycopg import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response

from app.api.running import State, announce, pending_stop, state, states, travel_of, write
from app.auth import FLEET_WRITERS
from app.errors import Conflict, InvalidField, NotFound, UnknownIds
from app.http import answer, decode, path_id, request_body, resources_of
from app.resources import Resources
from schemas.events import (
    OrderCancelled,
)
from schemas.ids import OrderId, OrgId, RouteId, StopId
from schemas.planning import OrderRef
from schemas.reoptimize import RemainingStop, Timeline, Unplaceable
from schemas.route import ActionPreview, InsertOrder, MoveStop, RouteChange, StopChange, Window
from solver.reoptimize import cheapest_insertion, move_stop, resequence, retime, without_stop
from store import orders as order_store
from store import routes as store
from store import tenants

log = structlog.get_logger(__name__)

RESEQUENCE_LIMIT_S = 1.0
"""How long a re-sequence may search (the dispatcher waits for its answer)."""


def _window_of(start_epoch_s: int, end_epoch_s: int) -> Window:
    return Window(
        start=datetime.fromtimestamp(start_epoch_s, UTC),
        end=datetime.fromtimestamp(end_epoch_s, UTC),
    )


async def preview(
    conn: AsyncConnection,
    org_id: OrgId,
    rewrites: Sequence[tuple[State, Timeline]],
    *,
    new: RemainingStop | None = None,
    added_travel_s: int | None = None,
) -> Response:
    """What writing ``rewrites`` would change (``new``: an order not on any route yet)."""
    views = [await store.route_view(conn, org_id, st.head.route_id) for st, _ in rewrites]
    known = {s.order_id: s for view in views if view is not None for s in view.stops}
    new_ref = ""
    if new is not None:
        order = await order_store.get_order(conn, org_id, OrderId(int(new.order_ref)))
        new_ref = "" if order is None else order.external_ref
    routes = []
    for (st, timeline), view in zip(rewrites, views, strict=True):
        before = {
            s.order_id: s.planned_arrival
            for s in (view.stops if view is not None else [])
            if s.status == "pending"
        }
        after = {OrderId(int(t.order_ref)): t for t in timeline.stops}
        stops = []
        for order_id in [*after, *(o for o in before if o not in after)]:
            shown = known.get(order_id)
            timed = after.get(order_id)
            windows = (
                shown.windows
                if shown is not None
                else [_window_of(w.start_epoch_s, w.end_epoch_s) for w in new.time_windows]
                if new is not None
                else []
            )
            stops.append(
                StopChange(
                    order_id=order_id,
                    order_ref=shown.order_ref if shown is not None else new_ref,
                    windows=windows,
                    before=before.get(order_id),
                    after=None
                    if timed is None
                    else datetime.fromtimestamp(timed.arrival_epoch_s, UTC),
                    late_after_s=0 if timed is None else timed.lateness_s,
                )
            )
        routes.append(
            RouteChange(
                route_id=st.head.route_id,
                driver_id=st.head.driver_id,
                version=st.head.version,
                stops=stops,
                distance_m_after=timeline.distance_m,
            )
        )
    return answer(ActionPreview(routes=routes, added_travel_s=added_travel_s))


async def insert_order(request: Request) -> Response:
    """Put a pending order into the running route where it adds least driving, keeping every
    constraint; 409 with the reason when no route can take it."""
    return await _insert(request, only_preview=False)


async def insert_preview(request: Request) -> Response:
    """What :func:`insert_order` would change."""
    return await _insert(request, only_preview=True)


async def _insert(request: Request, *, only_preview: bool) -> Response:
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, FLEET_WRITERS)
    body = await request_body(request)
    order_id = decode(body, request.headers.get("content-type"), InsertOrder).order_id
    org_id = principal.org_id
    async with resources.pool.connection() as conn:
        day = await store.order_day(conn, org_id, order_id)
        if day is None:
            raise UnknownIds("order_id", [order_id])
        stop = await pending_stop(conn, org_id, order_id)
        if stop is None:
            raise Conflict("order_id", f"order {order_id} is not pending")
        running = await states(
            conn, resources, org_id, await store.running_routes(conn, org_id, day)
        )
        if not running:
            raise Conflict("order_id", f"no route is running on {day}")
        placed = await resources.solver.run(
            cheapest_insertion,
            [s.route for s in running],
            stop,
            travel=await travel_of(conn, resources, org_id, running),
        )
        if isinstance(placed, Unplaceable):
            raise Conflict("order_id", placed.reason)
        target = next(s for s in running if s.route.vehicle_ref == placed.vehicle_ref)
        if only_preview:
            return await preview(
                conn,
                org_id,
                [(target, placed.timeline)],
                new=stop,
                added_travel_s=placed.added_travel_s,
            )
        async with conn.transaction():
            if not await store.take_order(conn, org_id, order_id):
                raise Conflict("order_id", f"order {order_id} is no longer pending")
            await write(conn, target, placed.timeline)
        (view,) = await announce(
            conn, resources, org_id, [(target.head.route_id, "stop_inserted", order_id)]
        )
    return answer({"route": view, "added_travel_s": placed.added_travel_s})


async def move(request: Request) -> Response:
    """Give a pending stop to another running route (at its cheapest feasible position, or
    at ``position``)."""
    return await _move(request, only_preview=False)


async def move_preview(request: Request) -> Response:
    """What :func:`move` would change."""
    return await _move(request, only_preview=True)


async def _move(request: Request, *, only_preview: bool) -> Response:
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, FLEET_WRITERS)
    stop_id = StopId(path_id(request, "stop_id"))
    body = await request_body(request)
    wanted = decode(body, request.headers.get("content-type"), MoveStop)
    org_id = principal.org_id
    async with resources.pool.connection() as conn:
        found = await store.stop_by_id(conn, org_id, stop_id)
        if found is None:
            raise NotFound(f"no stop {stop_id} in this organisation")
        order_id, from_route, status = found
        if status != "pending":
            raise Conflict("stop_id", f"expected a pending stop, got one that is {status}")
        if from_route == wanted.route_id:
            raise Conflict("route_id", "the stop is already on that route")
        if await store.route_head(conn, org_id, wanted.route_id) is None:
            raise UnknownIds("route_id", [wanted.route_id])
        source, target = await states(conn, resources, org_id, [from_route, wanted.route_id])
        last = len(target.route.stops)
        if wanted.position is not None and wanted.position > last:
            raise InvalidField(
                "position", f"expected a position from 0 to {last}, got {wanted.position}"
            )
        moved = await resources.solver.run(
            move_stop,
            source.route,
            target.route,
            OrderRef(str(order_id)),
            position=wanted.position,
            travel=await travel_of(conn, resources, org_id, [source, target]),
        )
        if isinstance(moved, Unplaceable):
            raise Conflict("route_id", moved.reason)
        remaining, insertion = moved
        if only_preview:
            return await preview(
                conn,
                org_id,
                [(source, remaining), (target, insertion.timeline)],
                added_travel_s=insertion.added_travel_s,
            )
        async with conn.transaction():
            await write(conn, source, remaining, removed=[order_id])
            await write(conn, target, insertion.timeline)
        _, view = await announce(
            conn,
            resources,
            org_id,
            [
                (from_route, "stop_moved_out", order_id),
                (wanted.route_id, "stop_moved_in", order_id),
            ],
        )
    return answer(view)


async def resequence_route(request: Request) -> Response:
    """Re-order a running route's pending stops from where the driver is now, least late first."""
    return await _resequence(request, only_preview=False)


async def resequence_preview(request: Request) -> Response:
    """What :func:`resequence_route` would change."""
    return await _resequence(request, only_preview=True)


async def _resequence(request: Request, *, only_preview: bool) -> Response:
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, FLEET_WRITERS)
    route_id = RouteId(path_id(request, "route_id"))
    async with resources.pool.connection() as conn:
        st = await state(conn, resources, principal.org_id, route_id)
        timeline = await resources.solver.run(
            resequence,
            st.route,
            time_limit_s=RESEQUENCE_LIMIT_S,
            travel=await travel_of(conn, resources, principal.org_id, [st]),
        )
        if only_preview:
            return await preview(conn, principal.org_id, [(st, timeline)])
        async with conn.transaction():
            await write(conn, st, timeline)
        (view,) = await announce(
            conn, resources, principal.org_id, [(route_id, "resequenced", None)]
        )
    return answer(view)


AUTO_COOLDOWN_S = 600
"""How often at most a route is re-sequenced by itself (running_late fires per stop)."""


async def resequence_late(resources: Resources, org_id: OrgId, route_id: RouteId) -> bool:
    """Re-sequence a late route by itself where its organisation asked for it
    (``auto_resequence``): at most every :data:`AUTO_COOLDOWN_S` per route, and only when the new
    order is less late than the current one. True when the route was rewritten."""
    async with resources.pool.connection() as conn:
        if not await tenants.auto_resequence(conn, org_id):
            return False
    key = f"{resources.settings.redis_prefix}autoresequence:{route_id}"
    if not await resources.redis.set(key, "1", nx=True, ex=AUTO_COOLDOWN_S):
        return False
    async with resources.pool.connection() as conn:
        try:
            st = await state(conn, resources, org_id, route_id)
        except (NotFound, Conflict):  # finished, cancelled or gone meanwhile
            return False
        travel = await travel_of(conn, resources, org_id, [st])
        current = await resources.solver.run(retime, st.route, travel=travel)
        timeline = await resources.solver.run(
            resequence, st.route, time_limit_s=RESEQUENCE_LIMIT_S, travel=travel
        )
        if timeline.lateness_s >= current.lateness_s:
            return False
        try:
            async with conn.transaction():
                await write(conn, st, timeline)
        except Conflict:  # the route changed meanwhile: the dispatcher acted
            return False
        await announce(conn, resources, org_id, [(route_id, "auto_resequenced", None)])
    log.info(
        "late route re-sequenced by itself",
        org_id=org_id,
        route_id=route_id,
        lateness_before_s=current.lateness_s,
        lateness_after_s=timeline.lateness_s,
    )
    return True


async def cancel_preview(resources: Resources, org_id: OrgId, order_id: OrderId) -> Response:
    """What cancelling an order would change: its pending stop off its running route and the
    rest re-timed (no route: nothing)."""
    async with resources.pool.connection() as conn:
        found = await store.live_stop_of_order(conn, org_id, order_id)
        if found is None or found[2] != "pending":
            return answer(ActionPreview(routes=[]))
        st = await state(conn, resources, org_id, found[1])
        rest = without_stop(st.route, OrderRef(str(order_id)))
        travel = await travel_of(conn, resources, org_id, [st])
        timeline = await resources.solver.run(retime, rest, travel=travel)
        return await preview(conn, org_id, [(st, timeline)])


async def after_cancel(resources: Resources, org_id: OrgId, order_id: OrderId) -> None:
    """An order was cancelled: take its pending stop off its running route and re-time the rest."""
    async with resources.pool.connection() as conn:
        found = await store.live_stop_of_order(conn, org_id, order_id)
        route_id = None
        if found is not None and found[2] == "pending":
            route_id = found[1]
            st = await state(conn, resources, org_id, route_id)
            rest = without_stop(st.route, OrderRef(str(order_id)))
            travel = await travel_of(conn, resources, org_id, [st])
            timeline = await resources.solver.run(retime, rest, travel=travel)
            async with conn.transaction():
                await write(conn, st, timeline, removed=[order_id])
        cancelled = OrderCancelled(
            org_id=org_id, at=datetime.now(UTC), order_id=order_id, route_id=route_id
        )
        changes = [] if route_id is None else [(route_id, "stop_removed", order_id)]
        await announce(conn, resources, org_id, changes, extra=[cancelled])
