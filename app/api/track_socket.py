"""The customer's socket, ``/v1/track/{token}/ws``: the order's view, then its changes.

The socket follows only that order's channel, its route's channel (to learn when the stops
before it are done) and, only while the stop is next or the driver is at the door, the driver's
own position channel (see :mod:`app.api.tracking` for what a customer may see, and why).

Slow sockets: events for the order come through a bounded queue; a socket that falls that far
behind is closed with 4408 and the page reconnects (it gets the current view). Positions are
latest-wins, as on the dispatcher feed. See :mod:`realtime.hub`.
"""

from __future__ import annotations

import asyncio
import contextlib

import msgspec
from starlette.websockets import WebSocket, WebSocketDisconnect

from app.api.tracking import (
    SHOWS_WINDOW,
    Where,
    current_view,
    estimate_of,
    order_of_link,
    spot_of,
)
from app.errors import (
    CLOSE_NORMAL,
    CLOSE_TOO_SLOW,
    Gone,
    NotFound,
    close_socket,
)
from app.metrics import WS_CONNECTIONS
from app.resources import Resources, cancel_and_wait
from realtime.hub import Overflowed
from realtime.streams import decode_live
from schemas.codecs import EVENT_DECODER, TRACK_JSON
from schemas.eta import EtaChanged
from schemas.events import DeliveryUpdate
from schemas.ids import OrderId, OrgId
from schemas.track import (
    END_STATES,
    PositionMessage,
    TrackMessage,
    TrackView,
    WindowMessage,
)


async def track_socket(websocket: WebSocket) -> None:
    """``/v1/track/{token}/ws``: the order's view, then its changes, until the delivery ends."""
    resources: Resources = websocket.app.state.resources
    await websocket.accept()
    try:
        org_id, order_id = await order_of_link(resources, websocket.path_params["token"])
    except (NotFound, Gone) as exc:
        await close_socket(websocket, exc)
        return
    WS_CONNECTIONS.labels("customer").inc()
    feed = CustomerFeed(resources, websocket, org_id, order_id)
    try:
        await feed.run()
    except WebSocketDisconnect:
        return
    finally:
        await feed.stop()
        WS_CONNECTIONS.labels("customer").dec()


_INBOX = 64


class CustomerFeed:
    """One customer socket: the channels it follows, and what it forwards from them."""

    def __init__(
        self, resources: Resources, websocket: WebSocket, org_id: OrgId, order_id: OrderId
    ) -> None:
        self.resources = resources
        self.websocket = websocket
        self.org_id = org_id
        self.order_id = order_id
        self.inbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(maxsize=_INBOX)
        self.view: TrackView | None = None
        self.where = Where()
        self._pumps: dict[str, asyncio.Task[None]] = {}

    async def run(self) -> None:
        """Serve the socket until the client leaves, falls behind, or the delivery ends."""
        closed = asyncio.create_task(self._until_closed())
        serving = asyncio.create_task(self._serve())
        try:
            await asyncio.wait((closed, serving), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (closed, serving):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, Exception):
                    await task

    async def stop(self) -> None:
        """Leave every channel."""
        await self._follow({})

    async def _serve(self) -> None:
        names = self.resources.names
        await self._follow({names.order_channel(self.org_id, self.order_id): "order"})
        if await self._refresh():
            return
        while True:
            kind, data = await self.inbox.get()
            if kind == "overflow":
                await self.websocket.close(CLOSE_TOO_SLOW, "fell behind; reconnect")
                return
            if kind == "position":
                if self.where.driver_id is not None:
                    spot = spot_of(decode_live(data.partition(b"|")[2]))
                    await self._send(PositionMessage(driver=spot))
                continue
            event = EVENT_DECODER.decode(data.partition(b"|")[2])
            if (
                isinstance(event, DeliveryUpdate)
                and isinstance(event.detail, EtaChanged)
                and event.detail.stop_id == self.where.stop_id
                and self.view is not None
                and self.view.status in SHOWS_WINDOW
            ):
                estimate = estimate_of(event.detail.window)
                self.view = msgspec.structs.replace(self.view, estimate=estimate)
                await self._send(WindowMessage(estimate=estimate))
                continue
            # Anything else about the order or its route may change the status: read it again.
            if await self._refresh():
                return

    async def _refresh(self) -> bool:
        """Send the view if it changed and follow what it needs; True once the delivery ended."""
        view, where = await current_view(self.resources, self.org_id, self.order_id)
        if where != self.where:
            await self._follow(self._channels(where))
            self.where = where
            # Subscribed now: read again so that nothing fell between the read and subscribing.
            view, where = await current_view(self.resources, self.org_id, self.order_id)
            if where != self.where:
                await self._follow(self._channels(where))
                self.where = where
        if view != self.view:
            self.view = view
            await self._send(view)
        if view.status in END_STATES:
            await self.websocket.close(CLOSE_NORMAL, "the delivery has ended")
            return True
        return False

    def _channels(self, where: Where) -> dict[str, str]:
        names = self.resources.names
        wanted = {names.order_channel(self.org_id, self.order_id): "order"}
        if where.route_id is not None:
            wanted[names.route_channel(where.route_id)] = "route"
        if where.driver_id is not None:
            wanted[names.driver_position_channel(where.driver_id)] = "position"
        return wanted

    async def _follow(self, wanted: dict[str, str]) -> None:
        """Follow exactly the channels of ``wanted`` (channel → kind); returns once subscribed."""
        for channel in [c for c in self._pumps if c not in wanted]:
            await cancel_and_wait(self._pumps.pop(channel))
        ready = []
        for channel, kind in wanted.items():
            if channel not in self._pumps:
                subscribed = asyncio.Event()
                self._pumps[channel] = asyncio.create_task(self._pump(channel, kind, subscribed))
                ready.append(subscribed.wait())
        await asyncio.gather(*ready)

    async def _pump(self, channel: str, kind: str, subscribed: asyncio.Event) -> None:
        hub = self.resources.hub
        if kind == "position":
            async with hub.subscribe_latest(channel) as positions:
                subscribed.set()
                while True:
                    for key, payload in (await positions.take()).items():
                        await self.inbox.put((kind, key + b"|" + payload))
        async with hub.subscribe(channel) as events:
            subscribed.set()
            while True:
                try:
                    data = await events.get()
                except Overflowed:
                    await self.inbox.put(("overflow", b""))
                    return
                await self.inbox.put((kind, data))

    async def _until_closed(self) -> None:
        while (await self.websocket.receive())["type"] != "websocket.disconnect":
            pass

    async def _send(self, message: TrackMessage) -> None:
        await self.websocket.send_text(TRACK_JSON.encode(message).decode())
