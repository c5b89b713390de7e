"""A planning problem checked and turned into integer indices on one time axis.

:func:`compile_problem` validates a :class:`~schemas.planning.PlanningProblem` (references,
vector lengths, window order, priorities) and produces an :class:`Instance`: every depot and
order location gets an index into one point list, every instant becomes seconds after the
earliest shift start (``origin_epoch_s``), and windows are sorted, merged and clipped to the
planning horizon. Everything downstream — feasibility checks, the OR-Tools model, reading the
solution back — works on an :class:`Instance` and never re-reads the raw problem's instants.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import msgspec

from schemas.planning import (
    DepotRef,
    Location,
    PlanningOrder,
    PlanningProblem,
    PlanningTimeWindow,
    PlanningVehicle,
)
from solver.errors import ProblemError
from solver.matrix import TravelMatrix, check_matrix

Window = tuple[int, int]
"""A closed interval ``(start_s, end_s)`` in seconds after the instance's origin."""


class BreakSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A break on the instance's time axis: it starts in ``[start_min_s, start_max_s]``."""

    start_min_s: int
    start_max_s: int
    duration_s: int


class Instance(msgspec.Struct, frozen=True, kw_only=True):
    """The problem in solver terms. Times are seconds after ``origin_epoch_s``.

    ``points`` lists the depots' locations (in ``problem.depots`` order) followed by the orders'
    (in ``problem.orders`` order); ``order_point[k] == len(problem.depots) + k``.
    ``vehicle_start[v]``/``vehicle_end[v]`` are point indices; ``order_windows[k]`` is empty when
    the order has no usable window left inside the horizon (it cannot be served), and spans the
    whole horizon when the order gave none. ``size[k]``/``capacity[v]`` are aligned with
    ``problem.dimensions``.
    """

    problem: PlanningProblem
    origin_epoch_s: int
    horizon_s: int
    points: list[Location]
    matrix: TravelMatrix
    vehicle_start: list[int]
    vehicle_end: list[int]
    shift: list[Window]
    breaks: list[list[BreakSpec]]
    capacity: list[list[int]]
    order_point: list[int]
    order_windows: list[list[Window]]
    size: list[list[int]]
    penalty: list[float]

    def travel_s(self, a: int, b: int) -> int:
        """Driving time in seconds from point ``a`` to point ``b``."""
        return self.matrix.duration_s[a][b]


def problem_points(problem: PlanningProblem) -> list[Location]:
    """The point list an :class:`Instance` is built over: depots first, then orders."""
    return [d.location for d in problem.depots] + [o.location for o in problem.orders]


def compile_problem(problem: PlanningProblem, matrix: TravelMatrix) -> Instance:
    """Validate ``problem`` and index it against ``matrix`` (built over :func:`problem_points`).

    Raises :class:`~solver.errors.ProblemError` naming the first inconsistency found, and
    :class:`~solver.errors.MatrixError` when ``matrix`` does not fit the points.
    """
    _check_unique("depot", [d.ref for d in problem.depots])
    _check_unique("vehicle", [v.ref for v in problem.vehicles])
    _check_unique("order", [o.ref for o in problem.orders])
    if not problem.vehicles:
        raise ProblemError("problem", "expected at least one vehicle, got none")
    options = problem.options
    if not (math.isfinite(options.time_limit_s) and options.time_limit_s > 0):
        raise ProblemError(
            "options", f"expected a positive time_limit_s, got {options.time_limit_s}"
        )
    if not options.unassigned_penalty or min(options.unassigned_penalty) < 0:
        raise ProblemError(
            "options",
            f"expected at least one non-negative unassigned_penalty, "
            f"got {options.unassigned_penalty}",
        )
    points = problem_points(problem)
    check_matrix(matrix, len(points))

    depot_point = {d.ref: i for i, d in enumerate(problem.depots)}
    origin = min(v.shift.start_epoch_s for v in problem.vehicles)
    horizon = max(v.shift.end_epoch_s for v in problem.vehicles) - origin
    dims = problem.dimensions

    vehicle_start: list[int] = []
    vehicle_end: list[int] = []
    shifts: list[Window] = []
    breaks: list[list[BreakSpec]] = []
    capacity: list[list[int]] = []
    for vehicle in problem.vehicles:
        subject = f"vehicle {vehicle.ref!r}"
        vehicle_start.append(_depot(depot_point, vehicle.start_depot, subject))
        vehicle_end.append(_depot(depot_point, vehicle.end_depot or vehicle.start_depot, subject))
        shifts.append(_window(vehicle.shift, origin, subject, "shift"))
        breaks.append(_breaks(vehicle, origin, subject))
        capacity.append(_amounts(vehicle.capacity, dims, subject, "capacity", allow_empty=False))
        for name in ("fixed_cost", "cost_per_km", "cost_per_hour"):
            value = getattr(vehicle, name)
            if not (math.isfinite(value) and value >= 0):
                raise ProblemError(subject, f"expected a non-negative {name}, got {value}")
        if vehicle.max_duration_s is not None and vehicle.max_duration_s < 0:
            raise ProblemError(
                subject, f"expected a non-negative max_duration_s, got {vehicle.max_duration_s}"
            )

    order_windows: list[list[Window]] = []
    size: list[list[int]] = []
    penalty: list[float] = []
    for order in problem.orders:
        subject = f"order {order.ref!r}"
        order_windows.append(_order_windows(order, origin, horizon, subject))
        size.append(_amounts(order.size, dims, subject, "size", allow_empty=True))
        if order.service_s < 0:
            raise ProblemError(subject, f"expected a non-negative service_s, got {order.service_s}")
        if not 0 <= order.priority < len(options.unassigned_penalty):
            raise ProblemError(
                subject,
                f"expected priority in [0, {len(options.unassigned_penalty) - 1}] "
                f"(one per unassigned_penalty), got {order.priority}",
            )
        penalty.append(options.unassigned_penalty[order.priority])

    n_depots = len(problem.depots)
    return Instance(
        problem=problem,
        origin_epoch_s=origin,
        horizon_s=horizon,
        points=points,
        matrix=matrix,
        vehicle_start=vehicle_start,
        vehicle_end=vehicle_end,
        shift=shifts,
        breaks=breaks,
        capacity=capacity,
        order_point=[n_depots + k for k in range(len(problem.orders))],
        order_windows=order_windows,
        size=size,
        penalty=penalty,
    )


def merge_windows(windows: Sequence[Window]) -> list[Window]:
    """Sort windows and merge those that overlap or touch, so gaps between them are real."""
    merged: list[Window] = []
    for start, end in sorted(windows):
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _check_unique(kind: str, refs: Sequence[str]) -> None:
    seen: set[str] = set()
    for ref in refs:
        if ref in seen:
            raise ProblemError(f"{kind} {ref!r}", f"expected unique {kind} refs, got it twice")
        seen.add(ref)


def _depot(depot_point: Mapping[DepotRef, int], ref: DepotRef, subject: str) -> int:
    point = depot_point.get(ref)
    if point is None:
        known = ", ".join(sorted(depot_point)) or "none"
        raise ProblemError(subject, f"expected a known depot ({known}), got {ref!r}")
    return point


def _window(window: PlanningTimeWindow, origin: int, subject: str, what: str) -> Window:
    if window.end_epoch_s < window.start_epoch_s:
        raise ProblemError(
            subject,
            f"expected {what} to end at or after its start {window.start_epoch_s}, "
            f"got end {window.end_epoch_s}",
        )
    return (window.start_epoch_s - origin, window.end_epoch_s - origin)


def _breaks(vehicle: PlanningVehicle, origin: int, subject: str) -> list[BreakSpec]:
    specs: list[BreakSpec] = []
    for k, brk in enumerate(vehicle.breaks):
        start, end = _window(brk.window, origin, subject, f"break {k} window")
        if brk.duration_s < 0:
            raise ProblemError(
                subject, f"expected break {k} with non-negative duration_s, got {brk.duration_s}"
            )
        if end < 0:
            # Over before the first shift starts: taken before the plan begins.
            continue
        specs.append(
            BreakSpec(start_min_s=max(start, 0), start_max_s=end, duration_s=brk.duration_s)
        )
    return specs


def _amounts(
    amounts: Sequence[int], dims: Sequence[str], subject: str, what: str, *, allow_empty: bool
) -> list[int]:
    if not amounts and allow_empty:
        return [0] * len(dims)
    if len(amounts) != len(dims):
        raise ProblemError(
            subject,
            f"expected {what} with {len(dims)} amounts ({', '.join(dims) or 'no dimensions'}), "
            f"got {len(amounts)}",
        )
    for name, value in zip(dims, amounts, strict=True):
        if value < 0:
            raise ProblemError(subject, f"expected a non-negative {what} {name}, got {value}")
    return list(amounts)


def _order_windows(order: PlanningOrder, origin: int, horizon: int, subject: str) -> list[Window]:
    if not order.time_windows:
        return [(0, horizon)]
    clipped: list[Window] = []
    for k, window in enumerate(order.time_windows):
        start, end = _window(window, origin, subject, f"time window {k}")
        if end < 0 or start > horizon:
            continue
        clipped.append((max(start, 0), min(end, horizon)))
    return merge_windows(clipped)
