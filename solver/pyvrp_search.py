"""The PyVRP engine: an instance as PyVRP's problem data, searched by its iterated local search.

What each part of the problem becomes (costs are integers, scaled by :func:`cost_scale`):

============================  ==============================================================
problem                       PyVRP
============================  ==============================================================
depot, order location         a ``Location``; the instance's matrices are PyVRP's matrices
order                         an optional ``Client`` whose prize is its unassignment penalty
                              (or, in a search that must serve every order, a required one)
the order's window            the client's ``tw_early``/``tw_late`` (one window only: orders
                              with several go to OR-Tools, see :mod:`solver.portfolio`)
capacity dimensions           ``delivery`` and ``capacity`` vectors
vehicles alike                one ``VehicleType`` with ``num_available`` of them: same depots,
                              shift (``tw_early``/``tw_late``), ``shift_duration`` (maximum
                              duration), capacity, costs and skills
skills                        one routing profile per set of skills: in a profile, the orders
                              whose skills its vehicles lack are out of reach (their arcs cost
                              :data:`UNREACHABLE` in distance and time), so no feasible
                              solution puts them on those vehicles
per-km, per-hour, fixed cost  ``unit_distance_cost`` (per metre), ``unit_duration_cost`` (per
                              second, waiting included), ``fixed_cost``
============================  ==============================================================

Breaks and workload balance have no PyVRP counterpart: :mod:`solver.portfolio` does not choose
this engine for problems that have them. It may still run it beside OR-Tools on a day with
breaks, with room kept for them (``room_for_breaks``): every shift, maximum duration and
window ends earlier by the breaks' time, so that taking the breaks afterwards
(:mod:`solver.schedule`) rarely makes a stop late; :mod:`solver.repair` leaves out the stops
it still does. The search returns visiting orders only; :mod:`solver.schedule` times them.
"""

from __future__ import annotations

import time as clock
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import numpy as np
from pyvrp import (
    Client,
    Depot,
    IteratedLocalSearch,
    IteratedLocalSearchParams,
    Location,
    PenaltyManager,
    PenaltyParams,
    ProblemData,
    RandomNumberGenerator,
    Solution,
    VehicleType,
)
from pyvrp.exceptions import PenaltyBoundWarning
from pyvrp.search import (
    OPERATORS,
    LocalSearch,
    PerturbationManager,
    PerturbationParams,
    compute_neighbours,
)

from solver.instance import Instance

UNIT_COST = 100
"""PyVRP's cost of a metre or a second at the cheapest nonzero rate of the problem.

PyVRP works in integers and bounds its penalty for a unit of lateness or overload
(``PenaltyParams.max_penalty``), so costs are scaled to the problem: large enough that
rounding the rates to integers is off by at most half a percent, small enough that the
penalties still outweigh what breaking a constraint would save."""
MAX_PENALTY = 1e9
"""PyVRP's bound on its penalty weights (its default, 1e5, is too low once costs are scaled)."""
HISTORY_ORDERS = 30_000
"""The late-acceptance history is this many orders' worth of iterations, within
:data:`HISTORY_MIN`–:data:`HISTORY_MAX` (see :func:`history_length`)."""
HISTORY_MIN = 100
HISTORY_MAX = 300
"""PyVRP's default history length: kept for days of up to 100 orders."""
SEARCH = f"PyVRP {version('pyvrp')} iterated local search"
"""What :class:`~schemas.planning.SearchStats` names as the search of this engine."""

NO_LIMIT = int(np.iinfo(np.int64).max)

Sequences = list[list[int]]
"""A solution: for each vehicle (by index), its orders (indices into ``problem.orders``)."""


@dataclass(frozen=True, slots=True)
class _TypeKey:
    """What makes vehicles interchangeable for PyVRP: one vehicle type per distinct key."""

    start: int
    end: int
    early: int
    late: int
    max_duration: int | None
    capacity: tuple[int, ...]
    fixed: float
    per_km: float
    per_hour: float
    profile: int


class PyvrpModel:
    """PyVRP's problem data for an instance, and how to map its solutions back.

    ``clients[c]`` is the order index of client ``c``; ``type_vehicles[t]`` the vehicles of
    vehicle type ``t``, in the order PyVRP's routes of that type are given them; ``scale`` is
    PyVRP's cost units per unit of currency (:func:`cost_scale`).
    """

    def __init__(
        self,
        instance: Instance,
        candidates: Sequence[int],
        *,
        room_for_breaks: bool = False,
        required: bool = False,
    ) -> None:
        self.instance = instance
        self.clients = list(candidates)
        self.scale = cost_scale(instance)
        self.data, self.type_vehicles = _problem_data(
            instance, self.clients, room_for_breaks, self.scale, required
        )

    def sequences(self, solution: Solution) -> Sequences:
        """Each vehicle's visiting order in ``solution``."""
        out: Sequences = [[] for _ in self.instance.problem.vehicles]
        used = [0] * len(self.type_vehicles)
        for route in solution.routes():
            t = route.vehicle_type()
            vehicle = self.type_vehicles[t][used[t]]
            used[t] += 1
            out[vehicle] = [self.clients[a.idx] for a in route.schedule() if a.is_client()]
        return out


class _Stop:
    """PyVRP's stopping criterion: the deadline, or ``should_stop``; reports improvements."""

    def __init__(
        self,
        deadline: float,
        scale: float,
        should_stop: Callable[[], bool] | None,
        on_improvement: Callable[[float], None] | None,
    ) -> None:
        self.deadline = deadline
        self.scale = scale
        self.should_stop = should_stop
        self.on_improvement = on_improvement
        self.best = float("inf")
        self.stopped = False

    def __call__(self, best_cost: float) -> bool:
        if best_cost < self.best:
            self.best = best_cost
            if self.on_improvement is not None:
                self.on_improvement(best_cost / self.scale)
        if self.should_stop is not None and self.should_stop():
            self.stopped = True
            return True
        return clock.monotonic() >= self.deadline


def run_pyvrp(
    model: PyvrpModel,
    *,
    seed: int,
    time_limit_s: float,
    should_stop: Callable[[], bool] | None = None,
    on_improvement: Callable[[float], None] | None = None,
) -> tuple[Sequences, bool, bool]:
    """Search for ``time_limit_s`` seconds, or until ``should_stop()``.

    ``on_improvement`` gets the cost (currency) of each better feasible solution. Returns the
    best solution's sequences, whether it is feasible, and whether the search was stopped by
    ``should_stop``.
    """
    stop = _Stop(clock.monotonic() + time_limit_s, model.scale, should_stop, on_improvement)
    data = model.data
    # PyVRP's own solve(), but with the first penalty weights taken from the problem's costs
    # (initial_penalties) and the history sized to the day (history_length).
    rng = RandomNumberGenerator(seed=seed)
    search = LocalSearch(
        data, rng, compute_neighbours(data), PerturbationManager(PerturbationParams())
    )
    for operator in OPERATORS:
        if operator.supports(data):
            search.add_operator(operator(data))
    penalties = PenaltyManager(initial_penalties(model), PenaltyParams(max_penalty=MAX_PENALTY))
    start = search(Solution.make_random(data, rng), penalties.max_cost_evaluator(), exhaustive=True)
    ils = IteratedLocalSearch(
        data,
        penalties,
        search,
        start,
        IteratedLocalSearchParams(history_length=history_length(data.num_clients)),
    )
    with warnings.catch_warnings():
        # A search that must serve every order of a day that cannot all be served pushes its
        # penalties to their bound, and PyVRP warns; the infeasible answer says as much.
        warnings.simplefilter("ignore", PenaltyBoundWarning)
        result = ils.run(stop, collect_stats=False, display=False)
    return model.sequences(result.best), result.is_feasible(), stop.stopped


def history_length(orders: int) -> int:
    """How many earlier solutions PyVRP's late acceptance compares a candidate with.

    A long history accepts worse solutions for longer. PyVRP's default (300) suits 100 orders; a
    large day gets few iterations in its time and needs the search to settle sooner. Measured
    with PyVRP alone at 60 s on Gehring–Homberger's 1,000-customer instances, 100 instead of 300
    cut the gap to the best known by about a third (R1_10_2: 4.20 % to 2.52 %); at 200 customers
    and 30 s, 150 was as good or better; at 100 customers and 10 s, shorter was no better.
    """
    return max(HISTORY_MIN, min(HISTORY_MAX, HISTORY_ORDERS // max(1, orders)))


def initial_penalties(model: PyvrpModel) -> tuple[list[float], float, float]:
    """PyVRP's first penalty weights for a unit of excess load (per dimension), of time warp
    and of excess distance: what an average arc costs per unit of load, second and metre.

    PyVRP starts its weights halfway to their bound and adapts them by 10 % to 50 % every 500
    iterations. With costs scaled (:func:`cost_scale`) and the bound raised to match, halfway is
    some thousand times what keeps a fair share of its solutions feasible, and a 1,000-order
    day spent most of its minute coming down from there. Starting from the problem's own costs,
    the weights reach their working level within a few hundred iterations either way.
    """
    instance, data = model.instance, model.data
    distance = float(np.mean(instance.matrix.distance_m))
    duration = float(np.mean(instance.matrix.duration_s))
    types = data.vehicle_types()
    arc = float(
        np.mean([t.unit_distance_cost * distance + t.unit_duration_cost * duration for t in types])
    )
    arc = max(arc, 1.0)
    loads = np.asarray([client.delivery for client in data.clients()], dtype=float)
    mean_load = loads.mean(axis=0) if len(loads) else np.zeros(data.num_load_dimensions)

    def bounded(weight: float) -> float:
        return min(MAX_PENALTY, max(PenaltyParams().min_penalty, weight))

    return (
        [bounded(arc / max(1.0, float(load))) for load in mean_load],
        bounded(arc / max(1.0, duration)),
        bounded(arc / max(1.0, distance)),
    )


def cost_scale(instance: Instance) -> float:
    """PyVRP cost units per unit of currency: :data:`UNIT_COST` for the cheapest nonzero
    per-metre or per-second rate (1 when every rate is zero)."""
    rates = [
        rate
        for v in instance.problem.vehicles
        for rate in (v.cost_per_km / 1000.0, v.cost_per_hour / 3600.0)
        if rate > 0
    ]
    return UNIT_COST / min(rates) if rates else 1.0


def _problem_data(
    instance: Instance,
    clients: Sequence[int],
    room_for_breaks: bool,
    scale: float,
    required: bool = False,
) -> tuple[ProblemData, list[list[int]]]:
    problem = instance.problem
    n_depots = len(problem.depots)
    # With room for breaks, every stop is served early enough that a break taken before it
    # leaves it inside its window: windows close earlier by the shortest total break time.
    # A stop served before any break can start needs no room.
    reserve = (
        min(sum(b.duration_s for b in breaks) for breaks in instance.breaks)
        if room_for_breaks
        else 0
    )
    first_break = min(
        (b.start_min_s for breaks in instance.breaks for b in breaks), default=instance.horizon_s
    )
    locations = [Location(x=x, y=y) for x, y in _plane(instance)]
    depots = [Depot(location=d) for d in range(n_depots)]
    pyvrp_clients = []
    for k in clients:
        order = problem.orders[k]
        (early, late), *_ = instance.order_windows[k]
        pyvrp_clients.append(
            Client(
                location=instance.order_point[k],
                delivery=instance.size[k],
                service_duration=order.service_s,
                tw_early=early,
                tw_late=max(early, late - reserve, min(late, first_break)),
                prize=round(instance.penalty[k] * scale),
                required=required,
            )
        )

    distance = np.asarray(instance.matrix.distance_m, dtype=np.int64)
    duration = np.asarray(instance.matrix.duration_s, dtype=np.int64)
    skill_sets = sorted({v.skills for v in problem.vehicles}, key=sorted)
    # Any: PyVRP's stubs type the matrices' shape parameter as int.
    profiles_d: list[Any] = []
    profiles_t: list[Any] = []
    unreachable = _unreachable(instance)
    for skills in skill_sets:
        barred = [
            instance.order_point[k]
            for k in clients
            if not problem.orders[k].required_skills <= skills
        ]
        d, t = distance, duration
        if barred:
            d, t = distance.copy(), duration.copy()
            for m in (d, t):
                m[barred, :] = unreachable
                m[:, barred] = unreachable
                m[barred, barred] = 0
        profiles_d.append(d)
        profiles_t.append(t)

    types: dict[_TypeKey, list[int]] = {}
    for v, vehicle in enumerate(problem.vehicles):
        shift_start, shift_end = instance.shift[v]
        max_duration = vehicle.max_duration_s
        if room_for_breaks:
            # Keep the breaks' time free inside the shift and the maximum duration.
            taken = sum(b.duration_s for b in instance.breaks[v])
            shift_end = max(shift_start, shift_end - taken)
            if max_duration is not None:
                max_duration = max(0, max_duration - taken)
        key = _TypeKey(
            start=instance.vehicle_start[v],
            end=instance.vehicle_end[v],
            early=shift_start,
            late=shift_end,
            max_duration=max_duration,
            capacity=tuple(instance.capacity[v]),
            fixed=vehicle.fixed_cost,
            per_km=vehicle.cost_per_km,
            per_hour=vehicle.cost_per_hour,
            profile=skill_sets.index(vehicle.skills),
        )
        types.setdefault(key, []).append(v)
    vehicle_types = [
        VehicleType(
            num_available=len(members),
            capacity=list(key.capacity),
            start_depot=key.start,
            end_depot=key.end,
            fixed_cost=round(key.fixed * scale),
            tw_early=key.early,
            tw_late=key.late,
            shift_duration=key.max_duration if key.max_duration is not None else NO_LIMIT,
            unit_distance_cost=round(key.per_km * scale / 1000.0),
            unit_duration_cost=round(key.per_hour * scale / 3600.0),
            profile=key.profile,
        )
        for key, members in types.items()
    ]
    data = ProblemData(
        locations=locations,
        clients=pyvrp_clients,
        depots=depots,
        vehicle_types=vehicle_types,
        distance_matrices=profiles_d,
        duration_matrices=profiles_t,
    )
    return data, list(types.values())


def _unreachable(instance: Instance) -> int:
    """An arc length no feasible route can drive: longer than the horizon and every distance."""
    longest = max((max(row) for row in instance.matrix.distance_m), default=0)
    return 4 * (max(instance.horizon_s, longest) + 1)


def _plane(instance: Instance) -> list[tuple[float, float]]:
    """Planar coordinates of the points (PyVRP uses them only to pick neighbours' angles)."""
    out = []
    for point in instance.points:
        if point.lat is not None and point.lon is not None:
            east = point.lon * 111_195.0 * float(np.cos(np.radians(point.lat)))
            out.append((east, point.lat * 111_195.0))
        else:
            out.append((point.x_m or 0.0, point.y_m or 0.0))
    return out
