"""A delivery day to plan, dispatch and drive, for tests across the suite.

Registered as a pytest plugin by ``tests/conftest.py``, so its fixtures (``planner``,
``eta_worker``, ``delivery_day``, ``today``, ``second_server``) are available to every test by
name; tests import its helpers (``key``, ``device``, ``plan_and_dispatch``, ...) from here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import msgspec
import psycopg
import pytest
from redis.asyncio import Redis

from app.process.server import run_worker, serve_api
from app.settings import Settings
from realtime.streams import StreamNames
from schemas.codecs import EVENT_DECODER
from schemas.eta import ArrivalWindow, EtaChanged
from schemas.events import DeliveryUpdate
from schemas.ids import DriverId, OrgId, RouteId, StopId
from tests.conftest import LiveServer, Tenant, bound_socket
from tests.helpers import stream_entries

DEPOT = (52.5200, 13.4050)


def key(tenant: Tenant) -> dict[str, str]:
    return {"authorization": f"Bearer {tenant.api_key}"}


def device(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def at(day: date, hour: float) -> str:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return (start + timedelta(hours=hour)).isoformat()


@dataclass
class Day:
    """A planned-for day: its date, two shifts (one per driver) and the order ids by ref."""

    day: date
    shift_ids: list[int]
    orders: dict[str, int]
    window: dict[str, str] | None = None  # the orders' window; None: 08:00-18:00 UTC


@contextlib.asynccontextmanager
async def running_worker(
    settings: Settings, name: str, *, consumer: str | None = None
) -> AsyncIterator[None]:
    """Worker ``name`` (``planner``, ``eta``, ...) running in this process for the block, as
    consumer ``consumer`` (default: ``name``)."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(settings, name, stop, consumer_name=consumer or name))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def end_waiting_plans(db: psycopg.AsyncConnection) -> None:
    """End the plans earlier tests of the session left queued or running: planners serve one
    queue per database (fairly, oldest organisation first), so a test's planner would compute
    those before the test's own."""
    await db.execute(
        "UPDATE plans SET status = 'failed', error = 'left waiting by an earlier test',"
        " finished_at = now(), lease_until = NULL WHERE status IN ('queued', 'running')"
    )


@pytest.fixture
async def planner(
    settings: Settings, redis: Redis, db: psycopg.AsyncConnection
) -> AsyncIterator[None]:
    """The planner worker, computing this test's plans (and no plan earlier tests left)."""
    await end_waiting_plans(db)
    async with running_worker(settings, "planner"):
        yield


async def create(http: httpx.AsyncClient, tenant: Tenant, path: str, body: dict[str, Any]) -> int:
    response = await http.post(path, json=body, headers=key(tenant))
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def order(
    http: httpx.AsyncClient,
    tenant: Tenant,
    day: date,
    ref: str,
    lat: float,
    lon: float,
    window: dict[str, str] | None = None,
) -> int:
    """Order ``ref`` for ``day`` at (lat, lon): one parcel, five minutes of service, wanted in
    ``window`` (default 08:00-18:00 UTC)."""
    return await create(
        http,
        tenant,
        "/v1/orders",
        {
            "external_ref": ref,
            "customer_name": f"Customer {ref}",
            "address": f"{ref} Street 1",
            "lat": lat,
            "lon": lon,
            "day": day.isoformat(),
            "time_windows": [window or {"start": at(day, 8), "end": at(day, 18)}],
            "service_s": 300,
            "size": {"parcels": 1},
        },
    )


async def make_day(
    http: httpx.AsyncClient,
    tenant: Tenant,
    day: date,
    *,
    shift_window: dict[str, str],
    order_window: dict[str, str] | None = None,
) -> Day:
    """A depot, a van and a shift in ``shift_window`` for each of the tenant's drivers, and six
    orders in two clusters east and west of the depot, three each."""
    depot = await create(
        http, tenant, "/v1/depots", {"name": "Hub", "lat": DEPOT[0], "lon": DEPOT[1]}
    )
    shift_ids = []
    for n, driver in enumerate(tenant.drivers):
        vehicle = await create(
            http, tenant, "/v1/vehicles", {"name": f"Van {n}", "capacity": {"parcels": 4}}
        )
        shift = {
            "driver_id": driver.id,
            "vehicle_id": vehicle,
            "day": day.isoformat(),
            "start_place": {"depot_id": depot},
            "working_window": shift_window,
        }
        shift_ids.append(await create(http, tenant, "/v1/shifts", shift))
    orders = {}
    for i in range(6):
        lon = DEPOT[1] + (0.03 if i < 3 else -0.03) + i * 0.001
        ref = f"o{i}"
        orders[ref] = await order(http, tenant, day, ref, DEPOT[0] + 0.002 * i, lon, order_window)
    return Day(day, shift_ids, orders, order_window)


@pytest.fixture
async def delivery_day(http: httpx.AsyncClient, tenant: Tenant) -> Day:
    """Tomorrow: a depot, two vans with shifts for the tenant's two drivers, six orders."""
    day = datetime.now(UTC).date() + timedelta(days=1)
    return await make_day(http, tenant, day, shift_window={"start": at(day, 7), "end": at(day, 19)})


@pytest.fixture
async def today(http: httpx.AsyncClient, tenant: Tenant) -> Day:
    """Today (UTC, the day the live map shows): two vans on shifts around now, six orders."""
    now = datetime.now(UTC)
    window = {
        "start": (now - timedelta(hours=1)).isoformat(),
        "end": (now + timedelta(hours=9)).isoformat(),
    }
    return await make_day(http, tenant, now.date(), shift_window=window, order_window=window)


async def planned(http: httpx.AsyncClient, tenant: Tenant, plan_id: int) -> dict[str, Any]:
    for _ in range(300):
        response = await http.get(f"/v1/plans/{plan_id}", headers=key(tenant))
        body: dict[str, Any] = response.json()
        if body["status"] in ("done", "failed", "cancelled"):
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"plan {plan_id} did not finish: {body}")


async def cancel_plan(http: httpx.AsyncClient, tenant: Tenant, plan_id: int) -> httpx.Response:
    """``POST /v1/plans/{plan_id}/cancel`` with the tenant's key."""
    return await http.post(f"/v1/plans/{plan_id}/cancel", headers=key(tenant))


async def events_of(redis: Redis, names: StreamNames, org_id: int) -> list[str]:
    entries = stream_entries(await redis.xrange(names.events))
    decoded = [EVENT_DECODER.decode(fields[b"e"]) for _, fields in entries]
    return [type(e).__name__ for e in decoded if e.org_id == org_id]


async def plan_and_dispatch(http: httpx.AsyncClient, tenant: Tenant, day: Day) -> dict[str, Any]:
    response = await http.post(
        "/v1/plans",
        json={"day": day.day.isoformat(), "time_limit_s": 1},
        headers={**key(tenant), "idempotency-key": "plan-1"},
    )
    assert response.status_code == 202, response.text
    plan = await planned(http, tenant, response.json()["id"])
    assert plan["status"] == "done", plan
    dispatched = await http.post(f"/v1/plans/{plan['id']}/dispatch", json={}, headers=key(tenant))
    assert dispatched.status_code == 200, dispatched.text
    return plan


@pytest.fixture
async def eta_worker(settings: Settings, redis: Redis) -> AsyncIterator[None]:
    """The ETA worker, following this test's ping streams."""
    async with running_worker(settings, "eta"):
        yield


@contextlib.asynccontextmanager
async def another_server(settings: Settings, **changes: Any) -> AsyncIterator[LiveServer]:
    """Another API process on the same PostgreSQL and Redis, as behind a load balancer, with
    ``changes`` to its settings."""
    sockets = (bound_socket(), bound_socket())
    other = msgspec.structs.replace(
        settings,
        port=sockets[0].getsockname()[1],
        osmand_port=sockets[1].getsockname()[1],
        **changes,
    )
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve_api(other, stop, on_ready=ready.set, sockets=sockets))
    await asyncio.wait_for(ready.wait(), 30)
    try:
        yield LiveServer(other)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        for sock in sockets:
            sock.close()


@pytest.fixture
async def second_server(settings: Settings, server: LiveServer) -> AsyncIterator[LiveServer]:
    """Another API process on the same PostgreSQL and Redis, as behind a load balancer."""
    async with another_server(settings) as other:
        yield other


def moved_window(
    org_id: int,
    route: dict[str, Any],
    stop: dict[str, Any],
    window: ArrivalWindow,
    previous: ArrivalWindow | None = None,
) -> DeliveryUpdate:
    """The ``eta_changed`` the ETA worker emits when ``stop`` (of ``route``, as the API shows
    them) gets ``window``, computed at ``window.computed_epoch_s``."""
    return DeliveryUpdate(
        org_id=OrgId(org_id),
        at=datetime.now(UTC),
        detail=EtaChanged(
            driver_id=DriverId(route["driver_id"]),
            route_id=RouteId(route["id"]),
            route_version=route["version"],
            stop_id=StopId(stop["id"]),
            order_id=stop["order_id"],
            at_epoch_s=window.computed_epoch_s,
            previous=previous or window,
            window=window,
        ),
    )
