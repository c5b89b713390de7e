"""OwnTracks in HTTP mode: location messages become pings, every other message is ignored."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from realtime.errors import InvalidPing, MalformedBody
from realtime.protocols.owntracks import OwnTracksFix, decode
from schemas.ping import Ping

T = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 24, 10, 0, 7, 123456, tzinfo=UTC)  # when the server received the fix
TST = 1795514400  # T


def location(**fields: Any) -> bytes:
    """An OwnTracks location message at T with ``fields`` added or overriding."""
    return msgspec.json.encode(
        {"_type": "location", "lat": 52.52, "lon": 13.405, "tst": TST, **fields}
    )


def ping_of(body: bytes) -> Ping:
    """The ping of a location message decoded at NOW (which must be one)."""
    fix = decode(body, now=NOW)
    assert fix is not None
    return fix.ping


def test_a_full_location_message_decodes_with_si_units() -> None:
    """vel in km/h becomes m/s; acc, alt, cog and batt arrive as sent; extras are ignored."""
    body = location(
        acc=12,
        alt=34,
        vel=36,
        cog=270,
        batt=85,
        vac=3,
        tid="jd",
        created_at=TST + 2,
        t="u",
        conn="m",
        topic="owntracks/jane/phone",
        inregions=["depot"],
        bs=1,
    )
    assert ping_of(body) == Ping(
        time=T,
        lat=52.52,
        lon=13.405,
        accuracy_m=12.0,
        altitude_m=34.0,
        speed_mps=10.0,
        heading_deg=270.0,
        battery_pct=85.0,
    )


def test_a_minimal_location_message_needs_only_lat_lon_and_tst() -> None:
    """lat, lon and tst are enough; everything else stays unknown."""
    assert ping_of(location()) == Ping(time=T, lat=52.52, lon=13.405)


def test_batt_is_a_percentage_even_at_one() -> None:
    """batt is always a percentage, so 1 stays 1 % rather than being read as a fraction."""
    assert ping_of(location(batt=1)).battery_pct == 1.0


@pytest.mark.parametrize(
    "message",
    [
        {"_type": "transition", "event": "enter", "lat": 1, "lon": 2, "tst": TST, "wtst": 1},
        {"_type": "waypoint", "desc": "Depot", "lat": 1, "lon": 2, "rad": 50, "tst": TST},
        {"_type": "lwt", "tst": TST},
        {"_type": "status", "android": {"wifi": 1}},
        {"_type": "card", "name": "Jane", "face": "aGVsbG8="},
        {"_type": "encrypted", "data": "c2VjcmV0"},
        {"_type": "waypoints", "waypoints": []},
    ],
)
def test_other_message_types_store_nothing(message: dict[str, Any]) -> None:
    """Any _type but location decodes to None, whatever else it carries."""
    assert decode(msgspec.json.encode(message), now=NOW) is None


def test_a_location_carries_the_device_time() -> None:
    """A location with tst is marked device-timed."""
    assert decode(location(), now=NOW) == OwnTracksFix(
        ping=Ping(time=T, lat=52.52, lon=13.405), time_source="device"
    )


@pytest.mark.parametrize("tst", [msgspec.UNSET, None])
def test_a_location_without_tst_is_stamped_with_the_time_of_receipt(tst: object) -> None:
    """A location without tst (absent or null) gets the server's time and says so."""
    message: dict[str, Any] = {"_type": "location", "lat": 52.52, "lon": 13.405}
    if tst is not msgspec.UNSET:
        message["tst"] = tst
    assert decode(msgspec.json.encode(message), now=NOW) == OwnTracksFix(
        ping=Ping(time=NOW, lat=52.52, lon=13.405), time_source="server"
    )


@pytest.mark.parametrize("body", [b"", b" ", b"\r\n"])
def test_an_empty_body_stores_nothing(body: bytes) -> None:
    """An empty (or blank) body decodes to None, to be answered [] like other messages."""
    assert decode(body, now=NOW) is None


@pytest.mark.parametrize(
    ("name", "value", "field"),
    [
        ("batt", -1, "battery_pct"),
        ("acc", -1, "accuracy_m"),
        ("vel", -1, "speed_mps"),
        ("vel", -5, "speed_mps"),
        ("cog", -1, "heading_deg"),
    ],
)
def test_a_negative_optional_value_means_unknown(name: str, value: int, field: str) -> None:
    """batt -1 and a negative acc, vel or cog are the app's unknown: stored as none."""
    ping = ping_of(location(**{name: value}))
    assert getattr(ping, field) is None
    assert (ping.lat, ping.lon, ping.time) == (52.52, 13.405, T)


def test_a_negative_alt_is_kept() -> None:
    """alt has no unknown sentinel: below sea level is a real place."""
    assert ping_of(location(alt=-12)).altitude_m == -12.0


def test_null_optional_fields_are_stored_as_none() -> None:
    """acc, alt, vel, cog and batt sent as null are stored as none."""
    body = location(acc=None, alt=None, vel=None, cog=None, batt=None)
    assert ping_of(body) == Ping(time=T, lat=52.52, lon=13.405)


@pytest.mark.parametrize("tid", ["jd", 7, None, ["x"]])
def test_tid_and_other_ignored_fields_never_refuse_a_fix(tid: object) -> None:
    """tid, of whatever type, and fields lastmile does not read are ignored."""
    body = location(tid=tid, bs=3, m=2, SSID="depot", BSSID="x", poi="Depot", tag="t")
    assert ping_of(body) == Ping(time=T, lat=52.52, lon=13.405)


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        ({"lat": 91.2}, "lat", "expected lat in [-90.0, 90.0], got 91.2"),
        ({"lon": 200}, "lon", "expected lon in [-180.0, 180.0], got 200.0"),
        ({"lat": "52.52"}, "lat", "expected a number, got '52.52'"),
        ({"vel": "fast"}, "vel", "expected a number, got 'fast'"),
        ({"vel": 600}, "vel", "expected vel in [0.0, 540.0] km/h, got 600.0"),
        ({"cog": 361}, "cog", "expected cog in [0.0, 360.0], got 361.0"),
        ({"batt": "full"}, "batt", "expected a number, got 'full'"),
        ({"alt": 30000}, "alt", "expected alt in [-1000.0, 20000.0], got 30000.0"),
        ({"batt": 120}, "batt", "expected batt in [0.0, 100.0], got 120.0"),
        ({"tst": "now"}, "tst", "expected a number, got 'now'"),
        ({"tst": 1e20}, "tst", "expected epoch seconds, got 1e+20"),
    ],
)
def test_invalid_fixes_name_the_owntracks_field(
    fields: dict[str, Any], field: str, reason: str
) -> None:
    """An invalid location raises InvalidPing naming the OwnTracks field, range and value."""
    with pytest.raises(InvalidPing) as caught:
        decode(location(**fields), now=NOW)
    assert (caught.value.field, caught.value.reason) == (field, reason)


@pytest.mark.parametrize("field", ["lat", "lon"])
def test_required_location_fields_are_named_when_missing(field: str) -> None:
    """A location message without lat or lon is rejected naming the missing field."""
    message = {"_type": "location", "lat": 52.52, "lon": 13.405, "tst": TST}
    del message[field]
    with pytest.raises(InvalidPing) as caught:
        decode(msgspec.json.encode(message), now=NOW)
    assert (caught.value.field, caught.value.reason) == (field, f"{field} is required")


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        (b"{", "$", "expected a JSON object, got invalid JSON: Input data was truncated"),
        (b"[]", "$", "expected an object, got an array"),
        (b'{"lat": 1}', "_type", "_type is required"),
        (b'{"_type": 5}', "_type", "expected a string, got 5"),
    ],
)
def test_bodies_that_are_no_owntracks_message_are_malformed(
    body: bytes, field: str, reason: str
) -> None:
    """Invalid JSON, a non-object, or a missing or non-string _type is malformed."""
    with pytest.raises(MalformedBody) as caught:
        decode(body, now=NOW)
    assert (caught.value.field, caught.value.reason) == (field, reason)
