"""From a day's orders to routes on drivers' phones, stop outcomes, and re-planning on the road."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import websockets
from redis.asyncio import Redis

from realtime.streams import StreamNames
from schemas.ids import OrgId
from store import plans
from tests.conftest import LiveServer, Tenant
from tests.days import DEPOT, Day, device, events_of, key, order, plan_and_dispatch, planned
from tests.helpers import stream_entries
from workers.planner import requeue_lost


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
    listed = await http.get(f"/v1/plans?day={delivery_day.day}", headers=key(tenant))
    [summary] = listed.json()["plans"]
    assert (summary["id"], summary["status"], summary["routes"]) == (plan["id"], "done", 2)
    assert summary["served"] == len(delivery_day.orders)
    assert summary["unassigned"] == 0
    assert summary["distance_m"] == sum(r["distance_m"] for r in outcome["routes"])
    assert summary["time_limit_s"] == 1
    other_day = delivery_day.day + timedelta(days=1)
    assert (await http.get(f"/v1/plans?day={other_day}", headers=key(tenant))).json() == {
        "plans": []
    }
    no_day = await http.get("/v1/plans", headers=key(tenant))
    assert no_day.status_code == 400
    assert no_day.json()["field"] == "day"
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


async def test_each_action_previews_what_it_would_change_and_changes_nothing(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    delivery_day: Day,
    planner: None,
) -> None:
    """Insert, move, re-sequence and cancel previews name each route they would rewrite with
    its stops' arrivals before and after; the routes and the orders stay as they were, and the
    insertion then done lands where its preview said."""
    await plan_and_dispatch(http, tenant, delivery_day)

    async def routes() -> dict[int, dict[str, Any]]:
        found = await http.get(f"/v1/routes?day={delivery_day.day}", headers=key(tenant))
        return {r["id"]: r for r in found.json()["routes"]}

    before = await routes()
    urgent = await order(http, tenant, delivery_day.day, "urgent", DEPOT[0], DEPOT[1] + 0.031)
    shown = await http.post(
        "/v1/routes/insert/preview", json={"order_id": urgent}, headers=key(tenant)
    )
    assert shown.status_code == 200, shown.text
    [change] = shown.json()["routes"]
    new = next(s for s in change["stops"] if s["order_id"] == urgent)
    assert new["before"] is None
    assert new["after"] is not None
    assert new["order_ref"] == "urgent"
    assert shown.json()["added_travel_s"] > 0
    assert all(s["before"] is not None for s in change["stops"] if s["order_id"] != urgent)
    assert await routes() == before
    order_now = await http.get(f"/v1/orders/{urgent}", headers=key(tenant))
    assert order_now.json()["status"] == "pending"
    far = await order(http, tenant, delivery_day.day, "far", 48.1, 11.5)
    refused = await http.post(
        "/v1/routes/insert/preview", json={"order_id": far}, headers=key(tenant)
    )
    assert refused.status_code == 409
    done = await http.post("/v1/routes/insert", json={"order_id": urgent}, headers=key(tenant))
    assert done.json()["route"]["id"] == change["route_id"]

    now = await routes()
    fuller, other = sorted(now.values(), key=lambda r: -len(r["stops"]))
    moving = fuller["stops"][-1]
    moved = await http.post(
        f"/v1/stops/{moving['id']}/move/preview", json={"route_id": other["id"]},
        headers=key(tenant),
    )  # fmt: skip
    assert moved.status_code == 200, moved.text
    source, target = moved.json()["routes"]
    assert (source["route_id"], target["route_id"]) == (fuller["id"], other["id"])
    leaving = next(s for s in source["stops"] if s["order_id"] == moving["order_id"])
    joining = next(s for s in target["stops"] if s["order_id"] == moving["order_id"])
    assert leaving["after"] is None
    assert leaving["before"] is not None
    assert joining["before"] is None
    assert joining["after"] is not None

    resequenced = await http.post(
        f"/v1/routes/{other['id']}/resequence/preview", headers=key(tenant)
    )
    assert [r["route_id"] for r in resequenced.json()["routes"]] == [other["id"]]
    cancelling = await http.post(
        f"/v1/orders/{moving['order_id']}/cancel/preview", headers=key(tenant)
    )
    [off] = cancelling.json()["routes"]
    assert next(s for s in off["stops"] if s["order_id"] == moving["order_id"])["after"] is None
    assert await routes() == now
    still = await http.get(f"/v1/orders/{moving['order_id']}", headers=key(tenant))
    assert still.json()["status"] == "dispatched"


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
    """On a day only OR-Tools plans (workload balance), the OR-Tools search named in the
    request is the one the outcome names, and it serves every order too; without balance the
    outcome names PyVRP, which ignores that knob."""
    day = delivery_day.day.isoformat()
    response = await http.post(
        "/v1/plans",
        json={
            "day": day,
            "time_limit_s": 1,
            "search": "guided_local_search",
            "balance_workload": True,
        },
        headers=key(tenant),
    )
    plan = await planned(http, tenant, response.json()["id"])
    assert plan["outcome"]["engine"] == "ortools"
    assert plan["outcome"]["search"].endswith("+ GUIDED_LOCAL_SEARCH")
    assert plan["outcome"]["unassigned"] == []
    default = await http.post(
        "/v1/plans",
        json={"day": day, "time_limit_s": 1, "balance_workload": True},
        headers=key(tenant),
    )
    balanced = (await planned(http, tenant, default.json()["id"]))["outcome"]
    assert balanced["search"].endswith("+ ITERATED_LOCAL_SEARCH")
    free = await http.post("/v1/plans", json={"day": day, "time_limit_s": 1}, headers=key(tenant))
    unbalanced = (await planned(http, tenant, free.json()["id"]))["outcome"]
    assert unbalanced["engine"] == "pyvrp"
    assert unbalanced["search"].startswith("PyVRP ")
    wrong = await http.post(
        "/v1/plans",
        json={"day": delivery_day.day.isoformat(), "search": "tabu"},
        headers=key(tenant),
    )
    assert wrong.status_code == 400
    assert wrong.json()["field"] == "search"


async def test_a_plan_whose_job_never_reached_redis_is_handed_over_once(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    delivery_day: Day,
    planner: None,
    redis: Redis,
    db: psycopg.AsyncConnection,
) -> None:
    """A committed plan left without its job (Redis failed after the commit) is appended once
    by the upkeep and computed; plans created normally are never appended twice."""
    names = StreamNames(prefix=server.settings.redis_prefix, shards=server.settings.ping_shards)
    normal = await http.post(
        "/v1/plans",
        json={"day": delivery_day.day.isoformat(), "time_limit_s": 1},
        headers=key(tenant),
    )
    assert normal.status_code == 202
    # As if the append had failed: the plan is committed, its job is not on the stream.
    lost = await plans.create_plan(db, OrgId(tenant.org_id), delivery_day.day, {}, None)
    assert await requeue_lost(db, redis, names, timedelta(seconds=0)) == 1
    assert await requeue_lost(db, redis, names, timedelta(seconds=0)) == 0
    assert len(stream_entries(await redis.xrange(names.plans))) == 2
    assert (await planned(http, tenant, lost.id))["status"] == "done"


async def test_a_phone_that_was_offline_keeps_the_times_its_driver_acted(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    delivery_day: Day,
    planner: None,
) -> None:
    """Start, arrive, deliver and fail sent late with ``at``: the route and its stops keep
    those times, not the server's; a time ahead of the server's clock or older than a day is a
    400 naming ``at``."""
    await plan_and_dispatch(http, tenant, delivery_day)
    driver = tenant.drivers[0]
    phone = device(driver.token)
    route = (await http.get("/v1/driver/route", headers=phone)).json()
    first, second = route["stops"][0]["id"], route["stops"][1]["id"]
    now = datetime.now(UTC)

    def when(minutes_ago: int) -> dict[str, str]:
        return {"at": (now - timedelta(minutes=minutes_ago)).isoformat()}

    ahead = await http.post(
        "/v1/driver/route/start", json={"at": (now + timedelta(hours=1)).isoformat()},
        headers=phone,
    )  # fmt: skip
    assert ahead.status_code == 400
    assert ahead.json()["field"] == "at"
    old = await http.post("/v1/driver/route/start", json=when(60 * 25), headers=phone)
    assert old.status_code == 400
    assert old.json()["field"] == "at"
    for path, body in [
        ("/v1/driver/route/start", when(50)),
        (f"/v1/driver/stops/{first}/arrive", when(40)),
        (f"/v1/driver/stops/{first}/deliver", when(35)),
        (f"/v1/driver/stops/{second}/fail", {"code": "not_home", **when(20)}),
    ]:
        sent = await http.post(path, json=body, headers=phone)
        assert sent.status_code == 200, (path, sent.text)
    after = await http.get(f"/v1/routes/{route['id']}", headers=key(tenant))
    assert after.status_code == 200, after.text
    stops = {s["id"]: s for s in after.json()["stops"]}

    def same(iso: str | None, minutes_ago: int) -> bool:
        assert iso is not None
        return abs(
            datetime.fromisoformat(iso) - (now - timedelta(minutes=minutes_ago))
        ) < timedelta(seconds=1)

    assert same(stops[first]["arrived_at"], 40)
    assert same(stops[first]["completed_at"], 35)
    assert same(stops[second]["completed_at"], 20)
    assert stops[second]["status"] == "failed"
