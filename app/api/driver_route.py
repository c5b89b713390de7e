"""A driver's route: ``GET /v1/driver/route``, ``POST /v1/driver/route/start`` and
``POST /v1/driver/stops/{id}/arrive|deliver|fail``, with the driver's device token.

A driver reads and changes only its own route and stops. Every transition is an event on the
``events`` stream and an entry of the organisation's audit chain (in the same transaction),
and the route as it now is reaches the driver's app at once. A bare ``deliver`` is refused
(422) when the order requires a proof (:mod:`app.api.proofs`: capture one instead, or have a
dispatcher override); ``fail`` takes a failure code and the driver's words.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import Response

from app.api import proof_rules as proofs
from app.errors import Conflict, InvalidField, NotFound
from app.http import answer, decode, path_id, request_body, resources_of
from app.resources import Resources
from realtime.events import emit, push_route
from schemas.auth import DevicePrincipal
from schemas.events import (
    Event,
    RouteStarted,
    StopArrived,
    StopDelivered,
    StopFailed,
)
from schemas.ids import OrgId, RouteId, StopId
from schemas.proofs import DriverActionIn, FailStopIn
from schemas.route import RouteView
from store import audit
from store import proofs as proof_store
from store import routes as store


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


ACTION_AHEAD_S = 300
"""How far ahead of the server's clock a driver's ``at`` may be (phones' clocks drift)."""
ACTION_AGE_S = 86_400
"""How old a driver's ``at`` may be (a phone offline for most of a day)."""


def implausible(at: datetime, now: datetime) -> str | None:
    """Why a phone's time for an action cannot be taken (None: it can): more than
    :data:`ACTION_AHEAD_S` ahead of the server's clock, or older than :data:`ACTION_AGE_S`."""
    if at > now + timedelta(seconds=ACTION_AHEAD_S):
        return f"expected a time not after the server's clock ({now}), got {at}"
    if at < now - timedelta(seconds=ACTION_AGE_S):
        return f"expected a time within the last day, got {at}"
    return None


def action_time(at: datetime | None) -> datetime:
    """When the driver acted: ``at`` (checked, 400 naming it), or now."""
    now = datetime.now(UTC)
    if at is None:
        return now
    reason = implausible(at, now)
    if reason is not None:
        raise InvalidField("at", reason)
    return at.astimezone(UTC)


async def _action_at(request: Request) -> datetime:
    body = await request_body(request)
    wanted = decode(body, request.headers.get("content-type"), DriverActionIn, empty_ok=True)
    return action_time(wanted.at)


async def driver_start(request: Request) -> Response:
    """The driver starts its dispatched route (``at``: when, for a command sent late)."""
    resources = resources_of(request)
    driver = await resources.auth.require_device(request)
    at = await _action_at(request)
    route = await _driver_route(resources, driver)
    async with resources.pool.connection() as conn, conn.transaction():
        if not await store.start_route(conn, driver.org_id, driver.driver_id, route.id, at):
            raise Conflict("route", f"expected a dispatched route, got one that is {route.status}")
        await audit.append(
            conn,
            driver.org_id,
            "route.started",
            f"route:{route.id}",
            {"from": route.status, "to": "started", "driver_id": driver.driver_id},
        )
    return await _after_driver_change(
        resources,
        driver,
        route.id,
        RouteStarted(
            org_id=driver.org_id,
            at=at,
            route_id=route.id,
            driver_id=driver.driver_id,
        ),
    )


async def _stop_command(request: Request, outcome: str) -> Response:
    resources = resources_of(request)
    driver = await resources.auth.require_device(request)
    stop_id = StopId(path_id(request, "stop_id"))
    failure: FailStopIn | None = None
    if outcome == "fail":
        body = await request_body(request)
        failure = decode(body, request.headers.get("content-type"), FailStopIn)
        if failure.code == "other" and not failure.reason.strip():
            raise InvalidField("reason", "expected what happened, for code 'other'")
        now = action_time(failure.at)
    else:
        now = await _action_at(request)
    async with resources.pool.connection() as conn, conn.transaction():
        stop = await store.stop_of_driver(conn, driver.org_id, driver.driver_id, stop_id)
        if stop is None:
            raise NotFound(f"no stop {stop_id} on this driver's routes")
        if outcome == "arrive":
            done = await store.arrive(conn, stop_id, now)
        else:
            if outcome == "deliver":
                await proofs.check_bare_delivery(conn, driver.org_id, stop_id, stop.order_id)
            done = await store.complete(
                conn,
                driver.org_id,
                stop,
                delivered=outcome == "deliver",
                reason=_failure_text(failure),
                at=now,
            )
        if not done:
            raise Conflict("status", f"cannot {outcome} a stop that is {stop.status}")
        after = {"arrive": "arrived", "deliver": "delivered", "fail": "failed"}[outcome]
        if outcome != "arrive":
            await proof_store.note_close(conn, stop_id, failure.code if failure else None)
        await proofs.record_transition(
            conn,
            driver.org_id,
            stop_id,
            stop.status,
            after,
            driver.driver_id,
            failure={"code": failure.code, "reason": failure.reason} if failure else None,
        )
    event = stop_event(
        outcome,
        driver,
        stop,
        now,
        code=failure.code if failure else None,
        reason=_failure_text(failure),
    )
    return await _after_driver_change(resources, driver, stop.route_id, event)


def _failure_text(failure: FailStopIn | None) -> str | None:
    """What ``stops.failure_reason`` keeps: the driver's words, else the code."""
    if failure is None:
        return None
    return failure.reason.strip() or failure.code


def stop_event(
    outcome: str,
    driver: DevicePrincipal,
    stop: store.StopRef,
    at: datetime,
    *,
    code: str | None = None,
    reason: str | None = None,
) -> Event:
    """The event recording that ``driver`` arrived at (``arrive``), delivered (``deliver``)
    or failed (``fail``) ``stop``; a failure's reason is ``reason``, else its ``code``."""
    if outcome == "fail":
        return StopFailed(
            org_id=driver.org_id,
            at=at,
            route_id=stop.route_id,
            stop_id=stop.stop_id,
            order_id=stop.order_id,
            driver_id=driver.driver_id,
            reason=reason or code or "",
            code=code,
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


async def publish_change(
    resources: Resources, org_id: OrgId, route_id: RouteId, *events: Event
) -> RouteView | None:
    """After a committed change to a route: ``events`` on the stream, and the route as it now
    is to the driver's app; the route's view, or None when it is gone."""
    async with resources.pool.connection() as conn:
        view = await store.route_view(conn, org_id, route_id)
    await emit(resources.redis, resources.names, *events)
    if view is not None:
        await push_route(resources.redis, resources.names, view)
    return view


async def _after_driver_change(
    resources: Resources, driver: DevicePrincipal, route_id: RouteId, event: Event
) -> Response:
    view = await publish_change(resources, driver.org_id, route_id, event)
    if view is None:
        raise NotFound(f"no route {route_id}")
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
