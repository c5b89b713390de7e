"""The dispatcher's live feed: across API processes, coalesced positions, events and resume."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest
import websockets
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection

from realtime.events import emit
from realtime.streams import StreamNames
from schemas.eta import ArrivalWindow, EtaChanged
from schemas.events import DeliveryUpdate, OrderCancelled
from schemas.ids import OrderId, RouteId, StopId
from tests.conftest import LiveServer, Tenant, make_tenant
from tests.days import Day, plan_and_dispatch
from tests.helpers import Trace, stream_entries


async def receive(socket: ClientConnection, kind: str) -> dict[str, Any]:
    """The next message of type ``kind`` (others are skipped)."""
    while True:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(socket.recv(), 10))
        if message["type"] == kind:
            return message


def ping_of(tenant: Tenant, n: int) -> tuple[dict[str, str], dict[str, Any]]:
    return {"authorization": f"Bearer {tenant.drivers[n].token}"}, {"pings": Trace(seed=n).pings(1)}


async def test_a_ping_on_one_process_reaches_a_dispatcher_on_another(
    server: LiveServer, second_server: LiveServer, tenant: Tenant
) -> None:
    """The snapshot has the known position; a ping ingested elsewhere arrives as a position."""
    headers, body = ping_of(tenant, 0)
    async with httpx.AsyncClient(base_url=server.url) as http:
        await http.post("/v1/pings", json=body, headers=headers)
        url = f"{second_server.ws_url}/v1/live/ws?token={tenant.api_key}"
        async with websockets.connect(url) as socket:
            snapshot = await receive(socket, "snapshot")
            assert [d["driver_id"] for d in snapshot["drivers"]] == [tenant.drivers[0].id]
            headers, body = ping_of(tenant, 1)
            await http.post("/v1/pings", json=body, headers=headers)
            positions = await receive(socket, "positions")
    assert [d["driver_id"] for d in positions["drivers"]] == [tenant.drivers[1].id]
    assert positions["drivers"][0]["lat"] == body["pings"][0]["lat"]


async def test_another_organisation_sees_none_of_it(
    server: LiveServer, tenant: Tenant, db: psycopg.AsyncConnection
) -> None:
    """A stranger's screen gets an empty snapshot and no positions of this organisation."""
    stranger = await make_tenant(db, drivers=1)
    async with httpx.AsyncClient(base_url=server.url) as http:
        url = f"{server.ws_url}/v1/live/ws?token={stranger.api_key}"
        async with websockets.connect(url) as socket:
            assert (await receive(socket, "snapshot"))["drivers"] == []
            headers, body = ping_of(tenant, 0)
            await http.post("/v1/pings", json=body, headers=headers)
            own_headers, own_body = ping_of(stranger, 0)
            await http.post("/v1/pings", json=own_body, headers=own_headers)
            positions = await receive(socket, "positions")
    assert [d["driver_id"] for d in positions["drivers"]] == [stranger.drivers[0].id]


async def test_events_arrive_in_order_and_a_reconnect_resumes_after_the_last_seen(
    server: LiveServer, tenant: Tenant, redis: Redis
) -> None:
    """Each event carries its id; reconnecting with ?since= replays exactly the missed ones."""
    names = StreamNames(prefix=server.settings.redis_prefix, shards=server.settings.ping_shards)

    def cancelled(order_id: int) -> OrderCancelled:
        return OrderCancelled(
            org_id=tenant.org_id, at=datetime.now(UTC), order_id=OrderId(order_id)
        )

    url = f"{server.ws_url}/v1/live/ws?token={tenant.api_key}"
    async with websockets.connect(url) as socket:
        await receive(socket, "snapshot")
        await emit(redis, names, cancelled(1))
        first = await receive(socket, "event")
    assert first["event"] == {
        "type": "order_cancelled",
        "org_id": tenant.org_id,
        "at": first["event"]["at"],
        "order_id": 1,
        "route_id": None,
    }
    await emit(redis, names, cancelled(2), cancelled(3))
    async with websockets.connect(f"{url}&since={first['id']}") as socket:
        assert (await receive(socket, "snapshot"))["replay"] == "follows"
        replayed = [await receive(socket, "event") for _ in range(2)]
    assert [e["event"]["order_id"] for e in replayed] == [2, 3]


async def test_a_gap_older_than_the_kept_events_gets_a_snapshot_that_says_so(
    server: LiveServer, tenant: Tenant, redis: Redis
) -> None:
    """When the events after ``?since=`` may have been trimmed, the snapshot is flagged
    ``too_old`` and none are replayed: the next event is the next live one."""
    names = StreamNames(prefix=server.settings.redis_prefix, shards=server.settings.ping_shards)
    await emit(
        redis,
        names,
        *(
            OrderCancelled(org_id=tenant.org_id, at=datetime.now(UTC), order_id=OrderId(n))
            for n in range(5)
        ),
    )
    [(oldest, _)] = stream_entries(await redis.xrange(names.org_events(tenant.org_id), count=1))
    await redis.xtrim(names.org_events(tenant.org_id), maxlen=2, approximate=False)
    url = f"{server.ws_url}/v1/live/ws?token={tenant.api_key}&since={oldest.decode()}"
    async with websockets.connect(url) as socket:
        assert (await receive(socket, "snapshot"))["replay"] == "too_old"
        await emit(
            redis,
            names,
            OrderCancelled(org_id=tenant.org_id, at=datetime.now(UTC), order_id=OrderId(9)),
        )
        assert (await receive(socket, "event"))["event"]["order_id"] == 9


def moved(tenant: Tenant, stop_id: int, likely_s: int) -> DeliveryUpdate:
    """The ETA worker's ``eta_changed`` for ``stop_id``, now expected at ``likely_s``."""
    window = ArrivalWindow(
        stop_id=StopId(stop_id),
        order_id=OrderId(stop_id),
        likely_epoch_s=likely_s,
        lower_epoch_s=likely_s - 300,
        upper_epoch_s=likely_s + 600,
        computed_epoch_s=likely_s - 3600,
    )
    detail = EtaChanged(
        driver_id=tenant.drivers[0].id,
        route_id=RouteId(1),
        route_version=1,
        stop_id=StopId(stop_id),
        order_id=OrderId(stop_id),
        at_epoch_s=window.computed_epoch_s,
        previous=window,
        window=window,
    )
    return DeliveryUpdate(org_id=tenant.org_id, at=datetime.now(UTC), detail=detail)


async def test_moved_windows_are_coalesced_per_stop_and_never_cut_a_screen_off(
    server: LiveServer, tenant: Tenant, redis: Redis
) -> None:
    """A burst of moved windows, more than a screen's event queue holds, reaches it as
    ``windows`` messages ending with each stop's newest; the screen stays open, and a replay
    after a reconnect leaves them out (its snapshot has the current windows)."""
    names = StreamNames(prefix=server.settings.redis_prefix, shards=server.settings.ping_shards)
    start = 1_900_000_000
    burst = [moved(tenant, stop, start + 60 * i) for i in range(200) for stop in (7, 8)]
    url = f"{server.ws_url}/v1/live/ws?token={tenant.api_key}"
    async with websockets.connect(url) as socket:
        await receive(socket, "snapshot")
        await emit(
            redis,
            names,
            OrderCancelled(org_id=tenant.org_id, at=datetime.now(UTC), order_id=OrderId(1)),
        )
        before = await receive(socket, "event")
        await emit(redis, names, *burst)
        await emit(
            redis,
            names,
            OrderCancelled(org_id=tenant.org_id, at=datetime.now(UTC), order_id=OrderId(2)),
        )
        newest: dict[int, int] = {}
        after: list[int] = []
        last = {7: start + 60 * 199, 8: start + 60 * 199}
        while newest != last or not after:
            message = json.loads(await asyncio.wait_for(socket.recv(), 10))
            if message["type"] == "windows":
                for change in message["changes"]:
                    newest[change["stop_id"]] = change["window"]["likely_epoch_s"]
            elif message["type"] == "event":  # never an eta_changed: those come as windows
                assert message["event"]["type"] == "order_cancelled", message
                after.append(message["event"]["order_id"])
    assert after == [2]
    async with websockets.connect(f"{url}&since={before['id']}") as socket:
        await receive(socket, "snapshot")
        replayed = await receive(socket, "event")
        assert replayed["event"] == {
            "type": "order_cancelled",
            "org_id": tenant.org_id,
            "at": replayed["event"]["at"],
            "order_id": 2,
            "route_id": None,
        }


async def test_a_bad_area_or_key_closes_with_a_reason(server: LiveServer, tenant: Tenant) -> None:
    """A malformed bbox, day or resume id closes with 4400 and an unknown key with 4401, with a
    reason."""
    cases = (
        (f"token={tenant.api_key}&bbox=1,2,3", 4400),
        (f"token={tenant.api_key}&day=tomorrow", 4400),
        (f"token={tenant.api_key}&since=1700000000000-0-0", 4400),
        ("token=lmk_nope", 4401),
    )
    for query, code in cases:
        async with websockets.connect(f"{server.ws_url}/v1/live/ws?{query}") as socket:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await socket.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == code
        assert closed.value.rcvd.reason


async def test_a_long_bad_area_closes_with_a_reason_a_close_frame_can_carry(
    server: LiveServer, tenant: Tenant
) -> None:
    """A kilobyte-long malformed bbox still closes with 4400 and a reason of at most 123 bytes."""
    url = f"{server.ws_url}/v1/live/ws?token={tenant.api_key}&bbox={'1,' * 600}x"
    async with websockets.connect(url) as socket:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await socket.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4400
    assert closed.value.rcvd.reason.startswith("bbox")
    assert len(closed.value.rcvd.reason.encode()) <= 123


async def test_an_invalid_resume_id_closes_before_anything_is_sent(
    server: LiveServer, tenant: Tenant
) -> None:
    """A ``?since=`` that is no stream id closes with 4400 naming it, before any snapshot."""
    url = f"{server.ws_url}/v1/live/ws?token={tenant.api_key}&since=yesterday"
    async with websockets.connect(url) as socket:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await socket.recv()
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
        4400,
        "since: expected a stream entry id <ms>-<seq>, got 'yesterday'",
    )


@pytest.mark.usefixtures("planner")
async def test_the_snapshot_shows_a_chosen_day_with_the_organisations_zone(
    server: LiveServer, http: httpx.AsyncClient, tenant: Tenant, delivery_day: Day
) -> None:
    """``?day=`` picks the routes of that day; without it, today's (none here) are shown."""
    await plan_and_dispatch(http, tenant, delivery_day)
    url = f"{server.ws_url}/v1/live/ws?token={tenant.api_key}"
    async with (
        websockets.connect(url) as today,
        websockets.connect(f"{url}&day={delivery_day.day}") as chosen,
    ):
        now, then = await receive(today, "snapshot"), await receive(chosen, "snapshot")
    assert (now["day"], now["time_zone"], now["routes"]) == (
        datetime.now(UTC).date().isoformat(),
        "UTC",
        [],
    )
    assert then["day"] == delivery_day.day.isoformat()
    assert sorted(r["driver_id"] for r in then["routes"]) == sorted(d.id for d in tenant.drivers)
