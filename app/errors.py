"""How failures reach clients: HTTP statuses, JSON error bodies and WebSocket close codes.

Hierarchy of what is mapped here::

    realtime.errors.IngestError        field + reason of bad input
        MalformedBody                  400
        InvalidPing                    400
        UnsupportedMediaType           415
        PayloadTooLarge                413
        UnknownDevice                  401
    app.auth.AuthError                 401 (with WWW-Authenticate)
    app.auth.Forbidden                 403
    app.errors.BadParameter            400 (query and path parameters)
    app.errors.NotFound                404
    app.errors.Gone                    410 (an expired tracking link)
    app.errors.Unavailable             503 (Redis or PostgreSQL could not take the request)

Every error body is ``{"error": code, "field": name-or-null, "reason": text}``.
"""

from __future__ import annotations

from typing import Final

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from app.auth import AuthError, Forbidden
from realtime import errors as ingest_errors

# WebSocket close codes (4000-4999 are for applications).
CLOSE_NORMAL: Final = 1000
CLOSE_GOING_AWAY: Final = 1001
CLOSE_UNSUPPORTED: Final = 1003
CLOSE_TOO_BIG: Final = 1009
CLOSE_TRY_AGAIN: Final = 1013
CLOSE_BAD_REQUEST: Final = 4400
CLOSE_UNAUTHORIZED: Final = 4401
CLOSE_FORBIDDEN: Final = 4403
CLOSE_NOT_FOUND: Final = 4404
CLOSE_GONE: Final = 4410
CLOSE_TOO_SLOW: Final = 4408


class ErrorBody(msgspec.Struct, frozen=True, kw_only=True):
    """The JSON body of every 4xx and 5xx answer."""

    error: str
    field: str | None = None
    reason: str


_ENCODER = msgspec.json.Encoder()


class BadParameter(Exception):
    """A query or path parameter cannot be used."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class NotFound(Exception):
    """The resource does not exist for this caller (another organisation's looks the same)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Gone(Exception):
    """The resource existed and has expired (a tracking link some hours after delivery)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Unavailable(Exception):
    """A backing service failed; the client may retry."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_INGEST_STATUS: dict[type[ingest_errors.IngestError], tuple[int, str]] = {
    ingest_errors.MalformedBody: (400, "malformed_body"),
    ingest_errors.InvalidPing: (400, "invalid_ping"),
    ingest_errors.UnsupportedMediaType: (415, "unsupported_media_type"),
    ingest_errors.PayloadTooLarge: (413, "payload_too_large"),
    ingest_errors.UnknownDevice: (401, "unknown_device"),
}


def error_response(status: int, code: str, reason: str, field: str | None = None) -> Response:
    """A JSON error answer."""
    body = _ENCODER.encode(ErrorBody(error=code, field=field, reason=reason))
    return Response(body, status_code=status, media_type="application/json")


def status_of(exc: Exception) -> tuple[int, str]:
    """The HTTP status and error code for an exception this module maps."""
    if isinstance(exc, ingest_errors.IngestError):
        for cls, mapped in _INGEST_STATUS.items():
            if isinstance(exc, cls):
                return mapped
        return 400, "bad_request"
    if isinstance(exc, AuthError):
        return 401, "unauthorized"
    if isinstance(exc, Forbidden):
        return 403, "forbidden"
    if isinstance(exc, BadParameter):
        return 400, "bad_parameter"
    if isinstance(exc, NotFound):
        return 404, "not_found"
    if isinstance(exc, Gone):
        return 410, "gone"
    if isinstance(exc, Unavailable):
        return 503, "unavailable"
    return 500, "internal_error"


async def handle_error(request: Request, exc: Exception) -> Response:
    """Starlette exception handler for every mapped exception."""
    status, code = status_of(exc)
    response = error_response(
        status, code, getattr(exc, "reason", str(exc)), getattr(exc, "field", None)
    )
    if isinstance(exc, AuthError):
        response.headers["www-authenticate"] = f'{exc.challenge} realm="lastmile"'
    if isinstance(exc, Unavailable):
        response.headers["retry-after"] = "1"
    return response


HANDLED: tuple[type[Exception], ...] = (
    ingest_errors.IngestError,
    AuthError,
    Forbidden,
    BadParameter,
    NotFound,
    Gone,
    Unavailable,
)
