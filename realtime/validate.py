"""Checks a ping must pass beyond its schema, and human reasons for the ones it fails.

msgspec validates a :class:`~schemas.ping.Ping` in C and says why in its own terms
(``Expected `float` <= 90.0 - at `$.lat```). :func:`explain` turns that into the field the
client sent and a reason that shows the offending value (``expected lat in [-90.0, 90.0], got
91.2``), looking the value up in a loose (untyped) decode of the same input.

:func:`check_times` applies what the schema cannot know: the server's clock. A fix too far in
the future or too old is rejected. :func:`normalise_batteries` reads battery levels of 1 and
below as fractions, as :func:`schemas.ping.normalise_battery` documents.

Everything here is pure: no clock is read, ``now`` is always passed in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Final, NamedTuple

import msgspec

from realtime.errors import InvalidPing
from schemas.ping import Ping, Rejection, normalise_battery

EXAMPLE_TIME: Final = "2026-11-24T10:00:00Z"
"""An example of a time every adapter accepts, quoted in reasons."""

MISSING: Final = object()
"""Stands for "the client sent no value here" in :func:`show` and :func:`explain`."""

ROOT: Final = "$"
"""The field named in a reason about the whole item or body (e.g. not an object at all)."""


def _bounds_of(struct: type[msgspec.Struct]) -> dict[str, tuple[float, float]]:
    """Each bounded field's wire name and its inclusive ``[ge, le]`` range, read from the schema."""
    bounds: dict[str, tuple[float, float]] = {}
    info = msgspec.inspect.type_info(struct)
    if not isinstance(info, msgspec.inspect.StructType):
        raise TypeError(f"expected a Struct type, got {struct!r}")
    for field in info.fields:
        candidates = field.type.types if isinstance(field.type, msgspec.inspect.UnionType) else ()
        for ftype in (field.type, *candidates):
            inner = ftype.type if isinstance(ftype, msgspec.inspect.Metadata) else ftype
            if (
                isinstance(inner, msgspec.inspect.FloatType | msgspec.inspect.IntType)
                and inner.ge is not None
                and inner.le is not None
            ):
                bounds[field.encode_name] = (inner.ge, inner.le)
    return bounds


BOUNDS: Final = _bounds_of(Ping)
"""Wire name of each bounded :class:`~schemas.ping.Ping` field → its inclusive range."""

_AT = re.compile(r"^(?P<detail>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_MISSING_FIELD = re.compile(r"^Object missing required field `(?P<name>[^`]+)`$")
_RANGE = re.compile(r"^Expected `(?:float|int)` [<>]=? ")
_TYPE = re.compile(r"^Expected `(?P<expected>[^`]+)`, got `(?P<got>[^`]+)`$")
_PATH_PART = re.compile(r"\.([^.\[]+)|\[(\d+)\]")

_KINDS: Final = {
    "float": "a number",
    "int": "an integer",
    "str": "a string",
    "bool": "true or false",
    "datetime": f"a timezone-aware time such as {EXAMPLE_TIME}",
    "object": "an object",
    "array": "an array",
    "null": "null",
}


def show(value: object) -> str:
    """``value`` as a reason quotes it: numbers as written, strings quoted and cut at 60 chars."""
    if value is MISSING:
        return "nothing"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, bytes | bytearray | memoryview):
        return f"{len(value)} bytes"
    return type(value).__name__


def iso(time: datetime) -> str:
    """``time`` in RFC 3339; UTC is written with ``Z``."""
    text = time.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def split_error(error: msgspec.ValidationError | msgspec.DecodeError) -> tuple[str, str]:
    """msgspec's message as ``(field path, detail)``: ``("pings[3].lat", "Expected ...")``.

    A missing field is reported at the path of the field itself, not of its parent object. The
    whole document is :data:`ROOT`.
    """
    match = _AT.match(str(error))
    if match is None:  # the pattern matches every string; this keeps mypy and readers sure
        return ROOT, str(error)
    detail = match["detail"]
    path = (match["path"] or "").lstrip(".")
    missing = _MISSING_FIELD.match(detail)
    if missing:
        path = f"{path}.{missing['name']}" if path else missing["name"]
    return path or ROOT, detail


def describe(detail: str, field: str, value: object) -> str:
    """A reason for msgspec's ``detail`` about ``field``, quoting the ``value`` that came."""
    if _MISSING_FIELD.match(detail):
        return f"{field} is required"
    leaf = field.rsplit(".", 1)[-1]
    if _RANGE.match(detail) and leaf in BOUNDS:
        low, high = BOUNDS[leaf]
        return f"expected {leaf} in [{_number(low)}, {_number(high)}], got {show(value)}"
    if detail.startswith("Expected `datetime` with a timezone component"):
        return f"expected a timezone-aware time such as {EXAMPLE_TIME}, got {show(value)}"
    if detail.startswith("Invalid RFC3339 encoded datetime"):
        return f"expected an RFC 3339 time such as {EXAMPLE_TIME}, got {show(value)}"
    typed = _TYPE.match(detail)
    if typed:
        kinds = [k for k in typed["expected"].split(" | ") if k != "null"] or ["null"]
        expected = " or ".join(_KINDS.get(k, f"`{k}`") for k in kinds)
        got = show(value) if value is not MISSING else _KINDS.get(typed["got"], typed["got"])
        return f"expected {expected}, got {got}"
    reason = detail[:1].lower() + detail[1:]
    return reason if value is MISSING else f"{reason}, got {show(value)}"


def lookup(document: object, field: str) -> object:
    """The value at ``field`` (``pings[3].lat``) in a loosely decoded document, or MISSING."""
    if field == ROOT:
        return document
    node = document
    for key, index in _PATH_PART.findall("." + field):
        if key and isinstance(node, dict) and key in node:
            node = node[key]
        elif index and isinstance(node, list) and int(index) < len(node):
            node = node[int(index)]
        else:
            return MISSING
    return node


def explain(
    error: msgspec.ValidationError | msgspec.DecodeError, document: object = MISSING
) -> tuple[str, str]:
    """``(field, reason)`` for a failed decode; ``document`` is the same input decoded loosely."""
    field, detail = split_error(error)
    value = MISSING if _MISSING_FIELD.match(detail) else lookup(document, field)
    return field, describe(detail, field, value)


def rejection(index: int, error: msgspec.ValidationError, document: object) -> Rejection:
    """The :class:`Rejection` of ping ``index`` of a batch, whose decode failed with ``error``."""
    field, reason = explain(error, document)
    return Rejection(index=index, field=field, reason=reason)


class ClientField(NamedTuple):
    """How one :class:`~schemas.ping.Ping` field was sent by a protocol adapter's client."""

    name: str
    """The field as the client spelled it: ``speed``, ``location.coords.latitude``."""
    value: object
    """The value as the client sent it, in the client's unit (MISSING if absent)."""
    per_unit: float = 1.0
    """How many Ping units one client unit is (knots → m/s: 0.514444)."""
    unit: str = ""
    """The client unit as quoted after a range, with its leading space (`` kn``)."""
    label: str | None = None
    """How the reason names the value when ``name`` holds more than one (``latitude``)."""


def invalid_ping(error: msgspec.ValidationError, fields: Mapping[str, ClientField]) -> InvalidPing:
    """An adapter's :func:`msgspec.convert` to Ping failed: say so in the client's own terms.

    ``fields`` maps Ping wire names (``speed_mps``) to what the client sent for them, so the
    error names the client's field and quotes the allowed range in the client's unit
    (``expected speed in [0.0, 291.577] kn, got -3.0``).
    """
    field, detail = split_error(error)
    sent = fields.get(field, ClientField(field, MISSING))
    label = sent.label or sent.name
    value = MISSING if _MISSING_FIELD.match(detail) else sent.value
    if _RANGE.match(detail) and field in BOUNDS:
        low, high = BOUNDS[field]
        if sent.per_unit != 1.0:
            low, high = low / sent.per_unit, high / sent.per_unit
        reason = (
            f"expected {label} in [{_number(low)}, {_number(high)}]{sent.unit}, got {show(value)}"
        )
    elif _MISSING_FIELD.match(detail):
        reason = f"{sent.name} is required"
    else:
        reason = describe(detail, label, value)
    return InvalidPing(sent.name, reason)


def _number(bound: float) -> str:
    """A range bound as quoted: integers exact, floats to at most three decimals."""
    return str(bound) if isinstance(bound, int) else repr(round(bound, 3))


def _seconds(duration_s: float) -> str:
    """A duration as quoted: no exponent, at most three decimals (``86400``, ``0.25``)."""
    return f"{duration_s:.3f}".rstrip("0").rstrip(".")


def check_times(
    pings: Sequence[Ping],
    now: datetime,
    *,
    max_future_s: float,
    max_age_s: float,
    first_index: int = 0,
    indices: Sequence[int] | None = None,
) -> tuple[list[Ping], list[Rejection]]:
    """Split ``pings`` into those inside the server-clock window and rejections for the rest.

    A ping is accepted when ``now - max_age_s <= time <= now + max_future_s`` (``now`` must be
    timezone-aware). Rejections carry field ``time`` and ``index = first_index + position``,
    or ``indices[position]`` when the pings are not contiguous in their batch. Accepted pings
    keep their order.
    """
    latest = now + timedelta(seconds=max_future_s)
    earliest = now - timedelta(seconds=max_age_s)
    accepted: list[Ping] = []
    rejected: list[Rejection] = []
    numbered = (
        enumerate(pings, first_index) if indices is None else zip(indices, pings, strict=True)
    )
    for index, ping in numbered:
        time = ping.time
        if time > latest:
            ahead = (time - now).total_seconds()
            reason = (
                f"expected time at most {_seconds(max_future_s)} s ahead of the server clock"
                f" ({iso(now.astimezone(UTC))}), got {iso(time)}, {_seconds(ahead)} s ahead"
            )
        elif time < earliest:
            age = (now - time).total_seconds()
            reason = (
                f"expected time at most {_seconds(max_age_s)} s old by the server clock"
                f" ({iso(now.astimezone(UTC))}), got {iso(time)}, {_seconds(age)} s old"
            )
        else:
            accepted.append(ping)
            continue
        rejected.append(Rejection(index=index, field="time", reason=reason))
    return accepted, rejected


def normalise_batteries(pings: Iterable[Ping]) -> list[Ping]:
    """``pings`` with fractional battery levels (1 and below) rewritten as percentages."""
    return [
        ping if ping.battery_pct is None or ping.battery_pct > 1.0 else normalise_battery(ping)
        for ping in pings
    ]
