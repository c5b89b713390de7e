"""Request and answer plumbing: bodies in (size-limited, by content type), Structs out.

:func:`decode` reads a JSON body into a request Struct and turns msgspec's complaint into the
field the client sent and a reason quoting what came (``time_windows[0].end``: ``expected a
time with a zone such as 2026-11-24T10:00:00Z, got '2026-11-24T10:00:00'``), through
:mod:`schemas.reasons`. :func:`read_body` enforces the body limit while streaming;
:func:`path_id` and :func:`query_date` read parameters. What is refused is raised as one of the
errors of :mod:`app.errors`, which answers it.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any, Final, TypeVar, get_args

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import BadParameter, InvalidField
from app.resources import Resources
from realtime.errors import MalformedBody, PayloadTooLarge, UnsupportedMediaType
from schemas import reasons
from schemas.codecs import ANY_JSON, JSON_ENCODER, json_decoder
from schemas.delivery import MAX_AMOUNT, CarrierKind, OrderStatus, VehicleType
from schemas.ids import MAX_ID
from schemas.limits import JSON_NUL, NO_NUL, TOO_DEEP, nul_field
from schemas.reasons import MISSING, ROOT, describe, lookup, split_error

T = TypeVar("T")
S = TypeVar("S", bound=msgspec.Struct)

JSON: Final = "application/json"
_DIGITS: Final = re.compile(r"[0-9]{1,19}")


def resources_of(request: Request) -> Resources:
    """The process's resources, set by the lifespan."""
    resources: Resources = request.app.state.resources
    return resources


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or :class:`PayloadTooLarge` as soon as it exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length")
    size = None if declared is None else ascii_int(declared)
    if size is not None and size > limit:
        raise PayloadTooLarge("body", f"expected at most {limit} bytes, got {declared}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge("body", f"expected at most {limit} bytes, got more")
        chunks.append(chunk)
    return b"".join(chunks)


async def request_body(request: Request) -> bytes:
    """The request body within the process's ``max_body_bytes``."""
    return await read_body(request, resources_of(request).settings.max_body_bytes)


def answer(value: object, status: int = 200) -> Response:
    """A JSON answer encoding ``value`` (Structs, lists, dicts)."""
    return Response(JSON_ENCODER.encode(value), status_code=status, media_type=JSON)


def encode(value: object) -> bytes:
    """``value`` as the JSON bytes :func:`answer` would send."""
    return JSON_ENCODER.encode(value)


def ascii_int(raw: str) -> int | None:
    """``raw`` as a non-negative integer of at most 19 ASCII digits, or None.

    Not ``str.isdigit`` nor ``int``: they take digits of other scripts (``²``, ``٣``).
    """
    return int(raw) if _DIGITS.fullmatch(raw) else None


def query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    """The integer query parameter ``name`` in ``[low, high]``, ``default`` when absent or
    empty, or 400 naming it."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    value = ascii_int(raw)
    if value is None or not low <= value <= high:
        raise BadParameter(name, f"expected an integer from {low} to {high}, got {raw!r}")
    return value


def path_id(request: Request, name: str) -> int:
    """The positive integer path parameter ``name``, or 400 naming it."""
    raw = request.path_params[name]
    value = ascii_int(raw)
    if value is None or not 0 < value <= MAX_ID:
        raise BadParameter(name, f"expected a positive integer id, got {raw!r}")
    return value


def query_date(request: Request, name: str) -> date | None:
    """The ``YYYY-MM-DD`` query parameter ``name``, None when absent, or 400 naming it."""
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise BadParameter(name, f"expected a date such as 2026-11-24, got {raw!r}") from None


def check_json(content_type: str | None) -> None:
    """Accept a JSON body (no Content-Type is read as JSON); 415 for anything else."""
    media = (content_type or JSON).split(";", 1)[0].strip().lower()
    if media != JSON:
        raise UnsupportedMediaType("Content-Type", f"expected {JSON}, got {content_type!r}")


def decode(body: bytes, content_type: str | None, cls: type[T], *, empty_ok: bool = False) -> T:
    """``body`` as a ``cls``; an empty body is ``{}`` when ``empty_ok``.

    Raises :class:`UnsupportedMediaType` (415), :class:`MalformedBody` (400, not JSON, or
    nested too deep) or :class:`InvalidField` (400) naming the first field at fault, a string
    holding NUL included (:mod:`schemas.limits`).
    """
    check_json(content_type)
    if empty_ok and not body.strip():
        body = b"{}"
    try:
        decoded = json_decoder(cls).decode(body)
    except msgspec.ValidationError as exc:
        field, reason = explain(exc, loose_json(body))
        raise InvalidField(field, reason) from None
    except msgspec.DecodeError as exc:
        raise MalformedBody(ROOT, f"expected a JSON object, got invalid JSON ({exc})") from None
    except RecursionError:
        raise MalformedBody(ROOT, TOO_DEEP) from None
    if JSON_NUL in body:
        refuse_nul(decoded)
    return decoded


def loose_json(body: bytes) -> object:
    """``body`` decoded without a type, to quote values in reasons; MISSING when it holds a
    number no float can (``1e309``).

    Raises :class:`MalformedBody` when it is no JSON at all (a type error came before a syntax
    error further on) or nests too deep.
    """
    try:
        return ANY_JSON.decode(body)
    except msgspec.ValidationError:
        return MISSING
    except msgspec.DecodeError:
        raise MalformedBody(ROOT, "expected a JSON object, got invalid JSON") from None
    except RecursionError:
        raise MalformedBody(ROOT, TOO_DEEP) from None


def refuse_nul(value: object) -> None:
    """Raise :class:`InvalidField` naming the first string in ``value`` that holds NUL."""
    field = nul_field(value)
    if field is not None:
        raise InvalidField(field, NO_NUL)


def convert(document: object, cls: type[T]) -> T:
    """Convert an already parsed ``document`` (a CSV row, an item of an array) to ``cls``.

    Strings are read as numbers where numbers are expected. Raises :class:`InvalidField`.
    The caller checks its text for NUL (:mod:`schemas.limits`), once for a whole file.
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


# --- saying what is wrong -------------------------------------------------------------------

_CHOICES: Final = {
    "kind": get_args(CarrierKind),
    "type": get_args(VehicleType),
    "status": get_args(OrderStatus),
}


def explain(error: msgspec.ValidationError, document: object) -> tuple[str, str]:
    """``(field, reason)`` for a failed decode; ``document`` is the input, decoded loosely."""
    field, detail = split_error(error)
    if "[...]" in field:  # a value inside an amounts object: find the key holding it
        field = _amount_key(document, field)
        return field, describe(detail, field, lookup(document, field), choices=_CHOICES)
    return reasons.explain(error, document, choices=_CHOICES)


def _amount_key(document: object, field: str) -> str:
    """``size[...]`` → ``size.weight_kg``: the first key whose value is not a valid amount."""
    parent = field.split("[...]", 1)[0]
    amounts = lookup(document, parent)
    if isinstance(amounts, dict):
        for key, value in amounts.items():
            if type(value) is not int or not 0 <= value <= MAX_AMOUNT:
                return f"{parent}.{key}"
    return parent


class JsonAnswerHeaders:
    """ASGI middleware: every JSON answer gets ``Cache-Control: no-store`` (orders, proofs and
    routes hold customers' names, phones and addresses; no proxy or browser cache may keep
    them) unless its handler chose a cache policy, and ``X-Content-Type-Options: nosniff``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def start(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[tuple[bytes, bytes]] = list(message.get("headers", ()))
                names = {name.lower() for name, _ in headers}
                content_type = next((v for n, v in headers if n.lower() == b"content-type"), b"")
                if content_type.startswith(b"application/json"):
                    if b"cache-control" not in names:
                        headers.append((b"cache-control", b"no-store"))
                    if b"x-content-type-options" not in names:
                        headers.append((b"x-content-type-options", b"nosniff"))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, start)
