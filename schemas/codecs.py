"""Every msgspec encoder and decoder lastmile uses, built once at import.

Building a decoder compiles its type into a validator, so hot paths reuse these constants and
never call ``msgspec.json.decode(..., type=...)``. An encoder or decoder holds no state between
calls; sharing one across requests is safe.

Inbound types are named ``<TYPE>_<FORMAT>`` (decoders), outbound ones likewise (encoders); the
stream codecs, used both ways, say ``_ENCODER``/``_DECODER``:

==================================  =============================================================
``PING_BATCH_IN_JSON/_MSGPACK``     body of ``POST /v1/pings``, all constraints checked in C
``LOOSE_PING_BATCH_JSON/_MSGPACK``  the same body with each ping left undecoded (slow path)
``PING_JSON/_MSGPACK``              one ping, for the slow path's item-by-item decode
``ANY_JSON/_MSGPACK``               untyped, to quote the offending value in a rejection
``WS_CLIENT_JSON/_MSGPACK``         a driver WebSocket message (text frame / binary frame)
``WS_LOOSE_PINGS_JSON/_MSGPACK``    a ``pings`` message with its pings left undecoded
``WS_HEAD_JSON/_MSGPACK``           just ``type`` and ``id`` of a driver WebSocket message
``WS_SERVER_JSON/_MSGPACK``         encoders for ``ack``, ``error`` and ``route`` WebSocket messages
``INGEST_RESULT_JSON/_MSGPACK``     encoders for the answer to ``POST /v1/pings``
``PING_BATCH_ENCODER/_DECODER``     a ping-stream entry (MessagePack, array-like)
``LIVE_POSITION_ENCODER/_DECODER``  a driver's latest position as kept in Redis (MessagePack)
``ARRIVAL_WINDOW_DECODER``          a stop's arrival window as the ETA worker keeps it in Redis
``SAVED_TRACKER_DECODER``           a driver's tracker state as the ETA worker keeps it in Redis
``TRACK_JSON``                      encoder of the customer's ``/v1/track`` view and messages
``LIVE_JSON``                       encoder of the dispatcher socket's messages
``EVENT_ENCODER/_DECODER``          a domain event on the ``events`` streams (MessagePack)
``ETA_STATE_ENCODER``               arrival windows and tracker state the ETA worker keeps
``PLAN_JOB_ENCODER/_DECODER``       a planning job on the ``plans`` stream (MessagePack)
``JSON_ENCODER``                    every other JSON answer: API bodies, error bodies, the reference
``json_decoder(T)``                 the decoder of a request body type, built on first use, kept
``IMPORT_ITEMS_JSON``, ``ORDER_IN_JSON``  a JSON order import's items, one order of it
``OSMAND_BODY_JSON``                an OsmAnd fix sent as JSON (Traccar Client)
``OWNTRACKS_HEAD/LOCATION_JSON``    an OwnTracks message's ``_type``; its ``location`` message
==================================  =============================================================
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from schemas.delivery import OrderIn
from schemas.driver_ws import ClientMessage, RouteMessage
from schemas.eta import ArrivalWindow, SavedTracker
from schemas.events import Event
from schemas.gps_apps import OsmAndBody, OwnTracksHead, OwnTracksLocation
from schemas.ping import LivePosition, Ping, PingBatch, PingBatchIn
from schemas.plan import PlanJob


class LoosePingBatch(msgspec.Struct, frozen=True, kw_only=True):
    """A ``POST /v1/pings`` body whose pings are still encoded, to decode them one by one."""

    pings: list[msgspec.Raw]


class LoosePingsMessage(msgspec.Struct, frozen=True, kw_only=True):
    """A ``pings`` WebSocket message whose pings are still encoded."""

    id: int | None = None
    pings: list[msgspec.Raw]


class MessageHead(msgspec.Struct, frozen=True, kw_only=True):
    """The ``type`` and ``id`` of any WebSocket message, whatever their types turn out to be."""

    type: Any = msgspec.UNSET
    id: Any = None


PING_BATCH_IN_JSON = msgspec.json.Decoder(PingBatchIn)
PING_BATCH_IN_MSGPACK = msgspec.msgpack.Decoder(PingBatchIn)
LOOSE_PING_BATCH_JSON = msgspec.json.Decoder(LoosePingBatch)
LOOSE_PING_BATCH_MSGPACK = msgspec.msgpack.Decoder(LoosePingBatch)
PING_JSON = msgspec.json.Decoder(Ping)
PING_MSGPACK = msgspec.msgpack.Decoder(Ping)
ANY_JSON = msgspec.json.Decoder()
ANY_MSGPACK = msgspec.msgpack.Decoder()

WS_CLIENT_JSON: msgspec.json.Decoder[ClientMessage] = msgspec.json.Decoder(ClientMessage)
WS_CLIENT_MSGPACK: msgspec.msgpack.Decoder[ClientMessage] = msgspec.msgpack.Decoder(ClientMessage)
WS_LOOSE_PINGS_JSON = msgspec.json.Decoder(LoosePingsMessage)
WS_LOOSE_PINGS_MSGPACK = msgspec.msgpack.Decoder(LoosePingsMessage)
WS_HEAD_JSON = msgspec.json.Decoder(MessageHead)
WS_HEAD_MSGPACK = msgspec.msgpack.Decoder(MessageHead)
WS_SERVER_JSON = msgspec.json.Encoder()
WS_SERVER_MSGPACK = msgspec.msgpack.Encoder()

INGEST_RESULT_JSON = msgspec.json.Encoder()
INGEST_RESULT_MSGPACK = msgspec.msgpack.Encoder()

PING_BATCH_ENCODER = msgspec.msgpack.Encoder()
PING_BATCH_DECODER = msgspec.msgpack.Decoder(PingBatch)
LIVE_POSITION_ENCODER = msgspec.msgpack.Encoder()
LIVE_POSITION_DECODER = msgspec.msgpack.Decoder(LivePosition)
ARRIVAL_WINDOW_DECODER = msgspec.msgpack.Decoder(ArrivalWindow)
SAVED_TRACKER_DECODER = msgspec.msgpack.Decoder(SavedTracker)
TRACK_JSON = msgspec.json.Encoder()
LIVE_JSON = msgspec.json.Encoder()
EVENT_ENCODER = msgspec.msgpack.Encoder()
EVENT_DECODER: msgspec.msgpack.Decoder[Event] = msgspec.msgpack.Decoder(Event)
ETA_STATE_ENCODER = msgspec.msgpack.Encoder()
PLAN_JOB_ENCODER = msgspec.msgpack.Encoder()
PLAN_JOB_DECODER = msgspec.msgpack.Decoder(PlanJob)

OSMAND_BODY_JSON = msgspec.json.Decoder(OsmAndBody)
OWNTRACKS_HEAD_JSON = msgspec.json.Decoder(OwnTracksHead)
OWNTRACKS_LOCATION_JSON = msgspec.json.Decoder(OwnTracksLocation)

ROUTE_MESSAGE_MSGPACK: msgspec.msgpack.Decoder[RouteMessage] = msgspec.msgpack.Decoder(RouteMessage)
"""Decodes route pushes arriving from pub/sub (encoded by ``realtime.events.push_route``)."""

JSON_ENCODER = msgspec.json.Encoder()
IMPORT_ITEMS_JSON = msgspec.json.Decoder(list[msgspec.Raw])
ORDER_IN_JSON = msgspec.json.Decoder(OrderIn)

T = TypeVar("T")
_REQUEST_DECODERS: dict[Any, Any] = {}


def json_decoder(cls: type[T]) -> msgspec.json.Decoder[T]:
    """The JSON decoder of request body type ``cls``: built on its first request, then kept
    (the request types are a fixed, small set, so the table stays small)."""
    found: msgspec.json.Decoder[T] | None = _REQUEST_DECODERS.get(cls)
    if found is None:
        found = _REQUEST_DECODERS[cls] = msgspec.json.Decoder(cls)
    return found
