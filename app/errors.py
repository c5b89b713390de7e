"""How failures reach clients: one table from an error to an HTTP answer and a close code.

Every refusal is a :class:`Problem`: a status, a code, the field at fault and a reason. Errors
raised in ``app/`` are :class:`ApiError` subclasses that carry their problem; errors of the
packages below (``realtime``, ``store``) and of the backing services know nothing about HTTP
and are mapped here, once, by :func:`problem_of`. The same problem answers an HTTP request
(:func:`http_answer`, Starlette's exception handler) and closes a WebSocket
(:func:`close_socket`, with the close code of the same row). Hierarchy and table::

    ApiError(field, reason)                 status code                      close code
    ├── InvalidField                        400    invalid_field             4400
    ├── BadParameter                        400    bad_parameter             4400
    ├── Unauthorized                        401    unauthorized              4401
    ├── Forbidden                           403    forbidden                 4403
    ├── NotFound                            404    not_found                 4404
    ├── Conflict                            409    conflict                  4409
    ├── Gone                                410    gone                      4410
    ├── KeyReused                           422    idempotency_key_reused    4422
    ├── UnknownIds                          422    unknown_ids               4422
    ├── OverLimit                           422    over_limit                4422
    ├── Unprocessable                       422    unprocessable             4422
    ├── TooManyFailures                     429    too_many_failures         4429
    └── Unavailable                         503    unavailable               1013
    realtime.errors.MalformedBody           400    malformed_body            4400
    realtime.errors.InvalidPing             400    invalid_ping              4400
    realtime.errors.UnsupportedMediaType    415    unsupported_media_type    1003
    realtime.errors.PayloadTooLarge         413    payload_too_large         1009
    realtime.errors.UnknownDevice           401    unknown_device            4401
    store.delivery.Missing                  400    invalid_field             4400
    store.delivery.Duplicate, WrongState    409    conflict                  4409
    psycopg OperationalError, PoolTimeout   503    unavailable               1013
    redis RedisError                        503    unavailable               1013
    starlette HTTPException (router)        404    not_found                 4404
                                            405    method_not_allowed        4405
    anything else                           500    internal_error            1011

Every error body is ``{"error": code, "field": name-or-null, "reason": text}``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, cast

import msgspec
from psycopg import OperationalError
from psycopg_pool import PoolTimeout
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import ExceptionHandler
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from realtime import errors as ingest
from schemas.codecs import JSON_ENCODER
from store.delivery import DeliveryError, Missing

# WebSocket close codes: the standard ones, then 4000 + the HTTP status of the same refusal.
CLOSE_NORMAL: Final = 1000
CLOSE_GOING_AWAY: Final = 1001
CLOSE_UNSUPPORTED: Final = 1003
CLOSE_TOO_BIG: Final = 1009
CLOSE_INTERNAL: Final = 1011
CLOSE_TRY_AGAIN: Final = 1013
CLOSE_BAD_REQUEST: Final = 4400
CLOSE_UNAUTHORIZED: Final = 4401
CLOSE_FORBIDDEN: Final = 4403
CLOSE_NOT_FOUND: Final = 4404
CLOSE_TOO_SLOW: Final = 4408
CLOSE_CONFLICT: Final = 4409
CLOSE_GONE: Final = 4410
CLOSE_UNPROCESSABLE: Final = 4422
CLOSE_TOO_MANY: Final = 4429

CLOSE_REASON_BYTES: Final = 123
"""The most a close frame's reason may hold (RFC 6455: 125 bytes of payload, 2 for the code)."""


class ErrorBody(msgspec.Struct, frozen=True, kw_only=True):
    """The JSON body of every 4xx and 5xx answer."""

    error: str
    """A stable code for programs (``invalid_field``, ``not_found``, …)."""
    field: str | None = None
    """The field, parameter or header at fault, as the client spelled it; null for none."""
    reason: str
    """What was expected and what came, for people."""


@dataclass(frozen=True)
class Problem:
    """One refusal: how it answers over HTTP and how it closes a socket."""

    status: int
    code: str
    close_code: int
    field: str | None
    reason: str
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Kind:
    """The status, code and close code shared by every error of one kind."""

    status: int
    code: str
    close_code: int


class ApiError(Exception):
    """A request ``app/`` refuses: ``field`` is what is wrong (None: the request as a whole)."""

    kind: ClassVar[Kind] = Kind(400, "bad_request", CLOSE_BAD_REQUEST)

    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason

    def headers(self) -> tuple[tuple[str, str], ...]:
        """Headers the answer carries besides the body."""
        return ()


class InvalidField(ApiError):
    """A field of the body is missing, malformed or out of range."""

    kind = Kind(400, "invalid_field", CLOSE_BAD_REQUEST)


class BadParameter(ApiError):
    """A query or path parameter cannot be used."""

    kind = Kind(400, "bad_parameter", CLOSE_BAD_REQUEST)


class Unauthorized(ApiError):
    """The request carries no usable credential; ``challenge`` is the scheme to answer with."""

    kind = Kind(401, "unauthorized", CLOSE_UNAUTHORIZED)

    def __init__(self, reason: str, *, challenge: str = "Bearer", field: str | None = None):
        super().__init__(field, reason)
        self.challenge = challenge

    def headers(self) -> tuple[tuple[str, str], ...]:
        return (("www-authenticate", f'{self.challenge} realm="lastmile"'),)


class Forbidden(ApiError):
    """The credential is valid but its role may not do this."""

    kind = Kind(403, "forbidden", CLOSE_FORBIDDEN)

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(field, reason)


class NotFound(ApiError):
    """The resource does not exist for this caller (another organisation's looks the same)."""

    kind = Kind(404, "not_found", CLOSE_NOT_FOUND)

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(field, reason)


class Conflict(ApiError):
    """The request is well-formed but the resource's current state forbids it."""

    kind = Kind(409, "conflict", CLOSE_CONFLICT)


class Gone(ApiError):
    """The resource existed and has expired (a tracking link some hours after delivery)."""

    kind = Kind(410, "gone", CLOSE_GONE)

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(field, reason)


class KeyReused(ApiError):
    """An ``Idempotency-Key`` came back with a different request."""

    kind = Kind(422, "idempotency_key_reused", CLOSE_UNPROCESSABLE)


class UnknownIds(ApiError):
    """The body names ids that are not in the caller's organisation (or not at all)."""

    kind = Kind(422, "unknown_ids", CLOSE_UNPROCESSABLE)

    def __init__(self, field: str, ids: Sequence[int]) -> None:
        shown = ", ".join(str(i) for i in ids[:20]) + (", ..." if len(ids) > 20 else "")
        super().__init__(field, f"unknown in this organisation: {shown}")
        self.ids = list(ids)


class OverLimit(ApiError):
    """A value the API's schema allows but this server's configuration does not (a plan's
    time limit above ``LASTMILE_PLAN_MAX_S``)."""

    kind = Kind(422, "over_limit", CLOSE_UNPROCESSABLE)


class Unprocessable(ApiError):
    """A well-formed body whose values cannot be used (rules a worker could not follow, a
    template that does not render): ``field`` names the value and ``reason`` says why."""

    kind = Kind(422, "unprocessable", CLOSE_UNPROCESSABLE)


class TooManyFailures(ApiError):
    """Too many failed credentials from this address: refused until ``retry_after_s`` passed."""

    kind = Kind(429, "too_many_failures", CLOSE_TOO_MANY)

    def __init__(self, reason: str, *, retry_after_s: int) -> None:
        super().__init__(None, reason)
        self.retry_after_s = retry_after_s

    def headers(self) -> tuple[tuple[str, str], ...]:
        return (("retry-after", str(self.retry_after_s)),)


class Unavailable(ApiError):
    """A backing service failed; the client may retry."""

    kind = Kind(503, "unavailable", CLOSE_TRY_AGAIN)

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(field, reason)

    def headers(self) -> tuple[tuple[str, str], ...]:
        return (("retry-after", "1"),)


_INGEST: Final[dict[type[Exception], Kind]] = {
    ingest.MalformedBody: Kind(400, "malformed_body", CLOSE_BAD_REQUEST),
    ingest.InvalidPing: Kind(400, "invalid_ping", CLOSE_BAD_REQUEST),
    ingest.UnsupportedMediaType: Kind(415, "unsupported_media_type", CLOSE_UNSUPPORTED),
    ingest.PayloadTooLarge: Kind(413, "payload_too_large", CLOSE_TOO_BIG),
    ingest.UnknownDevice: Kind(401, "unknown_device", CLOSE_UNAUTHORIZED),
}
_SERVICES: Final[tuple[tuple[type[Exception] | tuple[type[Exception], ...], str], ...]] = (
    ((OperationalError, PoolTimeout), "the database"),
    (RedisError, "Redis"),
    (OSError, "a backing service"),
)
"""Outages answered 503, and how the reason names the service that failed, first match wins."""

_ROUTER_CODES: Final = {404: "not_found", 405: "method_not_allowed"}

MAPPED: Final[tuple[type[Exception], ...]] = (
    HTTPException,
    ApiError,
    ingest.IngestError,
    DeliveryError,
    OperationalError,
    PoolTimeout,
    RedisError,
)
"""The exception types :func:`problem_of` answers with a 4xx or 503 (Starlette's handlers)."""


def problem_of(exc: BaseException) -> Problem:
    """The one mapping: what ``exc`` answers over HTTP and how it closes a socket."""
    if isinstance(exc, ApiError):
        kind = exc.kind
        return Problem(
            kind.status, kind.code, kind.close_code, exc.field, exc.reason, exc.headers()
        )
    if isinstance(exc, ingest.IngestError):
        for cls in type(exc).__mro__:
            found = _INGEST.get(cls)
            if found is not None:
                return Problem(found.status, found.code, found.close_code, exc.field, exc.reason)
        return Problem(400, "bad_request", CLOSE_BAD_REQUEST, exc.field, exc.reason)
    if isinstance(exc, DeliveryError):
        if isinstance(exc, Missing):
            return Problem(400, "invalid_field", CLOSE_BAD_REQUEST, exc.field, exc.reason)
        return Problem(409, "conflict", CLOSE_CONFLICT, exc.field, exc.reason)
    if isinstance(exc, HTTPException):  # the router's own: no route, or not this method
        code = _ROUTER_CODES.get(exc.status_code, "http_error")
        headers = tuple((exc.headers or {}).items())
        return Problem(exc.status_code, code, 4000 + exc.status_code, None, exc.detail, headers)
    service = next((name for kinds, name in _SERVICES if isinstance(exc, kinds)), None)
    if service is not None:
        return Problem(
            503,
            "unavailable",
            CLOSE_TRY_AGAIN,
            None,
            f"{service} is unavailable ({type(exc).__name__}); retry",
            (("retry-after", "1"),),
        )
    return Problem(500, "internal_error", CLOSE_INTERNAL, None, "internal error")


def error_response(
    status: int,
    code: str,
    reason: str,
    field: str | None = None,
    headers: tuple[tuple[str, str], ...] = (),
) -> Response:
    """A JSON error answer."""
    body = JSON_ENCODER.encode(ErrorBody(error=code, field=field, reason=reason))
    response = Response(body, status_code=status, media_type="application/json")
    for name, value in headers:
        response.headers[name] = value
    return response


def http_answer(problem: Problem) -> Response:
    """The HTTP answer to ``problem``."""
    return error_response(
        problem.status, problem.code, problem.reason, problem.field, problem.headers
    )


def close_reason(text: str) -> str:
    """``text`` cut to what a close frame can carry (123 bytes of UTF-8), on a character."""
    data = text.encode()
    if len(data) <= CLOSE_REASON_BYTES:
        return text
    return data[: CLOSE_REASON_BYTES - 3].decode(errors="ignore") + "..."


def socket_reason(problem: Problem) -> str:
    """A close reason for ``problem``: the field, then the reason, within the frame's limit."""
    text = f"{problem.field}: {problem.reason}" if problem.field else problem.reason
    return close_reason(text)


async def close_socket(websocket: WebSocket, exc: BaseException) -> None:
    """Close ``websocket`` with the close code and a short reason for ``exc``.

    Safe to call in any state: a socket already closed is left as it is, and a client that
    leaves while it is being closed is no error (the server would log the handler as failed,
    and its connection could hold up the server's shutdown).
    """
    problem = problem_of(exc)
    if websocket.application_state == WebSocketState.DISCONNECTED:
        return
    if websocket.client_state == WebSocketState.DISCONNECTED:
        return
    with contextlib.suppress(OSError, RuntimeError, WebSocketDisconnect):
        await websocket.close(problem.close_code, socket_reason(problem))


async def handle_error(connection: HTTPConnection, exc: Exception) -> Response | None:
    """Starlette's exception handler for every mapped type, for requests and sockets alike."""
    if isinstance(connection, WebSocket):
        await close_socket(connection, exc)
        return None
    return http_answer(problem_of(exc))


def exception_handlers() -> dict[Any, ExceptionHandler]:
    """:func:`handle_error` for every mapped type, as Starlette takes them.

    Starlette types a handler as either an HTTP one or a WebSocket one; ours is both (it looks
    at the connection), which its type cannot say, hence the cast.
    """
    return dict.fromkeys(MAPPED, cast("ExceptionHandler", handle_error))
