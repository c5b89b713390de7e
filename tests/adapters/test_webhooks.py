"""The webhook sender against a local receiver that verifies Standard Webhooks signatures, the
classification of answers, the retry schedule, and SSRF refusal for every address class."""

from __future__ import annotations

import asyncio
import base64
import itertools
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme
from standardwebhooks.webhooks import Webhook
from starlette.responses import Response

from adapters.errors import TargetRefused
from adapters.webhooks import (
    WebhookAttempt,
    WebhookConfig,
    WebhookEndpoint,
    WebhookSender,
    address_class,
    classify,
    envelope,
    resolve_allowed,
    retry_delay_s,
)
from tests.adapters.peers import HttpPeer, Recorded, SilentServer, WebhookReceiver, free_port

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
LOOPBACK_OK = WebhookConfig(allowed_address_classes=frozenset({"loopback"}))
AT = datetime(2026, 12, 6, 9, 30, tzinfo=UTC)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[HttpPeer, WebhookReceiver]]:
    """A running receiver that checks signatures with the endpoint's secret."""
    check = WebhookReceiver(secret=SECRET)
    async with HttpPeer(check) as peer:
        yield peer, check


def _body() -> bytes:
    return envelope("order.delivered", AT, {"order_id": "o-1", "stop": 3})


async def _send_once(
    endpoint: WebhookEndpoint,
    *,
    config: WebhookConfig = LOOPBACK_OK,
    message_id: str = "m1",
    body: bytes | None = None,
    at: datetime | None = None,
) -> WebhookAttempt:
    """One attempt to ``endpoint`` (of :func:`_body` by default), by a sender of its own."""
    async with WebhookSender(config) as sender:
        return await sender.send(
            endpoint, message_id=message_id, body=_body() if body is None else body, at=at
        )


async def test_delivery_is_signed_and_verified_by_the_library(
    receiver: tuple[HttpPeer, WebhookReceiver],
) -> None:
    """A send carries the three Standard Webhooks headers, which the library's verifier accepts."""
    peer, check = receiver
    attempt = await _send_once(
        WebhookEndpoint(url=f"{peer.url}/hooks/lm", secret=SECRET), message_id="msg_o-1_delivered"
    )
    assert attempt.outcome == "delivered"
    assert attempt.status_code == 204
    assert attempt.latency_s > 0
    assert attempt.address == "127.0.0.1"
    assert check.verified == [
        {
            "type": "order.delivered",
            "timestamp": "2026-12-06T09:30:00+00:00",
            "data": {"order_id": "o-1", "stop": 3},
        }
    ]
    [request] = peer.requests
    assert request.path == "/hooks/lm"
    assert request.headers["webhook-id"] == "msg_o-1_delivered"
    assert request.headers["content-type"] == "application/json"


async def test_the_host_name_is_kept_while_the_checked_address_is_connected(
    receiver: tuple[HttpPeer, WebhookReceiver],
) -> None:
    """A URL naming localhost connects to the checked 127.0.0.1 and still sends Host: localhost."""
    peer, _check = receiver
    attempt = await _send_once(
        WebhookEndpoint(url=f"http://localhost:{peer.port}/h", secret=SECRET)
    )
    assert attempt.outcome == "delivered"
    assert attempt.address == "127.0.0.1"
    assert peer.requests[0].headers["host"] == f"localhost:{peer.port}"


async def test_https_keeps_the_name_for_the_certificate_check(tmp_path: Path) -> None:
    """Over HTTPS the checked connection still sends SNI and checks the certificate's name."""
    ca = trustme.CA()
    pem = tmp_path / "server.pem"
    ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(str(pem))
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    check = WebhookReceiver(secret=SECRET)
    config = WebhookConfig(allowed_address_classes=frozenset({"loopback"}), ca_file=ca_file)
    async with HttpPeer(check, tls_pem=str(pem)) as peer, WebhookSender(config) as sender:
        by_name = await sender.send(
            WebhookEndpoint(url=f"https://localhost:{peer.port}/h", secret=SECRET),
            message_id="m1",
            body=_body(),
        )
        # The certificate names localhost only, so the bare IP must fail verification.
        by_ip = await sender.send(
            WebhookEndpoint(url=f"https://127.0.0.1:{peer.port}/h", secret=SECRET),
            message_id="m2",
            body=_body(),
        )
    assert by_name.outcome == "delivered"
    assert by_name.address == "127.0.0.1"
    assert len(check.verified) == 1
    assert by_ip.outcome == "retry"
    assert "CERTIFICATE_VERIFY_FAILED" in by_ip.detail


async def test_a_wrong_secret_is_refused_by_the_receiver(
    receiver: tuple[HttpPeer, WebhookReceiver],
) -> None:
    """Signed with another secret, the delivery fails verification and is a permanent failure."""
    peer, check = receiver
    other = "whsec_" + base64.b64encode(b"x" * 32).decode()
    attempt = await _send_once(WebhookEndpoint(url=peer.url, secret=other))
    assert attempt.outcome == "failed"
    assert attempt.status_code == 401
    assert check.refused == ["No matching signature found"]


async def test_an_old_signature_is_refused_by_the_receiver(
    receiver: tuple[HttpPeer, WebhookReceiver],
) -> None:
    """A delivery signed an hour ago is refused: each attempt must be signed afresh."""
    peer, check = receiver
    attempt = await _send_once(
        WebhookEndpoint(url=peer.url, secret=SECRET), at=datetime.now(UTC) - timedelta(hours=1)
    )
    assert attempt.outcome == "failed"
    assert check.refused == ["Message timestamp too old"]


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, "delivered"),
        (410, "gone"),
        (400, "failed"),
        (408, "retry"),
        (429, "retry"),
        (500, "retry"),
        (503, "retry"),
        (302, "retry"),
    ],
)
async def test_answers_are_classified(status: int, outcome: str) -> None:
    """Each kind of answer from a real receiver is classified as the module's table says."""

    def answer(_: Recorded) -> Response:
        headers = {"Retry-After": "30"} if status == 429 else None
        if status == 302:
            headers = {"Location": "http://169.254.169.254/latest/meta-data"}
        return Response("x" * 5000, status_code=status, headers=headers)

    async with HttpPeer(answer) as peer:
        attempt = await _send_once(WebhookEndpoint(url=peer.url, secret=SECRET))
    assert attempt.outcome == outcome
    assert attempt.status_code == status
    assert len(peer.requests) == 1
    assert attempt.detail == "x" * 1024
    assert attempt.retry_after_s == (30.0 if status == 429 else None)


async def test_a_receiver_that_hangs_is_retried() -> None:
    """A receiver that accepts the connection but never answers is a retryable timeout."""
    async with SilentServer() as silent:
        attempt = await _send_once(
            WebhookEndpoint(url=f"http://127.0.0.1:{silent.port}/", secret=SECRET),
            config=WebhookConfig(timeout_s=0.3, allowed_address_classes=frozenset({"loopback"})),
        )
    assert attempt.outcome == "retry"
    assert attempt.status_code is None


async def test_nothing_listening_is_retried() -> None:
    """A refused connection is a retryable failure."""
    attempt = await _send_once(
        WebhookEndpoint(url=f"http://127.0.0.1:{free_port()}/", secret=SECRET)
    )
    assert attempt.outcome == "retry"


async def test_loopback_is_refused_by_default(receiver: tuple[HttpPeer, WebhookReceiver]) -> None:
    """Without the setting, a loopback receiver is refused and never contacted."""
    peer, _ = receiver
    attempt = await _send_once(
        WebhookEndpoint(url=f"http://localhost:{peer.port}/", secret=SECRET),
        config=WebhookConfig(),
    )
    assert attempt.outcome == "refused"
    assert attempt.address == "127.0.0.1"
    assert peer.requests == []


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "not a url"])
async def test_non_http_urls_are_refused(url: str) -> None:
    """Only http and https targets are sent to."""
    attempt = await _send_once(WebhookEndpoint(url=url, secret=SECRET), message_id="m", body=b"{}")
    assert attempt.outcome == "refused"


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.169.254", "link_local"),
        ("fe80::1", "link_local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "reserved"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "link_local"),
        ("2002:a00:1::", "private"),
        ("64:ff9b::a9fe:a9fe", "link_local"),
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("::ffff:8.8.8.8", None),
    ],
)
def test_address_classes(address: str, kind: str | None) -> None:
    """Each address, including IPv4 inside IPv6, falls in its class; public ones in none."""
    assert address_class(address) == kind


@pytest.mark.parametrize(
    "host",
    [
        "0.0.0.0",
        "::",
        "127.0.0.1",
        "::1",
        "localhost",
        "10.0.0.1",
        "192.168.0.10",
        "fc00::1",
        "169.254.169.254",
        "fe80::1",
        "224.0.0.251",
        "ff02::1",
        "240.0.0.1",
        "::ffff:127.0.0.1",
        "::ffff:192.168.0.1",
    ],
)
async def test_non_public_targets_are_refused(host: str) -> None:
    """Resolving a target in any non-public class raises TargetRefused naming the address."""
    with pytest.raises(TargetRefused) as info:
        await resolve_allowed(host, 443)
    assert info.value.address
    assert "expected" in info.value.detail


async def test_an_allowed_class_passes_and_others_still_fail() -> None:
    """Allowing loopback lets 127.0.0.1 through but still refuses a private address."""
    assert await resolve_allowed("127.0.0.1", 80, frozenset({"loopback"})) == ["127.0.0.1"]
    with pytest.raises(TargetRefused):
        await resolve_allowed("10.0.0.1", 80, frozenset({"loopback"}))


async def test_public_literal_addresses_pass() -> None:
    """A public literal address resolves to itself and is allowed."""
    assert await resolve_allowed("8.8.8.8", 443) == ["8.8.8.8"]


async def test_unresolvable_names_are_refused() -> None:
    """A name that does not resolve is refused rather than sent to."""
    with pytest.raises(TargetRefused):
        await resolve_allowed("no-such-host.invalid", 443)


def test_retry_schedule_spans_about_a_day() -> None:
    """Without jitter the waits grow from 5 s, each longer than the last, and add up to a day."""
    waits = [retry_delay_s(n, jitter=0.0) for n in range(1, 15)]
    assert all(w is not None for w in waits)
    delays = [w for w in waits if w is not None]
    assert delays[0] == pytest.approx(5.0)
    assert all(b > a for a, b in itertools.pairwise(delays))
    assert sum(delays) == pytest.approx(86_400.0, rel=1e-6)
    assert retry_delay_s(15) is None


@pytest.mark.parametrize("max_attempts", [2, 5, 10, 30])
def test_retry_schedule_fits_the_configured_tries(max_attempts: int) -> None:
    """Whatever the number of tries, the waits span the configured day and then stop."""
    delays = [
        retry_delay_s(n, max_attempts=max_attempts, jitter=0.0) for n in range(1, max_attempts)
    ]
    assert sum(d for d in delays if d is not None) == pytest.approx(86_400.0, rel=1e-6)
    assert retry_delay_s(max_attempts, max_attempts=max_attempts) is None


def test_jitter_stays_within_its_bounds() -> None:
    """Jittered waits stay within ±20 % of the plain schedule and are not all equal."""
    rng = random.Random(12)
    plain = retry_delay_s(3, jitter=0.0)
    assert plain is not None
    jittered = [retry_delay_s(3, rand=rng.random) for _ in range(200)]
    assert all(w is not None and 0.8 * plain <= w <= 1.2 * plain for w in jittered)
    assert len(set(jittered)) > 1


def test_attempt_numbers_start_at_one() -> None:
    """Attempt 0 is a caller error."""
    with pytest.raises(ValueError, match="attempt number"):
        retry_delay_s(0)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, "delivered"),
        (201, "delivered"),
        (299, "delivered"),
        (410, "gone"),
        (401, "failed"),
        (404, "failed"),
        (413, "failed"),
        (408, "retry"),
        (429, "retry"),
        (500, "retry"),
        (502, "retry"),
        (301, "retry"),
        (100, "retry"),
    ],
)
def test_classify(status: int, outcome: str) -> None:
    """The pure classification matches the table in the module's docstring."""
    assert classify(status) == outcome


async def test_a_secret_also_signing_adds_a_signature_either_secret_verifies(
    receiver: tuple[HttpPeer, WebhookReceiver],
) -> None:
    """With a second secret signing (a rotation's overlap) the header carries two signatures;
    a receiver on the old secret and one on the new both verify the same request."""
    peer, check = receiver
    new = "whsec_" + base64.b64encode(b"n" * 32).decode()
    attempt = await _send_once(
        WebhookEndpoint(url=peer.url, secret=new, also_signing=(SECRET,)), message_id="m-rot"
    )
    assert attempt.outcome == "delivered"
    [request] = peer.requests
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    assert len(check.verified) == 1
    assert Webhook(new).verify(request.body, request.headers) == check.verified[0]


def test_endpoint_secret_is_not_in_the_repr() -> None:
    """An endpoint's repr shows its URL but not its secrets."""
    old = "whsec_" + base64.b64encode(b"o" * 32).decode()
    endpoint = WebhookEndpoint(url="https://hooks.example/x", secret=SECRET, also_signing=(old,))
    assert SECRET not in repr(endpoint)
    assert old not in repr(endpoint)
    assert "hooks.example" in repr(endpoint)


async def test_a_kept_connection_the_receiver_closed_is_not_used_again() -> None:
    """A receiver that answers, keeps the connection open by HTTP's rules, then closes it: the
    next send sees the closed socket before it writes, and goes over a new connection."""
    connections = 0

    async def answer_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()  # and no "Connection: close": the client believes it may reuse it

    server = await asyncio.start_server(answer_once, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    endpoint = WebhookEndpoint(url=f"http://127.0.0.1:{port}/", secret=SECRET)
    try:
        async with WebhookSender(LOOPBACK_OK) as sender:
            first = await sender.send(endpoint, message_id="m1", body=_body())
            await asyncio.sleep(0.1)  # the close reaches the client's socket
            second = await sender.send(endpoint, message_id="m2", body=_body())
    finally:
        server.close()
        await server.wait_closed()
    assert (first.outcome, second.outcome) == ("delivered", "delivered")
    assert connections == 2


async def test_sends_in_flight_spread_over_the_pools_up_to_max_connections() -> None:
    """A sender of 30 connections (three pools) has 30 requests under way at once: a receiver
    that answers none of them before all 30 have arrived gets every one."""
    wanted = 30
    arrived = 0
    everyone = asyncio.Event()

    async def hold_until_all(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal arrived
        await reader.readuntil(b"\r\n\r\n")
        arrived += 1
        if arrived == wanted:
            everyone.set()
        await everyone.wait()
        writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(hold_until_all, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    endpoint = WebhookEndpoint(url=f"http://127.0.0.1:{port}/", secret=SECRET)
    config = WebhookConfig(
        allowed_address_classes=frozenset({"loopback"}), max_connections=wanted, timeout_s=10.0
    )
    try:
        async with WebhookSender(config) as sender:
            attempts = await asyncio.gather(
                *(sender.send(endpoint, message_id=f"m{n}", body=_body()) for n in range(wanted))
            )
    finally:
        server.close()
        await server.wait_closed()
    assert [a.outcome for a in attempts] == ["delivered"] * wanted
