"""Reading a stored plan's options: the server's cap on the time limit applies to plans
accepted before it was lowered, and options the API would refuse name their field."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from schemas.ids import OrgId, PlanId
from store.plans import PlanRow
from workers.errors import InvalidPlan
from workers.plan_problem import settings_of


def stored(options: dict[str, Any]) -> PlanRow:
    return PlanRow(
        id=PlanId(7),
        org_id=OrgId(1),
        day=date(2026, 12, 1),
        status="running",
        options=options,
        order_ids=None,
        progress={},
        result=None,
        error=None,
        created_at=datetime(2026, 12, 1, 6, tzinfo=UTC),
        started_at=None,
        finished_at=None,
        cancel_requested_at=None,
        claims=1,
    )


def test_a_time_limit_above_the_cap_is_cut_to_the_cap() -> None:
    """A plan stored asking for an hour runs no longer than the cap; one below it keeps its own
    limit and its search."""
    options, _ = settings_of(stored({"time_limit_s": 3600.0}), max_s=600.0)
    assert options.time_limit_s == 600.0
    options, tuning = settings_of(
        stored({"time_limit_s": 20.0, "search": "guided_local_search"}), max_s=600.0
    )
    assert options.time_limit_s == 20.0
    assert tuning.metaheuristic == "GUIDED_LOCAL_SEARCH"


def test_options_the_api_would_refuse_name_the_field() -> None:
    """A time limit beyond what the API ever accepts is refused naming ``time_limit_s``."""
    with pytest.raises(InvalidPlan) as refused:
        settings_of(stored({"time_limit_s": 7200.0}), max_s=600.0)
    assert (
        refused.value.detail
        == "invalid options: time_limit_s: expected a number <= 3600.0, got 7200.0"
    )
