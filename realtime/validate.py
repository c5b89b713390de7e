"""Checks a ping must pass beyond its schema, and human reasons for the ones it fails.

:func:`explain` and :func:`invalid_ping` say why a :class:`~schemas.ping.Ping` failed its schema
in the client's terms, through :mod:`schemas.reasons` (the one reader of msgspec's messages),
quoting each bounded field's whole range (``expected lat in [-90.0, 90.0], got 91.2``).

:func:`check_times` applies what the schema cannot know: the server's clock. A fix too far in
the future or too old is rejected. :func:`normalise_batteries` reads battery levels of 1 and
below as fractions, as :func:`schemas.ping.normalise_battery` documents.

Everything here is pure: no clock is read, ``now`` is always passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Final, NamedTuple

import msgspec

from realtime.errors import InvalidPing
from schemas import reasons
from schemas.ping import Ping, Rejection, normalise_battery
from schemas.reasons import MISSING, describe, is_missing, is_range, iso, number, show, split_error


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


def explain(
    error: msgspec.ValidationError | msgspec.DecodeError, document: object = MISSING
) -> tuple[str, str]:
    """``(field, reason)`` for a failed decode of pings, ranges quoted from :data:`BOUNDS`."""
    return reasons.explain(error, document, bounds=BOUNDS)


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
    value = MISSING if is_missing(detail) else sent.value
    if is_range(detail) and field in BOUNDS:
        low, high = BOUNDS[field]
        if sent.per_unit != 1.0:
            low, high = low / sent.per_unit, high / sent.per_unit
        reason = (
            f"expected {label} in [{number(low)}, {number(high)}]{sent.unit}, got {show(value)}"
        )
    elif is_missing(detail):
        reason = f"{sent.name} is required"
    else:
        reason = describe(detail, label, value, bounds=BOUNDS)
    return InvalidPing(sent.name, reason)


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
