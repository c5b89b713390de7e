"""Screens and customer pages that stop reading are closed with a reason; nothing is lost."""

from __future__ import annotations

import asyncio
import json
import socket as sockets
from datetime import UTC, datetime
from typing import Any, cast

import httpx
import pytest
import websockets
from redis.asyncio import Redis
from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.uri import parse_uri

from realtime.events import emit
from realtime.streams import StreamNames
from schemas.eta import ArrivalWindow
from schemas.events import DeliveryUpdate, Event, RouteChanged
from schemas.ids import DriverId, OrgId, RouteId, StopId
from tests.conftest import LiveServer, Tenant
from tests.days import Day, device, key, moved_window, plan_and_dispatch


def names_of(server: LiveServer) -> StreamNames:
    return StreamNames(prefix=server.settings.redis_prefix, shards=server.settings.ping_shards)


class StalledClient:
    """A real WebSocket client (websockets' sans-I/O protocol) on a socket with a small receive
    buffer, which reads nothing between its first message and :meth:`drain`: a frozen phone."""

    def __init__(self, server: LiveServer, path: str) -> None:
        self.server = server
        self.protocol = ClientProtocol(parse_uri(server.ws_url + path), max_size=None)
        self.messages: list[dict[str, Any]] = []

    async def __aenter__(self) -> StalledClient:
        raw = sockets.socket(sockets.AF_INET, sockets.SOCK_STREAM)
        raw.setsockopt(sockets.SOL_SOCKET, sockets.SO_RCVBUF, 4096)
        raw.setblocking(False)
        settings = self.server.settings
        await asyncio.get_running_loop().sock_connect(raw, (settings.host, settings.port))
        self.reader, self.writer = await asyncio.open_connection(sock=raw)
        self.protocol.send_request(self.protocol.connect())
        await self._flush()
        while not self.messages:
            await self._read()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.writer.close()

    async def drain(self) -> Close:
        """Read every message until the server closes; how it closed."""
        while self.protocol.close_rcvd is None:
            await self._read()
        return self.protocol.close_rcvd

    async def _read(self) -> None:
        data = await asyncio.wait_for(self.reader.read(1 << 16), 30)
        if not data:
            raise AssertionError(f"connection lost after {len(self.messages)} messages")
        self.protocol.receive_data(data)
        for frame in self.protocol.events_received():
            if isinstance(frame, Frame) and frame.opcode is Opcode.TEXT:
                # The parser hands over the bytes it read (BytesLike only in the frame's type).
                self.messages.append(json.loads(cast(bytes, frame.data)))
        await self._flush()

    async def _flush(self) -> None:
        self.writer.write(b"".join(self.protocol.data_to_send()))
        await self.writer.drain()


async def emit_many(redis: Redis, names: StreamNames, events: list[Event]) -> None:
    for start in range(0, len(events), 500):
        await emit(redis, names, *events[start : start + 500])


async def test_a_dispatcher_screen_that_stops_reading_is_closed_and_resumes_without_loss(
    server: LiveServer, tenant: Tenant, redis: Redis
) -> None:
    """Past its queue the screen is closed with 4408; ``?since=`` then replays exactly the rest."""
    names = names_of(server)
    now = datetime.now(UTC)
    # Large events fill the socket's buffers after a few, so the hub's queue must overflow.
    events: list[Event] = [
        RouteChanged(
            org_id=OrgId(tenant.org_id),
            at=now,
            route_id=RouteId(1),
            driver_id=DriverId(tenant.drivers[0].id),
            version=n,
            change="x" * 50_000,
        )
        for n in range(600)
    ]
    path = f"/v1/live/ws?token={tenant.api_key}"
    async with StalledClient(server, path) as stalled:
        assert stalled.messages[0]["type"] == "snapshot"
        await emit_many(redis, names, events)
        closed = await stalled.drain()
    received = stalled.messages
    assert closed.code == 4408
    assert "reconnect with ?since=" in closed.reason
    seen = [m["event"]["version"] for m in received if m["type"] == "event"]
    assert 0 < len(seen) < len(events)
    assert seen == list(range(len(seen)))

    last = next(m["id"] for m in reversed(received) if m["type"] == "event")
    async with websockets.connect(f"{server.ws_url}{path}&since={last}", max_size=None) as again:
        assert json.loads(await again.recv())["type"] == "snapshot"
        rest = [json.loads(await again.recv())["event"]["version"] for _ in events[len(seen) :]]
    assert rest == list(range(len(seen), len(events)))


@pytest.mark.usefixtures("planner")
async def test_a_customer_page_that_stops_reading_is_closed_and_gets_the_current_view_again(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    delivery_day: Day,
    redis: Redis,
) -> None:
    """A flood of window changes closes an idle customer socket with 4408 without holding up
    another page of the same order; reconnecting gets the current view."""
    await plan_and_dispatch(http, tenant, delivery_day)
    routes = (await http.get(f"/v1/routes?day={delivery_day.day}", headers=key(tenant))).json()
    route = routes["routes"][0]
    stop = route["stops"][0]
    link = await http.post(f"/v1/orders/{stop['order_id']}/tracking", headers=key(tenant))
    token = link.json()["token"]
    await http.post("/v1/driver/route/start", headers=device(tenant.drivers[0].token))

    def changed(n: int) -> DeliveryUpdate:
        window = ArrivalWindow(
            stop_id=StopId(stop["id"]),
            order_id=stop["order_id"],
            likely_epoch_s=1_900_000_000 + n,
            lower_epoch_s=1_900_000_000 + n - 300,
            upper_epoch_s=1_900_000_000 + n + 300,
            computed_epoch_s=1_800_000_000 + n,
        )
        return moved_window(tenant.org_id, route, stop, window)

    path = f"/v1/track/{token}/ws"
    url = server.ws_url + path
    flood = [changed(n) for n in range(30_000)]
    async with StalledClient(server, path) as idle, websockets.connect(url) as attentive:
        assert idle.messages[0]["type"] == "track"
        assert json.loads(await attentive.recv())["type"] == "track"
        # In bursts the attentive page takes in full, while the idle one is stuck throughout.
        names = names_of(server)
        for burst in range(0, len(flood), 200):
            await emit(redis, names, *flood[burst : burst + 200])
            for _ in flood[burst : burst + 200]:
                message = json.loads(await asyncio.wait_for(attentive.recv(), 30))
                assert message["type"] == "window"
        assert message["estimate"]["likely"] == "2030-03-18T02:06:39Z"
        closed = await idle.drain()
    assert (closed.code, closed.reason) == (4408, "fell behind; reconnect")
    assert 1 < len(idle.messages) < len(flood)
    async with websockets.connect(url) as again:
        view = json.loads(await again.recv())
    assert view["type"] == "track"
    assert view["status"] == "en_route"
