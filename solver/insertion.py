"""Putting one order into running routes at the cheapest position that breaks nothing.

:func:`cheapest_insertion` tries every position of every running route — exhaustive, which is
cheap at the sizes of a running day (tens of drivers, tens of stops left each) — and keeps the
one adding the least driving time (then distance, then the earlier route and position). A
position is feasible when

* the route's vehicle has every skill the order requires;
* the remaining stops' sizes plus the order's fit the capacity (the simplification stated on
  :class:`~schemas.reoptimize.RunningRoute`);
* the order's service starts inside one of its windows;
* no later stop starts service later than its window allows, and a stop that was already late
  gets no later;
* the route still ends by its latest end (shift end and maximum duration), or no later than it
  already did when it was already past it.

One provider call covers every point. Checking a position walks only the stops after it, and
stops at the first one whose service start does not move: waiting absorbs delay, and timing is
monotone (arriving later never lets service start earlier). :func:`move_stop` is the same check
for a dispatcher's move of a stop from one driver to another.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import msgspec

from schemas.planning import OrderRef, PlanningOrder
from schemas.reoptimize import (
    Insertion,
    RemainingStop,
    RunningRoute,
    Timeline,
    Unplaceable,
    UnplaceableCode,
)
from solver.errors import ProblemError
from solver.matrix import MatrixProvider, TravelMatrix
from solver.timeline import (
    IndexedRoute,
    Visit,
    index_routes,
    service_start,
    shared_matrix,
    stop_size,
    time_visits,
)

ViolationKind = Literal["window", "later", "end"]


@dataclass(frozen=True, slots=True)
class Violation:
    """Why one position is infeasible: the new stop misses its windows (``window``), a later
    stop ``order_ref`` gets later (``later``), or the route ends too late (``end``).

    ``value_s`` is the new lateness, the stop's new lateness, or the new end instant;
    ``before_s`` is the stop's lateness, or the latest allowed end, before the insertion.
    """

    kind: ViolationKind
    order_ref: OrderRef
    value_s: int
    before_s: int

    def sentence(self) -> str:
        """The violation for people."""
        if self.kind == "window":
            return f"order {self.order_ref!r} would be served {self.value_s} s after its windows"
        if self.kind == "later":
            return (
                f"stop {self.order_ref!r} would be {self.value_s} s late, "
                f"expected at most {self.before_s} s as before"
            )
        return (
            f"the route would end at {self.value_s} epoch s, "
            f"expected at most {self.before_s} (shift end or maximum duration)"
        )


def cheapest_insertion(
    routes: Sequence[RunningRoute], order: PlanningOrder | RemainingStop, provider: MatrixProvider
) -> Insertion | Unplaceable:
    """Insert ``order`` where it adds the least driving time without breaking any constraint.

    Returns the chosen :class:`~schemas.reoptimize.Insertion` (its timeline is the route with
    the order in it), or an :class:`~schemas.reoptimize.Unplaceable` with the code of the check
    that stopped the most advanced routes (skills, then capacity, then time). A ``PlanningOrder``'s
    priority is ignored. Asks ``provider`` for one matrix over all points.

    Raises :class:`~solver.errors.ProblemError` for inconsistent routes or order (including an
    order already on a route) and :class:`~solver.errors.MatrixError` from the provider.
    """
    stop = order if isinstance(order, RemainingStop) else order_stop(order)
    points, indexed, (visit,) = index_routes(routes, [stop])
    matrix = shared_matrix(provider, points, routes)
    return _place(matrix, indexed, visit, None)


def move_stop(
    from_route: RunningRoute,
    to_route: RunningRoute,
    order_ref: OrderRef,
    provider: MatrixProvider,
    position: int | None = None,
) -> tuple[Timeline, Insertion] | Unplaceable:
    """Move stop ``order_ref`` from ``from_route`` to ``to_route``, if ``to_route`` can take it.

    The stop goes to the cheapest feasible position of ``to_route`` or, when ``position`` is
    given, exactly there after the same checks as :func:`cheapest_insertion` (the
    ``Unplaceable`` then says which constraint that position breaks). On success returns the
    timeline of ``from_route`` without the stop and the insertion into ``to_route``; the caller
    applies both or neither. Removing a stop never makes ``from_route``'s other stops later
    (given travel times that respect the triangle inequality), so it is not checked.

    Raises :class:`~solver.errors.ProblemError` when both routes are the same vehicle's, when
    ``from_route`` has no remaining stop ``order_ref``, when ``position`` is outside
    ``[0, len(to_route.stops)]``, or for inconsistent routes.
    """
    if from_route.vehicle_ref == to_route.vehicle_ref:
        raise ProblemError(
            f"route {to_route.vehicle_ref!r}",
            "expected a move between two vehicles, got the same vehicle twice",
        )
    if position is not None and not 0 <= position <= len(to_route.stops):
        raise ProblemError(
            f"route {to_route.vehicle_ref!r}",
            f"expected a position in [0, {len(to_route.stops)}], got {position}",
        )
    stop = next((s for s in from_route.stops if s.order_ref == order_ref), None)
    if stop is None:
        raise ProblemError(
            f"route {from_route.vehicle_ref!r}",
            f"expected a remaining stop {order_ref!r}, "
            f"got {[s.order_ref for s in from_route.stops]}",
        )
    reduced = without_stop(from_route, order_ref)
    points, (source, target), (visit,) = index_routes([reduced, to_route], [stop])
    matrix = shared_matrix(provider, points, [reduced, to_route])
    placed = _place(matrix, [target], visit, position)
    if isinstance(placed, Unplaceable):
        return placed
    return time_visits(matrix, source, source.visits), placed


def order_stop(order: PlanningOrder) -> RemainingStop:
    """A new order as a remaining stop (its priority has no place in a running route)."""
    return RemainingStop(
        order_ref=order.ref,
        location=order.location,
        time_windows=order.time_windows,
        service_s=order.service_s,
        size=order.size,
        required_skills=order.required_skills,
    )


def with_stop(route: RunningRoute, stop: RemainingStop, position: int) -> RunningRoute:
    """``route`` with ``stop`` at index ``position`` of its remaining stops (apply an insertion)."""
    if not 0 <= position <= len(route.stops):
        raise ProblemError(
            f"route {route.vehicle_ref!r}",
            f"expected a position in [0, {len(route.stops)}], got {position}",
        )
    stops = [*route.stops[:position], stop, *route.stops[position:]]
    return msgspec.structs.replace(route, stops=stops)


def without_stop(route: RunningRoute, order_ref: OrderRef) -> RunningRoute:
    """``route`` without its remaining stop ``order_ref`` (a cancellation, or a move away)."""
    stops = [s for s in route.stops if s.order_ref != order_ref]
    if len(stops) == len(route.stops):
        raise ProblemError(
            f"route {route.vehicle_ref!r}",
            f"expected a remaining stop {order_ref!r}, got {[s.order_ref for s in route.stops]}",
        )
    return msgspec.structs.replace(route, stops=stops)


def check_position(
    matrix: TravelMatrix, route: IndexedRoute, before: Timeline, visit: Visit, position: int
) -> Violation | None:
    """Whether ``visit`` can go at ``position`` of ``route``, whose current timing is ``before``.

    Walks the stops after ``position`` only as far as the delay reaches.
    """
    duration = matrix.duration_s
    running = route.route
    if position == 0:
        here, clock = route.start, running.now_epoch_s
    else:
        here, clock = route.visits[position - 1].point, before.stops[position - 1].departure_epoch_s
    arrival = clock + duration[here][visit.point]
    start, late = service_start(arrival, visit.windows)
    if late:
        return Violation(kind="window", order_ref=visit.stop.order_ref, value_s=late, before_s=0)
    clock, here = start + visit.stop.service_s, visit.point
    for j in range(position, len(route.visits)):
        later, timed = route.visits[j], before.stops[j]
        arrival = clock + duration[here][later.point]
        if arrival <= timed.arrival_epoch_s:
            return None
        start, late = service_start(arrival, later.windows)
        if late > timed.lateness_s:
            return Violation(
                kind="later",
                order_ref=later.stop.order_ref,
                value_s=late,
                before_s=timed.lateness_s,
            )
        if start <= timed.service_start_epoch_s:
            return None
        clock, here = start + later.stop.service_s, later.point
    end = clock + duration[here][route.end]
    allowed = max(running.latest_end_epoch_s, before.end_epoch_s)
    if end > allowed:
        return Violation(kind="end", order_ref=visit.stop.order_ref, value_s=end, before_s=allowed)
    return None


def _detour(
    matrix: TravelMatrix, route: IndexedRoute, visit: Visit, position: int
) -> tuple[int, int]:
    """Driving time and distance that putting ``visit`` at ``position`` adds to ``route``."""
    prev = route.start if position == 0 else route.visits[position - 1].point
    succ = route.end if position == len(route.visits) else route.visits[position].point
    p, v, s = prev, visit.point, succ
    added_s = matrix.duration_s[p][v] + matrix.duration_s[v][s] - matrix.duration_s[p][s]
    added_m = matrix.distance_m[p][v] + matrix.distance_m[v][s] - matrix.distance_m[p][s]
    return added_s, added_m


def _place(
    matrix: TravelMatrix, routes: Sequence[IndexedRoute], visit: Visit, position: int | None
) -> Insertion | Unplaceable:
    """The cheapest feasible insertion of ``visit`` into ``routes`` (at ``position`` if given)."""
    stop = visit.stop

    def refuse(code: UnplaceableCode, why: str) -> Unplaceable:
        return Unplaceable(order_ref=stop.order_ref, code=code, reason=why)

    if not routes:
        return refuse("no_route", "there is no running route to insert the order into")
    skilled = [r for r in routes if stop.required_skills <= r.route.skills]
    if not skilled:
        return refuse("skill", _skill_reason(routes, stop))
    roomy = [r for r in skilled if _fits(r, stop)]
    if not roomy:
        return refuse("capacity", _capacity_reason(skilled, stop))

    best: tuple[int, int, IndexedRoute, int] | None = None
    tally: Counter[ViolationKind] = Counter()
    last: Violation | None = None
    for route in roomy:
        before = time_visits(matrix, route, route.visits)
        positions = range(len(route.visits) + 1) if position is None else (position,)
        for p in positions:
            added_s, added_m = _detour(matrix, route, visit, p)
            if best is not None and (added_s, added_m) >= best[:2]:
                continue
            violation = check_position(matrix, route, before, visit, p)
            if violation is None:
                best = (added_s, added_m, route, p)
            else:
                tally[violation.kind] += 1
                last = violation
    if best is None:
        if position is not None and last is not None:
            return refuse("time_window", f"position {position}: {last.sentence()}")
        return refuse("time_window", _time_reason(roomy, tally))

    added_s, added_m, route, p = best
    visits = [*route.visits[:p], visit, *route.visits[p:]]
    return Insertion(
        vehicle_ref=route.route.vehicle_ref,
        position=p,
        stop=stop,
        added_travel_s=added_s,
        added_distance_m=added_m,
        timeline=time_visits(matrix, route, visits),
    )


def _fits(route: IndexedRoute, stop: RemainingStop) -> bool:
    size = stop_size(stop, route.route, f"order {stop.order_ref!r}")
    return all(
        load + s <= cap for load, s, cap in zip(route.load, size, route.route.capacity, strict=True)
    )


def _skill_reason(routes: Sequence[IndexedRoute], stop: RemainingStop) -> str:
    required = stop.required_skills
    missing = sorted(s for s in required if not any(s in r.route.skills for r in routes))
    if len(routes) == 1:
        return f"route {routes[0].route.vehicle_ref!r} lacks skill {', '.join(map(repr, missing))}"
    if missing:
        return f"no running route has skill {', '.join(map(repr, missing))}"
    return f"no running route has all of the skills {', '.join(map(repr, sorted(required)))}"


def _capacity_reason(routes: Sequence[IndexedRoute], stop: RemainingStop) -> str:
    size = stop_size(stop, routes[0].route, f"order {stop.order_ref!r}")
    room = [max(r.route.capacity[d] - r.load[d] for r in routes) for d in range(len(size))]
    if len(routes) == 1:
        where = f"route {routes[0].route.vehicle_ref!r}"
    else:
        where = f"the {len(routes)} running routes with the skills"
    return (
        f"capacity: expected room for size {size} on top of the remaining stops, "
        f"got at most {room} left on {where}"
    )


def _time_reason(routes: Sequence[IndexedRoute], tally: Counter[ViolationKind]) -> str:
    parts = [
        f"{tally['window']} miss the order's windows" if tally["window"] else "",
        f"{tally['later']} make a later stop later" if tally["later"] else "",
        f"{tally['end']} end the route after its shift or maximum duration" if tally["end"] else "",
    ]
    where = (
        f"on route {routes[0].route.vehicle_ref!r}"
        if len(routes) == 1
        else f"on the {len(routes)} running routes with the skills and room"
    )
    return (
        f"no position {where} keeps every time window and the shift end "
        f"(of {tally.total()} positions: {', '.join(p for p in parts if p)})"
    )
