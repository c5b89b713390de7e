"""The independent feasibility check refuses a plan that breaks any constraint, naming it.

Each test takes a correct plan of a small day and checks it against the same day with one
constraint tightened (or the plan changed), so only that constraint can be at fault.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from schemas.planning import PlanningBreak, PlanningProblem, PlanningResult
from solver.check import check_plan
from solver.errors import InfeasiblePlan
from tests.solver.builders import compiled, day, drop, plan, van, window

LUNCH = PlanningBreak(window=window(150, 150), duration_s=1000)


def two_stops(**vehicle: Any) -> PlanningProblem:
    """One van, orders 'a' (window [0, 150], 3 parcels) and 'b' (2 parcels) east of the depot."""
    return day(
        [van("v", **vehicle)],
        [
            drop("a", 100, 0, time_windows=[window(0, 150)], size=[3]),
            drop("b", 200, 0, size=[2]),
        ],
    )


def planned(problem: PlanningProblem) -> PlanningResult:
    """The plan of ``problem``, which must pass the check as it is."""
    result = plan(problem)
    check_plan(compiled(problem), result.routes, result.unassigned)
    return result


def refused(problem: PlanningProblem, result: PlanningResult) -> str:
    """The check's message for ``result`` against ``problem``; fails unless it is refused."""
    with pytest.raises(InfeasiblePlan) as caught:
        check_plan(compiled(problem), result.routes, result.unassigned)
    return str(caught.value)


def test_a_load_over_capacity_is_refused() -> None:
    """Five parcels on a van of four break its capacity."""
    result = planned(two_stops())

    assert "exceeds the capacity 4" in refused(two_stops(capacity=[4]), result)


def test_a_missing_skill_is_refused() -> None:
    """An order needing 'cold' on a van without it is refused."""
    result = planned(two_stops())
    cold = msgspec.structs.replace(
        two_stops(),
        orders=[
            msgspec.structs.replace(o, required_skills=frozenset({"cold"}))
            for o in two_stops().orders
        ],
    )

    assert "needs skills ['cold']" in refused(cold, result)


def test_service_outside_its_window_is_refused() -> None:
    """Serving 'a' 50 s after its window closed is refused."""
    result = planned(two_stops())
    route = result.routes[0]
    late = msgspec.structs.replace(
        route.stops[0],
        arrival_epoch_s=200,
        service_start_epoch_s=200,
        departure_epoch_s=200,
    )
    changed = msgspec.structs.replace(
        result, routes=[msgspec.structs.replace(route, stops=[late, *route.stops[1:]])]
    )

    assert "outside its windows" in refused(two_stops(), changed)


def test_a_route_past_its_maximum_duration_is_refused() -> None:
    """A 400 s route for a van allowed 300 s is refused."""
    result = planned(two_stops())

    assert "more than the maximum 300 s" in refused(two_stops(max_duration_s=300), result)


def test_a_break_left_out_is_refused() -> None:
    """A van that must take a break at 150 s, planned without it, is refused; with it, fine."""
    result = planned(two_stops())
    with_lunch = planned(two_stops(breaks=[LUNCH]))

    assert "plans 0 breaks for the vehicle's 1" in refused(two_stops(breaks=[LUNCH]), result)
    assert with_lunch.routes[0].breaks


def test_a_drive_too_short_is_refused() -> None:
    """Arriving at 'b' sooner than the 100 s drive from 'a' allows is refused."""
    result = planned(two_stops())
    route = result.routes[0]
    first, second = route.stops
    hasty = msgspec.structs.replace(
        second,
        arrival_epoch_s=first.departure_epoch_s + 10,
        service_start_epoch_s=first.departure_epoch_s + 10,
        departure_epoch_s=first.departure_epoch_s + 10,
    )
    changed = msgspec.structs.replace(
        result, routes=[msgspec.structs.replace(route, stops=[first, hasty])]
    )

    assert "too soon after leaving" in refused(two_stops(), changed)


def test_an_order_neither_routed_nor_unassigned_is_refused() -> None:
    """A plan that loses an order is refused, naming the order."""
    result = planned(two_stops())
    route = result.routes[0]
    changed = msgspec.structs.replace(
        result, routes=[msgspec.structs.replace(route, stops=route.stops[:1])]
    )

    assert "neither routed nor unassigned: b" in refused(two_stops(), changed)
