"""Planner worker: planning jobs from the ``plans`` stream → solved plans in PostgreSQL.

``POST /v1/plans`` stores a queued plan and appends a :class:`~schemas.plan.PlanJob`. This worker
claims the plan, checks its options by the rules of the API edge and the solver
(:func:`settings_of`), loads the day (one consistent snapshot), turns it into a
:class:`~schemas.planning.PlanningProblem` (:func:`problem_of`, pure), runs the OR-Tools search
in a thread so the loop stays responsive, writes progress at most every
:data:`PROGRESS_EVERY_S` while the search improves, and stores the outcome. A job redelivered
after a crash claims the plan again and recomputes it; a finished plan is left alone.

A plan that cannot be computed does not hold up the plans behind it: one whose options break
the rules is moved to the dead-letter stream at once, one the worker keeps failing on after a
few attempts (see :mod:`workers.runner`); either way it is marked failed with the reason
(:meth:`PlannerConsumer.dead_lettered`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import psycopg
import structlog

from realtime.streams import StreamNames
from schemas.codecs import PLAN_JOB_DECODER, PLAN_JOB_ENCODER
from schemas.delivery import Break as DayBreak
from schemas.delivery import TimeWindow as DayWindow
from schemas.ids import DriverId, OrderId, OrgId, PlanId
from schemas.plan import (
    LeftOut,
    PlanJob,
    PlannedRoute,
    PlannedVisit,
    PlanOutcome,
    PlanProgress,
    PlanRequest,
)
from schemas.planning import (
    DepotRef,
    Location,
    OrderRef,
    PlanningBreak,
    PlanningDepot,
    PlanningOptions,
    PlanningOrder,
    PlanningProblem,
    PlanningResult,
    PlanningTimeWindow,
    PlanningVehicle,
    VehicleRef,
)
from schemas.reasons import explain
from solver.errors import SolverError
from solver.matrix import MatrixProvider
from solver.search import Progress, SearchTuning
from solver.vrptw import solve
from store import routes as plans_store
from store.delivery import DayPlace, DeliveryDay, load_day
from workers.connection import OwnConnection
from workers.errors import InvalidPlan, PoisonEntry
from workers.runner import DeadLetter, Entry

log = structlog.get_logger(__name__)

GROUP = "planner"
PROGRESS_EVERY_S = 0.5


async def enqueue(redis: Any, names: StreamNames, org_id: OrgId, plan_id: PlanId) -> None:
    """Hand a plan to the planner workers (the plan must be committed first)."""
    job = PlanJob(org_id=org_id, plan_id=plan_id)
    await redis.xadd(names.plans, {"j": PLAN_JOB_ENCODER.encode(job)})


async def requeue_lost(
    conn: psycopg.AsyncConnection, redis: Any, names: StreamNames, older_than: timedelta
) -> int:
    """Append the jobs of queued plans that never reached the stream; how many were appended.

    Safe beside other processes doing the same: each plan is locked while its job is appended
    and marked, and the others skip it.
    """
    async with conn.transaction():
        lost = await plans_store.lock_unqueued_plans(conn, older_than)
        for org_id, plan_id in lost:
            await enqueue(redis, names, org_id, plan_id)
            await plans_store.mark_enqueued(conn, plan_id)
    return len(lost)


def _window(window: DayWindow) -> PlanningTimeWindow:
    return PlanningTimeWindow(
        start_epoch_s=int(window.start.timestamp()), end_epoch_s=int(window.end.timestamp())
    )


def _break(rest: DayBreak) -> PlanningBreak:
    return PlanningBreak(
        window=PlanningTimeWindow(
            start_epoch_s=int(rest.earliest_start.timestamp()),
            end_epoch_s=int(rest.latest_start.timestamp()),
        ),
        duration_s=rest.duration_s,
    )


def _place(place: DayPlace) -> tuple[DepotRef, PlanningDepot]:
    ref = DepotRef(
        f"d{place.depot_id}" if place.depot_id is not None else f"p{place.lat},{place.lon}"
    )
    return ref, PlanningDepot(ref=ref, location=Location(lat=place.lat, lon=place.lon))


def problem_of(
    day: DeliveryDay, options: PlanningOptions, order_ids: Sequence[int] | None = None
) -> PlanningProblem:
    """The planning problem of a delivery day: a vehicle per shift, an order per pending order.

    Vehicle refs are shift ids and order refs are order ids (as strings), so the outcome maps
    back without a lookup table. Only orders in ``order_ids`` are planned when it is given.
    """
    depots: dict[DepotRef, PlanningDepot] = {}
    vehicles = []
    for shift in day.shifts:
        start_ref, start = _place(shift.start)
        end_ref, end = _place(shift.end)
        depots[start_ref] = start
        depots[end_ref] = end
        vehicles.append(
            PlanningVehicle(
                ref=VehicleRef(str(shift.shift_id)),
                start_depot=start_ref,
                end_depot=end_ref,
                shift=_window(shift.working_window),
                breaks=[_break(b) for b in shift.breaks],
                max_duration_s=shift.max_duration_s,
                capacity=shift.capacity,
                skills=frozenset(shift.skills),
                fixed_cost=shift.fixed_cost,
                cost_per_km=shift.cost_per_km,
                cost_per_hour=shift.cost_per_hour,
            )
        )
    wanted = set(order_ids) if order_ids is not None else None
    orders = [
        PlanningOrder(
            ref=OrderRef(str(order.order_id)),
            location=Location(lat=order.lat, lon=order.lon),
            time_windows=[_window(w) for w in order.time_windows],
            service_s=order.service_s,
            size=order.size,
            priority=order.priority,
            required_skills=frozenset(order.required_skills),
        )
        for order in day.orders
        if wanted is None or order.order_id in wanted
    ]
    return PlanningProblem(
        dimensions=day.dimensions,
        depots=list(depots.values()),
        vehicles=vehicles,
        orders=orders,
        options=options,
    )


def outcome_of(day: DeliveryDay, result: PlanningResult) -> PlanOutcome:
    """The stored outcome: solver refs mapped back to shifts, drivers, vehicles and orders."""
    shifts = {str(s.shift_id): s for s in day.shifts}
    refs = {str(o.order_id): o.external_ref for o in day.orders}

    def at(epoch_s: int) -> datetime:
        return datetime.fromtimestamp(epoch_s, UTC)

    routes = []
    for route in result.routes:
        shift = shifts[route.vehicle_ref]
        routes.append(
            PlannedRoute(
                shift_id=shift.shift_id,
                driver_id=DriverId(shift.driver_id),
                vehicle_id=shift.vehicle_id,
                start=at(route.start_epoch_s),
                end=at(route.end_epoch_s),
                distance_m=route.distance_m,
                duration_s=route.duration_s,
                load=route.load,
                cost=route.cost,
                visits=[
                    PlannedVisit(
                        order_id=OrderId(int(stop.order_ref)),
                        order_ref=refs[stop.order_ref],
                        arrival=at(stop.arrival_epoch_s),
                        service_start=at(stop.service_start_epoch_s),
                        departure=at(stop.departure_epoch_s),
                        load_after=stop.load_after,
                        distance_from_previous_m=stop.distance_from_previous_m,
                    )
                    for stop in route.stops
                ],
                breaks=[(at(b.start_epoch_s), b.duration_s) for b in route.breaks],
            )
        )
    return PlanOutcome(
        dimensions=day.dimensions,
        routes=routes,
        unassigned=[
            LeftOut(
                order_id=OrderId(int(u.order_ref)),
                order_ref=refs[u.order_ref],
                code=u.code,
                reason=u.reason,
            )
            for u in result.unassigned
        ],
        objective=result.stats.objective,
        wall_time_s=result.stats.wall_time_s,
        solutions_found=result.stats.solutions_found,
        search_status=result.stats.status,
        search=result.stats.metaheuristic,
    )


def settings_of(plan: plans_store.PlanRow) -> tuple[PlanningOptions, SearchTuning]:
    """The options and search a stored plan asks for, checked as the API checks a request
    (:class:`~schemas.plan.PlanRequest`) and as the solver reads them
    (:class:`~schemas.planning.PlanningOptions`: no negative cost).

    Raises :class:`~workers.errors.InvalidPlan` naming the field at fault in the API's words
    (:func:`schemas.reasons.explain`). The API stores only what it accepted, but a plan written
    by an older version, by hand, or past a looser check reaches the worker all the same.
    """
    stored = {**plan.options, "day": plan.day, "order_ids": plan.order_ids}
    try:
        request = msgspec.convert(stored, PlanRequest)
        options = msgspec.convert(plan.options, PlanningOptions)
    except msgspec.ValidationError as exc:
        field, reason = explain(exc, stored)
        raise InvalidPlan(plan.id, f"invalid options: {field}: {reason}") from exc
    return options, SearchTuning(metaheuristic=request.search.upper())


@dataclass
class PlannerConsumer(OwnConnection):
    """Computes planning jobs, one at a time, on one database connection."""

    names: StreamNames
    database_url: str
    provider: MatrixProvider
    group: str = GROUP
    _conn: psycopg.AsyncConnection | None = field(default=None, repr=False)

    def streams(self) -> Sequence[str]:
        return [self.names.plans]

    def decode(self, fields: dict[bytes, bytes]) -> PlanJob:
        job: PlanJob = PLAN_JOB_DECODER.decode(fields[b"j"])
        return job

    async def handle(self, entries: Sequence[Entry[PlanJob]]) -> None:
        for entry in entries:
            try:
                await self.compute(entry.value.plan_id)
            except InvalidPlan as exc:  # computing it again cannot help
                raise PoisonEntry.of(entry, exc.detail) from exc

    async def dead_lettered(self, letters: Sequence[DeadLetter[PlanJob]]) -> None:
        """Mark the plans of jobs moved aside failed, with the reason (unless they finished)."""
        conn = await self._connection()
        for letter in letters:
            if letter.value is None:  # an undecodable job names no plan
                continue
            error = letter.reason
            if letter.cause == "exhausted":
                error = f"the planner gave up on this plan: {error}"
            await plans_store.fail_plan(conn, letter.value.plan_id, error)

    async def compute(self, plan_id: PlanId) -> None:
        """Solve one plan and store its outcome (or why the solver refused it).

        Raises :class:`~workers.errors.InvalidPlan` when its options break the rules, leaving
        the plan running for the caller to fail.
        """
        conn = await self._connection()
        plan = await plans_store.claim_plan(conn, plan_id)
        if plan is None:
            return
        options, tuning = settings_of(plan)
        day = await load_day(conn, plan.org_id, plan.day)
        problem = problem_of(day, options, plan.order_ids)
        loop = asyncio.get_running_loop()
        last_write = 0.0
        latest = PlanProgress()

        def on_progress(progress: Progress) -> None:
            nonlocal last_write, latest
            latest = PlanProgress(
                objective=progress.objective,
                solutions_found=progress.solutions_found,
                elapsed_s=round(progress.elapsed_s, 3),
            )
            if time.monotonic() - last_write >= PROGRESS_EVERY_S:
                last_write = time.monotonic()
                asyncio.run_coroutine_threadsafe(self._progress(plan_id, latest), loop)

        log.info("planning", plan=plan_id, orders=len(problem.orders), shifts=len(problem.vehicles))
        try:
            result = await asyncio.to_thread(
                solve,
                problem,
                self.provider,
                on_progress=on_progress,
                tuning=tuning,
            )
        except SolverError as exc:
            await plans_store.fail_plan(conn, plan_id, str(exc))
            return
        outcome = outcome_of(day, result)
        final = PlanProgress(
            objective=result.stats.objective,
            solutions_found=result.stats.solutions_found,
            elapsed_s=round(result.stats.wall_time_s, 3),
        )
        await plans_store.finish_plan(
            conn, plan_id, msgspec.to_builtins(outcome), msgspec.to_builtins(final)
        )
        log.info(
            "planned", plan=plan_id, routes=len(outcome.routes), left_out=len(outcome.unassigned)
        )

    async def _progress(self, plan_id: PlanId, progress: PlanProgress) -> None:
        # The worker's own connection is idle while the search runs in its thread; psycopg
        # serialises this write with the final one if they ever meet.
        conn = await self._connection()
        await plans_store.save_progress(conn, plan_id, msgspec.to_builtins(progress))
