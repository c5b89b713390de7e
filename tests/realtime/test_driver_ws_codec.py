"""Driver WebSocket messages, and the stream-entry codecs the pings travel on afterwards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from realtime.errors import MalformedBody, PayloadTooLarge
from realtime.protocols.native import WsPings, decode_ws_message, peek_message_id
from schemas import codecs
from schemas.driver_ws import Ack, ErrorMessage, PingMessage, ServerMessage
from schemas.ids import DriverId, OrgId
from schemas.ping import MAX_PINGS_PER_BATCH, LivePosition, Ping, PingBatch, Rejection

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
WINDOW: dict[str, Any] = {"now": NOW, "max_future_s": 300.0, "max_age_s": 86_400.0}
TIME = "2026-11-24T09:59:00Z"
PING = Ping(time=NOW - timedelta(seconds=60), lat=52.52, lon=13.405)


def text(message: object) -> str:
    """``message`` as a JSON text frame."""
    return msgspec.json.encode(message).decode()


def test_a_ping_message_in_a_text_frame_is_one_accepted_ping() -> None:
    """A JSON ping message yields its Ping and its id, with battery as a percentage."""
    frame = text({"type": "ping", "id": 7, "time": TIME, "lat": 52.52, "lon": 13.405, "battery": 1})
    assert decode_ws_message(frame, **WINDOW) == WsPings(
        id=7, pings=[msgspec.structs.replace(PING, battery_pct=100.0)], rejected=[]
    )


def test_a_pings_message_in_a_binary_frame_is_msgpack() -> None:
    """A binary frame is MessagePack and carries a pings message like a batch."""
    frame = msgspec.msgpack.encode(
        {"type": "pings", "id": 8, "pings": [{"time": TIME, "lat": 52.52, "lon": 13.405}] * 2}
    )
    assert decode_ws_message(frame, **WINDOW) == WsPings(id=8, pings=[PING, PING], rejected=[])


def test_a_ping_message_without_id_is_accepted() -> None:
    """The id is optional; without it the answer's id is null."""
    frame = text({"type": "ping", "time": TIME, "lat": 52.52, "lon": 13.405})
    assert decode_ws_message(frame, **WINDOW) == WsPings(id=None, pings=[PING], rejected=[])


def test_an_empty_pings_message_is_a_heartbeat() -> None:
    """An empty pings message decodes to nothing accepted and nothing rejected."""
    assert decode_ws_message(text({"type": "pings", "id": 1, "pings": []}), **WINDOW) == WsPings(
        id=1, pings=[], rejected=[]
    )


def test_an_invalid_ping_message_is_rejected_at_index_zero() -> None:
    """A ping message with a bad field is answered with a rejection at index 0, keeping its id."""
    frame = text({"type": "ping", "id": 9, "time": TIME, "lat": 91.2, "lon": 13.405})
    assert decode_ws_message(frame, **WINDOW) == WsPings(
        id=9,
        pings=[],
        rejected=[
            Rejection(index=0, field="lat", reason="expected lat in [-90.0, 90.0], got 91.2")
        ],
    )


def test_an_untimely_ping_message_is_rejected_on_time() -> None:
    """A ping message from the far future is rejected by the server-clock window."""
    frame = text({"type": "ping", "id": 3, "time": "2026-11-25T10:00:00Z", "lat": 1, "lon": 2})
    decoded = decode_ws_message(frame, **WINDOW)
    assert (decoded.pings, [(r.index, r.field) for r in decoded.rejected]) == ([], [(0, "time")])


@pytest.mark.parametrize("binary", [False, True])
def test_a_pings_message_keeps_valid_pings_and_rejects_each_invalid_one(binary: bool) -> None:
    """In a pings message, bad pings are rejected by index and good ones kept, in either frame."""
    message = {
        "type": "pings",
        "id": 4,
        "pings": [
            {"time": TIME, "lat": 52.52, "lon": 13.405},
            {"time": TIME, "lat": 52.52, "lon": 13.405, "heading_deg": 400},
            {"time": "2026-11-24T09:59:00", "lat": 52.52, "lon": 13.405},
            {"time": TIME, "lat": 52.52, "lon": 13.405},
        ],
    }
    frame = msgspec.msgpack.encode(message) if binary else text(message)
    assert decode_ws_message(frame, **WINDOW) == WsPings(
        id=4,
        pings=[PING, PING],
        rejected=[
            Rejection(
                index=1, field="heading_deg", reason="expected heading_deg in [0.0, 360.0], got 400"
            ),
            Rejection(
                index=2,
                field="time",
                reason="expected a time with a zone such as 2026-11-24T10:00:00Z,"
                " got '2026-11-24T09:59:00'",
            ),
        ],
    )


@pytest.mark.parametrize(
    ("frame", "field", "reason"),
    [
        ('{"type": "route"}', "type", "expected type 'ping' or 'pings', got 'route'"),
        ('{"id": 1, "lat": 1}', "type", "expected type 'ping' or 'pings', got nothing"),
        ('{"type": "pings", "id": "a", "pings": []}', "id", "expected an integer, got 'a'"),
        ('{"type": "ping", "id": 1.5, "lat": 1}', "id", "expected an integer, got 1.5"),
        ('{"type": "pings", "id": 2}', "pings", "pings is required"),
        ('{"type": "pings", "pings": {}}', "pings", "expected an array, got an object"),
        ("[]", "$", "expected an object, got an array"),
        ("{", "$", "expected a JSON object, got invalid JSON: Input data was truncated"),
    ],
)
def test_frames_that_are_no_message_are_malformed(frame: str, field: str, reason: str) -> None:
    """A frame with an unknown type, a bad id or the wrong shape is malformed, field named."""
    with pytest.raises(MalformedBody) as caught:
        decode_ws_message(frame, **WINDOW)
    assert (caught.value.field, caught.value.reason) == (field, reason)


def test_a_pings_message_over_the_maximum_is_too_large() -> None:
    """A pings message over MAX_PINGS_PER_BATCH is refused whole."""
    ping = {"time": TIME, "lat": 52.52, "lon": 13.405}
    frame = text({"type": "pings", "id": 1, "pings": [ping] * (MAX_PINGS_PER_BATCH + 1)})
    with pytest.raises(PayloadTooLarge) as caught:
        decode_ws_message(frame, **WINDOW)
    assert caught.value.field == "pings"


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ('{"type": "route", "id": 5}', 5),
        (msgspec.msgpack.encode({"id": 6, "type": 1}), 6),
        ('{"type": "ping", "id": true}', None),
        ('{"id": "5"}', None),
        ("not json", None),
    ],
)
def test_peek_message_id_recovers_an_integer_id(frame: str | bytes, expected: int | None) -> None:
    """peek_message_id() finds an integer id in a frame that is not a valid message, or None."""
    assert peek_message_id(frame) == expected


def test_ping_message_flattens_exactly_the_ping_fields() -> None:
    """A ping message has every Ping field under the same wire name, plus id."""
    ping_info = msgspec.inspect.type_info(Ping)
    message_info = msgspec.inspect.type_info(PingMessage)
    assert isinstance(ping_info, msgspec.inspect.StructType)
    assert isinstance(message_info, msgspec.inspect.StructType)
    ping_fields, message_fields = ping_info.fields, message_info.fields
    assert [(f.name, f.encode_name, f.type) for f in message_fields if f.name != "id"] == [
        (f.name, f.encode_name, f.type) for f in ping_fields
    ]


def test_to_ping_keeps_every_field() -> None:
    """PingMessage.to_ping() carries over every field's value unchanged."""
    full = Ping(
        time=NOW,
        lat=1.0,
        lon=2.0,
        speed_mps=3.0,
        heading_deg=4.0,
        accuracy_m=5.0,
        altitude_m=6.0,
        battery_pct=7.0,
        seq=8,
    )
    message = PingMessage(id=1, **msgspec.structs.asdict(full))
    assert message.to_ping() == full


def test_server_messages_encode_with_their_type_tag() -> None:
    """Ack and error messages carry their type tag and every field in JSON."""
    ack = Ack(id=4, accepted=1, rejected=[Rejection(index=1, field="lat", reason="r")])
    error = ErrorMessage(id=None, reason="expected type 'ping' or 'pings', got 'x'", field="type")
    assert codecs.WS_SERVER_JSON.encode(ack) == (
        b'{"type":"ack","id":4,"accepted":1,"rejected":[{"index":1,"field":"lat","reason":"r"}]}'
    )
    assert codecs.WS_SERVER_JSON.encode(error) == (
        b'{"type":"error","id":null,"reason":"expected type \'ping\' or \'pings\', got \'x\'",'
        b'"field":"type"}'
    )


def test_server_messages_round_trip_through_msgpack() -> None:
    """A client decoding the server union gets back the messages the server encoded."""
    decoder = msgspec.msgpack.Decoder(ServerMessage)
    for message in (Ack(id=1, accepted=0), ErrorMessage(id=2, reason="x")):
        assert decoder.decode(codecs.WS_SERVER_MSGPACK.encode(message)) == message


def test_ping_batch_stream_entries_round_trip() -> None:
    """A ping-stream entry decodes back to the batch that was appended."""
    batch = PingBatch(
        org_id=OrgId(1),
        driver_id=DriverId(2),
        source="osmand",
        received_at=NOW,
        pings=[PING, msgspec.structs.replace(PING, seq=3, battery_pct=40.0)],
    )
    assert codecs.PING_BATCH_DECODER.decode(codecs.PING_BATCH_ENCODER.encode(batch)) == batch


def test_live_positions_round_trip() -> None:
    """A live position decodes back to what was stored."""
    live = LivePosition(driver_id=DriverId(2), time=NOW, lat=1.0, lon=2.0, speed_mps=3.5)
    encoded = codecs.LIVE_POSITION_ENCODER.encode(live)
    assert codecs.LIVE_POSITION_DECODER.decode(encoded) == live
