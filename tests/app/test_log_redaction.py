"""No credential reaches a log line: the server's WebSocket handshake lines name each path
with its query string, where the pages' sockets carry their tokens."""

from __future__ import annotations

import contextlib
import logging

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus, WebSocketException

from app.logs import redact
from tests.conftest import LiveServer, Tenant

BAD_KEY = "lmk_not-a-key-but-still-secret"


async def _open_and_close(url: str) -> None:
    """Open a socket (accepted or refused) and close it at once."""
    with contextlib.suppress(InvalidStatus, WebSocketException, OSError):
        async with websockets.connect(url, open_timeout=10):
            pass


async def test_a_session_leaves_no_credential_in_the_logs(
    server: LiveServer, http: httpx.AsyncClient, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    """The dispatcher's feed with the organisation's key (and a wrong one), the driver socket
    with a device token, a customer's tracking socket and page, and an OsmAnd fix with its
    device id: every handshake is logged, none with its credential."""
    caplog.set_level(logging.DEBUG)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # whatever an earlier test set
        caplog.set_level(logging.DEBUG, logger=name)
    headers = {"authorization": f"Bearer {tenant.api_key}"}
    order = await http.post(
        "/v1/orders",
        json={"external_ref": "R-1", "address": "1 Main St", "lat": 52.5, "lon": 13.4,
              "day": "2026-12-01"},
        headers=headers,
    )  # fmt: skip
    link = await http.post(f"/v1/orders/{order.json()['id']}/tracking", headers=headers)
    tracking = link.json()["token"]
    device = tenant.drivers[0].token
    await _open_and_close(f"{server.ws_url}/v1/live/ws?token={tenant.api_key}&day=2026-12-01")
    for _ in range(10):  # refused while the client already closes: no handler may fail
        await _open_and_close(f"{server.ws_url}/v1/live/ws?token={BAD_KEY}")
    await _open_and_close(f"{server.ws_url}/v1/driver/ws?token={device}")
    await _open_and_close(f"{server.ws_url}/v1/track/{tracking}/ws")
    await http.get(f"/t/{tracking}")
    async with httpx.AsyncClient(base_url=server.osmand_url) as osmand:
        await osmand.get("/", params={"id": device, "lat": 52.5, "lon": 13.4})

    clients = ("httpx", "httpcore", "websockets.client")  # this test's own, not the server's
    text = "\n".join(
        f"{r.name} {r.getMessage()}" for r in caplog.records if not r.name.startswith(clients)
    )
    assert "WebSocket /v1/live/ws?token=***&day=2026-12-01" in text
    assert "WebSocket /v1/track/***/ws" in text
    assert "Exception in ASGI application" not in text
    for credential in (tenant.api_key, BAD_KEY, device, tracking):
        assert credential not in text


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('"WebSocket /v1/live/ws?day=1&token=lmk_a%2Bb" 403',
         '"WebSocket /v1/live/ws?day=1&token=***" 403'),
        ("GET /?id=lmd_x&lat=1&Key=k", "GET /?id=***&lat=1&Key=***"),
        ("/t/abc?x=1 and /v1/track/abc/answers", "/t/***?x=1 and /v1/track/***/answers"),
        ("/v1/blobs/ab12?expires=9&sig=f00", "/v1/blobs/ab12?expires=9&sig=***"),
        ("/v1/orders?day=2026-12-01&after=3", "/v1/orders?day=2026-12-01&after=3"),
    ],
)  # fmt: skip
def test_redact_replaces_credentials_in_queries_and_paths_only(line: str, expected: str) -> None:
    """Credential parameters and tracking tokens go, any other part of the line stays."""
    assert redact(line) == expected
