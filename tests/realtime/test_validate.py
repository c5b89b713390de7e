"""Reasons for invalid pings, the server-clock window, and battery normalisation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest

from realtime.errors import InvalidPing
from realtime.validate import (
    BOUNDS,
    ClientField,
    check_times,
    explain,
    invalid_ping,
    normalise_batteries,
    rejection,
)
from schemas import codecs
from schemas.ping import Ping, Rejection
from schemas.reasons import MISSING, show, split_error

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
VALID: dict[str, Any] = {"time": "2026-11-24T09:59:00Z", "lat": 52.52, "lon": 13.405}


def reject(item: object, index: int = 0) -> Rejection:
    """Decode ``item`` (JSON-encoded) as one ping, expecting it to fail, and explain why."""
    raw = msgspec.json.encode(item)
    with pytest.raises(msgspec.ValidationError) as caught:
        codecs.PING_JSON.decode(raw)
    return rejection(index, caught.value, codecs.ANY_JSON.decode(raw))


def ping_at(time: datetime, **fields: Any) -> Ping:
    """A valid ping at ``time`` near Berlin."""
    return Ping(time=time, lat=52.52, lon=13.405, **fields)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("lat", 91.2, "expected lat in [-90.0, 90.0], got 91.2"),
        ("lat", -91.0, "expected lat in [-90.0, 90.0], got -91.0"),
        ("lon", 180.5, "expected lon in [-180.0, 180.0], got 180.5"),
        ("lon", -181, "expected lon in [-180.0, 180.0], got -181"),
        ("speed_mps", -1, "expected speed_mps in [0.0, 150.0], got -1"),
        ("speed_mps", 150.1, "expected speed_mps in [0.0, 150.0], got 150.1"),
        ("heading_deg", 360.5, "expected heading_deg in [0.0, 360.0], got 360.5"),
        ("heading_deg", -0.1, "expected heading_deg in [0.0, 360.0], got -0.1"),
        ("accuracy_m", -2.5, "expected accuracy_m in [0.0, 100000.0], got -2.5"),
        ("accuracy_m", 100001, "expected accuracy_m in [0.0, 100000.0], got 100001"),
        ("altitude_m", -1000.5, "expected altitude_m in [-1000.0, 20000.0], got -1000.5"),
        ("altitude_m", 20001, "expected altitude_m in [-1000.0, 20000.0], got 20001"),
        ("battery", 100.5, "expected battery in [0.0, 100.0], got 100.5"),
        ("battery", -0.01, "expected battery in [0.0, 100.0], got -0.01"),
        ("seq", -1, "expected seq in [0, 9223372036854775807], got -1"),
    ],
)
def test_out_of_range_values_name_the_range_and_the_value(
    field: str, value: float, reason: str
) -> None:
    """A value outside its field's range is rejected with the range and the value sent."""
    assert reject({**VALID, field: value}) == Rejection(index=0, field=field, reason=reason)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("lat", "abc", "expected a number, got 'abc'"),
        ("lon", True, "expected a number, got true"),
        ("lat", None, "expected a number, got null"),
        ("speed_mps", "fast", "expected a number, got 'fast'"),
        ("heading_deg", [90], "expected a number, got an array"),
        ("battery", {"level": 1}, "expected a number, got an object"),
        ("seq", 1.5, "expected an integer, got 1.5"),
        ("seq", "7", "expected an integer, got '7'"),
    ],
)
def test_wrong_types_say_what_was_expected(field: str, value: object, reason: str) -> None:
    """A value of the wrong type is rejected with the expected kind and the value sent."""
    assert reject({**VALID, field: value}) == Rejection(index=0, field=field, reason=reason)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (
            "2026-11-24T10:00:00",
            "expected a time with a zone such as 2026-11-24T10:00:00Z, got '2026-11-24T10:00:00'",
        ),
        ("yesterday", "expected an RFC 3339 time such as 2026-11-24T10:00:00Z, got 'yesterday'"),
        (1764000000, "expected a time with a zone such as 2026-11-24T10:00:00Z, got 1764000000"),
    ],
)
def test_times_must_be_rfc3339_and_timezone_aware(value: object, reason: str) -> None:
    """A naive, unparsable or numeric time is rejected with an example of an accepted one."""
    assert reject({**VALID, "time": value}) == Rejection(index=0, field="time", reason=reason)


@pytest.mark.parametrize("field", ["time", "lat", "lon"])
def test_missing_required_fields_are_named(field: str) -> None:
    """A ping without a required field is rejected as '<field> is required'."""
    item = {name: value for name, value in VALID.items() if name != field}
    assert reject(item, index=4) == Rejection(index=4, field=field, reason=f"{field} is required")


def test_an_item_that_is_not_an_object_is_rejected_as_a_whole() -> None:
    """A batch item that is not an object is rejected on field '$' with what came."""
    assert reject(5) == Rejection(index=0, field="$", reason="expected an object, got 5")


def test_bounds_are_read_from_the_ping_schema() -> None:
    """Every bounded Ping field's range is known by its wire name."""
    assert BOUNDS == {
        "lat": (-90.0, 90.0),
        "lon": (-180.0, 180.0),
        "speed_mps": (0.0, 150.0),
        "heading_deg": (0.0, 360.0),
        "accuracy_m": (0.0, 100_000.0),
        "altitude_m": (-1000.0, 20_000.0),
        "battery": (0.0, 100.0),
        "seq": (0, 2**63 - 1),
    }


def test_split_error_reads_the_field_path_of_a_batch() -> None:
    """msgspec's '- at `$.pings[3].lat`' suffix becomes the field path 'pings[3].lat'."""
    error = msgspec.ValidationError("Expected `float` <= 90.0 - at `$.pings[3].lat`")
    assert split_error(error) == ("pings[3].lat", "Expected `float` <= 90.0")


def test_split_error_reports_a_missing_field_at_its_own_path() -> None:
    """A missing field is reported at the path of the field, not of its parent object."""
    error = msgspec.ValidationError("Object missing required field `time` - at `$.pings[0]`")
    assert split_error(error) == ("pings[0].time", "Object missing required field `time`")


def test_explain_quotes_a_value_nested_in_the_document() -> None:
    """explain() looks the offending value up in the loosely decoded document."""
    error = msgspec.ValidationError("Expected `array`, got `str` - at `$.pings`")
    assert explain(error, {"pings": "none"}) == ("pings", "expected an array, got 'none'")


def test_explain_without_a_document_names_the_type_that_came() -> None:
    """When the value cannot be looked up, the reason names msgspec's type instead."""
    error = msgspec.ValidationError("Expected `float`, got `str` - at `$.lat`")
    assert explain(error) == ("lat", "expected a number, got a string")


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (91.2, "91.2"),
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        (-3, "-3"),
        (False, "false"),
        (None, "null"),
        ("x" * 70, repr("x" * 57 + "...")),
        (MISSING, "nothing"),
        (datetime(2026, 11, 24, 10, tzinfo=UTC), "2026-11-24T10:00:00Z"),
    ],
)
def test_show_quotes_values_as_a_client_would_recognise_them(value: object, shown: str) -> None:
    """show() writes numbers as sent, strings quoted and cut, times in RFC 3339."""
    assert show(value) == shown


def test_invalid_ping_quotes_the_range_in_the_clients_unit() -> None:
    """An adapter's conversion error names the client's field, unit and value."""
    knot = 1852 / 3600
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.convert({**VALID, "speed_mps": -2 * knot}, Ping)
    error = invalid_ping(
        caught.value, {"speed_mps": ClientField("speed", -2.0, per_unit=knot, unit=" kn")}
    )
    assert isinstance(error, InvalidPing)
    assert (error.field, error.reason) == ("speed", "expected speed in [0.0, 291.577] kn, got -2.0")


def test_invalid_ping_names_a_missing_field_as_the_client_calls_it() -> None:
    """A missing Ping field is reported under the client's name for it."""
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.convert({"lat": 1.0, "lon": 2.0}, Ping)
    error = invalid_ping(caught.value, {"time": ClientField("tst", MISSING)})
    assert (error.field, error.reason) == ("tst", "tst is required")


def test_check_times_keeps_pings_inside_the_window_inclusive() -> None:
    """Pings exactly at either edge of the window, and between, are accepted in order."""
    pings = [
        ping_at(NOW - timedelta(seconds=3600)),
        ping_at(NOW),
        ping_at(NOW + timedelta(seconds=60)),
    ]
    assert check_times(pings, NOW, max_future_s=60, max_age_s=3600) == (pings, [])


def test_check_times_rejects_a_ping_too_far_in_the_future() -> None:
    """A ping beyond max_future_s is rejected with the limit and how far ahead it was."""
    pings = [ping_at(NOW), ping_at(NOW + timedelta(seconds=90))]
    accepted, rejected = check_times(pings, NOW, max_future_s=60, max_age_s=3600, first_index=10)
    assert accepted == pings[:1]
    assert rejected == [
        Rejection(
            index=11,
            field="time",
            reason="expected time at most 60 s ahead of the server clock (2026-11-24T10:00:00Z),"
            " got 2026-11-24T10:01:30Z, 90 s ahead",
        )
    ]


def test_check_times_rejects_a_ping_that_is_too_old() -> None:
    """A ping older than max_age_s is rejected with the limit and its age."""
    old = ping_at(datetime(2026, 11, 24, 10, 0, tzinfo=UTC) - timedelta(days=2, seconds=0.5))
    assert check_times([old], NOW, max_future_s=60, max_age_s=86400) == (
        [],
        [
            Rejection(
                index=0,
                field="time",
                reason="expected time at most 86400 s old by the server clock"
                " (2026-11-24T10:00:00Z), got 2026-11-22T09:59:59.500000Z, 172800.5 s old",
            )
        ],
    )


def test_check_times_compares_instants_across_offsets() -> None:
    """A time with a +02:00 offset is compared as the instant it denotes, not its wall clock."""
    plus_two = timezone(timedelta(hours=2))
    same_instant = ping_at(datetime(2026, 11, 24, 12, 0, 30, tzinfo=plus_two))
    same_wall_clock = ping_at(datetime(2026, 11, 24, 10, 0, 30, tzinfo=plus_two))
    accepted, rejected = check_times(
        [same_instant, same_wall_clock], NOW, max_future_s=60, max_age_s=60
    )
    assert accepted == [same_instant]
    assert [(r.index, r.field) for r in rejected] == [(1, "time")]


def test_check_times_uses_given_indices_for_non_contiguous_pings() -> None:
    """With indices, each rejection carries the index the caller gave for that ping."""
    pings = [ping_at(NOW), ping_at(NOW + timedelta(hours=1))]
    _, rejected = check_times(pings, NOW, max_future_s=60, max_age_s=60, indices=[2, 7])
    assert [r.index for r in rejected] == [7]


@pytest.mark.parametrize(
    ("battery", "expected"),
    [(0.0, 0.0), (0.5, 50.0), (1.0, 100.0), (1.5, 1.5), (87.0, 87.0), (None, None)],
)
def test_batteries_of_one_and_below_are_fractions(
    battery: float | None, expected: float | None
) -> None:
    """normalise_batteries() turns 0-1 into a percentage and leaves larger values alone."""
    (ping,) = normalise_batteries([ping_at(NOW, battery_pct=battery)])
    assert ping.battery_pct == expected
