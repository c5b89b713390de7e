"""Signed webhooks to integrations: the Standard Webhooks scheme over HTTP, with SSRF protection.

:class:`WebhookSender` POSTs a JSON body signed with the ``standardwebhooks`` library (headers
``webhook-id``, ``webhook-timestamp``, ``webhook-signature``), times the attempt and classifies
the answer as a :class:`WebhookAttempt` the sender records in the delivery log:

==========================  ===========  ==========================================
answer                      outcome      what the sender does
==========================  ===========  ==========================================
2xx                         delivered    done
410 Gone                    gone         disable the endpoint (its owner said so)
408, 429, 3xx, 5xx          retry        again after :func:`retry_delay_s`
timeout, network error      retry        again after :func:`retry_delay_s`
other 4xx                   failed       dead letter: the receiver refuses this message
refused target (SSRF)       refused      dead letter, nothing was sent
==========================  ===========  ==========================================

Redirects are not followed (a redirect could lead anywhere, including inside our network), so
3xx counts as a failed attempt that the endpoint's owner can still fix within the retry span.

SSRF: the check runs where the connection is made. The sender's HTTP client connects through a
network backend that resolves the target host, refuses it if any of its addresses is loopback,
private, link-local, multicast, reserved or unspecified (IPv4, IPv6, and IPv4 inside IPv6:
mapped, 6to4, NAT64) unless ``WebhookConfig.allowed_address_classes`` allows that class, and
then connects to one of the addresses it checked. The URL keeps its name, so ``Host``, TLS's
server name and the certificate check are the ordinary ones, and a DNS answer that changes
between the check and the connection cannot redirect it (no time-of-check/time-of-use gap). A
kept-alive connection is reused for later requests to the same host name and port: it goes to
an address that passed the check when it was opened.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import random
import select
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpcore
import httpx
import msgspec
from standardwebhooks.webhooks import Webhook

from adapters.errors import TargetRefused, retry_after_s
from schemas.webhooks import AttemptOutcome as Outcome

CHANNEL = "webhook"

AddressClass = Literal["unspecified", "loopback", "link_local", "multicast", "private", "reserved"]

_IP = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_RESPONSE_EXCERPT_BYTES = 1024


@dataclass(frozen=True, kw_only=True, slots=True)
class WebhookEndpoint:
    """Where an organisation's integration listens; the secret never appears in the repr."""

    url: str
    secret: str = field(repr=False)
    """A Standard Webhooks secret: ``whsec_`` and base64 of 24 to 64 random bytes."""
    also_signing: tuple[str, ...] = field(default=(), repr=False)
    """Secrets that sign too (a rotated-out secret during its overlap): the header then carries
    one signature per secret, and a receiver verifying with any of them accepts."""


@dataclass(frozen=True, kw_only=True, slots=True)
class WebhookConfig:
    """How webhooks are sent. ``allowed_address_classes`` is empty in production."""

    timeout_s: float = 10.0
    """The whole attempt: resolution, connection, request and the start of the answer."""
    allowed_address_classes: frozenset[AddressClass] = frozenset()
    max_connections: int = 100
    """Open connections at most, all of them kept alive between requests; a sender sets its
    window (the sends it has in flight). httpcore's pool looks at every connection it holds on
    every request and answer (and compares each idle one with all the others), so a pool much
    larger than the window costs CPU for nothing."""
    user_agent: str = "lastmile-webhooks/1"
    ca_file: Path | None = None
    """Trust this CA bundle instead of the system's (tests, private receivers)."""


class WebhookAttempt(msgspec.Struct, frozen=True, kw_only=True):
    """One attempt as the delivery log records it."""

    outcome: Outcome
    status_code: int | None
    latency_s: float
    """From the start of resolution to the answer's status line (or the failure)."""
    detail: str = ""
    """An excerpt of the answer's body, or what went wrong."""
    address: str | None = None
    """The IP address connected to, when a connection was made."""
    retry_after_s: float | None = None


class _Envelope(msgspec.Struct, frozen=True, kw_only=True):
    type: str
    timestamp: str
    data: Any


_encoder = msgspec.json.Encoder()


def envelope(event_type: str, at: datetime, data: Any) -> bytes:
    """The Standard Webhooks payload shape: ``{"type", "timestamp" (ISO 8601), "data"}``."""
    return _encoder.encode(_Envelope(type=event_type, timestamp=at.isoformat(), data=data))


def classify(status_code: int) -> Outcome:
    """What an HTTP answer means for this delivery (see the module's table)."""
    if 200 <= status_code < 300:
        return "delivered"
    if status_code == 410:
        return "gone"
    if 400 <= status_code < 500 and status_code not in (408, 429):
        return "failed"
    return "retry"


def retry_delay_s(
    attempt: int,
    *,
    max_attempts: int = 15,
    first_delay_s: float = 5.0,
    span_s: float = 86_400.0,
    jitter: float = 0.2,
    rand: Callable[[], float] = random.random,
) -> float | None:
    """Seconds to wait after failed attempt number ``attempt`` (1-based), or None: give up.

    Delays grow geometrically from ``first_delay_s`` by the factor that makes the
    ``max_attempts - 1`` waits add up to ``span_s`` (by default 5 s, 10 s, 20 s, ... 12 h: a
    day over 15 tries); with too few tries to grow, the waits are equal. Each wait is spread
    by ±``jitter`` so endpoints that failed together do not retry together. ``rand`` returns
    a number in [0, 1).
    """
    if attempt < 1:
        raise ValueError(f"expected an attempt number of 1 or more, got {attempt}")
    if attempt >= max_attempts:
        return None
    waits = max_attempts - 1
    factor = _growth(waits, first_delay_s, span_s)
    # Too few tries to grow from first_delay_s (or too many to): equal waits fill the span.
    delay = span_s / waits if factor == 1.0 else first_delay_s * factor ** (attempt - 1)
    return delay * (1.0 + jitter * (2.0 * rand() - 1.0))


def _growth(waits: int, first_s: float, span_s: float) -> float:
    """The factor r with first_s * (1 + r + ... + r^(waits-1)) = span_s (bisection)."""
    if waits <= 1 or first_s * waits >= span_s:
        return 1.0
    low, high = 1.0, 2.0
    while first_s * (high**waits - 1) / (high - 1) < span_s:
        high *= 2
    for _ in range(100):
        mid = (low + high) / 2
        if first_s * (mid**waits - 1) / (mid - 1) < span_s:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def address_class(address: str | _IP) -> AddressClass | None:
    """The non-public class an IP address belongs to, or None for a public address.

    IPv4 carried inside IPv6 (``::ffff:10.0.0.1``, 6to4, NAT64 ``64:ff9b::/96``) is judged by
    the IPv4 address it carries.
    """
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return address_class(ip.ipv4_mapped)
        if ip.sixtofour is not None:
            return address_class(ip.sixtofour)
        if ip in _NAT64:
            return address_class(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link_local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_reserved:
        return "reserved"  # before private: Python counts 240.0.0.0/4 among the private ranges
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "reserved"  # e.g. 100.64.0.0/10, carrier-grade NAT
    return None


async def resolve_allowed(
    host: str, port: int, allowed: frozenset[AddressClass] = frozenset()
) -> list[str]:
    """Every address ``host`` resolves to, if all of them are allowed; else TargetRefused.

    All addresses must pass, not just one: otherwise a name with one public and one private
    record could reach the private one on a retry.
    """
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except socket.gaierror as exc:
        raise TargetRefused(CHANNEL, f"could not resolve {host!r}: {exc}", address=host) from exc
    addresses: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        kind = address_class(ip)
        if kind is not None and kind not in allowed:
            raise TargetRefused(
                CHANNEL,
                f"expected {host!r} to resolve to public addresses, got {kind} address {ip}",
                address=str(ip),
            )
        if str(ip) not in addresses:
            addresses.append(str(ip))
    return addresses


READABLE_CHECK_S = 0.02
"""How long a connection's answer to "did the server close you?" is taken as still true."""


class _Stream(httpcore.AsyncNetworkStream):
    """A connection whose "is the server gone?" check is one ``poll``, at most every
    :data:`READABLE_CHECK_S`.

    On every request and every finished answer, httpcore's pool asks each of its idle
    connections whether its socket is readable (closed by the server). Through anyio that
    lookup built the socket's attribute table each time; with a sender's window of kept
    connections it was half of the webhooks worker's CPU (py-spy), and a bare ``poll`` per
    question still was. An idle connection's answer 20 ms old is as good as a new one: the server
    may close a connection between any check and the request's first byte anyway (that attempt
    fails and is retried), and a check only spares a request the connections found closed. The
    first check after the connection read or wrote always looks. The socket and the peer's
    address are read once.
    """

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket: socket.socket | None = inner.get_extra_info("socket")
        self._server_addr: Any = inner.get_extra_info("server_addr")
        self._checked_at = -float("inf")
        self._readable = False

    def _is_readable(self) -> bool:
        now = time.monotonic()
        if self._readable or now - self._checked_at >= READABLE_CHECK_S:
            self._checked_at = now
            self._readable = _readable(self._socket)
        return self._readable

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        self._checked_at = -float("inf")  # idle again after this: look afresh
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        self._checked_at = -float("inf")
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
    ) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return self._is_readable()
        if info == "socket":
            return self._socket
        if info == "server_addr":
            return self._server_addr
        return self._inner.get_extra_info(info)


def _readable(sock: socket.socket | None) -> bool:
    """Whether ``sock`` has something to read (for an idle connection: the server closed it);
    a closed socket counts as readable, so the pool drops it."""
    fd = -1 if sock is None else sock.fileno()
    if fd < 0:
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class _CheckedBackend(httpcore.AsyncNetworkBackend):
    """Opens TCP connections only to addresses :func:`resolve_allowed` let through."""

    def __init__(self, allowed: frozenset[AddressClass]) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._allowed = allowed

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await resolve_allowed(host, port, self._allowed)
        error: Exception = httpcore.ConnectError(f"{host} has no address")
        for address in addresses:
            try:
                return _Stream(
                    await self._inner.connect_tcp(
                        address, port, timeout, local_address, socket_options
                    )
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise TargetRefused(CHANNEL, f"expected a TCP target, got socket {path}", address=path)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _CheckedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a connection pool whose connections go through the check."""

    def __init__(
        self, allowed: frozenset[AddressClass], ssl_context: ssl.SSLContext, max_connections: int
    ) -> None:
        super().__init__(verify=ssl_context, trust_env=False)
        limits = httpx.Limits()
        # httpx takes no network backend, so its pool is replaced by one built with ours. Every
        # connection may be kept alive: a sender sends a batch to few hosts at once, and one
        # closed after each batch would be resolved, checked and opened again for the next.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_CheckedBackend(allowed),
        )


POOL_CONNECTIONS = 10
"""Connections per pool of a :class:`WebhookSender`, which holds as many pools as its
``max_connections`` needs. httpcore's pool, on every request and every answer, compares each
of its idle connections with all its connections: work that grows with the square of its
size. With the sender's window of 50 in one pool that was half of the webhooks worker's CPU
(py-spy). A send now walks a pool of ten (10² against 50² per request and answer), and the
sender's throughput against a 50 ms receiver rose from a third of a raw ``httpx`` loop to its
level (docs/BENCHMARKS.md)."""


class WebhookSender:
    """Sends signed webhooks. Owns connection pools; close them with :meth:`aclose`."""

    def __init__(self, config: WebhookConfig) -> None:
        self.config = config
        ssl_context = ssl.create_default_context(
            cafile=str(config.ca_file) if config.ca_file is not None else None
        )
        count = math.ceil(max(1, config.max_connections) / POOL_CONNECTIONS)
        size = math.ceil(max(1, config.max_connections) / count)
        # No proxies from the environment (a proxy would connect by itself, unchecked), and no
        # redirects (they could lead anywhere).
        self._clients = [
            httpx.AsyncClient(
                transport=_CheckedTransport(config.allowed_address_classes, ssl_context, size),
                timeout=config.timeout_s,
                follow_redirects=False,
                trust_env=False,
            )
            for _ in range(count)
        ]
        self._in_flight = [0] * count
        """Requests under way per pool: a send takes the least busy one."""

    async def __aenter__(self) -> WebhookSender:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pools."""
        for client in self._clients:
            await client.aclose()

    def sign(
        self, endpoint: WebhookEndpoint, message_id: str, at: datetime, body: bytes
    ) -> dict[str, str]:
        """The three Standard Webhooks headers for this body (one signature per secret,
        space-separated, as the scheme allows during a rotation)."""
        signature = " ".join(
            Webhook(secret).sign(message_id, at, body)
            for secret in (endpoint.secret, *endpoint.also_signing)
        )
        return {
            "webhook-id": message_id,
            "webhook-timestamp": str(math.floor(at.timestamp())),
            "webhook-signature": signature,
        }

    async def send(
        self,
        endpoint: WebhookEndpoint,
        *,
        message_id: str,
        body: bytes,
        at: datetime | None = None,
    ) -> WebhookAttempt:
        """POST ``body`` (a JSON document) to the endpoint, signed; never raises for a failure.

        ``message_id`` is the idempotency key: the same for every attempt of one message, so the
        receiver can drop duplicates. ``at`` is the signing time (now by default); each attempt
        must be signed afresh, since receivers refuse timestamps more than minutes old.
        """
        started = time.perf_counter()
        at = at or datetime.now(UTC)
        try:
            url = httpx.URL(endpoint.url)
        except httpx.InvalidURL as exc:
            return _attempt("refused", started, f"expected a URL, got {endpoint.url!r}: {exc}")
        if url.scheme not in ("http", "https") or not url.host:
            return _attempt("refused", started, f"expected an http(s) URL, got {endpoint.url!r}")
        headers = self.sign(endpoint, message_id, at, body) | {
            "content-type": "application/json",
            "user-agent": self.config.user_agent,
        }
        pool = min(range(len(self._clients)), key=self._in_flight.__getitem__)
        client = self._clients[pool]
        self._in_flight[pool] += 1
        try:
            async with asyncio.timeout(self.config.timeout_s):
                reply = await client.send(
                    client.build_request("POST", url, headers=headers, content=body),
                    stream=True,
                )
                latency_s = time.perf_counter() - started
                try:
                    excerpt = await _excerpt(reply)
                except httpx.HTTPError:
                    excerpt = b""
                finally:
                    await reply.aclose()
        except TargetRefused as exc:
            return _attempt("refused", started, exc.detail, address=exc.address)
        except (TimeoutError, httpx.TimeoutException):
            return _attempt("retry", started, f"no answer within {self.config.timeout_s} s")
        except httpx.TransportError as exc:
            return _attempt("retry", started, f"{type(exc).__name__}: {exc}")
        finally:
            self._in_flight[pool] -= 1
        return WebhookAttempt(
            outcome=classify(reply.status_code),
            status_code=reply.status_code,
            latency_s=latency_s,
            detail=excerpt.decode("utf-8", "replace"),
            address=_server_address(reply),
            retry_after_s=retry_after_s(reply.headers.get("retry-after")),
        )


def _attempt(
    outcome: Outcome, started: float, detail: str, address: str | None = None
) -> WebhookAttempt:
    return WebhookAttempt(
        outcome=outcome,
        status_code=None,
        latency_s=time.perf_counter() - started,
        detail=detail,
        address=address,
    )


def _server_address(reply: httpx.Response) -> str | None:
    stream = reply.extensions.get("network_stream")
    if stream is None:
        return None
    peer = stream.get_extra_info("server_addr")
    return str(peer[0]) if isinstance(peer, tuple) else None


async def _excerpt(reply: httpx.Response) -> bytes:
    """The start of the answer's body, for the log; a huge answer is not read to its end."""
    chunks = bytearray()
    async for chunk in reply.aiter_raw():
        chunks += chunk
        if len(chunks) >= _RESPONSE_EXCERPT_BYTES:
            break
    return bytes(chunks[:_RESPONSE_EXCERPT_BYTES])
