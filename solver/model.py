"""The OR-Tools routing model of an :class:`~solver.instance.Instance`.

What each part of the problem becomes (``time`` is the time dimension, in seconds after the
instance's origin; its cumul at a stop is the start of service there):

============================  ==============================================================
problem                       OR-Tools
============================  ==============================================================
order                         a node; ``AddDisjunction([node], penalty)`` lets it go unserved
priority                      the disjunction penalty, ``options.unassigned_penalty[priority]``
skills, capacity, reach       ``VehicleVar(node).SetValues`` with the pre-checked vehicles
capacity dimension ``d``      a dimension with a unary transit (the order's size) and the
                              vehicles' capacities; no slack
service time, driving time    the ``time`` transit ``service(i) + duration(i, j)``
waiting                       slack on ``time`` (up to the horizon)
time windows                  ``time.CumulVar(node).SetRange`` over the first to the last
                              window, ``RemoveInterval`` for each gap between windows
shift                         ranges on the cumuls of the vehicle's start and end
maximum route duration        ``SetSpanUpperBoundForVehicle`` on ``time``
breaks                        fixed-duration interval vars, ``SetBreakIntervalsOfVehicle``
fixed cost                    ``SetFixedCostOfVehicle``
cost per km and per hour      an arc cost matrix per vehicle class: ``per_km * distance +
                              per_hour * (service + driving)``; waiting and breaks are paid
                              through the slack cost of ``time``, so a route costs exactly
                              ``per_hour`` times its span
workload balance              a ``work`` dimension (service + driving, no slack) whose global
                              span cost charges the longest route's working time
============================  ==============================================================

Costs are integers in :data:`COST_SCALE` units per unit of the caller's currency.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from ortools.constraint_solver import pywrapcp

from solver.feasibility import Verdict
from solver.instance import Instance

COST_SCALE = 1_000_000
"""Integer objective units per unit of currency: fine enough for per-second costs of cents."""


@dataclass(frozen=True, slots=True)
class BuiltModel:
    """An OR-Tools model together with what is needed to read its solutions back.

    ``node_order[n]`` is the order index of node ``n`` (``None`` for a depot node); node ``n``
    stands at point ``node_point[n]`` of the instance. ``breaks[v]`` are vehicle v's break
    intervals in the order of the vehicle's breaks.
    """

    manager: Any
    routing: Any
    time: Any
    node_order: list[int | None]
    node_point: list[int]
    node_service_s: list[int]
    breaks: list[list[Any]]


def build_model(instance: Instance, verdicts: Sequence[Verdict]) -> BuiltModel:
    """Build the routing model for the orders whose verdict leaves them some vehicle.

    Orders without any allowed vehicle are not part of the model at all; the caller reports
    them with their verdict's reason.
    """
    problem = instance.problem
    n_depots = len(problem.depots)
    served = [k for k, verdict in enumerate(verdicts) if verdict.vehicles]
    node_order: list[int | None] = [None] * n_depots + list(served)
    node_point = list(range(n_depots)) + [instance.order_point[k] for k in served]
    node_service = [0] * n_depots + [problem.orders[k].service_s for k in served]
    n_vehicles = len(problem.vehicles)

    manager = pywrapcp.RoutingIndexManager(
        len(node_order), n_vehicles, instance.vehicle_start, instance.vehicle_end
    )
    routing = pywrapcp.RoutingModel(manager)

    points = np.asarray(node_point, dtype=np.intp)
    grid = np.ix_(points, points)
    distance = np.asarray(instance.matrix.distance_m, dtype=np.float64)[grid]
    transit = np.asarray(instance.matrix.duration_s, dtype=np.int64)[grid]
    transit += np.asarray(node_service, dtype=np.int64)[:, None]
    time_callback = routing.RegisterTransitMatrix(transit.tolist())

    _set_costs(instance, routing, distance, transit)
    time = _add_time(instance, routing, manager, time_callback, node_order)
    _add_capacities(instance, routing, node_order)
    breaks = _add_breaks(instance, routing, time, manager, node_service)
    if problem.options.balance_workload:
        routing.AddDimension(time_callback, 0, max(instance.horizon_s, 0), True, "work")
        per_second = problem.options.balance_cost_per_hour * COST_SCALE / 3600.0
        routing.GetDimensionOrDie("work").SetGlobalSpanCostCoefficient(round(per_second))

    for node, k in enumerate(node_order):
        if k is None:
            continue
        index = manager.NodeToIndex(node)
        routing.AddDisjunction([index], round(instance.penalty[k] * COST_SCALE))
        allowed = verdicts[k].vehicles
        if len(allowed) < n_vehicles:
            # -1 keeps "unperformed" possible. (SetAllowedVehiclesForIndex would say the same,
            # but the Python wrapper of OR-Tools 9.15 rejects every list given to it.)
            routing.VehicleVar(index).SetValues([-1, *allowed])

    return BuiltModel(
        manager=manager,
        routing=routing,
        time=time,
        node_order=node_order,
        node_point=node_point,
        node_service_s=node_service,
        breaks=breaks,
    )


def _set_costs(
    instance: Instance, routing: Any, distance: np.ndarray[Any, Any], transit: np.ndarray[Any, Any]
) -> None:
    vehicles = instance.problem.vehicles
    classes: dict[tuple[float, float], int] = {}
    for v, vehicle in enumerate(vehicles):
        key = (vehicle.cost_per_km, vehicle.cost_per_hour)
        if key not in classes:
            arc = distance * (key[0] * COST_SCALE / 1000.0) + transit * (
                key[1] * COST_SCALE / 3600.0
            )
            classes[key] = routing.RegisterTransitMatrix(np.rint(arc).astype(np.int64).tolist())
        routing.SetArcCostEvaluatorOfVehicle(classes[key], v)
        if vehicle.fixed_cost > 0:
            routing.SetFixedCostOfVehicle(round(vehicle.fixed_cost * COST_SCALE), v)


def _add_time(
    instance: Instance,
    routing: Any,
    manager: Any,
    time_callback: int,
    node_order: Sequence[int | None],
) -> Any:
    horizon = max(instance.horizon_s, 0)
    routing.AddDimension(time_callback, horizon, horizon, False, "time")
    time = routing.GetDimensionOrDie("time")
    for v, vehicle in enumerate(instance.problem.vehicles):
        shift_start, shift_end = instance.shift[v]
        start = time.CumulVar(routing.Start(v))
        end = time.CumulVar(routing.End(v))
        start.SetRange(shift_start, shift_end)
        end.SetRange(shift_start, shift_end)
        if vehicle.max_duration_s is not None:
            time.SetSpanUpperBoundForVehicle(vehicle.max_duration_s, v)
        if vehicle.cost_per_hour > 0:
            # Waiting and breaks live in the slack; transits are already in the arc cost.
            per_second = round(vehicle.cost_per_hour * COST_SCALE / 3600.0)
            time.SetSlackCostCoefficientForVehicle(per_second, v)
        routing.AddVariableMinimizedByFinalizer(start)
    for node, k in enumerate(node_order):
        if k is None:
            continue
        windows = instance.order_windows[k]
        cumul = time.CumulVar(manager.NodeToIndex(node))
        cumul.SetRange(windows[0][0], windows[-1][1])
        for (_, gap_start), (gap_end, _) in itertools.pairwise(windows):
            cumul.RemoveInterval(gap_start + 1, gap_end - 1)
        routing.AddVariableMinimizedByFinalizer(cumul)
    for v in range(len(instance.problem.vehicles)):
        routing.AddVariableMinimizedByFinalizer(time.CumulVar(routing.End(v)))
    return time


def _add_capacities(instance: Instance, routing: Any, node_order: Sequence[int | None]) -> None:
    for d, name in enumerate(instance.problem.dimensions):
        demand = [0 if k is None else instance.size[k][d] for k in node_order]
        if not any(demand):
            continue
        callback = routing.RegisterUnaryTransitVector(demand)
        capacities = [instance.capacity[v][d] for v in range(len(instance.problem.vehicles))]
        routing.AddDimensionWithVehicleCapacity(callback, 0, capacities, True, f"load:{name}")


def _add_breaks(
    instance: Instance, routing: Any, time: Any, manager: Any, node_service: Sequence[int]
) -> list[list[Any]]:
    solver = routing.solver()
    visit_transits = [node_service[manager.IndexToNode(index)] for index in range(routing.Size())]
    out: list[list[Any]] = []
    for v, specs in enumerate(instance.breaks):
        intervals = [
            solver.FixedDurationIntervalVar(
                spec.start_min_s, spec.start_max_s, spec.duration_s, False, f"break:{v}:{b}"
            )
            for b, spec in enumerate(specs)
        ]
        if intervals:
            time.SetBreakIntervalsOfVehicle(intervals, v, visit_transits)
            for interval in intervals:
                routing.AddIntervalToAssignment(interval)
        out.append(intervals)
    return out
