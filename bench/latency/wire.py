"""What the clients speak: a minimal WebSocket client and the message fields measured."""

from __future__ import annotations

import asyncio
import base64
import secrets
from datetime import UTC, datetime, timedelta

import msgspec

from bench.ingest import ws_frame

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_US = timedelta(microseconds=1)


# --- a minimal WebSocket client ---------------------------------------------------------------


class Closed(Exception):
    """The server closed the socket (or refused the upgrade) with ``code`` and ``reason``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"closed {code}: {reason}")
        self.code = code
        self.reason = reason


class Socket:
    """A client WebSocket over a raw stream: text frames out, whole messages in, pongs."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, path: str) -> Socket:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(secrets.token_bytes(16)).decode()
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        status = (await reader.readuntil(b"\r\n\r\n")).split(b"\r\n", 1)[0]
        if b" 101 " not in status:
            writer.close()
            raise Closed(0, status.decode(errors="replace"))
        return cls(reader, writer)

    def send_text(self, payload: bytes) -> None:
        self.writer.write(ws_frame(payload))

    async def receive(self) -> bytes:
        """The next data message; answers pings; raises :class:`Closed` on a close frame."""
        parts: list[bytes] = []
        while True:
            head = await self.reader.readexactly(2)
            length = head[1] & 0x7F
            if length >= 126:
                length = int.from_bytes(await self.reader.readexactly(2 if length == 126 else 8))
            payload = await self.reader.readexactly(length) if length else b""
            opcode = head[0] & 0x0F
            if opcode == 0x9:
                self.writer.write(ws_frame(payload, 0xA))
            elif opcode == 0x8:
                code = int.from_bytes(payload[:2]) if len(payload) >= 2 else 1005
                raise Closed(code, payload[2:].decode(errors="replace"))
            elif opcode != 0xA:
                parts.append(payload)
                if head[0] & 0x80:
                    return b"".join(parts)

    def close(self) -> None:
        self.writer.close()


# --- what the clients send and read (only the fields measured) --------------------------------


class PingOut(msgspec.Struct, tag="ping"):
    id: int
    time: datetime
    lat: float
    lon: float
    speed_mps: float
    accuracy_m: float


class _Ack(msgspec.Struct):
    type: str
    accepted: int = 0


class _Stamp(msgspec.Struct):
    driver_id: int
    time: datetime


class Positions(msgspec.Struct, tag="positions"):
    drivers: list[_Stamp]


class Snapshot(msgspec.Struct, tag="snapshot"):
    pass


class _Window(msgspec.Struct):
    computed_epoch_s: int


class _Detail(msgspec.Struct):
    type: str
    driver_id: int = 0
    window: _Window | None = None


class _Happening(msgspec.Struct):
    type: str
    detail: _Detail | None = None


class _EventMessage(msgspec.Struct, tag="event"):
    event: _Happening


class WindowChanges(msgspec.Struct, tag="windows"):
    changes: list[_Detail]


class _Estimate(msgspec.Struct):
    as_of: datetime


class _Track(msgspec.Struct, tag="track"):
    pass


class WindowMessage(msgspec.Struct, tag="window"):
    estimate: _Estimate


class _Spot(msgspec.Struct):
    time: datetime


class PositionMessage(msgspec.Struct, tag="position"):
    driver: _Spot


PING_OUT = msgspec.json.Encoder()
ACK = msgspec.json.Decoder(_Ack)
LIVE = msgspec.json.Decoder(Positions | Snapshot | _EventMessage | WindowChanges)
TRACK = msgspec.json.Decoder(_Track | WindowMessage | PositionMessage)


def epoch_us(moment: datetime) -> int:
    return (moment - EPOCH) // ONE_US
