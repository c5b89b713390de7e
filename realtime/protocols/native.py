"""lastmile's own formats: the ``POST /v1/pings`` batch and the driver WebSocket messages.

Both come as JSON or MessagePack and decode straight into :class:`~schemas.ping.Ping` Structs.

Fast path: the whole body decodes in one call, every range and type check done in C; then the
server-clock window and battery normalisation run over the decoded pings in Python.

Slow path, taken only when that decode raises a ``ValidationError``: the body is decoded again
with each ping left as raw bytes, and each ping is decoded on its own, so that every bad ping
becomes a :class:`~schemas.ping.Rejection` with its index while the good ones are kept. A
client that sends valid pings never pays for it.

Errors that concern the whole body raise: :class:`~realtime.errors.MalformedBody` (not
JSON/MessagePack, nested deeper than msgspec decodes (:mod:`schemas.limits`), or not an object
with a ``pings`` array),
:class:`~realtime.errors.PayloadTooLarge` (more than
:data:`~schemas.ping.MAX_PINGS_PER_BATCH` pings) and
:class:`~realtime.errors.UnsupportedMediaType`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from typing import Any, Final, TypeVar

import msgspec

from realtime.errors import MalformedBody, PayloadTooLarge, UnsupportedMediaType
from realtime.validate import check_times, explain, normalise_batteries, rejection
from schemas import codecs
from schemas.codecs import LoosePingBatch, LoosePingsMessage, MessageHead
from schemas.driver_ws import ClientMessage, PingMessage
from schemas.limits import TOO_DEEP
from schemas.ping import MAX_PINGS_PER_BATCH, Ping, PingBatchIn, Rejection
from schemas.reasons import MISSING, ROOT, show

JSON_TYPE: Final = "application/json"
MSGPACK_TYPES: Final = ("application/msgpack", "application/x-msgpack", "application/vnd.msgpack")
"""Content types read as MessagePack; the first is the one lastmile answers with."""

CLIENT_MESSAGE_TYPES: Final = ("ping", "pings")

_T = TypeVar("_T")


class Decoded(msgspec.Struct, frozen=True, kw_only=True):
    """A decoded batch: the accepted pings in order, and why each other one was rejected."""

    pings: list[Ping]
    rejected: list[Rejection]


class WsPings(msgspec.Struct, frozen=True, kw_only=True):
    """A ``ping`` or ``pings`` WebSocket message, decoded and checked like a batch.

    ``id`` is the message's ``id``, to echo in the :class:`~schemas.driver_ws.Ack`.
    """

    id: int | None
    pings: list[Ping]
    rejected: list[Rejection]


@dataclass(frozen=True, slots=True)
class _Format:
    """The decoders of one wire format, so that each code path is written once."""

    name: str
    batch: Callable[[Any], PingBatchIn]
    loose_batch: Callable[[Any], LoosePingBatch]
    ping: Callable[[Any], Ping]
    any: Callable[[Any], Any]
    message: Callable[[Any], ClientMessage]
    loose_pings: Callable[[Any], LoosePingsMessage]
    head: Callable[[Any], MessageHead]


_JSON: Final = _Format(
    name="JSON",
    batch=codecs.PING_BATCH_IN_JSON.decode,
    loose_batch=codecs.LOOSE_PING_BATCH_JSON.decode,
    ping=codecs.PING_JSON.decode,
    any=codecs.ANY_JSON.decode,
    message=codecs.WS_CLIENT_JSON.decode,
    loose_pings=codecs.WS_LOOSE_PINGS_JSON.decode,
    head=codecs.WS_HEAD_JSON.decode,
)
_MSGPACK: Final = _Format(
    name="MessagePack",
    batch=codecs.PING_BATCH_IN_MSGPACK.decode,
    loose_batch=codecs.LOOSE_PING_BATCH_MSGPACK.decode,
    ping=codecs.PING_MSGPACK.decode,
    any=codecs.ANY_MSGPACK.decode,
    message=codecs.WS_CLIENT_MSGPACK.decode,
    loose_pings=codecs.WS_LOOSE_PINGS_MSGPACK.decode,
    head=codecs.WS_HEAD_MSGPACK.decode,
)


def decode_batch(
    body: bytes,
    content_type: str | None,
    *,
    now: datetime,
    max_future_s: float,
    max_age_s: float,
) -> Decoded:
    """Decode and check a ``POST /v1/pings`` body.

    ``content_type`` is the request's header as sent (parameters such as ``charset`` are
    ignored). Valid pings inside the window ``[now - max_age_s, now + max_future_s]`` are
    returned in order, battery levels as percentages; every other ping is rejected with its
    index. An empty ``pings`` array is valid. Raises :class:`UnsupportedMediaType`,
    :class:`MalformedBody` or :class:`PayloadTooLarge` for problems of the whole body.
    """
    fmt = _format_of(content_type)
    try:
        pings = fmt.batch(body).pings
    except msgspec.ValidationError:
        loose = _decode_whole(fmt.loose_batch, fmt, body)
        _check_count(len(loose.pings))
        accepted, rejected = _screen_each(
            loose.pings, fmt, now=now, max_future_s=max_future_s, max_age_s=max_age_s
        )
        return Decoded(pings=accepted, rejected=rejected)
    except msgspec.DecodeError as exc:
        raise _not_decodable(fmt, exc) from None
    except RecursionError:
        raise MalformedBody(ROOT, TOO_DEEP) from None
    _check_count(len(pings))
    accepted, rejected = check_times(pings, now, max_future_s=max_future_s, max_age_s=max_age_s)
    return Decoded(pings=normalise_batteries(accepted), rejected=rejected)


def decode_ws_message(
    data: bytes | str,
    *,
    now: datetime,
    max_future_s: float,
    max_age_s: float,
) -> WsPings:
    """Decode one driver WebSocket frame: ``str`` (text frame) is JSON, ``bytes`` MessagePack.

    A ``ping`` or ``pings`` message comes back checked exactly like a batch (a ``ping`` message
    is a batch of one, index 0); when the client union grows (stop outcomes, see
    :mod:`schemas.driver_ws`) so will the return type. Raises :class:`MalformedBody` for a
    frame that is no message at all (:func:`peek_message_id` recovers its ``id`` for the
    ``error`` answer) and :class:`PayloadTooLarge` for too many pings.
    """
    fmt = _JSON if isinstance(data, str) else _MSGPACK
    try:
        message = fmt.message(data)
    except msgspec.ValidationError:
        return _decode_ws_slowly(data, fmt, now=now, max_future_s=max_future_s, max_age_s=max_age_s)
    except msgspec.DecodeError as exc:
        raise _not_decodable(fmt, exc) from None
    except RecursionError:
        raise MalformedBody(ROOT, TOO_DEEP) from None
    if isinstance(message, PingMessage):
        pings = [message.to_ping()]
    else:
        _check_count(len(message.pings))
        pings = message.pings
    accepted, rejected = check_times(pings, now, max_future_s=max_future_s, max_age_s=max_age_s)
    return WsPings(id=message.id, pings=normalise_batteries(accepted), rejected=rejected)


def peek_message_id(data: bytes | str) -> int | None:
    """The integer ``id`` of a WebSocket frame that may not decode as a message, if it has one."""
    fmt = _JSON if isinstance(data, str) else _MSGPACK
    try:
        message_id = fmt.head(data).id
    except (msgspec.DecodeError, RecursionError):
        return None
    return message_id if type(message_id) is int else None


def _format_of(content_type: str | None) -> _Format:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == JSON_TYPE:
        return _JSON
    if media in MSGPACK_TYPES:
        return _MSGPACK
    got = show(content_type) if content_type else "no Content-Type"
    raise UnsupportedMediaType(
        "Content-Type",
        f"expected {JSON_TYPE} or {MSGPACK_TYPES[0]} (also {', '.join(MSGPACK_TYPES[1:])}),"
        f" got {got}",
    )


def _check_count(count: int) -> None:
    if count > MAX_PINGS_PER_BATCH:
        raise PayloadTooLarge(
            "pings", f"expected at most {MAX_PINGS_PER_BATCH} pings in one batch, got {count}"
        )


def _not_decodable(fmt: _Format, exc: msgspec.DecodeError) -> MalformedBody:
    return MalformedBody(ROOT, f"expected a {fmt.name} object, got invalid {fmt.name}: {exc}")


def _loosely(fmt: _Format, data: Any) -> object:
    """``data`` decoded without a type, to quote values in reasons; MISSING if even that fails.

    Raises :class:`MalformedBody` when ``data`` nests too deep to decode at all.
    """
    try:
        document: object = fmt.any(data)
    except msgspec.DecodeError:
        return MISSING
    except RecursionError:
        raise MalformedBody(ROOT, TOO_DEEP) from None
    return document


def _decode_whole(decode: Callable[[Any], _T], fmt: _Format, data: bytes | str) -> _T:
    """Decode the outer shape of a body whose pings failed; a wrong shape is malformed."""
    try:
        return decode(data)
    except msgspec.ValidationError as exc:
        raise MalformedBody(*explain(exc, _loosely(fmt, data))) from None
    except msgspec.DecodeError as exc:
        raise _not_decodable(fmt, exc) from None
    except RecursionError:
        raise MalformedBody(ROOT, TOO_DEEP) from None


def _screen_each(
    items: Sequence[msgspec.Raw],
    fmt: _Format,
    *,
    now: datetime,
    max_future_s: float,
    max_age_s: float,
) -> tuple[list[Ping], list[Rejection]]:
    """Decode and check each still-encoded ping on its own; rejections come in index order."""
    decoded: list[Ping] = []
    indices: list[int] = []
    invalid: list[Rejection] = []
    for index, item in enumerate(items):
        try:
            decoded.append(fmt.ping(item))
        except msgspec.ValidationError as exc:
            invalid.append(rejection(index, exc, _loosely(fmt, item)))
            continue
        indices.append(index)
    accepted, untimely = check_times(
        decoded, now, max_future_s=max_future_s, max_age_s=max_age_s, indices=indices
    )
    rejected = sorted(invalid + untimely, key=attrgetter("index")) if untimely else invalid
    return normalise_batteries(accepted), rejected


def _decode_ws_slowly(
    data: bytes | str,
    fmt: _Format,
    *,
    now: datetime,
    max_future_s: float,
    max_age_s: float,
) -> WsPings:
    """A frame that failed the typed decode: find out which message it meant and why it failed."""
    head = _decode_whole(fmt.head, fmt, data)
    if head.id is not None and type(head.id) is not int:
        raise MalformedBody("id", f"expected an integer, got {show(head.id)}")
    if head.type == "ping":
        # Unknown fields are ignored, so the whole message decodes as the Ping it flattens.
        items = [msgspec.Raw(data.encode() if isinstance(data, str) else data)]
    elif head.type == "pings":
        loose = _decode_whole(fmt.loose_pings, fmt, data)
        _check_count(len(loose.pings))
        items = loose.pings
    else:
        got = "nothing" if head.type is msgspec.UNSET else show(head.type)
        kinds = " or ".join(repr(kind) for kind in CLIENT_MESSAGE_TYPES)
        raise MalformedBody("type", f"expected type {kinds}, got {got}")
    accepted, rejected = _screen_each(
        items, fmt, now=now, max_future_s=max_future_s, max_age_s=max_age_s
    )
    return WsPings(id=head.id, pings=accepted, rejected=rejected)
