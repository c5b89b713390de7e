"""Reading an OR-Tools solution back as routes with planned times, loads and costs.

Times come from the ``time`` dimension's cumuls (start of service, on the instance's axis) and
are shifted back to epoch seconds. Arrival at a stop is the departure from the previous one
plus the driving time, plus any break planned entirely in between; the rest of the gap to the
start of service is waiting.
"""

from __future__ import annotations

import itertools
from typing import Any

from schemas.planning import OrderRef, PlannedBreak, PlannedStop, Route, VehicleRef
from solver.instance import Instance
from solver.model import BuiltModel


def read_routes(instance: Instance, built: BuiltModel, assignment: Any) -> list[Route]:
    """The used vehicles' routes from ``assignment``, with planned times and loads."""
    routes: list[Route] = []
    for v in range(len(instance.problem.vehicles)):
        route = _read_route(instance, built, assignment, v)
        if route is not None:
            routes.append(route)
    return routes


def _read_route(instance: Instance, built: BuiltModel, assignment: Any, v: int) -> Route | None:
    routing = built.routing
    manager = built.manager
    index = routing.Start(v)
    first = assignment.Value(routing.NextVar(index))
    if routing.IsEnd(first):
        return None
    problem = instance.problem
    vehicle = problem.vehicles[v]
    origin = instance.origin_epoch_s
    matrix = instance.matrix
    breaks = _planned_breaks(built, assignment, v, origin)

    visits: list[tuple[int, int]] = []  # (node, service start on the instance's axis)
    while True:
        node = manager.IndexToNode(index)
        visits.append((node, int(assignment.Min(built.time.CumulVar(index)))))
        if routing.IsEnd(index):
            break
        index = assignment.Value(routing.NextVar(index))

    orders = [built.node_order[node] for node, _ in visits[1:-1]]
    load = [
        sum(instance.size[k][d] for k in orders if k is not None)
        for d in range(len(problem.dimensions))
    ]
    remaining = list(load)
    stops: list[PlannedStop] = []
    total_m = 0
    for (prev_node, prev_start), (node, start) in itertools.pairwise(visits):
        a = built.node_point[prev_node]
        b = built.node_point[node]
        leave = prev_start + built.node_service_s[prev_node]
        total_m += matrix.distance_m[a][b]
        arrival = leave + matrix.duration_s[a][b]
        # A break planned wholly between leaving and serving delays the arrival; the rest of
        # the gap is waiting at the stop.
        arrival += sum(
            brk.duration_s
            for brk in breaks
            if leave <= brk.start_epoch_s - origin
            and brk.start_epoch_s - origin + brk.duration_s <= start
        )
        k = built.node_order[node]
        if k is None:
            continue
        remaining = [r - s for r, s in zip(remaining, instance.size[k], strict=True)]
        stops.append(
            PlannedStop(
                order_ref=OrderRef(problem.orders[k].ref),
                arrival_epoch_s=origin + min(arrival, start),
                service_start_epoch_s=origin + start,
                departure_epoch_s=origin + start + built.node_service_s[node],
                load_after=remaining,
                distance_from_previous_m=matrix.distance_m[a][b],
            )
        )
    start_s = visits[0][1]
    end_s = visits[-1][1]
    hours = (end_s - start_s) / 3600.0
    cost = (
        vehicle.fixed_cost + vehicle.cost_per_km * total_m / 1000.0 + vehicle.cost_per_hour * hours
    )
    return Route(
        vehicle_ref=VehicleRef(vehicle.ref),
        start_epoch_s=origin + start_s,
        end_epoch_s=origin + end_s,
        stops=stops,
        breaks=breaks,
        distance_m=total_m,
        duration_s=end_s - start_s,
        load=load,
        cost=cost,
    )


def _planned_breaks(built: BuiltModel, assignment: Any, v: int, origin: int) -> list[PlannedBreak]:
    return [
        PlannedBreak(
            start_epoch_s=origin + int(assignment.StartValue(interval)),
            duration_s=int(assignment.DurationValue(interval)),
        )
        for interval in built.breaks[v]
    ]
