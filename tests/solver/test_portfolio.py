"""The portfolio: which engine plans which problem, how many processes search, and stopping.

Problems are built in the plane (:mod:`tests.solver.builders`); engines are chosen by the
problem's features and every plan names the engine and search that produced it.
"""

from __future__ import annotations

import os
import random
import time

import pytest

from schemas.planning import PlanningBreak, PlanningOrder, PlanningProblem, PlanningVehicle
from solver.feasibility import precheck
from solver.instance import Instance
from solver.portfolio import (
    EVERY_ORDER,
    PARALLEL_MIN_ORDERS,
    Candidate,
    Choice,
    Job,
    choose_engine,
    fleet_carries_all,
    names_of,
    ortools_search_name,
    plan_jobs,
    process_count,
    run_job,
)
from solver.search import Progress, SearchTuning
from tests.solver.builders import compiled, day, drop, plan, van, window

LUNCH = PlanningBreak(window=window(10_000, 14_000), duration_s=1_800)


def busy_day(
    seed: int, n_orders: int, *, breaks: bool, time_limit_s: float = 0.5
) -> PlanningProblem:
    """A seeded day of ``n_orders`` in a 10 km square for four vans, with a lunch or without."""
    rng = random.Random(seed)
    orders: list[PlanningOrder] = []
    for k in range(n_orders):
        start = rng.randrange(0, 30_000, 1_000)
        orders.append(
            drop(
                f"o{k}",
                rng.uniform(-5000, 5000),
                rng.uniform(-5000, 5000),
                size=[rng.randint(1, 5)],
                service_s=120,
                time_windows=[window(start, start + 7_200)] if rng.random() < 0.4 else [],
            )
        )
    fleet: list[PlanningVehicle] = [
        van(
            f"v{i}",
            capacity=[200],
            shift_s=40_000,
            cost_per_hour=5.0,
            breaks=[LUNCH] if breaks else [],
        )
        for i in range(4)
    ]
    return day(fleet, orders, time_limit_s=time_limit_s)


def test_a_plain_day_goes_to_pyvrp() -> None:
    """Capacities, single windows, skills and priorities are PyVRP's: it is chosen."""
    orders = [
        drop("a", 100, 0, time_windows=[window(0, 500)], priority=1),
        drop("b", 200, 0, required_skills=frozenset({"cold"})),
    ]
    problem = day([van("v", skills=frozenset({"cold"}), max_duration_s=5000)], orders)

    choice = choose_engine(compiled(problem))

    assert choice.engine == "pyvrp"


@pytest.mark.parametrize(
    ("problem", "feature"),
    [
        (day([van("v", breaks=[LUNCH])], [drop("a", 100, 0)]), "breaks"),
        (day([van("v")], [drop("a", 100, 0)], balance_workload=True), "workload balance"),
        (
            day([van("v")], [drop("a", 100, 0, time_windows=[window(0, 10), window(50, 60)])]),
            "several time windows",
        ),
    ],
)
def test_what_only_or_tools_expresses_goes_to_or_tools(
    problem: PlanningProblem, feature: str
) -> None:
    """Breaks, workload balance and several windows per order are OR-Tools', and the reason
    names the feature."""
    choice = choose_engine(compiled(problem))

    assert choice.engine == "ortools"
    assert feature in choice.reason
    assert choice.only_breaks == (feature == "breaks")


def test_a_day_with_breaks_and_one_without_name_the_engine_that_ran() -> None:
    """The same orders plan with OR-Tools when the vans take a lunch, with PyVRP when not."""
    with_breaks = plan(busy_day(1, 30, breaks=True))
    without = plan(busy_day(1, 30, breaks=False))

    assert with_breaks.stats.engine == "ortools"
    assert with_breaks.stats.search.startswith("OR-Tools ")
    assert "breaks" in with_breaks.stats.engine_reason
    assert all(len(r.breaks) == 1 for r in with_breaks.routes)
    assert without.stats.engine == "pyvrp"
    assert without.stats.search.startswith("PyVRP ")
    assert all(r.breaks == [] for r in without.routes)


def test_small_days_and_short_searches_stay_in_one_process() -> None:
    """Below the size or time where a second process pays, one process searches; above
    it, every core (or the number asked for)."""
    small = busy_day(2, 20, breaks=False, time_limit_s=60.0)
    large_but_quick = busy_day(2, PARALLEL_MIN_ORDERS, breaks=False, time_limit_s=1.0)
    large = busy_day(2, PARALLEL_MIN_ORDERS, breaks=False, time_limit_s=60.0)

    assert process_count(small, 20, SearchTuning()) == 1
    assert process_count(large_but_quick, PARALLEL_MIN_ORDERS, SearchTuning()) == 1
    assert process_count(large, PARALLEL_MIN_ORDERS, SearchTuning(processes=3)) == 3
    assert process_count(large, PARALLEL_MIN_ORDERS, SearchTuning()) == len(os.sched_getaffinity(0))


def test_parallel_searches_are_seeds_or_a_second_engine() -> None:
    """PyVRP runs one seed per process, every other one required to serve every order (one
    process: the search that may leave orders out); beside OR-Tools runs PyVRP with room for
    breaks on a day whose only OR-Tools feature is breaks, else OR-Tools' guided local
    search."""
    pyvrp = Choice(engine="pyvrp", reason="")
    breaks = Choice(engine="ortools", reason="", only_breaks=True)
    balance = Choice(engine="ortools", reason="")

    assert plan_jobs(pyvrp, 1) == [Job(kind="pyvrp")]
    assert plan_jobs(pyvrp, 2, may_require=False) == [Job(kind="pyvrp"), Job(kind="pyvrp", seed=1)]
    assert plan_jobs(pyvrp, 2) == [
        Job(kind="pyvrp", seed=0, required=True),
        Job(kind="pyvrp", seed=1),
    ]
    assert plan_jobs(breaks, 2) == [Job(kind="ortools"), Job(kind="pyvrp_breaks")]
    assert plan_jobs(balance, 2) == [Job(kind="ortools"), Job(kind="ortools_gls")]
    assert plan_jobs(breaks, 1) == [Job(kind="ortools")]


@pytest.mark.parametrize("breaks", [False, True])
def test_two_processes_plan_a_day_and_say_so(breaks: bool) -> None:
    """With two processes asked for, both search and the plan says two processes ran."""
    problem = busy_day(3, 40, breaks=breaks, time_limit_s=6.0)

    result = plan(problem, tuning=SearchTuning(processes=2))

    assert result.stats.processes == 2
    assert result.stats.status == "success"
    served = sum(len(r.stops) for r in result.routes)
    assert served + len(result.unassigned) == 40
    assert served >= 30


@pytest.mark.parametrize(
    ("breaks", "processes", "engine"),
    [(False, 1, "pyvrp"), (False, 2, "pyvrp"), (True, 1, "ortools"), (True, 2, None)],
)
def test_a_cancelled_plan_stops_and_keeps_its_best_solution(
    breaks: bool, processes: int, engine: str | None
) -> None:
    """Stopped after its first improving solution, a minute-long search returns at once with
    that solution and the status 'cancelled', in this process or in search processes."""
    problem = busy_day(4, 40, breaks=breaks, time_limit_s=60.0)
    seen: list[Progress] = []

    result = plan(
        problem,
        on_progress=seen.append,
        tuning=SearchTuning(processes=processes),
        should_stop=lambda: bool(seen),
    )

    assert result.stats.status == "cancelled"
    assert result.stats.wall_time_s < problem.options.time_limit_s
    assert result.routes
    if engine is not None:
        assert result.stats.engine == engine
    refs = [s.order_ref for r in result.routes for s in r.stops]
    refs += [u.order_ref for u in result.unassigned]
    assert sorted(refs) == sorted(o.ref for o in problem.orders)


def test_every_job_is_named_by_its_own_engine_and_search() -> None:
    """A job's plan names the engine and search that ran it, also when its process was ended
    and only told its routes: PyVRP with room for breaks is PyVRP, guided local search is
    OR-Tools' guided local search."""
    tuning = SearchTuning()
    assert names_of(Job(kind="pyvrp"), tuning)[0] == "pyvrp"
    assert not names_of(Job(kind="pyvrp"), tuning)[1].endswith(EVERY_ORDER)
    assert names_of(Job(kind="pyvrp", required=True), tuning)[1].endswith(EVERY_ORDER)
    engine, search = names_of(Job(kind="pyvrp_breaks"), tuning)
    assert engine == "pyvrp"
    assert search.startswith("PyVRP")
    assert "room kept for breaks" in search
    assert names_of(Job(kind="ortools"), tuning) == ("ortools", ortools_search_name(tuning))
    engine, search = names_of(Job(kind="ortools_gls"), tuning)
    assert engine == "ortools"
    assert search.endswith("GUIDED_LOCAL_SEARCH")


def required_search(instance: Instance) -> Candidate:
    """Half a second of the PyVRP search that must serve every order of ``instance``."""
    return run_job(
        instance, precheck(instance), Job(kind="pyvrp", required=True), SearchTuning(),
        time.monotonic() + 0.5, on_progress=None, should_stop=None,
    )  # fmt: skip


def test_a_search_that_must_serve_every_order_serves_all_or_finds_nothing() -> None:
    """The search with every order required serves all six orders a van can carry. Of two
    orders 40 km apart due in the same minute, one van can serve only one: that search finds
    no plan, and a plan on two processes keeps the plan of the search that may leave one out.
    When the fleet cannot carry every order, no search must serve them all."""
    van_of_ten = [van("v", capacity=[10])]
    six = [drop(f"o{k}", 1000 + 100 * k, 0, size=[1]) for k in range(6)]
    fits = compiled(day(van_of_ten, six))
    assert fleet_carries_all(fits, range(6))
    served = required_search(fits)
    assert served.sequences is not None
    assert sorted(served.sequences[0]) == list(range(6))
    assert served.search.endswith(EVERY_ORDER)

    same_minute = [window(20_000, 20_060)]
    apart = [
        drop("east", 20_000, 0, size=[1], time_windows=same_minute),
        drop("west", -20_000, 0, size=[1], time_windows=same_minute),
    ]
    one_of_two = compiled(day(van_of_ten, apart))
    assert fleet_carries_all(one_of_two, range(2))
    nothing = required_search(one_of_two)
    assert (nothing.status, nothing.sequences) == ("no_solution", None)
    result = plan(day(van_of_ten, apart, time_limit_s=2.0), tuning=SearchTuning(processes=2))
    assert result.stats.processes == 2
    assert sum(len(r.stops) for r in result.routes) == 1
    assert len(result.unassigned) == 1
    assert not result.stats.search.endswith(EVERY_ORDER)

    twelve = [drop(f"o{k}", 1000 + 100 * k, 0, size=[1]) for k in range(12)]
    assert not fleet_carries_all(compiled(day(van_of_ten, twelve)), range(12))
