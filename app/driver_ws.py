"""``GET /v1/driver/ws``: the driver app's socket.

The app streams pings (one per message, or batches) and gets an ``ack`` per message, naming
the message ``id`` it sent, how many pings are on the stream, and each one rejected. Text
frames are JSON, binary frames MessagePack; the ack uses the frame kind of the message. An
ack is sent only after Redis has the pings, so an unacknowledged message must be re-sent
(the store keeps each ping once). The same socket will carry route changes to the driver.

Messages of one socket are handled in order, one at a time: a driver produces about one
ping a second, so per-socket pipelining would buy nothing and cost ordering.
"""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.websockets import WebSocket, WebSocketDisconnect

from app.auth import AuthError
from app.errors import CLOSE_TRY_AGAIN, CLOSE_UNAUTHORIZED, Unavailable
from app.ingest import accept, count_rejections
from app.metrics import PINGS_REJECTED, WS_CONNECTIONS
from app.resources import Resources
from realtime.errors import IngestError
from realtime.protocols.native import decode_ws_message, peek_message_id
from schemas.codecs import WS_SERVER_JSON, WS_SERVER_MSGPACK
from schemas.driver_ws import Ack, ErrorMessage, ServerMessage


async def driver_socket(websocket: WebSocket) -> None:
    """Authenticate, then ingest every ping message until the client leaves."""
    resources: Resources = websocket.app.state.resources
    await websocket.accept()
    try:
        principal = await resources.auth.require_device(websocket)
    except AuthError as exc:
        await websocket.close(CLOSE_UNAUTHORIZED, exc.reason)
        return
    settings = resources.settings
    WS_CONNECTIONS.labels("driver").inc()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data: bytes | str | None = message.get("bytes")
            binary = data is not None
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
                    await websocket.close(CLOSE_TRY_AGAIN, exc.reason[:120])
                    return
                count_rejections("ws", decoded.rejected)
                reply = Ack(id=decoded.id, accepted=accepted, rejected=decoded.rejected)
            if binary:
                await websocket.send_bytes(WS_SERVER_MSGPACK.encode(reply))
            else:
                await websocket.send_text(WS_SERVER_JSON.encode(reply).decode())
    except WebSocketDisconnect:
        return
    finally:
        WS_CONNECTIONS.labels("driver").dec()
