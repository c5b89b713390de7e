"""The native batch body of ``POST /v1/pings``, in JSON and MessagePack."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.errors import MalformedBody, PayloadTooLarge, UnsupportedMediaType
from realtime.protocols.native import Decoded, decode_batch
from schemas.limits import TOO_DEEP
from schemas.ping import MAX_PINGS_PER_BATCH, Ping, Rejection, normalise_battery

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
WINDOW: dict[str, Any] = {"now": NOW, "max_future_s": 300.0, "max_age_s": 86_400.0}
MSGPACK_TYPES = ["application/msgpack", "application/x-msgpack", "application/vnd.msgpack"]
BOTH = [("application/json", msgspec.json.encode), ("application/msgpack", msgspec.msgpack.encode)]


def fix(seconds_ago: int = 60, **fields: Any) -> dict[str, Any]:
    """A valid wire ping ``seconds_ago`` before NOW, with ``fields`` overriding."""
    time = (NOW - timedelta(seconds=seconds_ago)).isoformat().replace("+00:00", "Z")
    return {"time": time, "lat": 52.52, "lon": 13.405, **fields}


def as_ping(seconds_ago: int = 60, **fields: Any) -> Ping:
    """The Ping that ``fix(seconds_ago, **fields)`` decodes to (Ping attribute names)."""
    return Ping(time=NOW - timedelta(seconds=seconds_ago), lat=52.52, lon=13.405, **fields)


def decode_json(document: object, content_type: str = "application/json") -> Decoded:
    """decode_batch() of ``document`` encoded as JSON, with the test window."""
    return decode_batch(msgspec.json.encode(document), content_type, **WINDOW)


def test_a_valid_json_batch_is_accepted_whole() -> None:
    """Every field of a valid JSON batch arrives in the Ping, in order, with nothing rejected."""
    full = fix(
        30,
        speed_mps=8.3,
        heading_deg=271.5,
        accuracy_m=4.0,
        altitude_m=34.5,
        battery=87.0,
        seq=12,
    )
    assert decode_json({"pings": [fix(90), full]}) == Decoded(
        pings=[
            as_ping(90),
            as_ping(
                30,
                speed_mps=8.3,
                heading_deg=271.5,
                accuracy_m=4.0,
                altitude_m=34.5,
                battery_pct=87.0,
                seq=12,
            ),
        ],
        rejected=[],
    )


@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=utf-8", "Application/JSON", " application/json ;charset=UTF-8"],
)
def test_json_content_type_parameters_and_case_are_ignored(content_type: str) -> None:
    """application/json is recognised with a charset parameter and in any case."""
    assert decode_json({"pings": [fix()]}, content_type).pings == [as_ping()]


@pytest.mark.parametrize("content_type", MSGPACK_TYPES)
def test_a_msgpack_batch_is_accepted_under_each_msgpack_type(content_type: str) -> None:
    """MessagePack bodies decode the same under all three MessagePack content types."""
    body = msgspec.msgpack.encode({"pings": [fix(battery=50.0)]})
    assert decode_batch(body, content_type, **WINDOW) == Decoded(
        pings=[as_ping(battery_pct=50.0)], rejected=[]
    )


def test_msgpack_native_timestamps_are_accepted() -> None:
    """A MessagePack timestamp extension decodes as the aware UTC time it encodes."""
    body = msgspec.msgpack.encode({"pings": [{**fix(), "time": NOW - timedelta(seconds=60)}]})
    assert decode_batch(body, "application/msgpack", **WINDOW).pings == [as_ping()]


def test_unknown_fields_are_ignored() -> None:
    """Fields a newer client adds are ignored, so old servers keep accepting its pings."""
    assert decode_json({"pings": [fix(floor=3)], "client": "x"}).pings == [as_ping()]


def test_an_empty_batch_is_accepted() -> None:
    """An empty pings array is valid and yields nothing accepted and nothing rejected."""
    assert decode_json({"pings": []}) == Decoded(pings=[], rejected=[])


def test_fractional_battery_levels_become_percentages() -> None:
    """A battery of 0.42 is read as a fraction and stored as 42 %."""
    assert decode_json({"pings": [fix(battery=0.42)]}).pings == [as_ping(battery_pct=42.0)]


@pytest.mark.parametrize(("content_type", "encode"), BOTH)
def test_a_mixed_batch_keeps_valid_pings_and_reports_each_invalid_one(
    content_type: str, encode: Any
) -> None:
    """Each invalid ping is rejected with its index and field; the valid ones are kept in order."""
    pings = [
        fix(50),
        fix(49, lat=91.2),
        fix(48),
        {"lat": 1.0, "lon": 2.0},
        fix(47, speed_mps="fast"),
        fix(46, battery=0.5),
        7,
    ]
    decoded = decode_batch(encode({"pings": pings}), content_type, **WINDOW)
    assert decoded == Decoded(
        pings=[as_ping(50), as_ping(48), as_ping(46, battery_pct=50.0)],
        rejected=[
            Rejection(index=1, field="lat", reason="expected lat in [-90.0, 90.0], got 91.2"),
            Rejection(index=3, field="time", reason="time is required"),
            Rejection(index=4, field="speed_mps", reason="expected a number, got 'fast'"),
            Rejection(index=6, field="$", reason="expected an object, got 7"),
        ],
    )


@pytest.mark.parametrize(("content_type", "encode"), BOTH)
def test_pings_outside_the_time_window_are_rejected_in_index_order(
    content_type: str, encode: Any
) -> None:
    """Too-new and too-old pings are rejected by index, interleaved with invalid ones."""
    pings = [fix(-301), fix(10, lat=-95.0), fix(86_401), fix(10)]
    decoded = decode_batch(encode({"pings": pings}), content_type, **WINDOW)
    assert decoded.pings == [as_ping(10)]
    assert [(r.index, r.field) for r in decoded.rejected] == [(0, "time"), (1, "lat"), (2, "time")]
    assert decoded.rejected[0].reason == (
        "expected time at most 300 s ahead of the server clock (2026-11-24T10:00:00Z),"
        " got 2026-11-24T10:05:01Z, 301 s ahead"
    )


def test_time_window_applies_on_the_fast_path_too() -> None:
    """In an otherwise valid batch, only the untimely ping is rejected."""
    decoded = decode_json({"pings": [fix(10), fix(-3600)]})
    assert decoded.pings == [as_ping(10)]
    assert [(r.index, r.field) for r in decoded.rejected] == [(1, "time")]


@pytest.mark.parametrize(
    ("value", "shown"), [(float("nan"), "nan"), (float("inf"), "inf"), (float("-inf"), "-inf")]
)
@pytest.mark.parametrize("field", ["lat", "lon", "speed_mps", "battery"])
def test_nan_and_infinity_in_msgpack_are_rejected(field: str, value: float, shown: str) -> None:
    """MessagePack can carry NaN and infinities; each is rejected naming the field's range."""
    body = msgspec.msgpack.encode({"pings": [fix(), {**fix(), field: value}]})
    decoded = decode_batch(body, "application/msgpack", **WINDOW)
    assert decoded.pings == [as_ping()]
    assert len(decoded.rejected) == 1
    rejected = decoded.rejected[0]
    assert (rejected.index, rejected.field) == (1, field)
    assert rejected.reason.endswith(f"], got {shown}")


def test_nan_is_not_json() -> None:
    """A NaN literal makes the body invalid JSON: the whole body is malformed."""
    body = b'{"pings": [{"time": "2026-11-24T09:59:00Z", "lat": NaN, "lon": 0}]}'
    with pytest.raises(MalformedBody) as caught:
        decode_batch(body, "application/json", **WINDOW)
    assert caught.value.field == "$"
    assert caught.value.reason.startswith("expected a JSON object, got invalid JSON: ")


@pytest.mark.parametrize(
    ("content_type", "shown"),
    [
        ("text/plain", "'text/plain'"),
        ("application/x-www-form-urlencoded", "'application/x-www-form-urlencoded'"),
        ("application/jsonx", "'application/jsonx'"),
        (None, "no Content-Type"),
        ("", "no Content-Type"),
    ],
)
def test_other_content_types_are_unsupported(content_type: str | None, shown: str) -> None:
    """Any content type but JSON and MessagePack is refused, naming what came and what works."""
    with pytest.raises(UnsupportedMediaType) as caught:
        decode_batch(b'{"pings": []}', content_type, **WINDOW)
    assert caught.value.field == "Content-Type"
    assert caught.value.reason == (
        "expected application/json or application/msgpack (also application/x-msgpack,"
        f" application/vnd.msgpack), got {shown}"
    )


@pytest.mark.parametrize("bad_index", [None, 500])
def test_more_than_the_maximum_pings_is_too_large(bad_index: int | None) -> None:
    """A batch over MAX_PINGS_PER_BATCH is refused whole, on the fast and the slow path."""
    pings = [fix()] * (MAX_PINGS_PER_BATCH + 1)
    if bad_index is not None:
        pings[bad_index] = fix(lat=100.0)
    with pytest.raises(PayloadTooLarge) as caught:
        decode_json({"pings": pings})
    assert (caught.value.field, caught.value.reason) == (
        "pings",
        f"expected at most {MAX_PINGS_PER_BATCH} pings in one batch, got {MAX_PINGS_PER_BATCH + 1}",
    )


def test_exactly_the_maximum_pings_is_accepted() -> None:
    """A batch of exactly MAX_PINGS_PER_BATCH pings is accepted."""
    assert len(decode_json({"pings": [fix()] * MAX_PINGS_PER_BATCH}).pings) == 1000


@pytest.mark.parametrize(
    ("body", "content_type", "field", "reason"),
    [
        (b"[1, 2]", "application/json", "$", "expected an object, got an array"),
        (b'"pings"', "application/json", "$", "expected an object, got 'pings'"),
        (b"{}", "application/json", "pings", "pings is required"),
        (b'{"pings": 5}', "application/json", "pings", "expected an array, got 5"),
        (b'{"pings": {"a": 1}}', "application/json", "pings", "expected an array, got an object"),
        (b"\x93\x01\x02\x03", "application/msgpack", "$", "expected an object, got an array"),
    ],
)
def test_bodies_of_the_wrong_shape_are_malformed(
    body: bytes, content_type: str, field: str, reason: str
) -> None:
    """A body that is not an object with a pings array is malformed, with field and reason."""
    with pytest.raises(MalformedBody) as caught:
        decode_batch(body, content_type, **WINDOW)
    assert (caught.value.field, caught.value.reason) == (field, reason)


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b'{"pings": [', "application/json", "JSON: Input data was truncated"),
        (b"", "application/json", "JSON: Input data was truncated"),
        (
            b"\xc1",
            "application/msgpack",
            "MessagePack: MessagePack data is malformed: invalid opcode '\\xc1' (byte 0)",
        ),
        (b"\x81\xa5pings", "application/msgpack", "MessagePack: Input data was truncated"),
    ],
)
def test_bodies_that_do_not_decode_are_malformed(
    body: bytes, content_type: str, reason: str
) -> None:
    """Bytes that are not JSON or MessagePack at all are malformed on field '$'."""
    with pytest.raises(MalformedBody) as caught:
        decode_batch(body, content_type, **WINDOW)
    kind = reason.split(":", 1)[0]
    assert (caught.value.field, caught.value.reason) == (
        "$",
        f"expected a {kind} object, got invalid {reason}",
    )


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"[" * 1000 + b"]" * 1000, "application/json"),
        (b'{"pings": [{"time": ' + b"[" * 1000 + b"]" * 1000 + b"}]}", "application/json"),
        (b'{"pings": [], "x": ' + b"[" * 1000 + b"]" * 1000 + b"}", "application/json"),
        (b"\x81\xa5pings" + b"\x91" * 1000 + b"\x90", "application/msgpack"),
    ],
)
def test_bodies_nested_too_deep_are_malformed(body: bytes, content_type: str) -> None:
    """A body nested 1,000 levels (anywhere: bare, in a field, in an unknown one) is malformed on
    '$' with the nesting as reason, never a RecursionError."""
    with pytest.raises(MalformedBody) as caught:
        decode_batch(body, content_type, **WINDOW)
    assert (caught.value.field, caught.value.reason) == ("$", TOO_DEEP)


finite = st.floats(allow_nan=False, allow_infinity=False)
offsets = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-9.5))])
valid_pings = st.builds(
    Ping,
    time=st.datetimes(
        min_value=datetime(2026, 11, 23, 10, 0, 1),
        max_value=datetime(2026, 11, 24, 10, 4, 59),
        timezones=st.just(UTC),
    ).flatmap(lambda t: offsets.map(t.astimezone)),
    lat=finite.filter(lambda x: -90 <= x <= 90),
    lon=st.floats(-180, 180),
    speed_mps=st.none() | st.floats(0, 150),
    heading_deg=st.none() | st.floats(0, 360),
    accuracy_m=st.none() | st.floats(0, 100_000),
    altitude_m=st.none() | st.floats(-1000, 20_000),
    battery_pct=st.none() | st.floats(0, 100),
    seq=st.none() | st.integers(0, 2**63 - 1),
)


@settings(max_examples=200, deadline=None)
@given(pings=st.lists(valid_pings, max_size=20))
def test_valid_pings_round_trip_through_json_and_msgpack(pings: list[Ping]) -> None:
    """Any valid batch decodes back to the pings that were encoded (batteries as percentages)."""
    expected = [normalise_battery(ping) for ping in pings]
    for content_type, encode in BOTH:
        decoded = decode_batch(encode({"pings": pings}), content_type, **WINDOW)
        assert decoded == Decoded(pings=expected, rejected=[])
