"""Wire shapes of the third-party GPS apps lastmile speaks to, as they send them.

The OsmAnd protocol's JSON body (newer Traccar Client versions) and OwnTracks' HTTP-mode
messages. Their fields keep the apps' own names and units; the adapters in
``realtime/protocols`` turn them into :class:`~schemas.ping.Ping`. Only the shapes decoded as
Structs live here: OsmAnd's query and form parameters are read field by field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class OsmAndCoords(msgspec.Struct, frozen=True, kw_only=True):
    """``location.coords`` of an OsmAnd JSON body (degrees, metres, m/s, degrees)."""

    latitude: float
    longitude: float
    accuracy: float | None = None
    speed: float | None = None
    heading: float | None = None
    altitude: float | None = None


class OsmAndBattery(msgspec.Struct, frozen=True, kw_only=True):
    """``location.battery``: ``level`` as a fraction, or -1 for unknown."""

    level: float | None = None


class OsmAndLocation(msgspec.Struct, frozen=True, kw_only=True):
    """``location`` of an OsmAnd JSON body; without ``timestamp`` the fix is server-timed."""

    timestamp: datetime | None = None
    coords: OsmAndCoords | None = None
    battery: OsmAndBattery | None = None


class OsmAndBody(msgspec.Struct, frozen=True, kw_only=True):
    """An OsmAnd fix sent as JSON: the device identifier and its location."""

    device_id: str
    location: OsmAndLocation


class OwnTracksHead(msgspec.Struct, frozen=True, kw_only=True):
    """Just the ``_type`` of any OwnTracks message."""

    kind: Any = msgspec.field(default=msgspec.UNSET, name="_type")


class OwnTracksLocation(msgspec.Struct, frozen=True, kw_only=True):
    """An OwnTracks ``location`` message (epoch seconds, metres, km/h, degrees, percent).

    ``tst`` is documented as required, but a message without it is server-timed rather than
    refused, like an OsmAnd fix without ``timestamp``.
    """

    lat: float
    lon: float
    tst: float | None = None
    acc: float | None = None
    alt: float | None = None
    vel: float | None = None
    cog: float | None = None
    batt: float | None = None
