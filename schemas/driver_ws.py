"""The driver WebSocket protocol: messages between a driver app and the server.

Every message is an object whose ``type`` names it (a msgspec tagged union). Text frames carry
JSON, binary frames MessagePack; both decode into the same Structs.

Client → server (:data:`ClientMessage`):

* ``ping`` — one fix, its :class:`~schemas.ping.Ping` fields flattened into the message;
* ``pings`` — up to :data:`~schemas.ping.MAX_PINGS_PER_BATCH` fixes, e.g. after being offline.
  An empty ``pings`` message is the application-level heartbeat: it is acknowledged like any
  other, so a client that cannot see WebSocket pings (a browser) learns the socket is alive.

Server → client (:data:`ServerMessage`):

* ``ack`` — answer to ``ping``/``pings``: how many fixes are on the stream and why each other
  one was rejected (``rejected[].index`` is the position in ``pings``, 0 for a ``ping``);
* ``error`` — a message that could not be decoded at all; ``id`` echoes the message's ``id``
  when it could be read.

``id`` is chosen by the client (any integer, typically a counter) and echoed in the answer, so
a client can match acks to sends and re-send what was never acknowledged.

Evolving the union: route updates (server → client ``route``, ``route_changed``) and stop
outcomes (client → server) will be added as new tagged members. A new member never changes an
existing one; new fields get defaults; clients must ignore message types they do not know, and
the server answers an unknown client ``type`` with an ``error`` instead of closing.
"""

from __future__ import annotations

from typing import Any

import msgspec

from schemas.ping import (
    AccuracyM,
    AltitudeM,
    AwareTime,
    BatteryPct,
    HeadingDeg,
    Latitude,
    Longitude,
    Ping,
    Rejection,
    Seq,
    SpeedMps,
)
from schemas.route import RouteView

_PING_FIELDS = Ping.__struct_fields__


class PingMessage(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="ping"):
    """One fix: the fields of :class:`~schemas.ping.Ping`, plus the ``id`` the server echoes."""

    id: int | None = None
    time: AwareTime
    lat: Latitude
    lon: Longitude
    speed_mps: SpeedMps | None = None
    heading_deg: HeadingDeg | None = None
    accuracy_m: AccuracyM | None = None
    altitude_m: AltitudeM | None = None
    battery_pct: BatteryPct | None = msgspec.field(default=None, name="battery")
    seq: Seq | None = None

    def to_ping(self) -> Ping:
        """The fix as a plain :class:`~schemas.ping.Ping` (without ``type`` and ``id``)."""
        values: dict[str, Any] = {name: getattr(self, name) for name in _PING_FIELDS}
        return Ping(**values)


class PingsMessage(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="pings"):
    """Several fixes in one message, oldest first."""

    id: int | None = None
    pings: list[Ping]


ClientMessage = PingMessage | PingsMessage
"""Everything a driver app may send."""


class Ack(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="ack"):
    """Answer to a ``ping`` or ``pings`` message."""

    id: int | None = None
    accepted: int
    rejected: list[Rejection] = []


class ErrorMessage(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="error"):
    """A client message that could not be decoded; ``field`` is what was wrong, when known."""

    id: int | None = None
    reason: str
    field: str | None = None


class RouteMessage(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="route"):
    """The driver's route, new or changed: the app replaces what it shows if ``version`` is newer.

    Sent on dispatch, on every change to the remaining stops, and on connect (so a reconnecting
    app resumes from the current route).
    """

    route: RouteView


ServerMessage = Ack | ErrorMessage | RouteMessage
"""Everything the server sends a driver app (route updates will join this union)."""
