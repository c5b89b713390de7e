"""What a plan promises beyond single constraints: reasons, timings, progress and validation."""

from __future__ import annotations

import itertools
import random

import msgspec
import pytest

from schemas.planning import Location, PlanningOrder, PlanningProblem, PlanningResult
from solver.errors import ProblemError
from solver.search import Progress, SearchTuning
from tests.solver.builders import day, drop, plan, unassigned_codes, van, window


def test_orders_nobody_can_serve_get_a_reason_each() -> None:
    """Missing skills, oversize loads and unreachable windows are named before any search."""
    problem = day(
        [
            van("small", capacity=[800, 10], shift_s=10_000),
            van("big", capacity=[1000, 10], shift_s=10_000),
        ],
        [
            drop("crane", 100, 0, required_skills=frozenset({"crane"})),
            drop("piano", 100, 0, size=[1200, 1]),
            drop("late", 100, 0, time_windows=[window(20_000, 21_000)]),
            drop("far", 6000, 0),
            drop("fine", 100, 0, size=[10, 1]),
        ],
        dimensions=("weight_kg", "parcels"),
    )

    result = plan(problem)

    reasons: dict[str, str] = {u.order_ref: u.reason for u in result.unassigned}
    assert unassigned_codes(result) == {
        "crane": "skill",
        "piano": "capacity",
        "late": "time_window",
        "far": "time_window",
    }
    assert reasons["crane"] == "no vehicle has skill 'crane'"
    assert reasons["piano"].startswith("capacity: order weight_kg 1200 exceeds every vehicle")
    assert reasons["late"].startswith("time window unreachable from any shift")
    assert [s.order_ref for r in result.routes for s in r.stops] == ["fine"]


def test_maximum_duration_counts_in_the_reachability_check() -> None:
    """An order 2 km out cannot be reached and left within a 3,000 s maximum route duration."""
    result = plan(day([van("v", max_duration_s=3000)], [drop("o", 2000, 0)]))
    assert unassigned_codes(result) == {"o": "time_window"}


def random_day(seed: int, n_orders: int) -> PlanningProblem:
    """A seeded mix of windows, sizes and service times for three vans over a 10 km square."""
    rng = random.Random(seed)
    orders: list[PlanningOrder] = []
    for k in range(n_orders):
        start = rng.randrange(0, 20_000, 1_000)
        orders.append(
            drop(
                f"o{k}",
                rng.uniform(-5000, 5000),
                rng.uniform(-5000, 5000),
                size=[rng.randint(1, 5)],
                service_s=rng.choice([60, 120, 300]),
                time_windows=[window(start, start + 7_200)] if rng.random() < 0.5 else [],
            )
        )
    return day(
        [van(f"v{i}", capacity=[40], shift_s=30_000, cost_per_hour=5.0) for i in range(3)], orders
    )


def assert_plan_is_consistent(problem: PlanningProblem, result: PlanningResult) -> None:
    """Times, loads and distances of every route agree with each other and with the problem."""
    orders = {o.ref: o for o in problem.orders}
    refs = [s.order_ref for r in result.routes for s in r.stops] + [
        u.order_ref for u in result.unassigned
    ]
    assert sorted(refs) == sorted(orders)
    for route in result.routes:
        assert route.start_epoch_s >= 0
        assert route.end_epoch_s <= 30_000
        assert route.duration_s == route.end_epoch_s - route.start_epoch_s
        assert route.load == [sum(orders[s.order_ref].size[0] for s in route.stops)]
        assert route.load[0] <= 40
        assert route.distance_m >= sum(s.distance_from_previous_m for s in route.stops)
        previous_departure = route.start_epoch_s
        load = route.load[0]
        for stop in route.stops:
            order = orders[stop.order_ref]
            load -= order.size[0]
            assert stop.load_after == [load]
            assert stop.arrival_epoch_s >= previous_departure + stop.distance_from_previous_m - 1
            assert stop.arrival_epoch_s <= stop.service_start_epoch_s
            assert stop.departure_epoch_s == stop.service_start_epoch_s + order.service_s
            assert not order.time_windows or any(
                w.start_epoch_s <= stop.service_start_epoch_s <= w.end_epoch_s
                for w in order.time_windows
            )
            previous_departure = stop.departure_epoch_s
        assert route.end_epoch_s >= previous_departure


def test_a_random_day_yields_a_consistent_plan() -> None:
    """On a seeded 40-order day every order is planned or explained, and each route adds up."""
    problem = random_day(seed=3, n_orders=40)
    result = plan(problem)
    assert_plan_is_consistent(problem, result)
    assert len(result.unassigned) < 10


def test_guided_local_search_is_one_setting_away() -> None:
    """OR-Tools' guided local search gives an equally consistent plan of the same day."""
    problem = random_day(seed=3, n_orders=40)
    result = plan(
        problem, tuning=SearchTuning(engine="ortools", metaheuristic="GUIDED_LOCAL_SEARCH")
    )
    assert_plan_is_consistent(problem, result)
    assert result.stats.metaheuristic == "GUIDED_LOCAL_SEARCH"
    assert result.stats.engine == "ortools"
    assert "GUIDED_LOCAL_SEARCH" in result.stats.search


def test_progress_reports_each_improving_solution() -> None:
    """The callback sees strictly falling objectives, the last one being the plan's."""
    seen: list[Progress] = []
    result = plan(random_day(seed=5, n_orders=30), on_progress=seen.append)
    objectives = [p.objective for p in seen]
    assert objectives
    assert all(a > b for a, b in itertools.pairwise(objectives))
    assert [p.solutions_found for p in seen] == list(range(1, len(seen) + 1))
    assert result.stats.solutions_found == len(seen)
    assert objectives[-1] == pytest.approx(result.stats.objective)


def test_inconsistent_problems_are_refused_with_what_was_expected() -> None:
    """Unknown depots, misaligned amounts, reversed windows, bad priorities raise ProblemError."""
    cases = [
        (
            day([msgspec.structs.replace(van("v"), start_depot="nowhere")], []),
            "expected a known depot",
        ),
        (day([van("v", capacity=[1, 2])], []), "expected capacity with 1 amounts (parcels), got 2"),
        (
            day([van("v")], [drop("o", 1, 1, time_windows=[window(50, 10)])]),
            "expected time window 0 to end",
        ),
        (day([van("v")], [drop("o", 1, 1, priority=5)]), "expected priority in [0, 2]"),
        (day([van("v"), van("v")], []), "expected unique vehicle refs"),
        (day([], [drop("o", 1, 1)]), "expected at least one vehicle"),
    ]
    for problem, message in cases:
        with pytest.raises(ProblemError) as caught:
            plan(problem)
        assert message in str(caught.value)


def test_a_location_takes_exactly_one_kind_of_coordinates() -> None:
    """Decoding a location with both lat/lon and x/y, or with half a pair, fails validation."""
    decode = msgspec.json.Decoder(Location).decode
    assert decode(b'{"lat": 52.5, "lon": 13.4}').is_geographic
    assert not decode(b'{"x_m": 1, "y_m": 2}').is_geographic
    for body in (
        b'{"lat": 52.5}',
        b'{"lat": 1, "lon": 2, "x_m": 3, "y_m": 4}',
        b"{}",
        b'{"lat": 91, "lon": 0}',
    ):
        with pytest.raises(msgspec.ValidationError):
            decode(body)


def test_a_problem_decoded_from_json_plans_and_the_plan_encodes() -> None:
    """The wire form of a problem decodes into Structs, plans, and the result round-trips."""
    body = b"""{
        "dimensions": ["parcels"],
        "depots": [{"ref": "hub", "location": {"x_m": 0, "y_m": 0}}],
        "vehicles": [{"ref": "v", "start_depot": "hub", "shift": {"start_epoch_s": 1000,
                      "end_epoch_s": 9000}, "capacity": [5], "cost_per_km": 1}],
        "orders": [{"ref": "o", "location": {"x_m": 300, "y_m": 400}, "size": [2],
                    "time_windows": [{"start_epoch_s": 2000, "end_epoch_s": 2500}]}],
        "options": {"time_limit_s": 0.3}
    }"""
    problem = msgspec.json.decode(body, type=PlanningProblem)
    result = plan(problem)
    again = msgspec.json.decode(msgspec.json.encode(result), type=PlanningResult)
    assert again == result
    stop = result.routes[0].stops[0]
    assert (stop.order_ref, stop.service_start_epoch_s, result.routes[0].distance_m) == (
        "o",
        2000,
        1000,
    )


def test_an_exception_in_the_progress_callback_reaches_the_caller() -> None:
    """A failing progress callback is not swallowed by OR-Tools: solve raises it."""

    def broken(progress: Progress) -> None:
        raise RuntimeError(f"dashboard down at objective {progress.objective}")

    with pytest.raises(RuntimeError, match="dashboard down"):
        plan(day([van("v")], [drop("a", 100, 0)]), on_progress=broken)
