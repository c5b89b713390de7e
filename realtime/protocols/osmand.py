"""The OsmAnd protocol, as sent by the unmodified Traccar Client app and other OsmAnd apps.

Drivers can start with a free app: in Traccar Client they set the server URL to lastmile's
OsmAnd endpoint and type their **device token** into the "device identifier" field. The app
sends it as ``id`` with every fix, so ``id`` is a secret here: :class:`OsmAndFix` keeps it out
of its repr, and the caller looks it up like any device token.

Two encodings reach :mod:`app.api.pings`:

* **query or form parameters** (:func:`decode_params`), GET or POST: ``id`` or ``deviceid``;
  ``lat`` and ``lon`` or ``location=lat,lon``; ``timestamp`` as epoch seconds, epoch
  milliseconds (values of 2^31 - 1 and above, as Traccar's server reads them), ISO 8601 with
  ``Z`` or an offset, or ``yyyy-MM-dd HH:mm:ss`` read as UTC; ``speed`` in **knots**;
  ``bearing`` or ``heading`` in degrees; ``altitude`` and ``accuracy`` in metres; ``batt`` in
  percent. ``hdop``, ``valid``, ``charge`` and any other parameter are accepted and ignored:
  in particular no accuracy in metres is made up from ``hdop``, which has no unit.
* **the JSON body** of newer Traccar Client versions (:func:`decode_json`), which is the
  transistorsoft background-geolocation location object: ``{"device_id", "location":
  {"timestamp", "coords": {"latitude", "longitude", "accuracy", "speed", "heading",
  "altitude"}, "battery": {"level", "is_charging"}, ...}}``. Here ``coords.speed`` is in
  **m/s** and ``battery.level`` a fraction (0–1).

What may be missing or unknown, in both forms:

* Only the device identifier and the position are required. Every other field may be absent
  (an empty parameter counts as absent, as on Traccar's server) and is then stored as none.
* A fix without a time (no ``timestamp``, or no ``location.timestamp``) is stamped with the
  time it was received, ``now``, as Traccar's server does, and marked
  ``OsmAndFix.time_source="server"`` (carried on to the stream entry). lastmile identifies a
  ping by driver and device time, so such a fix is stored again if the app re-sends it;
  Traccar Client always sends its time.
* A negative speed, course, accuracy or battery level is the client's "unknown" (Core
  Location on iOS reports a negative speed, course and accuracy when it has none, and a
  battery level of -1; the background-geolocation library sends -1) and is stored as none,
  not refused; so is ``NaN`` in a parameter, which no measurement can be. Altitude has no
  such sentinel: below sea level is a real place.
* A value that is present but no number, or out of range for a known value (``speed=300``
  knots, ``batt=101``, ``bearing=361``), is refused: it is not unknown but wrong.

Battery levels arrive here already as percentages and are not passed through
:func:`~schemas.ping.normalise_battery` (``batt=1`` means 1 %).

Invalid values raise :class:`~realtime.errors.InvalidPing` naming the parameter as the client
sent it (``lat``, ``speed``, ``location.coords.latitude``); a missing ``id`` or a body that is
not the expected JSON raises :class:`~realtime.errors.MalformedBody`. The server-clock window
is the caller's to apply (:func:`realtime.validate.check_times`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

import msgspec

from realtime.errors import InvalidPing, MalformedBody, UnknownDevice
from realtime.validate import ClientField, explain, invalid_ping
from schemas.codecs import ANY_JSON, OSMAND_BODY_JSON
from schemas.limits import TOO_DEEP
from schemas.ping import Ping, TimeSource
from schemas.reasons import EXAMPLE_TIME, MISSING, ROOT, show

KNOT_MPS: Final = 1852.0 / 3600.0
"""One knot in m/s."""

EPOCH_MS_FROM: Final = 2**31 - 1
"""An epoch ``timestamp`` this large or larger is in milliseconds, smaller in seconds."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OsmAndFix:
    """One decoded OsmAnd fix: the device identifier (a device token), its ping, and whose
    clock the ping's time is (``"server"``: the fix had none and was stamped at receipt)."""

    device_id: str = field(repr=False)
    ping: Ping
    time_source: TimeSource = "device"


def decode_params(params: Mapping[str, str], *, now: datetime) -> OsmAndFix:
    """Decode a fix sent as query or form parameters (last value of a repeated name wins).

    ``now`` is the time of receipt, the fix's time when it carries no ``timestamp``. Raises
    :class:`UnknownDevice` without ``id``/``deviceid`` (the credential is missing) and
    :class:`InvalidPing` when the
    position is missing or a value is invalid.
    """
    present = {name: value for name, value in params.items() if value != ""}
    device_id = present.get("id") or present.get("deviceid")
    if device_id is None:
        raise UnknownDevice(
            "id", "id (or deviceid) is required: the device token, as the device identifier"
        )
    values: dict[str, object] = {}
    sent: dict[str, ClientField] = {}

    def number(
        name: str,
        ping_field: str,
        text: str,
        *,
        per_unit: float = 1.0,
        unit: str = "",
        label: str | None = None,
        negative_is_unknown: bool = False,
    ) -> None:
        value = _float(name, text)
        if ping_field not in ("lat", "lon") and (
            math.isnan(value) or (negative_is_unknown and value < 0)
        ):
            return  # the client's "unknown": stored as none
        values[ping_field] = value * per_unit
        sent[ping_field] = ClientField(name, value, per_unit=per_unit, unit=unit, label=label)

    if "lat" in present or "lon" in present or "location" not in present:
        for name in ("lat", "lon"):
            if name in present:
                number(name, name, present[name])
    else:
        coordinates = present["location"].split(",")
        if len(coordinates) != 2:
            raise InvalidPing(
                "location", f"expected location as lat,lon, got {show(present['location'])}"
            )
        number("location", "lat", coordinates[0], label="latitude")
        number("location", "lon", coordinates[1], label="longitude")

    if "timestamp" in present:
        values["time"] = _time(present["timestamp"])
        sent["time"] = ClientField("timestamp", present["timestamp"])
    else:
        values["time"] = now

    if "speed" in present:
        number(
            "speed",
            "speed_mps",
            present["speed"],
            per_unit=KNOT_MPS,
            unit=" kn",
            negative_is_unknown=True,
        )
    for name in ("bearing", "heading"):
        if name in present:
            number(name, "heading_deg", present[name], negative_is_unknown=True)
            break
    if "altitude" in present:
        number("altitude", "altitude_m", present["altitude"])
    if "accuracy" in present:
        number("accuracy", "accuracy_m", present["accuracy"], negative_is_unknown=True)
    if "batt" in present:
        number("batt", "battery", present["batt"], negative_is_unknown=True)
    return OsmAndFix(
        device_id=device_id,
        ping=_to_ping(values, sent),
        time_source="device" if "timestamp" in present else "server",
    )


def decode_json(body: bytes, *, now: datetime) -> OsmAndFix:
    """Decode a fix sent as the JSON body of newer Traccar Client versions.

    ``now`` is the time of receipt, the fix's time when it carries no ``location.timestamp``.
    Raises :class:`MalformedBody` for a body that is not JSON, or lacks ``device_id``, and
    :class:`InvalidPing` when ``location`` is missing or invalid.
    """
    try:
        decoded = OSMAND_BODY_JSON.decode(body)
    except msgspec.ValidationError as exc:
        try:
            document: object = ANY_JSON.decode(body)
        except msgspec.DecodeError:
            document = MISSING
        except RecursionError:
            raise MalformedBody(ROOT, TOO_DEEP) from None
        name, reason = explain(exc, document)
        if name.startswith("location"):
            raise InvalidPing(name, reason) from None
        raise MalformedBody(name, reason) from None
    except msgspec.DecodeError as exc:
        raise MalformedBody("$", f"expected a JSON object, got invalid JSON: {exc}") from None
    except RecursionError:
        raise MalformedBody(ROOT, TOO_DEEP) from None
    if not decoded.device_id:
        raise MalformedBody("device_id", "device_id is required: the device token")
    location = decoded.location
    coords = location.coords
    if coords is None:
        raise InvalidPing("location.coords", "location.coords is required")
    values: dict[str, object] = {"lat": coords.latitude, "lon": coords.longitude}
    sent = {
        "lat": ClientField("location.coords.latitude", coords.latitude),
        "lon": ClientField("location.coords.longitude", coords.longitude),
    }
    if location.timestamp is None:
        values["time"] = now
    else:
        values["time"] = location.timestamp
        sent["time"] = ClientField("location.timestamp", location.timestamp.isoformat())
    for ping_field, name, value in (
        ("speed_mps", "speed", coords.speed),
        ("heading_deg", "heading", coords.heading),
        ("accuracy_m", "accuracy", coords.accuracy),
        ("altitude_m", "altitude", coords.altitude),
    ):
        # -1 (any negative) is the library's "unknown"; altitude has no such sentinel.
        if value is not None and (value >= 0 or ping_field == "altitude_m"):
            values[ping_field] = value
            sent[ping_field] = ClientField(f"location.coords.{name}", value)
    level = location.battery.level if location.battery is not None else None
    if level is not None and level >= 0:
        values["battery"] = level * 100.0
        sent["battery"] = ClientField("location.battery.level", level, per_unit=100.0)
    return OsmAndFix(
        device_id=decoded.device_id,
        ping=_to_ping(values, sent),
        time_source="device" if location.timestamp is not None else "server",
    )


def _to_ping(values: dict[str, object], sent: Mapping[str, ClientField]) -> Ping:
    """Run the schema's checks on the fix's values (Ping wire names, Ping units)."""
    try:
        return msgspec.convert(values, Ping)
    except msgspec.ValidationError as exc:
        raise invalid_ping(exc, sent) from None


def _float(name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InvalidPing(name, f"expected a number, got {show(text)}") from None


def _time(text: str) -> datetime:
    """The ``timestamp`` parameter in any of the forms the module docstring lists."""
    try:
        epoch = float(text)
    except ValueError:
        pass
    else:
        seconds = epoch if abs(epoch) < EPOCH_MS_FROM else epoch / 1000.0
        try:
            if not math.isfinite(seconds):
                raise ValueError(text)
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            raise InvalidPing(
                "timestamp", f"expected epoch seconds or milliseconds, got {show(text)}"
            ) from None
    try:
        time = datetime.fromisoformat(text) if ("T" in text or " " in text) else None
    except ValueError:
        time = None
    if time is None:
        raise InvalidPing(
            "timestamp",
            "expected epoch seconds, epoch milliseconds, an ISO 8601 time such as"
            f" {EXAMPLE_TIME} or yyyy-MM-dd HH:mm:ss, got {show(text)}",
        )
    if time.tzinfo is None:
        if "T" in text:
            raise InvalidPing(
                "timestamp",
                f"expected a time with a zone such as {EXAMPLE_TIME}, got {show(text)}",
            )
        time = time.replace(tzinfo=UTC)  # Traccar's "yyyy-MM-dd HH:mm:ss" form, read as UTC
    return time
