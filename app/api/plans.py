"""Planning jobs and dispatch: ``POST /v1/plans``, ``GET /v1/plans/{id}``, ``.../cancel``,
``.../dispatch``.

Creating a plan stores it as queued (once per ``Idempotency-Key``) and appends a job to the
``plans`` stream, which wakes the planner workers; they take plans from PostgreSQL in a fair
order (:mod:`store.plans`). A time limit above ``LASTMILE_PLAN_MAX_S`` is refused. Cancelling
ends a queued plan at once and asks the planner of a running one to stop and keep its best
routes. Dispatching a finished (or cancelled, with routes) plan creates routes and stops, and
each route reaches its driver's app at once over the driver socket.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from psycopg import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response

from app.api.checks import check_day
from app.auth import FLEET_WRITERS, READERS
from app.errors import BadParameter, Conflict, NotFound, OverLimit, UnknownIds
from app.http import answer, decode, encode, path_id, query_date, request_body, resources_of
from app.idempotency import REPLAYED_HEADER, Answer, run_create
from app.resources import Resources
from realtime.events import emit, push_route
from schemas.events import RouteDispatched
from schemas.ids import OrgId, PlanId
from schemas.plan import (
    DispatchRequest,
    DispatchResult,
    PlanList,
    PlanOutcome,
    PlanProgress,
    PlanRequest,
    PlanSummary,
    PlanView,
)
from schemas.planning import PlanningOptions
from store import plans as plans_store
from store import routes as store
from store.orders import unknown_order_ids
from workers import planner


def view(plan: plans_store.PlanRow) -> PlanView:
    """The API view of a stored plan."""
    return PlanView(
        id=plan.id,
        day=plan.day,
        status=plan.status,  # type: ignore[arg-type]
        progress=msgspec.convert(plan.progress, PlanProgress),
        created_at=plan.created_at,
        started_at=plan.started_at,
        finished_at=plan.finished_at,
        error=plan.error,
        outcome=None if plan.result is None else msgspec.convert(plan.result, PlanOutcome),
        cancel_requested_at=plan.cancel_requested_at,
    )


async def create_plan(request: Request) -> Response:
    """Queue a plan of a day's pending orders on its scheduled shifts; 202 with the job.

    ``order_ids`` naming no order of the caller's organisation answer 422 listing them, and so
    does a ``time_limit_s`` above the server's cap (``LASTMILE_PLAN_MAX_S``).
    """
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, FLEET_WRITERS)
    body = await request_body(request)
    wanted = decode(body, request.headers.get("content-type"), PlanRequest)
    check_day(wanted.day)
    cap_s = resources.settings.plan_max_s
    if wanted.time_limit_s > cap_s:
        raise OverLimit(
            "time_limit_s",
            f"expected at most {cap_s:g} s on this server (LASTMILE_PLAN_MAX_S),"
            f" got {wanted.time_limit_s:g}",
        )
    options = PlanningOptions(
        time_limit_s=wanted.time_limit_s,
        balance_workload=wanted.balance_workload,
        unassigned_penalty=wanted.unassigned_penalty,
    )
    created: list[plans_store.PlanRow] = []

    async def command(conn: AsyncConnection) -> Answer:
        if wanted.order_ids:
            unknown = await unknown_order_ids(conn, principal.org_id, wanted.order_ids)
            if unknown:
                raise UnknownIds("order_ids", unknown)
        plan = await plans_store.create_plan(
            conn,
            principal.org_id,
            wanted.day,
            {**msgspec.to_builtins(options), "search": wanted.search},
            wanted.order_ids,
        )
        created.append(plan)
        return Answer(202, encode(view(plan)))

    response = await run_create(request, principal, body, command)
    if created and response.headers.get(REPLAYED_HEADER) != "true":
        await enqueue(resources, principal.org_id, created[0].id)
    return response


async def enqueue(resources: Resources, org_id: OrgId, plan_id: PlanId) -> None:
    """Hand a committed plan to the planner workers, and record that it was handed over. If
    Redis fails here, the plan stays unmarked and the upkeep hands it over later."""
    await planner.enqueue(resources.redis, resources.names, org_id, plan_id)
    async with resources.pool.connection() as conn:
        await plans_store.mark_enqueued(conn, plan_id)


PLAN_LIST_LIMIT = 20


def summary(plan: PlanView, time_limit_s: float | None) -> PlanSummary:
    """A plan's totals, for a list and for comparing plans side by side."""
    outcome = plan.outcome
    routes = [] if outcome is None else outcome.routes
    return PlanSummary(
        id=plan.id,
        day=plan.day,
        status=plan.status,
        created_at=plan.created_at,
        finished_at=plan.finished_at,
        time_limit_s=time_limit_s,
        routes=len(routes),
        served=sum(len(r.visits) for r in routes),
        unassigned=0 if outcome is None else len(outcome.unassigned),
        distance_m=sum(r.distance_m for r in routes),
        duration_s=sum(r.duration_s for r in routes),
        objective=None if outcome is None else outcome.objective,
        engine="" if outcome is None else outcome.engine,
    )


async def plans(request: Request) -> Response:
    """``GET`` (list) and ``POST`` (queue) ``/v1/plans``."""
    if request.method == "GET":
        return await list_plans(request)
    return await create_plan(request)


async def list_plans(request: Request) -> Response:
    """``GET /v1/plans?day=``: the day's latest plans with their totals, newest first."""
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, READERS)
    day = query_date(request, "day")
    if day is None:
        raise BadParameter("day", "expected a day YYYY-MM-DD, got none")
    async with resources.pool.connection() as conn:
        found = await plans_store.list_plans(conn, principal.org_id, day, PLAN_LIST_LIMIT)
    return answer(PlanList(plans=[summary(view(p), p.options.get("time_limit_s")) for p in found]))


async def get_plan(request: Request) -> Response:
    """A plan with its status, progress while it runs, and its outcome once done."""
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, READERS)
    plan_id = PlanId(path_id(request, "plan_id"))
    async with resources.pool.connection() as conn:
        plan = await plans_store.get_plan(conn, principal.org_id, plan_id)
    if plan is None:
        raise NotFound(f"no plan {plan_id} in this organisation")
    return answer(view(plan))


async def cancel_plan(request: Request) -> Response:
    """Cancel a plan: a queued one never runs (200, ``cancelled``); a running one is asked to
    stop (202, still ``running`` with ``cancel_requested_at``) and its planner stores the best
    routes found so far as a ``cancelled`` outcome within about a second.

    Asking again answers the same way; a plan that finished or failed is a 409.
    """
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, FLEET_WRITERS)
    plan_id = PlanId(path_id(request, "plan_id"))
    async with resources.pool.connection() as conn:
        plan = await plans_store.cancel_plan(conn, principal.org_id, plan_id)
    if plan is None:
        raise NotFound(f"no plan {plan_id} in this organisation")
    if plan.status in ("done", "failed"):
        raise Conflict(
            "status", f"expected a queued or running plan, got one that is {plan.status}"
        )
    return answer(view(plan), status=202 if plan.status == "running" else 200)


async def dispatch_plan(request: Request) -> Response:
    """Send a finished plan's routes (all, or those of some shifts) to their drivers."""
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, FLEET_WRITERS)
    plan_id = PlanId(path_id(request, "plan_id"))
    body = await request_body(request)
    wanted = decode(body, request.headers.get("content-type"), DispatchRequest, empty_ok=True)
    async with resources.pool.connection() as conn:
        plan = await plans_store.get_plan(conn, principal.org_id, plan_id)
        if plan is None:
            raise NotFound(f"no plan {plan_id} in this organisation")
        if plan.status not in ("done", "cancelled") or plan.result is None:
            raise Conflict(
                "status",
                f"expected a finished plan, or a cancelled one with routes, got one that is"
                f" {plan.status}" + (" without routes" if plan.status == "cancelled" else ""),
            )
        outcome = msgspec.convert(plan.result, PlanOutcome)
        chosen = [
            r for r in outcome.routes if wanted.shift_ids is None or r.shift_id in wanted.shift_ids
        ]
        if wanted.shift_ids is not None:
            unknown = set(wanted.shift_ids) - {r.shift_id for r in chosen}
            if unknown:
                raise Conflict("shift_ids", f"the plan has no route for shifts {sorted(unknown)}")
        result = await store.dispatch_routes(
            conn,
            principal.org_id,
            plan_id,
            plan.day,
            [
                store.NewRoute(
                    shift_id=r.shift_id,
                    driver_id=r.driver_id,
                    vehicle_id=r.vehicle_id,
                    planned_start=r.start,
                    planned_end=r.end,
                    distance_m=r.distance_m,
                    stops=[
                        store.NewStop(
                            v.order_id,
                            v.arrival,
                            v.departure,
                            round((v.departure - v.service_start).total_seconds()),
                        )
                        for v in r.visits
                    ],
                )
                for r in chosen
            ],
        )
        views = [await store.route_view(conn, principal.org_id, rid) for rid in result.route_ids]
    now = datetime.now(UTC)
    for route in views:
        if route is None:
            continue
        await push_route(resources.redis, resources.names, route)
        await emit(
            resources.redis,
            resources.names,
            RouteDispatched(
                org_id=principal.org_id,
                at=now,
                route_id=route.id,
                driver_id=route.driver_id,
                version=route.version,
                stops=len(route.stops),
                order_ids=[s.order_id for s in route.stops],
            ),
        )
    return answer(
        DispatchResult(
            route_ids=result.route_ids,
            skipped_order_ids=result.skipped_orders,
        )
    )
