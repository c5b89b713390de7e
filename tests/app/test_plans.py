"""The plans API: the cap on a plan's time limit, and cancelling (queued plans never run,
another organisation's plan is not found, a finished plan is a conflict)."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
import psycopg
import pytest

from app.auth import issue_api_key
from app.settings import Settings
from tests.conftest import LiveServer, Tenant, make_tenant
from tests.days import Day, cancel_plan, key, planned, running_worker

CAP_S = 30.0


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A server whose plans may ask for at most :data:`CAP_S` seconds."""
    return msgspec.structs.replace(settings, plan_max_s=CAP_S)


async def post_plan(
    http: httpx.AsyncClient, tenant: Tenant, day: Day, time_limit_s: float
) -> httpx.Response:
    return await http.post(
        "/v1/plans",
        json={"day": day.day.isoformat(), "time_limit_s": time_limit_s},
        headers=key(tenant),
    )


async def queued(http: httpx.AsyncClient, tenant: Tenant, day: Day) -> dict[str, Any]:
    response = await post_plan(http, tenant, day, 1)
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_time_limit_above_the_cap_is_refused_naming_the_field(
    server: LiveServer, http: httpx.AsyncClient, tenant: Tenant, delivery_day: Day
) -> None:
    """A plan asking for more than LASTMILE_PLAN_MAX_S is a 422 on ``time_limit_s`` saying the
    cap; one asking for exactly the cap is queued."""
    refused = await post_plan(http, tenant, delivery_day, CAP_S + 0.5)
    assert refused.status_code == 422
    assert refused.json() == {
        "error": "over_limit",
        "field": "time_limit_s",
        "reason": "expected at most 30 s on this server (LASTMILE_PLAN_MAX_S), got 30.5",
    }
    accepted = await post_plan(http, tenant, delivery_day, CAP_S)
    assert accepted.status_code == 202, accepted.text
    # Not left in the session's queue for the planners of later tests.
    await cancel_plan(http, tenant, accepted.json()["id"])


async def test_a_queued_plan_cancelled_never_runs(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    delivery_day: Day,
    settings: Settings,
) -> None:
    """Cancelling a queued plan answers 200 ``cancelled`` (and the same when asked again);
    a planner started afterwards computes the next plan and never starts the cancelled one."""
    plan = await queued(http, tenant, delivery_day)
    first = await cancel_plan(http, tenant, plan["id"])
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "cancelled"
    assert first.json()["cancel_requested_at"] is not None
    again = await cancel_plan(http, tenant, plan["id"])
    assert again.status_code == 200
    assert again.json() == first.json()
    later = await queued(http, tenant, delivery_day)
    async with running_worker(settings, "planner"):
        assert (await planned(http, tenant, later["id"]))["status"] == "done"
    kept = await planned(http, tenant, plan["id"])
    assert (kept["status"], kept["started_at"], kept["outcome"]) == ("cancelled", None, None)
    dispatch = await http.post(f"/v1/plans/{plan['id']}/dispatch", json={}, headers=key(tenant))
    assert dispatch.status_code == 409
    assert dispatch.json()["reason"] == (
        "expected a finished plan, or a cancelled one with routes, got one that is cancelled"
        " without routes"
    )


async def test_another_organisations_plan_cannot_be_cancelled(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    delivery_day: Day,
    db: psycopg.AsyncConnection,
) -> None:
    """Another organisation's key gets 404 for the plan, which stays queued; an integration's
    key of the plan's own organisation may read it but not cancel it (403)."""
    plan = await queued(http, tenant, delivery_day)
    stranger = await make_tenant(db)
    response = await cancel_plan(http, stranger, plan["id"])
    assert response.status_code == 404
    assert response.json()["reason"] == f"no plan {plan['id']} in this organisation"
    integration = await issue_api_key(db, tenant.org_id, role="integration", name="shop")
    forbidden = await http.post(
        f"/v1/plans/{plan['id']}/cancel", headers={"authorization": f"Bearer {integration}"}
    )
    assert forbidden.status_code == 403
    unchanged = await http.get(f"/v1/plans/{plan['id']}", headers=key(tenant))
    assert (unchanged.json()["status"], unchanged.json()["cancel_requested_at"]) == ("queued", None)
    await cancel_plan(http, tenant, plan["id"])


async def test_a_finished_plan_cannot_be_cancelled(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    delivery_day: Day,
    planner: None,
) -> None:
    """Cancelling a done plan is a 409 naming its status, and the plan stays done."""
    plan = await planned(http, tenant, (await queued(http, tenant, delivery_day))["id"])
    assert plan["status"] == "done"
    response = await cancel_plan(http, tenant, plan["id"])
    assert response.status_code == 409
    assert response.json() == {
        "error": "conflict",
        "field": "status",
        "reason": "expected a queued or running plan, got one that is done",
    }
    assert (await http.get(f"/v1/plans/{plan['id']}", headers=key(tenant))).json() == plan
