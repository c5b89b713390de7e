"""How a failed decode is told to a client: the field it sent and a reason quoting what came.

msgspec validates in C and says why in its own terms (``Expected `float` <= 90.0 - at
`$.pings[3].lat```). This is the one place that reads those messages: :func:`explain` turns one
into ``(field, reason)``, the field as the client spelled it and a reason that says what was
expected and shows the value that came (``expected lat in [-90.0, 90.0], got 91.2``), looked up
in a loose (untyped) decode of the same input. Every way in (the ping protocols, the delivery
API's JSON bodies, CSV rows) uses it, so a client reads the same words for the same mistake.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Final

import msgspec

EXAMPLE_TIME: Final = "2026-11-24T10:00:00Z"
"""An example of a time every decoder accepts, quoted in reasons."""

EXAMPLE_DATE: Final = "2026-11-24"
"""An example of a date, quoted in reasons."""

MISSING: Final = object()
"""Stands for "the client sent no value here" in :func:`show` and :func:`explain`."""

ROOT: Final = "$"
"""The field named in a reason about the whole item or body (e.g. not an object at all)."""

Bounds = Mapping[str, tuple[float, float]]
"""A field's wire name → its inclusive ``[low, high]`` range, quoted as such in reasons."""

_AT = re.compile(r"^(?P<detail>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_MISSING_FIELD = re.compile(r"^Object missing required field `(?P<name>[^`]+)`$")
_UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `(?P<name>[^`]+)`")
_BOUND = re.compile(r"^Expected `(?P<kind>int|float)` (?P<op>[<>]=?) (?P<bound>\S+)$")
_LENGTH = re.compile(r"^Expected `(?P<kind>str|array|object)` of length (?P<op>[<>]=?) (?P<n>\d+)$")
_TYPE = re.compile(r"^Expected `(?P<expected>[^`]+)`, got `(?P<got>[^`]+)`$")
_PATH_PART = re.compile(r"\.([^.\[]+)|\[(\d+)\]")

KINDS: Final = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "object": "an object",
    "array": "an array",
    "datetime": f"a time with a zone such as {EXAMPLE_TIME}",
    "date": f"a date such as {EXAMPLE_DATE}",
    "null": "null",
}
"""How a reason names each of msgspec's type names."""

PATTERNS: Final = {
    "phone": "expected digits, spaces, +, - and parentheses",
    "contact_phone": "expected digits, spaces, +, - and parentheses",
    "email": "expected an email address containing @",
    "contact_email": "expected an email address containing @",
    "external_ref": "expected no leading or trailing spaces",
    "required_skills": "expected lowercase letters, digits, _ and -",
    "skills": "expected lowercase letters, digits, _ and -",
    "barcode": "expected printable characters without spaces",
    "dimensions": "expected lowercase letters, digits and _, starting with a letter",
}
"""What a field constrained by a regular expression expects, in words (by its last name)."""


def show(value: object) -> str:
    """``value`` as a reason quotes it: numbers as written, strings quoted and cut at 60 chars."""
    if value is MISSING:
        return "nothing"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
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


def number(bound: float) -> str:
    """A range bound as quoted: integers exact, floats to at most three decimals."""
    return str(bound) if isinstance(bound, int) else repr(round(bound, 3))


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


def is_missing(detail: str) -> bool:
    """Whether msgspec's ``detail`` says a required field was absent."""
    return _MISSING_FIELD.match(detail) is not None


def is_range(detail: str) -> bool:
    """Whether msgspec's ``detail`` says a number was outside a bound."""
    return _BOUND.match(detail) is not None


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
    error: msgspec.ValidationError | msgspec.DecodeError,
    document: object = MISSING,
    *,
    bounds: Bounds | None = None,
    choices: Mapping[str, tuple[str, ...]] | None = None,
) -> tuple[str, str]:
    """``(field, reason)`` for a failed decode; ``document`` is the same input decoded loosely.

    ``bounds`` names the fields whose range is quoted whole (``expected lat in [-90.0, 90.0]``);
    ``choices`` the allowed values of enumerated fields, by their last name.
    """
    field, detail = split_error(error)
    unknown = _UNKNOWN_FIELD.match(detail)
    if unknown:
        name = unknown["name"] if field == ROOT else f"{field}.{unknown['name']}"
        return name, "unknown field (check its spelling and unit suffix)"
    value = MISSING if is_missing(detail) else lookup(document, field)
    return field, describe(detail, field, value, bounds=bounds, choices=choices)


def describe(
    detail: str,
    field: str,
    value: object,
    *,
    bounds: Bounds | None = None,
    choices: Mapping[str, tuple[str, ...]] | None = None,
) -> str:
    """A reason for msgspec's ``detail`` about ``field``, quoting the ``value`` that came."""
    if is_missing(detail):
        return f"{field} is required"
    got = f", got {show(value)}" if value is not MISSING else ""
    leaf = re.sub(r"\[\d+\]$", "", field.rsplit(".", 1)[-1])
    bound = _BOUND.match(detail)
    if bound:
        if bounds is not None and leaf in bounds:
            low, high = bounds[leaf]
            return f"expected {leaf} in [{number(low)}, {number(high)}]{got}"
        return f"expected {KINDS[bound['kind']]} {bound['op']} {bound['bound']}{got}"
    length = _LENGTH.match(detail)
    if length:
        unit = {"str": "character", "array": "item", "object": "entry"}[length["kind"]]
        unit = unit if length["n"] == "1" else unit.replace("y", "ie") + "s"
        least = {">=": "at least", "<=": "at most", ">": "more than", "<": "fewer than"}
        size = len(value) if isinstance(value, str | list | dict) else None
        came = f", got {size}" if size is not None else got
        return f"expected {least[length['op']]} {length['n']} {unit}{came}"
    if detail.startswith("Expected `str` matching regex"):
        return PATTERNS.get(leaf, "expected " + detail[len("Expected `str` ") :]) + got
    if detail.startswith("Invalid enum value"):
        allowed = (choices or {}).get(leaf)
        return (f"expected one of {', '.join(allowed)}" if allowed else "unknown value") + got
    if detail.startswith("Expected `datetime` with a timezone component"):
        return f"expected {KINDS['datetime']}{got}"
    if detail.startswith("Invalid RFC3339 encoded datetime"):
        return f"expected an RFC 3339 time such as {EXAMPLE_TIME}{got}"
    if detail.startswith("Invalid RFC3339 encoded date"):
        return f"expected {KINDS['date']}{got}"
    if detail.startswith("Integer value out of range"):
        return f"expected an integer of at most 64 bits{got}"
    if detail.startswith("Number out of range"):  # 1e309: beyond a 64-bit float
        return f"expected a number of magnitude at most 1.8e308{got}"
    typed = _TYPE.match(detail)
    if typed:
        kinds = [k for k in typed["expected"].split(" | ") if k != "null"] or ["null"]
        expected = " or ".join(KINDS.get(k, f"`{k}`") for k in kinds)
        return f"expected {expected}{got or ', got ' + KINDS.get(typed['got'], typed['got'])}"
    # Our own __post_init__ messages say it all.
    reason = detail[:1].lower() + detail[1:]
    return reason if value is MISSING or not _is_msgspec_words(detail) else f"{reason}{got}"


def _is_msgspec_words(detail: str) -> bool:
    """Whether ``detail`` is one of msgspec's own sentences, which never quote the value."""
    return detail.startswith(("Expected", "Invalid", "Object", "Integer"))
