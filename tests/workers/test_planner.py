"""The planner workers: fair between organisations, one running plan per organisation,
cancels that stop a search and keep its best routes, and a killed planner's plan taken over."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import psycopg
import pytest
from redis.asyncio import Redis

from app.settings import Settings
from schemas.ids import PlanId
from store import plans
from tests.conftest import LiveServer, Tenant, make_tenant
from tests.days import at, cancel_plan, end_waiting_plans, key, make_day, running_worker
from tests.helpers import eventually

LONG_S = 120.0
"""A plan that runs until it is cancelled (every test cancels it long before)."""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A short lease, so a killed planner's plan is taken over within the test."""
    return msgspec.structs.replace(settings, plan_lease_s=1.0, plan_max_s=LONG_S)


async def a_day(http: httpx.AsyncClient, tenant: Tenant) -> None:
    day = datetime.now(UTC).date() + timedelta(days=1)
    await make_day(http, tenant, day, shift_window={"start": at(day, 7), "end": at(day, 19)})


async def post_plan(http: httpx.AsyncClient, tenant: Tenant, time_limit_s: float) -> PlanId:
    day = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    response = await http.post(
        "/v1/plans", json={"day": day, "time_limit_s": time_limit_s}, headers=key(tenant)
    )
    assert response.status_code == 202, response.text
    return PlanId(response.json()["id"])


async def plan_of(http: httpx.AsyncClient, tenant: Tenant, plan_id: PlanId) -> dict[str, Any]:
    response = await http.get(f"/v1/plans/{plan_id}", headers=key(tenant))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def reaches(
    http: httpx.AsyncClient, tenant: Tenant, plan_id: PlanId, *statuses: str
) -> dict[str, Any]:
    """The plan once its status is one of ``statuses``."""

    async def check() -> dict[str, Any]:
        body = await plan_of(http, tenant, plan_id)
        return body if body["status"] in statuses else {}

    return await eventually(check, f"plan {plan_id} {'/'.join(statuses)}", deadline_s=60)


async def cancelled_with_routes(
    http: httpx.AsyncClient, tenant: Tenant, plan_id: PlanId
) -> dict[str, Any]:
    """Once a running plan's search found a solution, cancel it and wait for it to end
    ``cancelled``, keeping its routes."""

    async def found() -> bool:
        body = await plan_of(http, tenant, plan_id)
        return bool(body["status"] == "running" and body["progress"]["solutions_found"] > 0)

    await eventually(found, f"a solution of plan {plan_id}", deadline_s=60)
    response = await cancel_plan(http, tenant, plan_id)
    assert response.status_code == 202, response.text
    assert response.json()["cancel_requested_at"] is not None
    ended = await reaches(http, tenant, plan_id, "cancelled", "done", "failed")
    assert ended["status"] == "cancelled", ended
    assert ended["outcome"]["search_status"] == "cancelled"
    assert sum(len(r["visits"]) for r in ended["outcome"]["routes"]) == 6
    return ended


@pytest.fixture(autouse=True)
async def only_these_plans(db: psycopg.AsyncConnection) -> None:
    """Plans earlier tests of the session left waiting are ended first: these tests' assertions
    are about the order of their own plans."""
    await end_waiting_plans(db)


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment of a ``lastmile worker`` process on this test's services."""
    return {
        **os.environ,
        "LASTMILE_DATABASE_URL": settings.database_url or "",
        "LASTMILE_REDIS_URL": settings.redis_url or "",
        "LASTMILE_REDIS_PREFIX": settings.redis_prefix,
        "LASTMILE_PING_SHARDS": str(settings.ping_shards),
        "LASTMILE_DATA_DIR": str(settings.data_dir),
        "LASTMILE_PLAN_LEASE_S": str(settings.plan_lease_s),
        "LASTMILE_PLAN_MAX_S": str(settings.plan_max_s),
        "LASTMILE_WORKER_BLOCK_MS": str(settings.worker_block_ms),
    }


async def planner_process(settings: Settings, *options: str) -> asyncio.subprocess.Process:
    """``lastmile worker planner OPTIONS`` started as a process of its own."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", "worker", "planner", *options, env=worker_env(settings)
    )


async def claims_of(db: psycopg.AsyncConnection, tenant: Tenant, plan_id: PlanId) -> int:
    """How often the plan was started, as stored."""
    stored = await plans.get_plan(db, tenant.org_id, plan_id)
    assert stored is not None
    return stored.claims


@pytest.fixture
async def other(db: psycopg.AsyncConnection, http: httpx.AsyncClient) -> Tenant:
    """A second organisation with a day to plan."""
    tenant = await make_tenant(db)
    await a_day(http, tenant)
    return tenant


@pytest.fixture
async def two_planners(settings: Settings, redis: Redis) -> AsyncIterator[None]:
    """Two planner workers, as two ``lastmile worker planner`` processes would run."""
    async with (
        running_worker(settings, "planner", consumer="planner-1"),
        running_worker(settings, "planner", consumer="planner-2"),
    ):
        yield


async def test_a_short_plan_waits_behind_one_long_plan_of_another_organisation_at_most(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    other: Tenant,
    settings: Settings,
) -> None:
    """With one planner, two long plans of A queued before B's short one run A, B, A: B's plan
    starts as soon as A's first ends (here: is cancelled), before A's second."""
    await a_day(http, tenant)
    first = await post_plan(http, tenant, LONG_S)
    second = await post_plan(http, tenant, LONG_S)
    short = await post_plan(http, other, 1)
    async with running_worker(settings, "planner"):
        await reaches(http, tenant, first, "running")
        assert (await plan_of(http, tenant, second))["status"] == "queued"
        assert (await plan_of(http, other, short))["status"] == "queued"
        await cancelled_with_routes(http, tenant, first)
        done = await reaches(http, other, short, "done")
        after = await plan_of(http, tenant, second)
        assert after["started_at"] is None or datetime.fromisoformat(
            after["started_at"]
        ) >= datetime.fromisoformat(done["finished_at"])
        await reaches(http, tenant, second, "running")
        await cancelled_with_routes(http, tenant, second)


@pytest.mark.usefixtures("two_planners")
async def test_a_long_plan_does_not_hold_another_organisations_plan_with_two_planners(
    server: LiveServer, http: httpx.AsyncClient, tenant: Tenant, other: Tenant
) -> None:
    """While A's long plan runs, B's short plan is computed on the other planner (its outcome
    naming the engine, search and processes that produced it), and A's second plan stays
    queued though a planner is free (one running plan per organisation); cancelling A's first
    starts A's second."""
    await a_day(http, tenant)
    first = await post_plan(http, tenant, LONG_S)
    second = await post_plan(http, tenant, LONG_S)
    await reaches(http, tenant, first, "running")
    short = await post_plan(http, other, 1)
    done = await reaches(http, other, short, "done")
    assert done["outcome"]["routes"]
    # The outcome names what produced it.
    assert done["outcome"]["engine"] in ("pyvrp", "ortools")
    assert done["outcome"]["search"]
    assert done["outcome"]["processes"] == 0  # six orders: searched in the planner's process
    assert (await plan_of(http, tenant, first))["status"] == "running"
    assert (await plan_of(http, tenant, second))["status"] == "queued"
    await cancelled_with_routes(http, tenant, first)
    await reaches(http, tenant, second, "running")
    await cancelled_with_routes(http, tenant, second)


async def test_a_killed_planners_plan_is_taken_over_and_computed(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    settings: Settings,
    db: psycopg.AsyncConnection,
) -> None:
    """A planner process killed (SIGKILL) in the middle of a plan stops renewing its lease;
    another planner takes the plan over once the lease runs out and computes it: nothing
    accepted is lost, and the plan counts two starts."""
    await a_day(http, tenant)
    plan_id = await post_plan(http, tenant, 3)
    doomed = await planner_process(settings, "--consumer", "doomed")
    try:
        await reaches(http, tenant, plan_id, "running")
    finally:
        doomed.send_signal(signal.SIGKILL)
        await doomed.wait()
    async with running_worker(settings, "planner"):
        done = await reaches(http, tenant, plan_id, "done", "failed")
    assert done["status"] == "done", done
    assert await claims_of(db, tenant, plan_id) == 2


async def test_a_stopped_planner_puts_its_plan_back_for_the_next(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    settings: Settings,
    db: psycopg.AsyncConnection,
) -> None:
    """A planner told to stop in the middle of a plan stops its search and queues the plan
    again, its start not counted; the next planner starts it afresh."""
    await a_day(http, tenant)
    plan_id = await post_plan(http, tenant, LONG_S)
    async with running_worker(settings, "planner"):
        await reaches(http, tenant, plan_id, "running")
    again = await plan_of(http, tenant, plan_id)
    assert (again["status"], again["started_at"], again["progress"]) == (
        "queued",
        None,
        {"objective": None, "solutions_found": 0, "elapsed_s": 0.0},
    )
    async with running_worker(settings, "planner"):
        await cancelled_with_routes(http, tenant, plan_id)
    assert await claims_of(db, tenant, plan_id) == 1


async def test_worker_processes_run_two_planners_and_put_their_plans_back_on_sigterm(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    other: Tenant,
    settings: Settings,
) -> None:
    """``lastmile worker planner --processes 2`` runs two planner processes: the long plans of
    two organisations run at the same time, and SIGTERM stops both searches and queues both
    plans again, unstarted."""
    await a_day(http, tenant)
    first = await post_plan(http, tenant, LONG_S)
    second = await post_plan(http, other, LONG_S)
    workers = await planner_process(settings, "--processes", "2")
    try:
        await reaches(http, tenant, first, "running")
        await reaches(http, other, second, "running")
    finally:
        workers.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(workers.wait(), timeout=60) == 0
    for owner, plan_id in ((tenant, first), (other, second)):
        again = await plan_of(http, owner, plan_id)
        assert (again["status"], again["started_at"]) == ("queued", None)
        assert (await cancel_plan(http, owner, plan_id)).json()["status"] == "cancelled"
