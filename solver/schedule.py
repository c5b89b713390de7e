"""Timing a planned visiting order: from a vehicle and its stops in order to a timed route.

Engines that return only visiting orders (PyVRP's search, or an OR-Tools search stopped
before it could report its own schedule) get their routes timed here, on the instance's
matrix, by one rule:

* service starts on arrival, or at the start of the first window still open then;
* a break is taken before driving on to a stop, as early as its window allows, when that
  costs nothing (service at the next stop starts no later) or when waiting any longer would
  let its window close; a break whose window is still open when the route is back is taken
  after the route (the driver is off the road then);
* the vehicle leaves its depot as late as it can without making its first stop wait longer
  than it needs to: leaving later only moves waiting from the first stop to the depot, so the
  route is shorter (and cheaper by the hour) and serves every stop at the same time.

The result is not checked here: :mod:`solver.check` does that for every route of every
engine.
"""

from __future__ import annotations

from collections.abc import Sequence

from schemas.planning import OrderRef, PlannedBreak, PlannedStop, Route, VehicleRef
from solver.instance import BreakSpec, Instance, Window


def service_start(arrival_s: int, windows: Sequence[Window]) -> int:
    """When service starts after arriving at ``arrival_s``: at once, or when a window opens.

    A stop whose windows have all closed is served on arrival (late; the checker says so).
    """
    for start, end in windows:
        if arrival_s <= end:
            return max(arrival_s, start)
    return arrival_s


def time_route(instance: Instance, vehicle: int, orders: Sequence[int]) -> Route:
    """The timed route of ``vehicle`` serving ``orders`` (indices into ``problem.orders``)."""
    specs = sorted(instance.breaks[vehicle], key=lambda b: b.start_min_s)
    placements: list[tuple[int, ...] | None] = [None]
    if len(specs) == 1:
        # One break (the usual lunch): try it before every leg and after the route as well.
        placements += [(leg,) for leg in range(len(orders) + 2)]
    best: tuple[tuple[bool, int], _Timed] | None = None
    for placement in placements:
        timed = _latest_departure(instance, vehicle, orders, specs, placement)
        score = (not _keeps_constraints(instance, vehicle, orders, timed), timed.duration_s)
        if best is None or score < best[0]:
            best = (score, timed)
    assert best is not None  # placements is never empty
    return _route(instance, vehicle, orders, best[1])


def _latest_departure(
    instance: Instance,
    vehicle: int,
    orders: Sequence[int],
    specs: Sequence[BreakSpec],
    placement: tuple[int, ...] | None,
) -> _Timed:
    """Time the route leaving at the shift's start, then leave later by as much waiting as
    can be moved to the depot without serving any stop outside its window."""
    shift_start = instance.shift[vehicle][0]
    timed = _forward(instance, vehicle, orders, shift_start, specs, placement)
    waited = 0
    delay: int | None = None
    for k, arrival, start in zip(orders, timed.arrivals, timed.starts, strict=True):
        waited += start - arrival
        window_end = next((b for a, b in instance.order_windows[k] if a <= start <= b), start)
        room = window_end - start + waited
        delay = room if delay is None else min(delay, room)
    if not delay or not waited:
        return timed
    first_wait = timed.starts[0] - timed.arrivals[0]
    best = timed
    best_ok = _keeps_constraints(instance, vehicle, orders, timed)
    # Delaying by all the waiting that fits may push a break past its window; delaying by the
    # first stop's waiting moves no service at all.
    for later_s in sorted({min(delay, waited), min(delay, first_wait)} - {0}):
        later = _forward(instance, vehicle, orders, shift_start + later_s, specs, placement)
        ok = _keeps_constraints(instance, vehicle, orders, later)
        if (ok, -later.duration_s) > (best_ok, -best.duration_s):
            best, best_ok = later, ok
    return best


def _keeps_constraints(
    instance: Instance, vehicle: int, orders: Sequence[int], timed: _Timed
) -> bool:
    if timed.late_break or timed.end_s > instance.shift[vehicle][1]:
        return False
    max_duration = instance.problem.vehicles[vehicle].max_duration_s
    if max_duration is not None and timed.duration_s > max_duration:
        return False
    return all(
        any(a <= start <= b for a, b in instance.order_windows[k])
        for k, start in zip(orders, timed.starts, strict=True)
    )


class _Timed:
    __slots__ = ("arrivals", "breaks", "depart_s", "end_s", "late_break", "starts")

    def __init__(self, depart_s: int) -> None:
        self.depart_s = depart_s
        self.arrivals: list[int] = []
        self.starts: list[int] = []
        self.breaks: list[tuple[int, int]] = []
        self.end_s = depart_s
        self.late_break = False

    @property
    def duration_s(self) -> int:
        return self.end_s - self.depart_s


def _with_break(leave: int, travel: int, spec: BreakSpec) -> tuple[int, int]:
    """A break taken on a leg that leaves at ``leave`` and drives ``travel`` seconds: when it
    starts, and the departure that would arrive as late as the break makes the vehicle.

    The break starts as soon as its window opens (or at once). Starting during the drive, it
    delays the arrival by its duration; starting after the drive, at the stop, it delays the
    service to its end.
    """
    taken_at = max(leave, spec.start_min_s)
    if taken_at < leave + travel:
        return taken_at, leave + spec.duration_s
    return taken_at, taken_at + spec.duration_s - travel


def _forward(
    instance: Instance,
    vehicle: int,
    orders: Sequence[int],
    depart_s: int,
    specs: Sequence[BreakSpec],
    placement: tuple[int, ...] | None,
) -> _Timed:
    """Time the route leaving at ``depart_s``. ``placement[b]`` is the leg before which break
    ``b`` is taken (``len(orders)``: before driving back, one more: after the route); without
    a placement the breaks are placed by the greedy rule of the module's docstring."""
    timed = _Timed(depart_s)
    pending = list(range(len(specs)))
    here = instance.vehicle_start[vehicle]
    leave = depart_s
    services = instance.problem.orders

    def take(b: int, travel: int) -> None:
        nonlocal leave
        spec = specs[b]
        taken_at, leave = _with_break(leave, travel, spec)
        timed.late_break |= taken_at > spec.start_max_s
        timed.breaks.append((taken_at, spec.duration_s))
        pending.remove(b)

    for leg, k in enumerate(orders):
        point = instance.order_point[k]
        windows = instance.order_windows[k]
        travel = instance.travel_s(here, point)
        if placement is not None:
            for b in [b for b in pending if placement[b] == leg]:
                take(b, travel)
        else:
            while pending:
                spec = specs[pending[0]]
                plain = service_start(leave + travel, windows)
                with_break = service_start(_with_break(leave, travel, spec)[1] + travel, windows)
                if with_break <= plain or plain + services[k].service_s > spec.start_max_s:
                    take(pending[0], travel)
                    continue
                break
        arrival = leave + travel
        start = service_start(arrival, windows)
        timed.arrivals.append(arrival)
        timed.starts.append(start)
        leave = start + services[k].service_s
        here = point
    end_point = instance.vehicle_end[vehicle]
    for b in list(pending):
        back = leave + instance.travel_s(here, end_point)
        after = placement[b] > len(orders) if placement is not None else None
        if after is None:
            after = specs[b].start_max_s >= back
        if not after:
            take(b, instance.travel_s(here, end_point))
    back = leave + instance.travel_s(here, end_point)
    for b in pending:
        # Taken off the road, after the route (its window is still open when it is back).
        spec = specs[b]
        taken_at = max(back, spec.start_min_s)
        timed.late_break |= taken_at > spec.start_max_s
        timed.breaks.append((taken_at, spec.duration_s))
    timed.end_s = back
    return timed


def _route(instance: Instance, vehicle: int, orders: Sequence[int], timed: _Timed) -> Route:
    problem = instance.problem
    spec = problem.vehicles[vehicle]
    origin = instance.origin_epoch_s
    distance = instance.matrix.distance_m
    load = [sum(instance.size[k][d] for k in orders) for d in range(len(problem.dimensions))]
    remaining = list(load)
    here = instance.vehicle_start[vehicle]
    stops: list[PlannedStop] = []
    total_m = 0
    for k, arrival, start in zip(orders, timed.arrivals, timed.starts, strict=True):
        point = instance.order_point[k]
        remaining = [r - s for r, s in zip(remaining, instance.size[k], strict=True)]
        total_m += distance[here][point]
        stops.append(
            PlannedStop(
                order_ref=OrderRef(problem.orders[k].ref),
                arrival_epoch_s=origin + arrival,
                service_start_epoch_s=origin + start,
                departure_epoch_s=origin + start + problem.orders[k].service_s,
                load_after=remaining,
                distance_from_previous_m=distance[here][point],
            )
        )
        here = point
    total_m += distance[here][instance.vehicle_end[vehicle]]
    hours = (timed.end_s - timed.depart_s) / 3600.0
    return Route(
        vehicle_ref=VehicleRef(spec.ref),
        start_epoch_s=origin + timed.depart_s,
        end_epoch_s=origin + timed.end_s,
        stops=stops,
        breaks=[
            PlannedBreak(start_epoch_s=origin + start, duration_s=duration)
            for start, duration in timed.breaks
        ],
        distance_m=total_m,
        duration_s=timed.end_s - timed.depart_s,
        load=load,
        cost=spec.fixed_cost + spec.cost_per_km * total_m / 1000.0 + spec.cost_per_hour * hours,
    )
