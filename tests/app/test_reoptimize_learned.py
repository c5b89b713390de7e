"""Re-optimising a running route drives at the speeds its plan was made with: the learned model
the plan's outcome names (learning on), else the configured speed, whatever was learned since.

The learned models here know one speed everywhere at every hour, half (or a quarter of) the
configured 8 m/s, so each expected arrival is computed from the geometry alone: from the depot
at the shift's start, each leg ``round(round(great circle x 1.3) / speed)``, five minutes at
each stop, no waiting (the orders' windows are the shift's).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import msgspec
import psycopg
import pytest
from psycopg.types.json import Jsonb

from app.settings import Settings
from schemas.ids import OrgId
from solver.geo import haversine_m
from solver.learning import SpeedTable
from store import learning as learning_store
from tests.conftest import LiveServer, Tenant
from tests.days import DEPOT, Day, another_server, at, key, make_day, order, plan_and_dispatch
from tests.facts import one

CONFIGURED_MPS = 8.0
"""The test settings' ``travel_speed_mps`` (the default)."""
CIRCUITY = 1.3
SERVICE_S = 300
TOLERANCE_S = 3
"""Per stop: the provider's great circle and this file's may round a metre apart."""

Arrivals = list[tuple[int, datetime]]


async def store_speeds(db: psycopg.AsyncConnection, org_id: OrgId, city_mps: float) -> int:
    """A learned model whose speed is ``city_mps`` in every cell at every hour; its id."""
    table = SpeedTable(res=8, city_mps=city_mps, samples=100)
    return await learning_store.store_model(
        db, org_id, date(2026, 1, 1), date(2026, 1, 28), 20, msgspec.to_builtins(table), None
    )


def window(day: date) -> dict[str, str]:
    """The shift's working window, which is also every order's."""
    return {"start": at(day, 7), "end": at(day, 19)}


async def running_day(http: httpx.AsyncClient, tenant: Tenant) -> tuple[Day, dict[str, Any]]:
    """Tomorrow's six orders planned, dispatched and not yet started (the re-optimiser starts
    from the depot at 07:00); the plan."""
    day = datetime.now(UTC).date() + timedelta(days=1)
    made = await make_day(http, tenant, day, shift_window=window(day), order_window=window(day))
    return made, await plan_and_dispatch(http, tenant, made)


async def places(db: psycopg.AsyncConnection, org_id: OrgId) -> dict[int, tuple[float, float]]:
    cursor = await db.execute("SELECT id, lat, lon FROM orders WHERE org_id = %s", (org_id,))
    return {row[0]: (row[1], row[2]) for row in await cursor.fetchall()}


def expected(
    stops: list[int], at_: dict[int, tuple[float, float]], start: datetime, speed_mps: float
) -> list[datetime]:
    """The arrivals at ``stops`` in turn, driving from the depot at ``start``."""
    clock = int(start.timestamp())
    here = DEPOT
    found = []
    for order_id in stops:
        there = at_[order_id]
        metres = round(haversine_m(*here, *there) * CIRCUITY)
        clock += round(metres / speed_mps)
        found.append(datetime.fromtimestamp(clock, UTC))
        clock += SERVICE_S
        here = there
    return found


def arrivals(preview: httpx.Response) -> Arrivals:
    """The one route's stops of a preview, in their new order, with their new arrivals."""
    assert preview.status_code == 200, preview.text
    (route,) = preview.json()["routes"]
    return [(s["order_id"], datetime.fromisoformat(s["after"])) for s in route["stops"]]


def assert_driven_at(
    found: Arrivals, at_: dict[int, tuple[float, float]], day: date, speed_mps: float
) -> None:
    """Every arrival is what driving the stops in this order at ``speed_mps`` gives."""
    start = datetime.fromisoformat(at(day, 7))
    wanted = expected([o for o, _ in found], at_, start, speed_mps)
    for n, ((order_id, got), want) in enumerate(zip(found, wanted, strict=True)):
        drift_s = abs((got - want).total_seconds())
        assert drift_s <= TOLERANCE_S * (n + 1), (order_id, got, want, speed_mps)


async def insert_and_resequence(
    http: httpx.AsyncClient, tenant: Tenant, day: Day
) -> tuple[Arrivals, Arrivals]:
    """The previews of inserting an urgent order next to the eastern cluster, and of
    re-sequencing the route it would join."""
    urgent = await order(
        http, tenant, day.day, "urgent", DEPOT[0], DEPOT[1] + 0.031, window(day.day)
    )
    inserted = await http.post(
        "/v1/routes/insert/preview", json={"order_id": urgent}, headers=key(tenant)
    )
    route_id = inserted.json()["routes"][0]["route_id"]
    resequenced = await http.post(f"/v1/routes/{route_id}/resequence/preview", headers=key(tenant))
    return arrivals(inserted), arrivals(resequenced)


@pytest.fixture
async def learning_off(settings: Settings, server: LiveServer) -> AsyncIterator[LiveServer]:
    """Another API process on the same services, with ``learning`` off."""
    async with another_server(settings, learning=False) as other:
        yield other


async def test_a_route_planned_at_learned_speeds_is_re_optimised_at_them(
    http: httpx.AsyncClient, db: psycopg.AsyncConnection, tenant: Tenant, planner: None
) -> None:
    """Planned with a model of 4 m/s, an insertion's and a re-sequence's new arrivals are
    driven at 4 m/s, not at the configured 8 m/s."""
    model_id = await store_speeds(db, tenant.org_id, CONFIGURED_MPS / 2)
    day, plan = await running_day(http, tenant)
    assert plan["outcome"]["model_id"] == model_id
    inserted, resequenced = await insert_and_resequence(http, tenant, day)
    at_ = await places(db, tenant.org_id)
    assert_driven_at(inserted, at_, day.day, CONFIGURED_MPS / 2)
    assert_driven_at(resequenced, at_, day.day, CONFIGURED_MPS / 2)


async def test_with_learning_off_the_configured_speed_is_used(
    http: httpx.AsyncClient,
    db: psycopg.AsyncConnection,
    tenant: Tenant,
    planner: None,
    learning_off: LiveServer,
) -> None:
    """The same route, planned at learned speeds, is re-optimised at the configured 8 m/s by an
    API process whose ``learning`` is off."""
    model_id = await store_speeds(db, tenant.org_id, CONFIGURED_MPS / 2)
    day, plan = await running_day(http, tenant)
    assert plan["outcome"]["model_id"] == model_id
    async with httpx.AsyncClient(base_url=learning_off.url, timeout=10) as off:
        inserted, resequenced = await insert_and_resequence(off, tenant, day)
    at_ = await places(db, tenant.org_id)
    assert_driven_at(inserted, at_, day.day, CONFIGURED_MPS)
    assert_driven_at(resequenced, at_, day.day, CONFIGURED_MPS)


async def test_a_route_planned_without_a_model_keeps_the_configured_speed(
    http: httpx.AsyncClient, db: psycopg.AsyncConnection, tenant: Tenant, planner: None
) -> None:
    """A model learned after the plan does not change how its routes are re-timed."""
    day, plan = await running_day(http, tenant)
    assert plan["outcome"]["model_id"] is None
    await store_speeds(db, tenant.org_id, CONFIGURED_MPS / 2)
    inserted, resequenced = await insert_and_resequence(http, tenant, day)
    at_ = await places(db, tenant.org_id)
    assert_driven_at(inserted, at_, day.day, CONFIGURED_MPS)
    assert_driven_at(resequenced, at_, day.day, CONFIGURED_MPS)


async def test_routes_of_plans_with_different_models_take_the_newest(
    http: httpx.AsyncClient, db: psycopg.AsyncConnection, tenant: Tenant, planner: None
) -> None:
    """An insertion over two routes, one planned with a 4 m/s model and one (re-pointed to
    another plan) with a newer 2 m/s model, drives at 2 m/s."""
    await store_speeds(db, tenant.org_id, CONFIGURED_MPS / 2)
    day, plan = await running_day(http, tenant)
    newer = await store_speeds(db, tenant.org_id, CONFIGURED_MPS / 4)
    other_plan = await one(
        db,
        "INSERT INTO plans (org_id, day, status, result) VALUES (%s, %s, 'done', %s) RETURNING id",
        (tenant.org_id, day.day, Jsonb({"model_id": newer})),
    )
    await db.execute(
        "UPDATE routes SET plan_id = %s WHERE id = (SELECT min(id) FROM routes"
        " WHERE org_id = %s AND plan_id = %s)",
        (other_plan, tenant.org_id, plan["id"]),
    )
    inserted, _ = await insert_and_resequence(http, tenant, day)
    assert_driven_at(inserted, await places(db, tenant.org_id), day.day, CONFIGURED_MPS / 4)
