"""A delivery day as a planning problem, and the solver's result as a stored plan outcome.

Pure conversions for the planner worker (:mod:`workers.planner`): :func:`problem_of` turns the
day's snapshot into a :class:`~schemas.planning.PlanningProblem`, :func:`outcome_of` maps the
solver's refs back to shifts, drivers and orders, and :func:`settings_of` reads a stored plan's
options by the rules of the API edge and the solver.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec

from schemas.delivery import Break as DayBreak
from schemas.delivery import TimeWindow as DayWindow
from schemas.ids import DriverId, OrderId
from schemas.plan import LeftOut, PlannedRoute, PlannedVisit, PlanOutcome, PlanRequest
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
from solver.search import SearchTuning
from store.delivery import DayPlace, DeliveryDay
from store.plans import PlanRow
from workers.errors import InvalidPlan


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
        search=result.stats.search or result.stats.metaheuristic,
        engine=result.stats.engine,
        engine_reason=result.stats.engine_reason,
        processes=result.stats.processes,
    )


def settings_of(plan: PlanRow, max_s: float | None = None) -> tuple[PlanningOptions, SearchTuning]:
    """The options and search a stored plan asks for, checked as the API checks a request
    (:class:`~schemas.plan.PlanRequest`) and as the solver reads them
    (:class:`~schemas.planning.PlanningOptions`: no negative cost), with the time limit cut to
    ``max_s`` (the server's cap: a plan accepted under a higher cap runs no longer than now
    allowed).

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
    if max_s is not None and options.time_limit_s > max_s:
        options = msgspec.structs.replace(options, time_limit_s=max_s)
    return options, SearchTuning(metaheuristic=request.search.upper())
