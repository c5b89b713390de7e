"""The one error mapping: each kind of refusal answers HTTP and closes a socket the same way."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import msgspec
import psycopg
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Message, Scope
from starlette.websockets import WebSocket

from app import errors
from app.errors import (
    CLOSE_REASON_BYTES,
    BadParameter,
    Conflict,
    ErrorBody,
    Forbidden,
    Gone,
    InvalidField,
    KeyReused,
    NotFound,
    Unauthorized,
    Unavailable,
    UnknownIds,
    close_reason,
    exception_handlers,
    problem_of,
)
from realtime import errors as ingest
from store.delivery import Duplicate, Missing, WrongState

Make = Callable[[], Exception]

# (make the error, status, code, field, close code)
KINDS: list[tuple[str, Make, int, str, str | None, int]] = [
    ("invalid_field", lambda: InvalidField("lat", "bad"), 400, "invalid_field", "lat", 4400),
    ("bad_parameter", lambda: BadParameter("day", "bad"), 400, "bad_parameter", "day", 4400),
    ("unauthorized", lambda: Unauthorized("who?"), 401, "unauthorized", None, 4401),
    ("forbidden", lambda: Forbidden("not you"), 403, "forbidden", None, 4403),
    ("not_found", lambda: NotFound("no such"), 404, "not_found", None, 4404),
    ("conflict", lambda: Conflict("status", "done"), 409, "conflict", "status", 4409),
    ("gone", lambda: Gone("expired"), 410, "gone", None, 4410),
    ("key_reused", lambda: KeyReused("Idempotency-Key", "x"), 422, "idempotency_key_reused",
     "Idempotency-Key", 4422),
    ("unknown_ids", lambda: UnknownIds("order_ids", [7, 8]), 422, "unknown_ids", "order_ids",
     4422),
    ("unavailable", lambda: Unavailable("down"), 503, "unavailable", None, 1013),
    ("malformed_body", lambda: ingest.MalformedBody("$", "x"), 400, "malformed_body", "$", 4400),
    ("invalid_ping", lambda: ingest.InvalidPing("lat", "x"), 400, "invalid_ping", "lat", 4400),
    ("media_type", lambda: ingest.UnsupportedMediaType("Content-Type", "x"), 415,
     "unsupported_media_type", "Content-Type", 1003),
    ("too_large", lambda: ingest.PayloadTooLarge("body", "x"), 413, "payload_too_large", "body",
     1009),
    ("unknown_device", lambda: ingest.UnknownDevice("id", "x"), 401, "unknown_device", "id",
     4401),
    ("missing_row", lambda: Missing("carrier_id", "no carrier 9"), 400, "invalid_field",
     "carrier_id", 4400),
    ("duplicate_row", lambda: Duplicate("external_ref", "taken"), 409, "conflict",
     "external_ref", 4409),
    ("wrong_state", lambda: WrongState("status", "cancelled"), 409, "conflict", "status", 4409),
    ("database_down", lambda: psycopg.OperationalError("gone"), 503, "unavailable", None, 1013),
    ("redis_down", lambda: RedisConnectionError("gone"), 503, "unavailable", None, 1013),
]  # fmt: skip


def _app(make: Make) -> Starlette:
    async def http(request: Request) -> Response:
        raise make()

    async def socket(websocket: WebSocket) -> None:
        await websocket.accept()
        raise make()

    return Starlette(
        routes=[Route("/x", http), WebSocketRoute("/ws", socket)],
        exception_handlers=exception_handlers(),
    )


async def _close_of(app: Starlette) -> Message:
    """Drive one WebSocket connection through the ASGI interface; the close message it sent."""
    scope: Scope = {"type": "websocket", "path": "/ws", "raw_path": b"/ws", "query_string": b"",
             "headers": [], "scheme": "ws", "server": ("127.0.0.1", 80), "root_path": "",
             "subprotocols": [], "asgi": {"version": "3.0"}}  # fmt: skip
    incoming: list[Message] = [{"type": "websocket.connect"}]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    closes = [m for m in sent if m["type"] == "websocket.close"]
    assert len(closes) == 1, sent
    return closes[0]


@pytest.mark.parametrize(
    ("make", "status", "code", "field", "close_code"),
    [pytest.param(*kind[1:], id=kind[0]) for kind in KINDS],
)
async def test_each_kind_answers_http_with_its_status_code_and_field(
    make: Make, status: int, code: str, field: str | None, close_code: int
) -> None:
    """A route raising the error answers its status with the body naming code, field and reason."""
    transport = httpx.ASGITransport(app=_app(make))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.get("/x")
    assert answer.status_code == status
    body = msgspec.json.decode(answer.content, type=ErrorBody)
    assert (body.error, body.field) == (code, field)
    assert body.reason
    if code == "unauthorized":
        assert answer.headers["www-authenticate"].startswith("Bearer")
    if status == 503:
        assert answer.headers["retry-after"] == "1"


@pytest.mark.parametrize(
    ("make", "status", "code", "field", "close_code"),
    [pytest.param(*kind[1:], id=kind[0]) for kind in KINDS],
)
async def test_each_kind_closes_a_socket_with_its_named_close_code(
    make: Make, status: int, code: str, field: str | None, close_code: int
) -> None:
    """A socket handler raising the error is closed with the same row's close code and a reason."""
    close = await _close_of(_app(make))
    assert close["code"] == close_code
    assert isinstance(close["reason"], str)
    assert close["reason"]
    assert len(close["reason"].encode()) <= CLOSE_REASON_BYTES
    assert problem_of(make()).close_code == close_code


def test_an_unmapped_error_is_a_500_without_details() -> None:
    """An error nobody mapped answers 500 internal_error and shows nothing of the exception."""
    problem = problem_of(KeyError("secret detail"))
    assert (problem.status, problem.code, problem.close_code) == (500, "internal_error", 1011)
    assert "secret" not in problem.reason


def test_close_reasons_fit_a_close_frame() -> None:
    """A long reason is cut on a character boundary to the 123 bytes a close frame can carry."""
    long = "bbox: " + "é" * 200
    cut = close_reason(long)
    assert len(cut.encode()) <= CLOSE_REASON_BYTES
    assert cut.startswith("bbox: é")
    assert close_reason("short") == "short"
    problem = problem_of(BadParameter("bbox", "x" * 500))
    assert len(errors.socket_reason(problem).encode()) <= CLOSE_REASON_BYTES
