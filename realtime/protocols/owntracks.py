"""OwnTracks in HTTP mode: the app POSTs one JSON message per request.

Only ``_type: "location"`` carries a fix: ``lat`` and ``lon`` (degrees), ``tst`` (epoch
seconds of the fix), and optionally ``acc`` and ``alt`` (metres), ``vel`` (**km/h**), ``cog``
(degrees) and ``batt`` (percent, not a fraction: ``batt: 1`` is 1 %). ``vac``, ``tid``,
``created_at``, ``t``, ``conn``, ``inregions`` and the rest are accepted and ignored.

Every other ``_type`` (``transition``, ``waypoint``, ``lwt``, ``status``, ``card``,
``encrypted``, ...) is acknowledged and stores nothing: :func:`decode` returns ``None`` and the
caller answers ``[]`` as the app expects. The app omits ``vel`` and ``cog`` when unknown, so a
negative value is an error here, not a sentinel.

The device is identified by HTTP Basic auth (the caller's business), not by the body.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

import msgspec

from realtime.errors import InvalidPing, MalformedBody
from realtime.validate import ClientField, explain, invalid_ping
from schemas.codecs import ANY_JSON, OWNTRACKS_HEAD_JSON, OWNTRACKS_LOCATION_JSON
from schemas.limits import TOO_DEEP
from schemas.ping import Ping
from schemas.reasons import MISSING, ROOT, show

KMH_MPS: Final = 1000.0 / 3600.0
"""One km/h in m/s."""


def decode(body: bytes) -> Ping | None:
    """The fix of a ``location`` message, or ``None`` for any other message type.

    Raises :class:`MalformedBody` for a body that is not a JSON object with a string ``_type``,
    and :class:`InvalidPing` for a ``location`` whose fix is missing or invalid.
    """
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
    try:
        time = datetime.fromtimestamp(fix.tst, UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidPing("tst", f"expected epoch seconds, got {show(fix.tst)}") from None
    values: dict[str, object] = {"time": time, "lat": fix.lat, "lon": fix.lon}
    sent = {
        "time": ClientField("tst", fix.tst),
        "lat": ClientField("lat", fix.lat),
        "lon": ClientField("lon", fix.lon),
    }
    for ping_field, name, value, per_unit, unit in (
        ("accuracy_m", "acc", fix.acc, 1.0, ""),
        ("altitude_m", "alt", fix.alt, 1.0, ""),
        ("speed_mps", "vel", fix.vel, KMH_MPS, " km/h"),
        ("heading_deg", "cog", fix.cog, 1.0, ""),
        ("battery", "batt", fix.batt, 1.0, ""),
    ):
        if value is not None:
            values[ping_field] = value * per_unit
            sent[ping_field] = ClientField(name, value, per_unit=per_unit, unit=unit)
    try:
        return msgspec.convert(values, Ping)
    except msgspec.ValidationError as exc:
        raise invalid_ping(exc, sent) from None


def _loosely(body: bytes) -> object:
    try:
        document: object = ANY_JSON.decode(body)
    except msgspec.DecodeError:
        return MISSING
    except RecursionError:
        raise MalformedBody(ROOT, TOO_DEEP) from None
    return document
