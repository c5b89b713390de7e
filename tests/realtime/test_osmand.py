"""The OsmAnd protocol of Traccar Client: query string, form body, and the JSON body."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import msgspec
import pytest

from realtime.errors import InvalidPing, MalformedBody, UnknownDevice
from realtime.protocols.osmand import KNOT_MPS, OsmAndFix, decode_json, decode_params
from schemas.ping import Ping

T = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 24, 10, 0, 7, 123456, tzinfo=UTC)  # when the server received the fix
EPOCH_S = "1795514400"  # T
BASE = {"id": "ldt_secret", "lat": "52.52", "lon": "13.405", "timestamp": EPOCH_S}


def query(url: str) -> dict[str, str]:
    """The parameters of ``url`` as the app hands them over (last value wins)."""
    return dict(parse_qsl(urlsplit(url).query))


def reason_of(params: dict[str, str]) -> tuple[str, str]:
    """``(field, reason)`` of the InvalidPing that decoding ``params`` raises."""
    with pytest.raises(InvalidPing) as caught:
        decode_params(params, now=NOW)
    return caught.value.field, caught.value.reason


def test_a_traccar_client_get_request_decodes_with_si_units() -> None:
    """Every Traccar Client parameter lands in the Ping, speed converted from knots to m/s."""
    params = query(
        "/?id=ldt_secret&timestamp=1795514400&lat=52.52&lon=13.405&speed=10.0&bearing=271.5"
        "&altitude=34.5&accuracy=4.8&batt=87.0&charge=true&valid=true&hdop=1.1&driverUniqueId=x"
    )
    assert decode_params(params, now=NOW) == OsmAndFix(
        device_id="ldt_secret",
        ping=Ping(
            time=T,
            lat=52.52,
            lon=13.405,
            speed_mps=10.0 * 1852 / 3600,
            heading_deg=271.5,
            altitude_m=34.5,
            accuracy_m=4.8,
            battery_pct=87.0,
        ),
    )


def test_one_knot_is_1852_metres_per_hour() -> None:
    """The knot conversion factor is 1852 m per 3600 s."""
    assert KNOT_MPS == 1852 / 3600
    assert decode_params({**BASE, "speed": "36"}, now=NOW).ping.speed_mps == pytest.approx(18.52)


def test_a_post_form_body_decodes_like_the_query() -> None:
    """A form-encoded POST body gives the same fix as the same parameters in a query."""
    body = b"id=ldt_secret&lat=52.52&lon=13.405&timestamp=1795514400&speed=0&batt=55"
    fix = decode_params(dict(parse_qsl(body.decode())), now=NOW)
    assert fix.ping == Ping(time=T, lat=52.52, lon=13.405, speed_mps=0.0, battery_pct=55.0)


def test_deviceid_is_an_alias_of_id() -> None:
    """The device identifier may come as deviceid."""
    params = {**BASE, "deviceid": "ldt_other"}
    del params["id"]
    assert decode_params(params, now=NOW).device_id == "ldt_other"


def test_the_device_token_stays_out_of_the_repr() -> None:
    """OsmAndFix never shows the device token (a secret) in its repr."""
    assert "ldt_secret" not in repr(decode_params(BASE, now=NOW))


def test_location_gives_lat_and_lon() -> None:
    """location=lat,lon is read as latitude and longitude."""
    params = {"id": "t", "location": "52.52,13.405", "timestamp": EPOCH_S}
    assert decode_params(params, now=NOW).ping == Ping(time=T, lat=52.52, lon=13.405)


def test_heading_is_an_alias_of_bearing() -> None:
    """The course may come as heading instead of bearing."""
    assert decode_params({**BASE, "heading": "90"}, now=NOW).ping.heading_deg == 90.0


def test_hdop_alone_gives_no_accuracy() -> None:
    """hdop has no unit, so no accuracy in metres is made up from it."""
    assert decode_params({**BASE, "hdop": "2.5"}, now=NOW).ping.accuracy_m is None


def test_empty_parameters_are_ignored() -> None:
    """An empty value counts as absent, as Traccar's server treats it."""
    fix = decode_params({**BASE, "speed": "", "altitude": "", "batt": ""}, now=NOW)
    assert fix.ping == Ping(time=T, lat=52.52, lon=13.405)


@pytest.mark.parametrize(
    "timestamp",
    [
        "1795514400",
        "1795514400000",
        "1795514400.0",
        "2026-11-24T10:00:00Z",
        "2026-11-24T10:00:00.000Z",
        "2026-11-24T12:00:00+02:00",
        "2026-11-24T05:00:00-05:00",
        "2026-11-24 10:00:00",
    ],
)
def test_every_timestamp_form_reads_as_the_same_instant(timestamp: str) -> None:
    """Epoch s, epoch ms, ISO 8601 with Z or an offset, and the plain UTC form all agree."""
    assert decode_params({**BASE, "timestamp": timestamp}, now=NOW).ping.time == T


def test_epoch_seconds_and_milliseconds_are_told_apart_by_magnitude() -> None:
    """Values below 2^31 - 1 are seconds; from there on they are milliseconds."""
    below = decode_params({**BASE, "timestamp": str(2**31 - 2)}, now=NOW).ping.time
    at = decode_params({**BASE, "timestamp": str(2**31 - 1)}, now=NOW).ping.time
    assert below == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=2**31 - 2)
    assert at == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=2**31 - 1)


def test_an_offset_timestamp_keeps_its_offset() -> None:
    """An ISO time with an offset stays aware in that offset."""
    time = decode_params({**BASE, "timestamp": "2026-11-24T12:00:00+02:00"}, now=NOW).ping.time
    assert time.utcoffset() == timezone(timedelta(hours=2)).utcoffset(None)


@pytest.mark.parametrize(
    ("params", "field", "reason"),
    [
        ({**BASE, "lat": "91.2"}, "lat", "expected lat in [-90.0, 90.0], got 91.2"),
        ({**BASE, "lon": "-180.5"}, "lon", "expected lon in [-180.0, 180.0], got -180.5"),
        ({**BASE, "lat": "abc"}, "lat", "expected a number, got 'abc'"),
        ({**BASE, "lat": "nan"}, "lat", "expected lat in [-90.0, 90.0], got nan"),
        ({**BASE, "lon": "inf"}, "lon", "expected lon in [-180.0, 180.0], got inf"),
        ({**BASE, "speed": "fast"}, "speed", "expected a number, got 'fast'"),
        ({**BASE, "speed": "300"}, "speed", "expected speed in [0.0, 291.577] kn, got 300.0"),
        ({**BASE, "bearing": "361"}, "bearing", "expected bearing in [0.0, 360.0], got 361.0"),
        ({**BASE, "speed": "inf"}, "speed", "expected speed in [0.0, 291.577] kn, got inf"),
        (
            {**BASE, "altitude": "-2000"},
            "altitude",
            "expected altitude in [-1000.0, 20000.0], got -2000.0",
        ),
        ({**BASE, "batt": "101"}, "batt", "expected batt in [0.0, 100.0], got 101.0"),
        (
            {"id": "t", "location": "95,13.4", "timestamp": EPOCH_S},
            "location",
            "expected latitude in [-90.0, 90.0], got 95.0",
        ),
        (
            {"id": "t", "location": "52.5", "timestamp": EPOCH_S},
            "location",
            "expected location as lat,lon, got '52.5'",
        ),
        ({"id": "t", "lon": "1", "timestamp": EPOCH_S}, "lat", "lat is required"),
        ({"id": "t", "lat": "1", "timestamp": EPOCH_S}, "lon", "lon is required"),
        ({"id": "t", "lat": "", "lon": "", "timestamp": EPOCH_S}, "lat", "lat is required"),
    ],
)
def test_invalid_fixes_name_the_parameter_as_sent(
    params: dict[str, str], field: str, reason: str
) -> None:
    """An invalid fix raises InvalidPing naming the client's parameter, range, unit and value."""
    assert reason_of(params) == (field, reason)


@pytest.mark.parametrize(
    ("timestamp", "reason"),
    [
        (
            "2026-11-24T10:00:00",
            "expected a time with a zone such as 2026-11-24T10:00:00Z, got '2026-11-24T10:00:00'",
        ),
        (
            "yesterday",
            "expected epoch seconds, epoch milliseconds, an ISO 8601 time such as"
            " 2026-11-24T10:00:00Z or yyyy-MM-dd HH:mm:ss, got 'yesterday'",
        ),
        (
            "2026-11-24",
            "expected epoch seconds, epoch milliseconds, an ISO 8601 time such as"
            " 2026-11-24T10:00:00Z or yyyy-MM-dd HH:mm:ss, got '2026-11-24'",
        ),
        ("1e30", "expected epoch seconds or milliseconds, got '1e30'"),
        ("nan", "expected epoch seconds or milliseconds, got 'nan'"),
    ],
)
def test_unreadable_timestamps_are_rejected(timestamp: str, reason: str) -> None:
    """A naive ISO time, a bare date or an impossible epoch is rejected with the forms accepted."""
    assert reason_of({**BASE, "timestamp": timestamp}) == ("timestamp", reason)


def test_a_device_timed_fix_says_so() -> None:
    """A fix with a timestamp keeps the device's time and is marked device-timed."""
    fix = decode_params(BASE, now=NOW)
    assert (fix.ping.time, fix.time_source) == (T, "device")


@pytest.mark.parametrize("timestamp", [None, ""])
def test_a_fix_without_timestamp_is_stamped_with_the_time_of_receipt(
    timestamp: str | None,
) -> None:
    """Without a timestamp (absent or empty) the fix gets the server's time and says so."""
    params = {"id": "t", "lat": "52.52", "lon": "13.405"}
    if timestamp is not None:
        params["timestamp"] = timestamp
    fix = decode_params(params, now=NOW)
    assert (fix.ping, fix.time_source) == (Ping(time=NOW, lat=52.52, lon=13.405), "server")


def test_identity_and_position_are_all_a_fix_needs() -> None:
    """id, lat and lon alone make a fix; every optional field is stored as none."""
    fix = decode_params({"id": "t", "lat": "1.5", "lon": "2.5"}, now=NOW)
    assert fix == OsmAndFix(
        device_id="t", ping=Ping(time=NOW, lat=1.5, lon=2.5), time_source="server"
    )


@pytest.mark.parametrize(
    ("name", "value", "field"),
    [
        ("speed", "-1", "speed_mps"),
        ("speed", "-1.94384", "speed_mps"),
        ("bearing", "-1", "heading_deg"),
        ("heading", "-1.0", "heading_deg"),
        ("accuracy", "-1", "accuracy_m"),
        ("batt", "-1", "battery_pct"),
        ("batt", "-100.0", "battery_pct"),
    ],
)
def test_a_negative_optional_value_means_unknown(name: str, value: str, field: str) -> None:
    """A negative speed, course, accuracy or battery is the client's unknown: stored as none."""
    ping = decode_params({**BASE, name: value}, now=NOW).ping
    assert getattr(ping, field) is None
    assert (ping.lat, ping.lon, ping.time) == (52.52, 13.405, T)


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("speed", "speed_mps"),
        ("bearing", "heading_deg"),
        ("altitude", "altitude_m"),
        ("accuracy", "accuracy_m"),
        ("batt", "battery_pct"),
    ],
)
def test_nan_in_an_optional_parameter_means_unknown(name: str, field: str) -> None:
    """NaN, which no measurement can be, is stored as none in any optional parameter."""
    assert getattr(decode_params({**BASE, name: "NaN"}, now=NOW).ping, field) is None


def test_a_negative_altitude_parameter_is_kept() -> None:
    """Altitude has no unknown sentinel: below sea level is a real place."""
    assert decode_params({**BASE, "altitude": "-1"}, now=NOW).ping.altitude_m == -1.0


@pytest.mark.parametrize("charge", ["true", "false", "1", "maybe"])
def test_charge_valid_and_unknown_parameters_are_ignored(charge: str) -> None:
    """charge, valid, cell, wifi and parameters lastmile does not know never refuse a fix."""
    params = {**BASE, "charge": charge, "valid": "false", "cell": "1,2,3,4", "wifi": "x", "a": "b"}
    assert decode_params(params, now=NOW).ping == Ping(time=T, lat=52.52, lon=13.405)


def test_a_fix_without_id_lacks_its_credential() -> None:
    """Without id or deviceid there is no device to attribute the fix to: the credential is
    missing (401), as for any request without one."""
    with pytest.raises(UnknownDevice) as caught:
        decode_params({"lat": "1", "lon": "2", "timestamp": EPOCH_S, "id": ""}, now=NOW)
    assert (caught.value.field, caught.value.reason) == (
        "id",
        "id (or deviceid) is required: the device token, as the device identifier",
    )


def traccar_json(**location: Any) -> bytes:
    """A newer Traccar Client JSON body (transistorsoft format) with ``location`` overrides."""
    body: dict[str, Any] = {
        "device_id": "ldt_secret",
        "location": {
            "timestamp": "2026-11-24T10:00:00.000Z",
            "coords": {
                "latitude": 52.52,
                "longitude": 13.405,
                "accuracy": 4.8,
                "speed": 8.5,
                "heading": 271.5,
                "altitude": 34.5,
            },
            "battery": {"level": 0.42, "is_charging": False},
            "is_moving": True,
            "odometer": 1234.5,
            "activity": {"type": "in_vehicle"},
            "event": "motionchange",
        },
    }
    body["location"].update(location)
    return msgspec.json.encode(body)


def test_the_traccar_json_body_decodes_with_speed_in_mps() -> None:
    """The JSON body's coords.speed is m/s already, and battery.level a fraction."""
    assert decode_json(traccar_json(), now=NOW) == OsmAndFix(
        device_id="ldt_secret",
        ping=Ping(
            time=T,
            lat=52.52,
            lon=13.405,
            speed_mps=8.5,
            heading_deg=271.5,
            accuracy_m=4.8,
            altitude_m=34.5,
            battery_pct=42.0,
        ),
    )


def test_minus_one_sentinels_in_the_json_body_mean_unknown() -> None:
    """speed, heading, accuracy and battery.level of -1 are dropped, not rejected."""
    coords = {"latitude": 1.0, "longitude": 2.0, "accuracy": -1, "speed": -1, "heading": -1}
    fix = decode_json(
        traccar_json(coords=coords, battery={"level": -1, "is_charging": False}), now=NOW
    )
    assert fix.ping == Ping(time=T, lat=1.0, lon=2.0)


@pytest.mark.parametrize("timestamp", [msgspec.UNSET, None])
def test_a_json_fix_without_timestamp_is_stamped_with_the_time_of_receipt(
    timestamp: object,
) -> None:
    """A JSON body whose location has no timestamp (absent or null) is server-timed."""
    body: dict[str, Any] = {
        "device_id": "t",
        "location": {"coords": {"latitude": 1.0, "longitude": 2.0}},
    }
    if timestamp is not msgspec.UNSET:
        body["location"]["timestamp"] = timestamp
    fix = decode_json(msgspec.json.encode(body), now=NOW)
    assert (fix.ping, fix.time_source) == (Ping(time=NOW, lat=1.0, lon=2.0), "server")


def test_a_json_fix_needs_only_its_coordinates() -> None:
    """Absent or null coords fields, and a missing or null battery, are stored as none."""
    coords = {"latitude": 1.0, "longitude": 2.0, "speed": None, "heading": None}
    for battery in (None, {}, {"level": None}):
        fix = decode_json(traccar_json(coords=coords, battery=battery), now=NOW)
        assert fix.ping == Ping(time=T, lat=1.0, lon=2.0)


def test_a_negative_altitude_in_the_json_body_is_kept() -> None:
    """Altitude has no sentinel: below sea level is a real place."""
    coords = {"latitude": 31.5, "longitude": 35.5, "altitude": -1}
    assert decode_json(traccar_json(coords=coords), now=NOW).ping.altitude_m == -1.0


@pytest.mark.parametrize(
    ("location", "field", "reason"),
    [
        (
            {"coords": {"latitude": 91.0, "longitude": 2.0}},
            "location.coords.latitude",
            "expected location.coords.latitude in [-90.0, 90.0], got 91.0",
        ),
        (
            {"coords": {"latitude": "52.5", "longitude": 2.0}},
            "location.coords.latitude",
            "expected a number, got '52.5'",
        ),
        (
            {"coords": {"longitude": 2.0}},
            "location.coords.latitude",
            "location.coords.latitude is required",
        ),
        (
            {"coords": {"latitude": 1.0, "longitude": 2.0, "speed": 200.0}},
            "location.coords.speed",
            "expected location.coords.speed in [0.0, 150.0], got 200.0",
        ),
        (
            {"battery": {"level": 85}},
            "location.battery.level",
            "expected location.battery.level in [0.0, 1.0], got 85.0",
        ),
        (
            {"timestamp": "2026-11-24T10:00:00"},
            "location.timestamp",
            "expected a time with a zone such as 2026-11-24T10:00:00Z, got '2026-11-24T10:00:00'",
        ),
        (
            {"timestamp": "now"},
            "location.timestamp",
            "expected an RFC 3339 time such as 2026-11-24T10:00:00Z, got 'now'",
        ),
        ({"coords": None}, "location.coords", "location.coords is required"),
    ],
)
def test_invalid_json_fixes_name_the_json_path(
    location: dict[str, Any], field: str, reason: str
) -> None:
    """An invalid JSON fix raises InvalidPing naming the path the client sent."""
    with pytest.raises(InvalidPing) as caught:
        decode_json(traccar_json(**location), now=NOW)
    assert (caught.value.field, caught.value.reason) == (field, reason)


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        (
            b'{"location": {"timestamp": "2026-11-24T10:00:00Z"}}',
            "device_id",
            "device_id is required",
        ),
        (
            b'{"device_id": "", "location": {"timestamp": "2026-11-24T10:00:00Z"}}',
            "device_id",
            "device_id is required: the device token",
        ),
        (b"[]", "$", "expected an object, got an array"),
        (b"{", "$", "expected a JSON object, got invalid JSON: Input data was truncated"),
    ],
)
def test_json_bodies_without_a_device_or_not_json_are_malformed(
    body: bytes, field: str, reason: str
) -> None:
    """A JSON body without device_id, or that is no JSON object, is malformed."""
    with pytest.raises(MalformedBody) as caught:
        decode_json(body, now=NOW)
    assert (caught.value.field, caught.value.reason) == (field, reason)
