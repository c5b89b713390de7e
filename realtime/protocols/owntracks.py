"""OwnTracks in HTTP mode: the app POSTs one JSON message per request.

Only ``_type: "location"`` carries a fix: ``lat`` and ``lon`` (degrees), ``tst`` (epoch
seconds of the fix), and optionally ``acc`` and ``alt`` (metres), ``vel`` (**km/h**), ``cog``
(degrees) and ``batt`` (percent, not a fraction: ``batt: 1`` is 1 %). ``vac``, ``tid``,
``created_at``, ``t``, ``conn``, ``bs``, ``inregions`` and the rest are accepted and ignored.

What may be missing or unknown:

* Only ``lat`` and ``lon`` are required. Every optional field may be absent, or ``null``, and
  is then stored as none.
* ``tst`` is documented as required, but a location without it is stamped with the time it
  was received (``now``) and marked ``OwnTracksFix.time_source="server"``, as for an OsmAnd
  fix without ``timestamp``, rather than losing the position.
* A negative ``acc``, ``vel``, ``cog`` or ``batt`` is the app's "unknown" (``batt: -1`` when
  the phone does not say; Core Location's negative speed, course and accuracy) and is stored
  as none. ``alt`` has no sentinel: below sea level is a real place.
* A value present but of the wrong type, or out of range for a known value (``batt: 120``,
  ``cog: 361``), is refused naming the field.

Every other ``_type`` (``transition``, ``waypoint``, ``waypoints``, ``lwt``, ``status``,
``card``, ``cmd``, ``steps``, ``encrypted``, ...) is acknowledged and stores nothing, and so is
an empty body: :func:`decode` returns ``None`` and the caller answers ``[]`` as the app
expects.

The device is identified by HTTP Basic auth (the caller's business), not by the body.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import msgspec

from realtime.errors import InvalidPing, MalformedBody
from realtime.validate import ClientField, explain, invalid_ping
from schemas.codecs import ANY_JSON, OWNTRACKS_HEAD_JSON, OWNTRACKS_LOCATION_JSON
from schemas.limits import TOO_DEEP
from schemas.ping import Ping, TimeSource
from schemas.reasons import MISSING, ROOT, show

KMH_MPS: Final = 1000.0 / 3600.0
"""One km/h in m/s."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OwnTracksFix:
    """The ping of a ``location`` message, and whose clock its time is (``"server"``: no
    ``tst``, stamped at receipt)."""

    ping: Ping
    time_source: TimeSource = "device"


def decode(body: bytes, *, now: datetime) -> OwnTracksFix | None:
    """The fix of a ``location`` message, or ``None`` for an empty body or another message type.

    ``now`` is the time of receipt, the fix's time when it carries no ``tst``. Raises
    :class:`MalformedBody` for a body that is not empty and not a JSON object with a string
    ``_type``, and :class:`InvalidPing` for a ``location`` whose position is missing or a
    value is invalid.
    """
    if not body.strip():
        return None
    try:
        kind = OWNTRACKS_HEAD_JSON.decode(body).kind
    except msgspec.ValidationError as exc:
        raise MalformedBody(*explain(exc, _loosely(body))) from None
    except msgspec.DecodeError as exc:
        raise MalformedBody("$", f"expected a JSON object, got invalid JSON: {exc}") from None
    except RecursionError:
        raise MalformedBody(ROOT, TOO_DEEP) from None
    if kind is msgspec.UNSET:
        raise MalformedBody("_type", "_type is required")
    if not isinstance(kind, str):
        raise MalformedBody("_type", f"expected a string, got {show(kind)}")
    if kind != "location":
        return None
    try:
        fix = OWNTRACKS_LOCATION_JSON.decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidPing(*explain(exc, _loosely(body))) from None
    except RecursionError:
        raise MalformedBody(ROOT, TOO_DEEP) from None
    values: dict[str, object] = {"lat": fix.lat, "lon": fix.lon}
    sent = {"lat": ClientField("lat", fix.lat), "lon": ClientField("lon", fix.lon)}
    if fix.tst is None:
        values["time"] = now
    else:
        try:
            values["time"] = datetime.fromtimestamp(fix.tst, UTC)
        except (OverflowError, OSError, ValueError):
            raise InvalidPing("tst", f"expected epoch seconds, got {show(fix.tst)}") from None
        sent["time"] = ClientField("tst", fix.tst)
    for ping_field, name, value, per_unit, unit in (
        ("accuracy_m", "acc", fix.acc, 1.0, ""),
        ("altitude_m", "alt", fix.alt, 1.0, ""),
        ("speed_mps", "vel", fix.vel, KMH_MPS, " km/h"),
        ("heading_deg", "cog", fix.cog, 1.0, ""),
        ("battery", "batt", fix.batt, 1.0, ""),
    ):
        # A negative value is the app's "unknown"; altitude has no such sentinel.
        if value is not None and (value >= 0 or ping_field == "altitude_m"):
            values[ping_field] = value * per_unit
            sent[ping_field] = ClientField(name, value, per_unit=per_unit, unit=unit)
    try:
        ping = msgspec.convert(values, Ping)
    except msgspec.ValidationError as exc:
        raise invalid_ping(exc, sent) from None
    return OwnTracksFix(ping=ping, time_source="device" if fix.tst is not None else "server")


def _loosely(body: bytes) -> object:
    try:
        document: object = ANY_JSON.decode(body)
    except msgspec.DecodeError:
        return MISSING
    except RecursionError:
        raise MalformedBody(ROOT, TOO_DEEP) from None
    return document
