"""``GET /v1/driver/ws``: the driver app's socket.

Upstream, the app streams pings (one per message, or batches) and gets an ``ack`` per message,
naming the message ``id`` it sent, how many pings are on the stream, and each one rejected. An
ack is sent only after Redis has the pings, so an unacknowledged message must be re-sent (the
store keeps each ping once). Messages of one socket are handled in order, one at a time: a
driver produces about one ping a second, so per-socket pipelining would buy nothing.

Downstream, the socket carries the driver's route: the current one right after connecting (so a
reconnecting app resumes), then every change as it is committed, through the process's hub.
Frames are JSON (text) until the app sends a binary frame; from then on MessagePack.
A socket that falls more than the hub's queue behind is closed with 4408 and a reason.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.websockets import WebSocket, WebSocketDisconnect

from app.api.pings import accept, count_rejections
from app.errors import (
    CLOSE_TOO_SLOW,
    Unauthorized,
    Unavailable,
    close_reason,
    close_socket,
)
from app.metrics import PINGS_REJECTED, WS_CONNECTIONS
from app.resources import Resources
from realtime.errors import IngestError
from realtime.hub import Overflowed, Subscription
from realtime.protocols.native import decode_ws_message, peek_message_id
from schemas.auth import DevicePrincipal
from schemas.codecs import ROUTE_MESSAGE_MSGPACK, WS_SERVER_JSON, WS_SERVER_MSGPACK
from schemas.driver_ws import Ack, ErrorMessage, RouteMessage, ServerMessage
from store import routes as route_store


@dataclass
class _Peer:
    """What the two directions of one socket share."""

    websocket: WebSocket
    binary: bool = False

    async def send(self, message: ServerMessage) -> None:
        if self.binary:
            await self.websocket.send_bytes(WS_SERVER_MSGPACK.encode(message))
        else:
            await self.websocket.send_text(WS_SERVER_JSON.encode(message).decode())


async def driver_socket(websocket: WebSocket) -> None:
    """Authenticate, send the current route, then ingest pings and forward route changes."""
    resources: Resources = websocket.app.state.resources
    await websocket.accept()
    try:
        principal = await resources.auth.require_device(websocket)
    except Unauthorized as exc:
        await close_socket(websocket, exc)
        return
    peer = _Peer(websocket)
    WS_CONNECTIONS.labels("driver").inc()
    channel = resources.names.driver_channel(principal.driver_id)
    try:
        with resources.auth.revocable(websocket) as revoked:
            async with resources.hub.subscribe(channel) as subscription:
                await _send_current_route(resources, principal, peer)
                pusher = asyncio.create_task(_push(peer, subscription))
                receiver = asyncio.create_task(_receive(resources, principal, peer))
                watcher = asyncio.create_task(revoked.wait())
                try:
                    await asyncio.wait([receiver, watcher], return_when=asyncio.FIRST_COMPLETED)
                    if revoked.is_set():  # the token was revoked, or its driver made inactive
                        await close_socket(websocket, Unauthorized("the device token was revoked"))
                    else:
                        receiver.result()
                finally:
                    for task in (pusher, receiver, watcher):
                        task.cancel()
                        with contextlib.suppress(
                            asyncio.CancelledError, WebSocketDisconnect, Exception
                        ):
                            await task
    except WebSocketDisconnect:
        return
    finally:
        WS_CONNECTIONS.labels("driver").dec()


async def _send_current_route(
    resources: Resources, principal: DevicePrincipal, peer: _Peer
) -> None:
    async with resources.pool.connection() as conn:
        route_id = await route_store.current_route_id(conn, principal.org_id, principal.driver_id)
        view = (
            None
            if route_id is None
            else await route_store.route_view(conn, principal.org_id, route_id)
        )
    if view is not None:
        await peer.send(RouteMessage(route=view))


async def _push(peer: _Peer, subscription: Subscription) -> None:
    while True:
        try:
            data = await subscription.get()
        except Overflowed as exc:
            await peer.websocket.close(CLOSE_TOO_SLOW, close_reason(str(exc)))
            return
        await peer.send(ROUTE_MESSAGE_MSGPACK.decode(data))


async def _receive(resources: Resources, principal: DevicePrincipal, peer: _Peer) -> None:
    settings = resources.settings
    websocket = peer.websocket
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        data: bytes | str | None = message.get("bytes")
        peer.binary = data is not None
        if data is None:
            data = message.get("text") or ""
        now = datetime.now(UTC)
        reply: ServerMessage
        try:
            decoded = decode_ws_message(
                data,
                now=now,
                max_future_s=settings.ping_max_future_s,
                max_age_s=settings.ping_max_age_s,
            )
        except IngestError as exc:
            PINGS_REJECTED.labels("ws", "malformed").inc()
            reply = ErrorMessage(id=peek_message_id(data), reason=exc.reason, field=exc.field)
        else:
            try:
                accepted = await accept(resources, principal, "ws", decoded.pings, now)
            except Unavailable as exc:
                await close_socket(websocket, exc)
                return
            count_rejections("ws", decoded.rejected)
            reply = Ack(id=decoded.id, accepted=accepted, rejected=decoded.rejected)
        await peer.send(reply)
