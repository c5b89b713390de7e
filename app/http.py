"""Request and answer plumbing of the delivery API: JSON bodies in, Structs and errors out.

:func:`decode` reads a JSON body into a request Struct and turns msgspec's complaint into the
field the client sent and a reason quoting what came (``time_windows[0].end``: ``expected a
time with a zone such as 2026-11-24T10:00:00Z, got '2026-11-24T10:00:00'``).

Errors the delivery API adds to those of ``app/errors.py``, all answered by :func:`endpoint`
with the same body ``{"error", "field", "reason"}``::

    ApiProblem(status, code, field, reason)
    ├── InvalidField          400 invalid_field   a body field is wrong
    ├── Conflict              409 conflict        the resource's state or a unique value forbids it
    └── KeyReused             422 idempotency_key_reused
    store.delivery.Missing    400 invalid_field   a referenced id is not in the organisation
    store.delivery.Duplicate  409 conflict
    store.delivery.WrongState 409 conflict
    psycopg OperationalError  503 unavailable     (via app.errors.Unavailable)
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable
from datetime import date, datetime, time, timedelta
from typing import Any, Final, TypeVar, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from psycopg import OperationalError
from psycopg_pool import PoolTimeout
from starlette.requests import Request
from starlette.responses import Response

from app.errors import BadParameter, Unavailable, error_response
from realtime.errors import MalformedBody, UnsupportedMediaType
from realtime.validate import EXAMPLE_TIME, MISSING, ROOT, iso, lookup, show, split_error
from schemas.auth import Role
from schemas.delivery import MAX_AMOUNT, CarrierKind, OrderStatus, VehicleType
from store.delivery import DeliveryError, Missing

T = TypeVar("T")
S = TypeVar("S", bound=msgspec.Struct)

READERS: Final[tuple[Role, ...]] = ("admin", "dispatcher", "integration")
FLEET_WRITERS: Final[tuple[Role, ...]] = ("admin", "dispatcher")
ORDER_WRITERS: Final[tuple[Role, ...]] = ("admin", "dispatcher", "integration")
ADMINS: Final[tuple[Role, ...]] = ("admin",)

JSON: Final = "application/json"
_ENCODER: Final = msgspec.json.Encoder()
_LOOSE: Final = msgspec.json.Decoder()


class ApiProblem(Exception):
    """A request the delivery API refuses with ``status``; ``field`` and ``reason`` say why."""

    status = 400
    code = "bad_request"

    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class InvalidField(ApiProblem):
    """A field of the body is missing, malformed or out of range."""

    status = 400
    code = "invalid_field"


class Conflict(ApiProblem):
    """The request is well-formed but the resource's current state forbids it."""

    status = 409
    code = "conflict"


class KeyReused(ApiProblem):
    """An ``Idempotency-Key`` came back with a different request."""

    status = 422
    code = "idempotency_key_reused"


Handler = Callable[[Request], Awaitable[Response]]


def endpoint(handler: Handler) -> Handler:
    """Wrap a route so that the delivery API's errors become their JSON answers."""

    @functools.wraps(handler)
    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except ApiProblem as exc:
            return error_response(exc.status, exc.code, exc.reason, exc.field)
        except DeliveryError as exc:
            if isinstance(exc, Missing):
                return error_response(400, "invalid_field", exc.reason, exc.field)
            return error_response(409, "conflict", exc.reason, exc.field)
        except (OperationalError, PoolTimeout) as exc:
            raise Unavailable(f"the database is unavailable ({type(exc).__name__}); retry") from exc

    return run


def answer(value: object, status: int = 200) -> Response:
    """A JSON answer encoding ``value`` (Structs, lists, dicts)."""
    return Response(_ENCODER.encode(value), status_code=status, media_type=JSON)


def encode(value: object) -> bytes:
    """``value`` as the JSON bytes :func:`answer` would send."""
    return _ENCODER.encode(value)


def path_id(request: Request, name: str) -> int:
    """The positive integer path parameter ``name``, or 400 naming it."""
    raw = request.path_params[name]
    if not raw.isdigit() or not 0 < int(raw) < 2**63:
        raise BadParameter(name, f"expected a positive integer id, got {raw!r}")
    return int(raw)


def query_date(request: Request, name: str) -> date | None:
    """The ``YYYY-MM-DD`` query parameter ``name``, None when absent, or 400 naming it."""
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise BadParameter(name, f"expected a date such as 2026-11-24, got {raw!r}") from None


_DECODERS: dict[type[Any], msgspec.json.Decoder[Any]] = {}


def _decoder(cls: type[T]) -> msgspec.json.Decoder[T]:
    """One decoder per request type, built on first use and kept."""
    found = _DECODERS.get(cls)
    if found is None:
        found = _DECODERS[cls] = msgspec.json.Decoder(cls)
    return found


def check_json(content_type: str | None) -> None:
    """Accept a JSON body (no Content-Type is read as JSON); 415 for anything else."""
    media = (content_type or JSON).split(";", 1)[0].strip().lower()
    if media != JSON:
        raise UnsupportedMediaType("Content-Type", f"expected {JSON}, got {content_type!r}")


def decode(body: bytes, content_type: str | None, cls: type[T], *, empty_ok: bool = False) -> T:
    """``body`` as a ``cls``; an empty body is ``{}`` when ``empty_ok``.

    Raises :class:`UnsupportedMediaType` (415), :class:`MalformedBody` (400, not JSON) or
    :class:`InvalidField` (400) naming the first field at fault.
    """
    check_json(content_type)
    if empty_ok and not body.strip():
        body = b"{}"
    try:
        return _decoder(cls).decode(body)
    except msgspec.ValidationError as exc:
        try:
            document = _LOOSE.decode(body)
        except msgspec.DecodeError:  # a type error came before a syntax error further on
            raise MalformedBody(ROOT, "expected a JSON object, got invalid JSON") from None
        field, reason = explain(exc, document)
        raise InvalidField(field, reason) from None
    except msgspec.DecodeError as exc:
        raise MalformedBody(ROOT, f"expected a JSON object, got invalid JSON ({exc})") from None


def convert(document: object, cls: type[T]) -> T:
    """Convert an already parsed ``document`` (a CSV row, an item of an array) to ``cls``.

    Strings are read as numbers where numbers are expected. Raises :class:`InvalidField`.
    """
    try:
        return msgspec.convert(document, cls, strict=False)
    except msgspec.ValidationError as exc:
        field, reason = explain(exc, document)
        raise InvalidField(field, reason) from None


def merge(current: msgspec.Struct, patch: msgspec.Struct, cls: type[S]) -> S:
    """The ``cls`` made of ``current``'s fields with ``patch``'s set fields over them."""
    fields: dict[str, Any] = {name: getattr(current, name) for name in cls.__struct_fields__}
    for name in patch.__struct_fields__:
        value = getattr(patch, name)
        if value is not msgspec.UNSET:
            fields[name] = value
    return cls(**fields)


# --- rules shared by orders and shifts -----------------------------------------------------

DAY_SLACK: Final = timedelta(hours=12)
"""How far outside its calendar day a window may reach (night work, late deliveries)."""


def zone(name: str) -> ZoneInfo:
    """The organisation's time zone; UTC when the stored name is unknown to this system."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def check_window(start: datetime, end: datetime, field: str, day: date, timezone: str) -> None:
    """Raise :class:`InvalidField` unless ``start < end`` and both lie near ``day``.

    Near means within the day in the organisation's time zone, widened by :data:`DAY_SLACK`
    on each side. ``field`` names the window (``time_windows[1]``).
    """
    if not start < end:
        raise InvalidField(
            f"{field}.end", f"expected a time after start {iso(start)}, got {iso(end)}"
        )
    midnight = datetime.combine(day, time(), zone(timezone))
    earliest, latest = midnight - DAY_SLACK, midnight + timedelta(days=1) + DAY_SLACK
    for name, value in (("start", start), ("end", end)):
        if not earliest <= value <= latest:
            raise InvalidField(
                f"{field}.{name}",
                f"expected a time within 12 hours of the day {day} ({timezone}), between"
                f" {iso(earliest)} and {iso(latest)}, got {iso(value)}",
            )


def check_amounts(amounts: dict[str, int], field: str, dimensions: list[str]) -> None:
    """Raise :class:`InvalidField` naming the first key of ``amounts`` not in ``dimensions``."""
    for name in amounts:
        if name not in dimensions:
            raise InvalidField(
                f"{field}.{name}",
                f"unknown dimension; expected one of {', '.join(dimensions) or '(none)'}",
            )


# --- saying what is wrong -------------------------------------------------------------------

_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>[^`]+)`")
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]+)`")
_BOUND = re.compile(r"^Expected `(?P<kind>int|float)` (?P<op>[<>]=?) (?P<bound>\S+)$")
_LENGTH = re.compile(r"^Expected `(?P<kind>str|array|object)` of length (?P<op>[<>]=?) (?P<n>\d+)$")
_TYPE = re.compile(r"^Expected `(?P<expected>[^`]+)`, got `(?P<got>[^`]+)`$")
_KINDS: Final = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "object": "an object",
    "array": "an array",
    "datetime": f"a time such as {EXAMPLE_TIME}",
    "date": "a date such as 2026-11-24",
    "null": "null",
}
_PATTERNS: Final = {
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
_CHOICES: Final = {
    "kind": get_args(CarrierKind),
    "type": get_args(VehicleType),
    "status": get_args(OrderStatus),
}


def explain(error: msgspec.ValidationError, document: object) -> tuple[str, str]:
    """``(field, reason)`` for a failed decode; ``document`` is the input, decoded loosely."""
    field, detail = split_error(error)
    unknown = _UNKNOWN.match(detail)
    if unknown:
        name = unknown["name"] if field == ROOT else f"{field}.{unknown['name']}"
        return name, "unknown field (check its spelling and unit suffix)"
    if _MISSING.match(detail):
        return field, f"{field} is required"
    if "[...]" in field:  # a value inside an amounts object: find the key holding it
        field = _amount_key(document, field)
    return field, _describe(detail, field, lookup(document, field))


def _amount_key(document: object, field: str) -> str:
    """``size[...]`` → ``size.weight_kg``: the first key whose value is not a valid amount."""
    parent = field.split("[...]", 1)[0]
    amounts = lookup(document, parent)
    if isinstance(amounts, dict):
        for key, value in amounts.items():
            if type(value) is not int or not 0 <= value <= MAX_AMOUNT:
                return f"{parent}.{key}"
    return parent


def _describe(detail: str, field: str, value: object) -> str:
    got = f", got {show(value)}" if value is not MISSING else ""
    leaf = re.sub(r"\[\d+\]$", "", field.rsplit(".", 1)[-1])
    bound = _BOUND.match(detail)
    if bound:
        return f"expected {_KINDS[bound['kind']]} {bound['op']} {bound['bound']}{got}"
    length = _LENGTH.match(detail)
    if length:
        unit = {"str": "character", "array": "item", "object": "entry"}[length["kind"]]
        unit = unit if length["n"] == "1" else unit.replace("y", "ie") + "s"
        least = {">=": "at least", "<=": "at most", ">": "more than", "<": "fewer than"}
        size = len(value) if isinstance(value, str | list | dict) else None
        came = f", got {size}" if size is not None else got
        return f"expected {least[length['op']]} {length['n']} {unit}{came}"
    if detail.startswith("Expected `str` matching regex"):
        return _PATTERNS.get(leaf, "expected " + detail[len("Expected `str` ") :]) + got
    if detail.startswith("Invalid enum value"):
        choices = _CHOICES.get(leaf)
        return (f"expected one of {', '.join(choices)}" if choices else "unknown value") + got
    if detail.startswith("Expected `datetime` with a timezone component"):
        return f"expected a time with a zone such as {EXAMPLE_TIME}{got}"
    if detail.startswith("Invalid RFC3339 encoded datetime"):
        return f"expected an RFC 3339 time such as {EXAMPLE_TIME}{got}"
    if detail.startswith("Invalid RFC3339 encoded date"):
        return f"expected a date such as 2026-11-24{got}"
    typed = _TYPE.match(detail)
    if typed:
        kinds = [k for k in typed["expected"].split(" | ") if k != "null"] or ["null"]
        expected = " or ".join(_KINDS.get(k, k) for k in kinds)
        return f"expected {expected}{got or ', got ' + _KINDS.get(typed['got'], typed['got'])}"
    return detail[:1].lower() + detail[1:]  # our own __post_init__ messages say it all
