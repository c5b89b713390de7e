"""Routes on the road: what drivers do with theirs, and what dispatchers see and change.

Driver (device token): ``GET /v1/driver/route``, ``POST /v1/driver/route/start``,
``POST /v1/driver/stops/{id}/arrive|deliver|fail``. Dispatcher (API key): ``GET /v1/routes``,
``GET /v1/routes/{id}``, and re-optimisation: ``POST /v1/routes/insert`` (an urgent order into
the running routes where it costs least), ``POST /v1/stops/{id}/move`` (to another driver),
``POST /v1/routes/{id}/resequence`` (a late driver's remaining stops). Every transition is an
event on the ``events`` stream, and every change reaches the driver's app.
"""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response

from app.api.running import announce, pending_stop, state, states, write
from app.auth import FLEET_WRITERS, READERS
from app.errors import BadParameter, Conflict, NotFound
from app.http import answer, decode, path_id, query_date, request_body, resources_of
from app.resources import Resources
from realtime.events import emit, push_route
from schemas.auth import DevicePrincipal
from schemas.events import (
    Event,
    OrderCancelled,
    RouteStarted,
    StopArrived,
    StopDelivered,
    StopFailed,
)
from schemas.ids import OrgId, RouteId, StopId
from schemas.planning import OrderRef
from schemas.reoptimize import Unplaceable
from schemas.route import FailStop, InsertOrder, MoveStop, RouteView
from solver.reoptimize import cheapest_insertion, move_stop, resequence, retime, without_stop
from store import routes as store

RESEQUENCE_LIMIT_S = 1.0


# --- the driver ---------------------------------------------------------------------------


async def _driver_route(resources: Resources, driver: DevicePrincipal) -> RouteView:
    async with resources.pool.connection() as conn:
        route_id = await store.current_route_id(conn, driver.org_id, driver.driver_id)
        view = None if route_id is None else await store.route_view(conn, driver.org_id, route_id)
    if view is None:
        raise NotFound("no route is dispatched to this driver")
    return view


async def driver_route(request: Request) -> Response:
    """The calling driver's current route."""
    resources = resources_of(request)
    driver = await resources.auth.require_device(request)
    return answer(await _driver_route(resources, driver))


async def driver_start(request: Request) -> Response:
    """The driver starts its dispatched route."""
    resources = resources_of(request)
    driver = await resources.auth.require_device(request)
    route = await _driver_route(resources, driver)
    async with resources.pool.connection() as conn:
        if not await store.start_route(conn, driver.org_id, driver.driver_id, route.id):
            raise Conflict("route", f"expected a dispatched route, got one that is {route.status}")
    return await _after_driver_change(
        resources,
        driver,
        route.id,
        RouteStarted(
            org_id=driver.org_id,
            at=datetime.now(UTC),
            route_id=route.id,
            driver_id=driver.driver_id,
        ),
    )


async def _stop_command(request: Request, outcome: str) -> Response:
    resources = resources_of(request)
    driver = await resources.auth.require_device(request)
    stop_id = StopId(path_id(request, "stop_id"))
    reason: str | None = None
    if outcome == "fail":
        body = await request_body(request)
        reason = decode(body, request.headers.get("content-type"), FailStop).reason
    now = datetime.now(UTC)
    async with resources.pool.connection() as conn:
        stop = await store.stop_of_driver(conn, driver.org_id, driver.driver_id, stop_id)
        if stop is None:
            raise NotFound(f"no stop {stop_id} on this driver's routes")
        if outcome == "arrive":
            done = await store.arrive(conn, stop_id)
        else:
            delivered = outcome == "deliver"
            done = await store.complete(
                conn, driver.org_id, stop, delivered=delivered, reason=reason
            )
        if not done:
            raise Conflict("status", f"cannot {outcome} a stop that is {stop.status}")
    event = _stop_event(outcome, driver, stop, now, reason)
    return await _after_driver_change(resources, driver, stop.route_id, event)


def _stop_event(
    outcome: str, driver: DevicePrincipal, stop: store.StopRef, at: datetime, reason: str | None
) -> Event:
    """The event recording a driver's stop command."""
    if outcome == "fail":
        return StopFailed(
            org_id=driver.org_id,
            at=at,
            route_id=stop.route_id,
            stop_id=stop.stop_id,
            order_id=stop.order_id,
            driver_id=driver.driver_id,
            reason=reason or "",
        )
    kind = StopArrived if outcome == "arrive" else StopDelivered
    return kind(
        org_id=driver.org_id,
        at=at,
        route_id=stop.route_id,
        stop_id=stop.stop_id,
        order_id=stop.order_id,
        driver_id=driver.driver_id,
    )


async def _after_driver_change(
    resources: Resources, driver: DevicePrincipal, route_id: RouteId, event: Event
) -> Response:
    async with resources.pool.connection() as conn:
        view = await store.route_view(conn, driver.org_id, route_id)
    await emit(resources.redis, resources.names, event)
    if view is None:
        raise NotFound(f"no route {route_id}")
    await push_route(resources.redis, resources.names, view)
    return answer(view)


async def stop_arrive(request: Request) -> Response:
    """The driver is at the stop."""
    return await _stop_command(request, "arrive")


async def stop_deliver(request: Request) -> Response:
    """The stop's order is delivered."""
    return await _stop_command(request, "deliver")


async def stop_fail(request: Request) -> Response:
    """The stop's order could not be delivered; the body says why."""
    return await _stop_command(request, "fail")


# --- the dispatcher -----------------------------------------------------------------------


async def list_routes(request: Request) -> Response:
    """Every route of a day (``?day=YYYY-MM-DD``, default today in UTC) with its stops."""
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, READERS)
    day = query_date(request, "day") or datetime.now(UTC).date()
    async with resources.pool.connection() as conn:
        views = await store.day_views(conn, principal.org_id, day)
    return answer({"day": day, "routes": views})


async def get_route(request: Request) -> Response:
    """One route with its stops."""
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, READERS)
    route_id = RouteId(path_id(request, "route_id"))
    async with resources.pool.connection() as conn:
        view = await store.route_view(conn, principal.org_id, route_id)
    if view is None:
        raise NotFound(f"no route {route_id} in this organisation")
    return answer(view)


async def insert_order(request: Request) -> Response:
    """Put a pending order into the running route where it adds least driving, keeping every
    constraint; 409 with the reason when no route can take it."""
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, FLEET_WRITERS)
    body = await request_body(request)
    order_id = decode(body, request.headers.get("content-type"), InsertOrder).order_id
    org_id = principal.org_id
    async with resources.pool.connection() as conn:
        day = await store.order_day(conn, org_id, order_id)
        if day is None:
            raise BadParameter("order_id", f"no order {order_id} in this organisation")
        stop = await pending_stop(conn, org_id, order_id)
        if stop is None:
            raise Conflict("order_id", f"order {order_id} is not pending")
        running = await states(
            conn, resources, org_id, await store.running_routes(conn, org_id, day)
        )
        if not running:
            raise Conflict("order_id", f"no route is running on {day}")
        placed = await resources.solver.run(cheapest_insertion, [s.route for s in running], stop)
        if isinstance(placed, Unplaceable):
            raise Conflict("order_id", placed.reason)
        target = next(s for s in running if s.route.vehicle_ref == placed.vehicle_ref)
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
        source, target = await states(conn, resources, org_id, [from_route, wanted.route_id])
        moved = await resources.solver.run(
            move_stop,
            source.route,
            target.route,
            OrderRef(str(order_id)),
            position=wanted.position,
        )
        if isinstance(moved, Unplaceable):
            raise Conflict("route_id", moved.reason)
        remaining, insertion = moved
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
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, FLEET_WRITERS)
    route_id = RouteId(path_id(request, "route_id"))
    async with resources.pool.connection() as conn:
        st = await state(conn, resources, principal.org_id, route_id)
        timeline = await resources.solver.run(resequence, st.route, time_limit_s=RESEQUENCE_LIMIT_S)
        async with conn.transaction():
            await write(conn, st, timeline)
        (view,) = await announce(
            conn, resources, principal.org_id, [(route_id, "resequenced", None)]
        )
    return answer(view)


async def after_cancel(resources: Resources, org_id: OrgId, order_id: int) -> None:
    """An order was cancelled: take its pending stop off its running route and re-time the rest."""
    async with resources.pool.connection() as conn:
        found = await store.live_stop_of_order(conn, org_id, order_id)
        route_id = None
        if found is not None and found[2] == "pending":
            route_id = found[1]
            st = await state(conn, resources, org_id, route_id)
            rest = without_stop(st.route, OrderRef(str(order_id)))
            timeline = await resources.solver.run(retime, rest)
            async with conn.transaction():
                await write(conn, st, timeline, removed=[order_id])
        cancelled = OrderCancelled(
            org_id=org_id, at=datetime.now(UTC), order_id=order_id, route_id=route_id
        )
        changes = [] if route_id is None else [(route_id, "stop_removed", order_id)]
        await announce(conn, resources, org_id, changes, extra=[cancelled])
