"""Customer tracking links: the view follows the delivery, the socket keeps it private and live."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
import websockets
from redis.asyncio import Redis

from realtime.events import emit
from realtime.streams import StreamNames
from schemas.eta import ArrivalWindow
from schemas.events import DeliveryUpdate
from schemas.ids import StopId
from tests.conftest import LiveServer, Tenant, make_tenant
from tests.days import Day, device, key, moved_window, plan_and_dispatch


async def link_of(http: httpx.AsyncClient, tenant: Tenant, order_id: int) -> str:
    response = await http.post(f"/v1/orders/{order_id}/tracking", headers=key(tenant))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["url"] == f"/t/{body['token']}"
    return str(body["token"])


async def view(http: httpx.AsyncClient, token: str) -> dict[str, Any]:
    response = await http.get(f"/v1/track/{token}")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def first_route(http: httpx.AsyncClient, tenant: Tenant, day: Day) -> dict[str, Any]:
    """The route of the tenant's first driver, with at least two stops."""
    routes = (await http.get(f"/v1/routes?day={day.day}", headers=key(tenant))).json()["routes"]
    route = next(r for r in routes if r["driver_id"] == tenant.drivers[0].id)
    assert len(route["stops"]) >= 2
    return dict(route)


def ping(lat: float, lon: float, seconds_ago: float = 0) -> dict[str, Any]:
    moment = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    return {"pings": [{"time": moment.isoformat(), "lat": lat, "lon": lon, "heading_deg": 90.0}]}


async def receive(socket: Any) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(socket.recv(), 10))
    return message


def names_of(server: LiveServer) -> StreamNames:
    return StreamNames(prefix=server.settings.redis_prefix, shards=server.settings.ping_shards)


def window_changed(
    org_id: int, route: dict[str, Any], stop: dict[str, Any], likely: int
) -> DeliveryUpdate:
    """The event the ETA worker emits when ``stop``'s window moved to around ``likely``."""

    def window(at: int) -> ArrivalWindow:
        return ArrivalWindow(
            stop_id=StopId(stop["id"]),
            order_id=stop["order_id"],
            likely_epoch_s=at,
            lower_epoch_s=at - 600,
            upper_epoch_s=at + 900,
            computed_epoch_s=at - 3600,
        )

    return moved_window(org_id, route, stop, window(likely), previous=window(likely - 1200))


async def test_links_are_issued_for_the_organisations_own_orders_only(
    http: httpx.AsyncClient, tenant: Tenant, delivery_day: Day, db: psycopg.AsyncConnection
) -> None:
    """An order of another organisation, an unknown token and a malformed one are all 404."""
    token = await link_of(http, tenant, delivery_day.orders["o0"])
    body = await view(http, token)
    assert body["type"] == "track"
    assert body["order_ref"] == "o0"
    assert body["status"] == "received"
    assert body["time_zone"] == "UTC"
    assert [w["start"][11:16] for w in body["requested"]] == ["08:00"]
    stranger = await make_tenant(db, drivers=0)
    other = await http.post(
        f"/v1/orders/{delivery_day.orders['o0']}/tracking", headers=key(stranger)
    )
    assert other.status_code == 404
    assert (await http.post("/v1/orders/1/tracking")).status_code == 401
    for bad in ("A" * 24, "a.b.c", "x"):
        response = await http.get(f"/v1/track/{bad}")
        assert response.status_code == 404, bad
        assert response.json()["reason"] == "unknown tracking link"


async def test_the_view_follows_the_delivery_and_shows_the_driver_only_when_next(
    http: httpx.AsyncClient, tenant: Tenant, delivery_day: Day, planner: None
) -> None:
    """Scheduled, on the way with stops before, next (with the driver), arrived, delivered."""
    await plan_and_dispatch(http, tenant, delivery_day)
    route = await first_route(http, tenant, delivery_day)
    first, second = route["stops"][0], route["stops"][1]
    token_a = await link_of(http, tenant, first["order_id"])
    token_b = await link_of(http, tenant, second["order_id"])
    driver = device(tenant.drivers[0].token)

    assert (await view(http, token_a))["status"] == "scheduled"
    assert (await http.post("/v1/driver/route/start", headers=driver)).status_code == 200
    response = await http.post("/v1/pings", json=ping(52.52, 13.41), headers=driver)
    assert response.status_code == 200, response.text

    a, b = await view(http, token_a), await view(http, token_b)
    assert (a["status"], a["stops_before"]) == ("en_route", 0)
    assert (a["driver"]["lat"], a["driver"]["lon"]) == (52.52, 13.41)
    assert (b["status"], b["stops_before"], b["driver"]) == ("out_for_delivery", 1, None)
    assert b["address"] == second["address"]
    # Nothing of the other customer leaks into this one's view.
    assert first["address"] not in json.dumps(b)
    assert first["order_ref"] not in json.dumps(b)

    await http.post(f"/v1/driver/stops/{first['id']}/arrive", headers=driver)
    assert (await view(http, token_a))["status"] == "arrived"
    await http.post(f"/v1/driver/stops/{first['id']}/deliver", headers=driver)
    a, b = await view(http, token_a), await view(http, token_b)
    assert a["status"] == "delivered"
    assert a["completed_at"] is not None
    assert a["driver"] is None
    assert b["status"] == "en_route"
    assert b["driver"]["lat"] == 52.52

    await http.post(
        f"/v1/driver/stops/{second['id']}/fail", json={"reason": "nobody home"}, headers=driver
    )
    b = await view(http, token_b)
    assert (b["status"], b["failure_reason"], b["driver"]) == ("failed", "nobody home", None)


async def test_the_socket_sends_only_this_customers_window_and_the_driver_once_next(
    server: LiveServer,
    second_server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    delivery_day: Day,
    planner: None,
    redis: Redis,
) -> None:
    """Pings and other stops' windows stay private; positions cross processes once next."""
    await plan_and_dispatch(http, tenant, delivery_day)
    route = await first_route(http, tenant, delivery_day)
    first, second = route["stops"][0], route["stops"][1]
    token = await link_of(http, tenant, second["order_id"])
    driver = device(tenant.drivers[0].token)
    names = names_of(server)
    await http.post("/v1/driver/route/start", headers=driver)

    # The customer is connected to the other API process: everything crosses Redis.
    url = f"{second_server.ws_url}/v1/track/{token}/ws"
    async with websockets.connect(url) as socket:
        track = await receive(socket)
        assert (track["type"], track["status"], track["stops_before"]) == (
            "track",
            "out_for_delivery",
            1,
        )
        # A ping and the first customer's window must not reach this socket; its own does.
        await http.post("/v1/pings", json=ping(52.53, 13.42), headers=driver)
        await emit(redis, names, window_changed(tenant.org_id, route, first, 1_900_000_000))
        await emit(redis, names, window_changed(tenant.org_id, route, second, 1_900_003_600))
        message = await receive(socket)
        assert message["type"] == "window"
        assert message["estimate"]["likely"] == "2030-03-17T18:46:40Z"
        assert message["estimate"]["earliest"] == "2030-03-17T18:36:40Z"

        # The first stop is done: this one is next, and the driver becomes visible.
        await http.post(f"/v1/driver/stops/{first['id']}/deliver", headers=driver)
        track = await receive(socket)
        assert (track["status"], track["driver"]["lat"]) == ("en_route", 52.53)
        await http.post("/v1/pings", json=ping(52.54, 13.43), headers=driver)
        message = await receive(socket)
        assert message == {
            "type": "position",
            "driver": {
                "lat": 52.54,
                "lon": 13.43,
                "heading_deg": 90.0,
                "time": message["driver"]["time"],
            },
        }

        await http.post(f"/v1/driver/stops/{second['id']}/deliver", headers=driver)
        track = await receive(socket)
        assert (track["status"], track["driver"], track["estimate"]) == ("delivered", None, None)
        with pytest.raises(websockets.ConnectionClosedOK) as closed:
            await receive(socket)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.reason == "the delivery has ended"


async def test_a_link_expires_hours_after_the_delivery(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    delivery_day: Day,
    planner: None,
    db: psycopg.AsyncConnection,
) -> None:
    """Within the time to live the end state is shown; past it, 410 and socket close 4410."""
    await plan_and_dispatch(http, tenant, delivery_day)
    route = await first_route(http, tenant, delivery_day)
    stop = route["stops"][0]
    token = await link_of(http, tenant, stop["order_id"])
    driver = device(tenant.drivers[0].token)
    await http.post("/v1/driver/route/start", headers=driver)
    await http.post(f"/v1/driver/stops/{stop['id']}/deliver", headers=driver)
    assert (await view(http, token))["status"] == "delivered"

    ttl_h = server.settings.tracking_ttl_h
    await db.execute(
        "UPDATE stops SET completed_at = now() - %s WHERE id = %s",
        (timedelta(hours=ttl_h, minutes=1), stop["id"]),
    )
    response = await http.get(f"/v1/track/{token}")
    assert response.status_code == 410
    assert response.json()["reason"] == "this tracking link has expired"
    async with websockets.connect(f"{server.ws_url}/v1/track/{token}/ws") as socket:
        with pytest.raises(websockets.ConnectionClosedError) as closed:
            await receive(socket)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4410

    async with websockets.connect(f"{server.ws_url}/v1/track/{'B' * 24}/ws") as socket:
        with pytest.raises(websockets.ConnectionClosedError) as closed:
            await receive(socket)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4404


async def test_a_cancelled_order_ends_its_customers_socket(
    server: LiveServer, http: httpx.AsyncClient, tenant: Tenant, delivery_day: Day
) -> None:
    """Cancelling an order that is not on a route yet reaches its open page as the end state."""
    token = await link_of(http, tenant, delivery_day.orders["o1"])
    async with websockets.connect(f"{server.ws_url}/v1/track/{token}/ws") as socket:
        assert (await receive(socket))["status"] == "received"
        response = await http.post(
            f"/v1/orders/{delivery_day.orders['o1']}/cancel",
            json={"reason": "customer asked"},
            headers=key(tenant),
        )
        assert response.status_code == 200, response.text
        assert (await receive(socket))["status"] == "cancelled"
