"""A GPS fix from a driver's device, and the batch that carries fixes onto a ping stream.

:class:`Ping` is both the wire format of the native API (``POST /v1/pings``, the driver
WebSocket) and the internal form every protocol adapter produces. Its range checks run inside
msgspec's decoder, so a whole batch is validated in C; :func:`msgspec.convert` applies the same
checks to what the OsmAnd and OwnTracks adapters build.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from schemas.ids import DriverId, OrgId

Latitude = Annotated[float, Meta(ge=-90.0, le=90.0, description="WGS84 latitude, degrees")]
Longitude = Annotated[float, Meta(ge=-180.0, le=180.0, description="WGS84 longitude, degrees")]
AwareTime = Annotated[datetime, Meta(tz=True, description="timezone-aware instant")]
SpeedMps = Annotated[float, Meta(ge=0.0, le=150.0, description="ground speed, m/s")]
HeadingDeg = Annotated[float, Meta(ge=0.0, le=360.0, description="course over ground, degrees")]
AccuracyM = Annotated[float, Meta(ge=0.0, le=100_000.0, description="horizontal accuracy, m")]
AltitudeM = Annotated[float, Meta(ge=-1_000.0, le=20_000.0, description="altitude, m")]
BatteryPct = Annotated[float, Meta(ge=0.0, le=100.0, description="battery level, percent")]
Seq = Annotated[int, Meta(ge=0, le=2**63 - 1, description="client sequence number")]

MAX_PINGS_PER_BATCH = 1000
"""The most pings one native batch (HTTP body or WebSocket message) may carry."""

PingSource = Literal["http", "ws", "osmand", "owntracks"]

TimeSource = Literal["device", "server"]
"""Whose clock ``Ping.time`` is: the device's, or lastmile's at receipt (the device sent none)."""


class Ping(msgspec.Struct, frozen=True, kw_only=True):
    """One position fix as the device measured it.

    A ping is identified by its driver and ``time`` (the device's clock): a re-sent fix is
    stored once. ``battery`` on the wire may be a fraction (0–1) or a percentage (0–100);
    values of 1 and below are read as fractions by :func:`normalise_battery`.
    """

    time: AwareTime
    lat: Latitude
    lon: Longitude
    speed_mps: SpeedMps | None = None
    heading_deg: HeadingDeg | None = None
    accuracy_m: AccuracyM | None = None
    altitude_m: AltitudeM | None = None
    battery_pct: BatteryPct | None = msgspec.field(default=None, name="battery")
    seq: Seq | None = None


class PingBatchIn(msgspec.Struct, frozen=True, kw_only=True):
    """Body of ``POST /v1/pings``: up to :data:`MAX_PINGS_PER_BATCH` fixes of the calling driver."""

    pings: list[Ping]


class Rejection(msgspec.Struct, frozen=True, kw_only=True):
    """Why one ping of a batch was not accepted; ``index`` is its position in the batch."""

    index: int
    field: str
    reason: str


class IngestResult(msgspec.Struct, frozen=True, kw_only=True):
    """Answer to a batch: how many pings are now on the stream, and each one that is not."""

    accepted: int
    rejected: list[Rejection] = []


class PingBatch(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """One ping-stream entry: a driver's accepted pings, as received in one request or message.

    ``time_source`` is ``"server"`` only for the single fix of an OsmAnd or OwnTracks request
    that carried no time (no ``timestamp``, no ``tst``): then, as Traccar's server does, the
    ping's ``time`` is the instant lastmile received it, exactly this entry's ``received_at``
    (which is how a stored row shows it: ``time = received_at``). Such a fix is not recognised
    when re-sent, since each sending gets a new time. It lives here rather than on
    :class:`Ping` because Ping is also the native wire format, whose clients always send their
    own time; entries written before it existed decode as ``"device"``.
    """

    org_id: OrgId
    driver_id: DriverId
    source: PingSource
    received_at: AwareTime
    pings: list[Ping]
    time_source: TimeSource = "device"


class LivePosition(msgspec.Struct, frozen=True, kw_only=True):
    """A driver's latest known position, as kept in Redis for the live snapshot."""

    driver_id: DriverId
    time: AwareTime
    lat: Latitude
    lon: Longitude
    speed_mps: SpeedMps | None = None
    heading_deg: HeadingDeg | None = None
    accuracy_m: AccuracyM | None = None
    battery_pct: BatteryPct | None = msgspec.field(default=None, name="battery")
    received_at: AwareTime | None = None


def normalise_battery(ping: Ping) -> Ping:
    """Return ``ping`` with a fractional battery level (0–1) rewritten as a percentage."""
    if ping.battery_pct is not None and ping.battery_pct <= 1.0:
        return msgspec.structs.replace(ping, battery_pct=ping.battery_pct * 100.0)
    return ping
