"""Small planning problems in the plane, built in domain terms, and ways to look at plans.

Distances are Euclidean metres, driven at 1 m/s, so a distance in metres is also a driving time
in seconds; shifts start at instant 0. Every vehicle starts and ends at the depot at (0, 0).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from schemas.planning import (
    DepotRef,
    Location,
    OrderRef,
    PlanningDepot,
    PlanningOptions,
    PlanningOrder,
    PlanningProblem,
    PlanningResult,
    PlanningTimeWindow,
    PlanningVehicle,
    Route,
    VehicleRef,
)
from solver.instance import Instance, compile_problem, problem_points
from solver.matrix import EuclideanProvider
from solver.search import ProgressCallback, SearchTuning
from solver.vrptw import solve

DEPOT = DepotRef("depot")
SEARCH_S = 0.5
"""Time limit of each solve: the problems here are tiny and solved optimally far sooner."""


def at(x_m: float, y_m: float) -> Location:
    """A planar point."""
    return Location(x_m=x_m, y_m=y_m)


def window(start_s: int, end_s: int) -> PlanningTimeWindow:
    """A time window in seconds after instant 0."""
    return PlanningTimeWindow(start_epoch_s=start_s, end_epoch_s=end_s)


def van(
    ref: str, *, capacity: Sequence[int] = (100,), shift_s: int = 100_000, **extra: Any
) -> PlanningVehicle:
    """A vehicle at the depot, costing 1 per km unless told otherwise."""
    fields: dict[str, Any] = {"cost_per_km": 1.0, **extra}
    return PlanningVehicle(
        ref=VehicleRef(ref),
        start_depot=DEPOT,
        shift=window(0, shift_s),
        capacity=list(capacity),
        **fields,
    )


def drop(ref: str, x_m: float, y_m: float, **extra: Any) -> PlanningOrder:
    """An order at (x_m, y_m)."""
    return PlanningOrder(ref=OrderRef(ref), location=at(x_m, y_m), **extra)


def day(
    vehicles: Sequence[PlanningVehicle],
    orders: Sequence[PlanningOrder],
    *,
    dimensions: Sequence[str] = ("parcels",),
    **options: Any,
) -> PlanningProblem:
    """A problem with one depot at the origin."""
    return PlanningProblem(
        dimensions=list(dimensions),
        depots=[PlanningDepot(ref=DEPOT, location=at(0.0, 0.0))],
        vehicles=list(vehicles),
        orders=list(orders),
        options=PlanningOptions(**{"time_limit_s": SEARCH_S, **options}),
    )


def compiled(problem: PlanningProblem) -> Instance:
    """The problem indexed on straight-line distances at 1 m/s."""
    matrix = EuclideanProvider().matrix(problem_points(problem), depart_epoch_s=0)
    return compile_problem(problem, matrix)


def plan(
    problem: PlanningProblem,
    *,
    on_progress: ProgressCallback | None = None,
    tuning: SearchTuning | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> PlanningResult:
    """Solve with straight-line distances at 1 m/s."""
    return solve(
        problem,
        EuclideanProvider(),
        on_progress=on_progress,
        tuning=tuning,
        should_stop=should_stop,
    )


def route_of(result: PlanningResult, vehicle: str) -> Route:
    """The route of ``vehicle``; fails the test when the vehicle is unused."""
    for route in result.routes:
        if route.vehicle_ref == vehicle:
            return route
    raise AssertionError(f"vehicle {vehicle!r} has no route; routes: {stops_by_vehicle(result)}")


def stops_by_vehicle(result: PlanningResult) -> dict[str, list[str]]:
    """Each used vehicle's order refs in visiting order."""
    return {r.vehicle_ref: [s.order_ref for s in r.stops] for r in result.routes}


def unassigned_codes(result: PlanningResult) -> dict[str, str]:
    """Each unassigned order's reason code."""
    return {u.order_ref: u.code for u in result.unassigned}
