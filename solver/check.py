"""The independent feasibility check every plan passes before it leaves the solver.

:func:`check_plan` re-reads a plan's routes against the compiled problem, trusting nothing
the engine said: each order is on exactly one route or listed as unassigned; each vehicle
drives at most one route; loads add up and fit the capacity in every dimension; the vehicle
has every skill its orders require; the route stays inside the shift and its maximum
duration; every stop is served inside one of its windows, after arriving, for its service
time; every leg leaves enough time to drive it once breaks are taken out; every break of the
vehicle is planned once, starts inside its window, lasts its duration and interrupts no
service; distances are the matrix's. It shares no code with the engines or with
:mod:`solver.schedule`, so a mistake in either shows here instead of in a stored plan.
"""

from __future__ import annotations

from collections.abc import Sequence

from schemas.planning import Route, UnassignedOrder
from solver.errors import InfeasiblePlan
from solver.instance import Instance


def check_plan(
    instance: Instance, routes: Sequence[Route], unassigned: Sequence[UnassignedOrder]
) -> None:
    """Raise :class:`~solver.errors.InfeasiblePlan` listing every violation, if there is any."""
    problem = instance.problem
    order_index = {o.ref: k for k, o in enumerate(problem.orders)}
    vehicle_index = {v.ref: k for k, v in enumerate(problem.vehicles)}
    seen: dict[str, str] = {}
    violations: list[str] = []

    def place(ref: str, where: str) -> None:
        if ref not in order_index:
            violations.append(f"{where}: order {ref!r} is not in the problem")
        elif ref in seen:
            violations.append(f"order {ref!r} is both in {seen[ref]} and in {where}")
        else:
            seen[ref] = where

    used: set[int] = set()
    for route in routes:
        v = vehicle_index.get(route.vehicle_ref)
        where = f"route of {route.vehicle_ref!r}"
        if v is None:
            violations.append(f"{where}: the vehicle is not in the problem")
            continue
        if v in used:
            violations.append(f"{where}: the vehicle has a second route")
        used.add(v)
        for stop in route.stops:
            place(stop.order_ref, where)
        orders = [order_index[s.order_ref] for s in route.stops if s.order_ref in order_index]
        if len(orders) == len(route.stops):
            faults = route_violations(instance, v, route, orders)
            violations += [f"{where}: {text}" for text in faults]
    for left in unassigned:
        place(left.order_ref, "the unassigned orders")
    missing = [o.ref for o in problem.orders if o.ref not in seen]
    if missing:
        violations.append(f"orders neither routed nor unassigned: {', '.join(missing[:10])}")
    if violations:
        raise InfeasiblePlan(violations)


def route_violations(instance: Instance, v: int, route: Route, orders: Sequence[int]) -> list[str]:
    """Every constraint ``route`` of vehicle ``v`` breaks, in words (empty: it is feasible).

    ``orders`` are the indices (into ``problem.orders``) of its stops' orders, stop by stop.
    """
    problem = instance.problem
    vehicle = problem.vehicles[v]
    origin = instance.origin_epoch_s
    out: list[str] = []

    for k in orders:
        missing = problem.orders[k].required_skills - vehicle.skills
        if missing:
            out.append(f"order {problem.orders[k].ref!r} needs skills {sorted(missing)}")
    load = [sum(instance.size[k][d] for k in orders) for d in range(len(problem.dimensions))]
    if route.load != load:
        out.append(f"load {route.load} is not the sum of the orders' sizes {load}")
    for d, name in enumerate(problem.dimensions):
        if load[d] > instance.capacity[v][d]:
            out.append(f"{name} {load[d]} exceeds the capacity {instance.capacity[v][d]}")
    remaining = list(load)
    for k, stop in zip(orders, route.stops, strict=True):
        remaining = [r - s for r, s in zip(remaining, instance.size[k], strict=True)]
        if stop.load_after != remaining:
            out.append(f"stop {stop.order_ref!r}: load after {stop.load_after}, not {remaining}")

    start = route.start_epoch_s - origin
    end = route.end_epoch_s - origin
    shift_start, shift_end = instance.shift[v]
    if start < shift_start or end > shift_end or end < start:
        out.append(f"runs [{start}, {end}] s, outside the shift [{shift_start}, {shift_end}] s")
    if route.duration_s != end - start:
        out.append(f"duration {route.duration_s} s is not end minus start ({end - start} s)")
    if vehicle.max_duration_s is not None and end - start > vehicle.max_duration_s:
        out.append(f"lasts {end - start} s, more than the maximum {vehicle.max_duration_s} s")

    breaks = sorted((b.start_epoch_s - origin, b.duration_s) for b in route.breaks)
    specs = sorted(instance.breaks[v], key=lambda b: b.start_min_s)
    if len(breaks) != len(specs):
        out.append(f"plans {len(breaks)} breaks for the vehicle's {len(specs)}")
    for (b_start, b_len), spec in zip(breaks, specs, strict=False):
        if not spec.start_min_s <= b_start <= spec.start_max_s or b_len != spec.duration_s:
            out.append(
                f"break at {b_start} s for {b_len} s: expected a start in "
                f"[{spec.start_min_s}, {spec.start_max_s}] s lasting {spec.duration_s} s"
            )

    def off_road(a: int, b: int) -> int:
        return sum(max(0, min(b, s + n) - max(a, s)) for s, n in breaks)

    distance = instance.matrix.distance_m
    here = instance.vehicle_start[v]
    leave = start
    total_m = 0
    for k, stop in zip(orders, route.stops, strict=True):
        ref = stop.order_ref
        point = instance.order_point[k]
        arrival = stop.arrival_epoch_s - origin
        begin = stop.service_start_epoch_s - origin
        service = problem.orders[k].service_s
        if begin - leave - off_road(leave, begin) < instance.travel_s(here, point):
            out.append(f"stop {ref!r}: served at {begin} s, too soon after leaving at {leave} s")
        if arrival > begin or arrival < leave:
            out.append(f"stop {ref!r}: arrives at {arrival} s, outside [{leave}, {begin}] s")
        if not any(a <= begin <= b for a, b in instance.order_windows[k]):
            out.append(
                f"stop {ref!r}: served at {begin} s, outside its windows "
                f"{instance.order_windows[k]}"
            )
        if stop.departure_epoch_s - origin != begin + service:
            out.append(f"stop {ref!r}: leaves before its {service} s of service are over")
        if off_road(begin, begin + service) > 0:
            out.append(f"stop {ref!r}: a break interrupts the service")
        if stop.distance_from_previous_m != distance[here][point]:
            out.append(f"stop {ref!r}: distance from the previous stop is not the matrix's")
        total_m += distance[here][point]
        here = point
        leave = begin + service
    back = instance.vehicle_end[v]
    if end - leave - off_road(leave, end) < instance.travel_s(here, back):
        out.append(f"back at {end} s, too soon after the last stop at {leave} s")
    total_m += distance[here][back]
    if route.distance_m != total_m:
        out.append(f"distance {route.distance_m} m is not the matrix's {total_m} m")
    return out
