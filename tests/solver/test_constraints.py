"""Each constraint of the planning model binds: the plan with it differs from the plan without.

Instances are tiny and their optimum is known by construction (see the layout in each test).
Distances are metres driven at 1 m/s, so they double as seconds. Each test runs with every
engine that can be chosen for its problem (``engine`` names it; the plan's stats must agree):
PyVRP and OR-Tools for what both express, OR-Tools alone for breaks, windows with gaps and
workload balance, and PyVRP with room kept for breaks (the portfolio's second search on a large
day with breaks) for the break.
"""

from __future__ import annotations

import time

import pytest

from schemas.planning import PlanningBreak, PlanningProblem, PlanningResult
from solver.errors import ProblemError
from solver.feasibility import precheck
from solver.portfolio import Job, run_job
from solver.schedule import time_route
from solver.search import SearchTuning
from tests.solver.builders import (
    compiled,
    day,
    drop,
    plan,
    route_of,
    stops_by_vehicle,
    unassigned_codes,
    van,
    window,
)

BOTH = pytest.mark.parametrize("engine", ["pyvrp", "ortools"])


def plan_on(engine: str, problem: PlanningProblem) -> PlanningResult:
    """Plan with ``engine`` forced, checking that the plan says it was that engine."""
    result = plan(problem, tuning=SearchTuning(engine=engine))
    assert result.stats.engine == engine
    return result


@BOTH
def test_capacity_splits_orders_that_one_vehicle_would_take(engine: str) -> None:
    """Two orders of 6 parcels go on two vans of 10, though one van would be cheaper."""
    orders = [drop("a", 1000, 0, size=[6]), drop("b", 1000, 10, size=[6])]
    roomy = plan_on(
        engine,
        day(
            [van("v1", capacity=[20], fixed_cost=50), van("v2", capacity=[20], fixed_cost=50)],
            orders,
        ),
    )
    assert len(roomy.routes) == 1

    tight = plan_on(
        engine,
        day(
            [van("v1", capacity=[10], fixed_cost=50), van("v2", capacity=[10], fixed_cost=50)],
            orders,
        ),
    )

    assert sorted(len(r.stops) for r in tight.routes) == [1, 1]
    assert all(r.load == [6] and r.stops[0].load_after == [0] for r in tight.routes)
    assert tight.unassigned == []


@BOTH
def test_time_windows_force_a_longer_visiting_order(engine: str) -> None:
    """Windows make the van go a, c, b around a square instead of the shorter a, b, c."""
    a = (0, 1000)
    b = (1000, 1000)
    c = (1000, 0)
    free = plan_on(engine, day([van("v")], [drop("a", *a), drop("b", *b), drop("c", *c)]))
    assert route_of(free, "v").distance_m == 4000

    timed = plan_on(
        engine,
        day(
            [van("v")],
            [
                drop("a", *a, time_windows=[window(0, 1000)]),
                drop("b", *b, time_windows=[window(3000, 5000)]),
                drop("c", *c, time_windows=[window(2000, 2500)]),
            ],
        ),
    )

    route = route_of(timed, "v")
    assert [s.order_ref for s in route.stops] == ["a", "c", "b"]
    assert route.distance_m == 1000 + 1414 + 1000 + 1414
    starts = [s.service_start_epoch_s for s in route.stops]
    assert 0 <= starts[0] <= 1000
    assert 2000 <= starts[1] <= 2500
    assert 3000 <= starts[2] <= 5000


@BOTH
def test_skills_send_an_order_to_the_equipped_vehicle(engine: str) -> None:
    """An order needing 'cold' goes on the dearer refrigerated van, not the cheap plain one."""
    fleet = [
        van("plain", cost_per_km=1.0),
        van("fridge", cost_per_km=5.0, skills=frozenset({"cold"})),
    ]
    unskilled = plan_on(engine, day(fleet, [drop("ice", 500, 0)]))
    assert stops_by_vehicle(unskilled) == {"plain": ["ice"]}

    skilled = plan_on(
        engine, day(fleet, [drop("ice", 500, 0, required_skills=frozenset({"cold"}))])
    )

    assert stops_by_vehicle(skilled) == {"fridge": ["ice"]}


def test_break_shifts_the_arrival_at_the_next_stop() -> None:
    """A 1000 s break that must start at 150 s delays the second stop from 200 s to 1200 s."""
    orders = [drop("a", 100, 0, time_windows=[window(0, 150)]), drop("b", 200, 0)]
    without = plan_on("pyvrp", day([van("v")], orders))
    assert route_of(without, "v").stops[1].service_start_epoch_s == 200

    lunch = PlanningBreak(window=window(150, 150), duration_s=1000)
    with_break = plan_on("ortools", day([van("v", breaks=[lunch])], orders))

    route = route_of(with_break, "v")
    assert [s.order_ref for s in route.stops] == ["a", "b"]
    assert route.stops[1].service_start_epoch_s == 1200
    assert route.stops[1].arrival_epoch_s == 1200
    assert [(b.start_epoch_s, b.duration_s) for b in route.breaks] == [(150, 1000)]


@BOTH
def test_maximum_duration_forces_a_second_vehicle(engine: str) -> None:
    """Orders 1 km east and west fit one van's day, but not a 2,500 s maximum route duration."""
    orders = [drop("east", 1000, 0), drop("west", -1000, 0)]
    unlimited = plan_on(engine, day([van("v1", fixed_cost=50), van("v2", fixed_cost=50)], orders))
    assert len(unlimited.routes) == 1

    limited = plan_on(
        engine,
        day(
            [
                van("v1", fixed_cost=50, max_duration_s=2500),
                van("v2", fixed_cost=50, max_duration_s=2500),
            ],
            orders,
        ),
    )

    assert sorted(len(r.stops) for r in limited.routes) == [1, 1]
    assert all(r.duration_s <= 2500 for r in limited.routes)


@BOTH
def test_low_priority_order_is_the_one_left_out(engine: str) -> None:
    """With room for one of two orders, the far high-priority one is served, the near one not."""
    penalties = [100.0, 10_000.0]
    near = drop("near", 100, 0, size=[6])
    far_low = drop("far", 2000, 0, size=[6])
    equal = plan_on(
        engine, day([van("v", capacity=[10])], [near, far_low], unassigned_penalty=penalties)
    )
    assert stops_by_vehicle(equal) == {"v": ["near"]}

    far_high = drop("far", 2000, 0, size=[6], priority=1)
    ranked = plan_on(
        engine, day([van("v", capacity=[10])], [near, far_high], unassigned_penalty=penalties)
    )

    assert stops_by_vehicle(ranked) == {"v": ["far"]}
    assert unassigned_codes(ranked) == {"near": "search"}


def test_service_waits_for_the_next_window_when_arriving_in_a_gap() -> None:
    """Arriving at 500 s between windows [0, 100] and [1000, 1100], service starts at 1000 s."""
    gap = plan_on(
        "ortools",
        day([van("v")], [drop("o", 500, 0, time_windows=[window(0, 100), window(1000, 1100)])]),
    )
    stop = route_of(gap, "v").stops[0]
    assert (stop.arrival_epoch_s, stop.service_start_epoch_s) == (500, 1000)

    inside = plan_on(
        "ortools",
        day([van("v")], [drop("o", 500, 0, time_windows=[window(0, 600), window(1000, 1100)])]),
    )

    assert route_of(inside, "v").stops[0].service_start_epoch_s == 500


def test_workload_balance_spreads_orders_over_vehicles() -> None:
    """Four hour-long deliveries in one spot go on one van, or two each with balancing on."""
    orders = [drop(f"o{k}", 1000, 10 * k, service_s=3600) for k in range(4)]
    fleet = [van("v1"), van("v2")]
    unbalanced = plan_on("ortools", day(fleet, orders))
    assert sorted(len(r.stops) for r in unbalanced.routes) == [4]

    balanced = plan_on(
        "ortools", day(fleet, orders, balance_workload=True, balance_cost_per_hour=10.0)
    )

    assert sorted(len(r.stops) for r in balanced.routes) == [2, 2]


def test_pyvrp_with_room_for_breaks_plans_the_break_instance_at_its_optimum() -> None:
    """PyVRP planning room for the 1000 s break, then the break placed, gives the same plan."""
    orders = [drop("a", 100, 0, time_windows=[window(0, 150)]), drop("b", 200, 0)]
    lunch = PlanningBreak(window=window(150, 150), duration_s=1000)
    problem = day([van("v", breaks=[lunch])], orders)
    instance = compiled(problem)
    verdicts = precheck(instance)

    candidate = run_job(
        instance,
        verdicts,
        Job(kind="pyvrp_breaks"),
        SearchTuning(),
        time.monotonic() + 0.5,
        on_progress=None,
        should_stop=None,
    )

    assert candidate.engine == "pyvrp"
    assert candidate.sequences == [[0, 1]]
    route = time_route(instance, 0, candidate.sequences[0])
    assert route.stops[1].service_start_epoch_s == 1200
    assert [(b.start_epoch_s, b.duration_s) for b in route.breaks] == [(150, 1000)]


def test_pyvrp_is_refused_a_problem_with_breaks() -> None:
    """Forcing PyVRP on a day with breaks is a problem error naming the breaks."""
    lunch = PlanningBreak(window=window(150, 150), duration_s=1000)
    with pytest.raises(ProblemError, match="breaks"):
        plan(
            day([van("v", breaks=[lunch])], [drop("a", 100, 0)]),
            tuning=SearchTuning(engine="pyvrp"),
        )
