"""From a day's orders to routes on drivers' phones, stop outcomes, and re-planning on the road."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
import websockets
from redis.asyncio import Redis

from app.server import run_worker
from app.settings import Settings
from realtime.streams import StreamNames
from schemas.events import EVENT_DECODER
from tests.conftest import LiveServer, Tenant

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


@pytest.fixture
async def planner(settings: Settings, redis: Redis) -> AsyncIterator[None]:
    """The planner worker, computing this test's plans."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(settings, "planner", stop, consumer_name="planner"))
    yield
    stop.set()
    await asyncio.wait_for(task, timeout=30)


async def create(http: httpx.AsyncClient, tenant: Tenant, path: str, body: dict[str, Any]) -> int:
    response = await http.post(path, json=body, headers=key(tenant))
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def order(
    http: httpx.AsyncClient, tenant: Tenant, day: date, ref: str, lat: float, lon: float
) -> int:
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
            "time_windows": [{"start": at(day, 8), "end": at(day, 18)}],
            "service_s": 300,
            "size": {"parcels": 1},
        },
    )


@pytest.fixture
async def delivery_day(http: httpx.AsyncClient, tenant: Tenant) -> Day:
    """Tomorrow: a depot, two vans with shifts for the tenant's two drivers, six orders."""
    day = datetime.now(UTC).date() + timedelta(days=1)
    depot = await create(
        http, tenant, "/v1/depots", {"name": "Hub", "lat": DEPOT[0], "lon": DEPOT[1]}
    )
    shift_ids = []
    for n, driver in enumerate(tenant.drivers):
        vehicle = await create(
            http, tenant, "/v1/vehicles", {"name": f"Van {n}", "capacity": {"parcels": 4}}
        )
        shift_ids.append(
            await create(
                http,
                tenant,
                "/v1/shifts",
                {
                    "driver_id": driver.id,
                    "vehicle_id": vehicle,
                    "day": day.isoformat(),
                    "start_place": {"depot_id": depot},
                    "working_window": {"start": at(day, 7), "end": at(day, 19)},
                },
            )
        )
    orders = {}
    for i in range(6):
        # Two clusters, east and west of the depot, three orders each.
        lon = DEPOT[1] + (0.03 if i < 3 else -0.03) + i * 0.001
        orders[f"o{i}"] = await order(http, tenant, day, f"o{i}", DEPOT[0] + 0.002 * i, lon)
    return Day(day, shift_ids, orders)


async def planned(http: httpx.AsyncClient, tenant: Tenant, plan_id: int) -> dict[str, Any]:
    for _ in range(300):
        response = await http.get(f"/v1/plans/{plan_id}", headers=key(tenant))
        body: dict[str, Any] = response.json()
        if body["status"] in ("done", "failed"):
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"plan {plan_id} did not finish: {body}")


async def events_of(redis: Redis, names: StreamNames, org_id: int) -> list[str]:
    entries = await redis.xrange(names.events)
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


async def test_a_plan_reaches_the_drivers_socket_and_stops_become_events(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    delivery_day: Day,
    planner: None,
    redis: Redis,
) -> None:
    """Planning serves every order; dispatch pushes the route; stop outcomes are events."""
    driver = tenant.drivers[0]
    url = f"{server.ws_url}/v1/driver/ws?token={driver.token}"
    async with websockets.connect(url) as socket:
        plan = await plan_and_dispatch(http, tenant, delivery_day)
        outcome = plan["outcome"]
        assert outcome["unassigned"] == []
        assert sorted(v["order_ref"] for r in outcome["routes"] for v in r["visits"]) == sorted(
            delivery_day.orders
        )
        # Capacity 4 per van and six orders: both vans are used.
        assert len(outcome["routes"]) == 2
        pushed = json.loads(await asyncio.wait_for(socket.recv(), 10))
    assert pushed["type"] == "route"
    route = pushed["route"]
    assert route["driver_id"] == driver.id
    fetched = (await http.get("/v1/driver/route", headers=device(driver.token))).json()
    assert fetched == route

    first, second = route["stops"][0]["id"], route["stops"][1]["id"]
    assert (
        await http.post("/v1/driver/route/start", headers=device(driver.token))
    ).status_code == 200
    arrive = await http.post(f"/v1/driver/stops/{first}/arrive", headers=device(driver.token))
    assert arrive.status_code == 200
    deliver = await http.post(f"/v1/driver/stops/{first}/deliver", headers=device(driver.token))
    assert [s["status"] for s in deliver.json()["stops"]][:1] == ["delivered"]
    fail = await http.post(
        f"/v1/driver/stops/{second}/fail",
        json={"reason": "nobody home"},
        headers=device(driver.token),
    )
    assert fail.json()["stops"][1]["failure_reason"] == "nobody home"
    again = await http.post(f"/v1/driver/stops/{first}/deliver", headers=device(driver.token))
    assert again.status_code == 409
    other = tenant.drivers[1]
    stolen = await http.post(f"/v1/driver/stops/{first}/arrive", headers=device(other.token))
    assert stolen.status_code == 404

    names = StreamNames(prefix=server.settings.redis_prefix, shards=server.settings.ping_shards)
    assert await events_of(redis, names, tenant.org_id) == [
        "RouteDispatched",
        "RouteDispatched",
        "RouteStarted",
        "StopArrived",
        "StopDelivered",
        "StopFailed",
    ]
    routes = (await http.get(f"/v1/routes?day={delivery_day.day}", headers=key(tenant))).json()
    statuses = {r["id"]: [s["status"] for s in r["stops"]] for r in routes["routes"]}
    assert statuses[route["id"]][:2] == ["delivered", "failed"]


async def test_retried_plan_requests_create_one_plan(
    http: httpx.AsyncClient, tenant: Tenant, delivery_day: Day
) -> None:
    """The same Idempotency-Key gives the same plan; a different body under it is refused."""
    body = {"day": delivery_day.day.isoformat(), "time_limit_s": 1}
    headers = {**key(tenant), "idempotency-key": "same"}
    first = await http.post("/v1/plans", json=body, headers=headers)
    second = await http.post("/v1/plans", json=body, headers=headers)
    assert first.json()["id"] == second.json()["id"]
    changed = await http.post("/v1/plans", json={**body, "time_limit_s": 2}, headers=headers)
    assert changed.status_code == 422


async def test_an_urgent_order_is_inserted_and_a_stop_moved_and_routes_resequenced(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    delivery_day: Day,
    planner: None,
) -> None:
    """Insertion, moving a stop and re-sequencing each give new route versions to the drivers."""
    await plan_and_dispatch(http, tenant, delivery_day)
    routes = (await http.get(f"/v1/routes?day={delivery_day.day}", headers=key(tenant))).json()
    before = {r["id"]: r for r in routes["routes"]}
    # An urgent order right next to the eastern cluster.
    urgent = await order(http, tenant, delivery_day.day, "urgent", DEPOT[0], DEPOT[1] + 0.031)
    inserted = await http.post("/v1/routes/insert", json={"order_id": urgent}, headers=key(tenant))
    assert inserted.status_code == 200, inserted.text
    target = inserted.json()["route"]
    assert urgent in [s["order_id"] for s in target["stops"]]
    assert target["version"] == before[target["id"]]["version"] + 1
    assert len(target["stops"]) == len(before[target["id"]]["stops"]) + 1
    assert all(s["lateness_s"] == 0 for s in target["stops"])

    unplaceable = await order(http, tenant, delivery_day.day, "far", 48.1, 11.5)
    refused = await http.post(
        "/v1/routes/insert", json={"order_id": unplaceable}, headers=key(tenant)
    )
    assert refused.status_code == 409
    assert "reason" in refused.json()

    # Move a stop from the fuller van to the one with room (capacity 4 each, 7 orders).
    now = (await http.get(f"/v1/routes?day={delivery_day.day}", headers=key(tenant))).json()
    fuller, other_route = sorted(now["routes"], key=lambda r: -len(r["stops"]))
    other = other_route["id"]
    moving = fuller["stops"][0]
    moved = await http.post(
        f"/v1/stops/{moving['id']}/move", json={"route_id": other}, headers=key(tenant)
    )
    assert moved.status_code == 200, moved.text
    assert moving["order_id"] in [s["order_id"] for s in moved.json()["stops"]]
    source = (await http.get(f"/v1/routes/{fuller['id']}", headers=key(tenant))).json()
    assert moving["order_id"] not in [s["order_id"] for s in source["stops"]]
    full = await http.post(
        f"/v1/stops/{source['stops'][0]['id']}/move", json={"route_id": other}, headers=key(tenant)
    )
    assert full.status_code == 409
    assert full.json()["reason"].startswith("capacity")

    resequenced = await http.post(f"/v1/routes/{other}/resequence", headers=key(tenant))
    assert resequenced.status_code == 200
    assert resequenced.json()["version"] == moved.json()["version"] + 1
    assert sorted(s["order_id"] for s in resequenced.json()["stops"]) == sorted(
        s["order_id"] for s in moved.json()["stops"]
    )


async def test_cancelling_a_dispatched_order_takes_its_stop_off_the_route(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    delivery_day: Day,
    planner: None,
    redis: Redis,
) -> None:
    """A cancelled order's stop leaves its route, the rest is re-timed, the driver is told."""
    await plan_and_dispatch(http, tenant, delivery_day)
    routes = (await http.get(f"/v1/routes?day={delivery_day.day}", headers=key(tenant))).json()
    route = max(routes["routes"], key=lambda r: len(r["stops"]))
    driver = next(d for d in tenant.drivers if d.id == route["driver_id"])
    victim = route["stops"][0]
    url = f"{server.ws_url}/v1/driver/ws?token={driver.token}"
    async with websockets.connect(url) as socket:
        current = json.loads(await asyncio.wait_for(socket.recv(), 10))
        assert current["route"]["version"] == route["version"]
        cancelled = await http.post(
            f"/v1/orders/{victim['order_id']}/cancel",
            json={"reason": "customer"},
            headers=key(tenant),
        )
        assert cancelled.status_code == 200, cancelled.text
        pushed = json.loads(await asyncio.wait_for(socket.recv(), 10))
    after = pushed["route"]
    assert after["version"] == route["version"] + 1
    assert [s["order_id"] for s in after["stops"]] == [s["order_id"] for s in route["stops"][1:]]
    # The next stop no longer waits behind the cancelled one: it is planned no later than before.
    assert after["stops"][0]["planned_arrival"] <= route["stops"][1]["planned_arrival"]
    names = StreamNames(prefix=server.settings.redis_prefix, shards=server.settings.ping_shards)
    assert (await events_of(redis, names, tenant.org_id))[-2:] == ["OrderCancelled", "RouteChanged"]


async def test_a_plan_can_ask_for_guided_local_search(
    http: httpx.AsyncClient, tenant: Tenant, delivery_day: Day, planner: None
) -> None:
    """The search named in the request is the one that ran, and it serves every order too."""
    response = await http.post(
        "/v1/plans",
        json={
            "day": delivery_day.day.isoformat(),
            "time_limit_s": 1,
            "search": "guided_local_search",
        },
        headers=key(tenant),
    )
    plan = await planned(http, tenant, response.json()["id"])
    assert plan["outcome"]["search"] == "GUIDED_LOCAL_SEARCH"
    assert plan["outcome"]["unassigned"] == []
    default = await http.post(
        "/v1/plans",
        json={"day": delivery_day.day.isoformat(), "time_limit_s": 1},
        headers=key(tenant),
    )
    assert (await planned(http, tenant, default.json()["id"]))["outcome"]["search"] == (
        "ITERATED_LOCAL_SEARCH"
    )
    wrong = await http.post(
        "/v1/plans",
        json={"day": delivery_day.day.isoformat(), "search": "tabu"},
        headers=key(tenant),
    )
    assert wrong.status_code == 400
    assert wrong.json()["field"] == "search"
