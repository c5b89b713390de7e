"""Credentials: minting tokens, hashing them, and resolving a request to its principal.

Tokens are 256-bit random strings with a kind prefix (``lmk_`` API keys, ``lmd_`` device
tokens, ``lms_`` the sessions of users signed in to the pages); only their SHA-256 is stored,
which is enough for secrets of that entropy. Lookups are
cached in-process for ``auth_cache_ttl_s`` (unknown tokens for a few seconds), so the hot
ingest path rarely touches the database; a revocation evicts its tokens from every process's
cache at once through Redis, and a lookup PostgreSQL does not answer is answered from a copy
in Redis (:mod:`app.revocation`).

A session travels in an HttpOnly cookie and stands for its user's role wherever an API key
is accepted, for HTTP requests only (a page opens its sockets with a ticket). A change made with
the cookie (any method but GET, HEAD and OPTIONS) must carry the session's CSRF token in
``X-CSRF-Token``: a value derived from the session's secret, which another site's page can
neither read nor guess.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Generic, TypeVar

import msgspec
import psycopg
import structlog
from cachetools import TLRUCache
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import HTTPConnection

from app import revocation, tickets
from app.errors import Forbidden, Unauthorized, Unavailable
from app.revocation import CredentialKind
from app.throttle import FailedCredentials
from realtime.hub import Hub, Overflowed
from schemas.auth import ApiPrincipal, DevicePrincipal, Role
from schemas.ids import DeviceId, DriverId, OrgId
from store import tenants, users

P = TypeVar("P")
S = TypeVar("S", bound=msgspec.Struct)

log = structlog.get_logger(__name__)

API_KEY_PREFIX = "lmk_"
DEVICE_TOKEN_PREFIX = "lmd_"  # noqa: S105 - a prefix, not a secret
SESSION_PREFIX = "lms_"
NEGATIVE_TTL_S = 5.0

SESSION_COOKIE: Final = "lastmile_session"
"""The session cookie over plain HTTP (a local demo)."""
SECURE_SESSION_COOKIE: Final = "__Host-lastmile_session"
"""The session cookie over TLS: browsers keep a ``__Host-`` cookie only when it is Secure, has
no Domain and has the path ``/``, so no other host or path can plant or shadow it."""
CSRF_HEADER: Final = "x-csrf-token"
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})


def new_token(prefix: str) -> str:
    """A fresh secret token with a kind prefix."""
    return prefix + secrets.token_urlsafe(32)


def hash_token(token: str) -> bytes:
    """What is stored for a token: its SHA-256."""
    return hashlib.sha256(token.encode()).digest()


def csrf_token(session_token: str) -> str:
    """The CSRF token of a session: derived from its secret, so it needs no storage."""
    digest = hashlib.sha256(b"lastmile csrf\0" + session_token.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def session_cookie(conn: HTTPConnection) -> str | None:
    """The session token of the request's cookie, if it has one."""
    return conn.cookies.get(SECURE_SESSION_COOKIE) or conn.cookies.get(SESSION_COOKIE) or None


def token_prefix(token: str) -> str:
    """The first characters of a token, stored in clear so people can tell keys apart."""
    return token[:10]


READERS: Final[tuple[Role, ...]] = ("admin", "dispatcher", "integration")
"""Roles that may read the delivery API's resources."""
FLEET_WRITERS: Final[tuple[Role, ...]] = ("admin", "dispatcher")
"""Roles that may change the fleet, plans and routes."""
ORDER_WRITERS: Final[tuple[Role, ...]] = ("admin", "dispatcher", "integration")
"""Roles that may create and change orders."""
ADMINS: Final[tuple[Role, ...]] = ("admin",)
DISPATCHERS: Final[tuple[Role, ...]] = ("admin", "dispatcher")
"""Roles of the people who run the deliveries (not integrations): the weekly summary."""


_UNCACHED: Final = object()
DB_RETRY_S: Final = 2.0
"""After PostgreSQL failed to answer a lookup, how long lookups go to the fallback at once
instead of waiting for it again."""


class _Cache(Generic[P]):
    """Principals by token hash for ``ttl_s`` (unknown tokens for at most NEGATIVE_TTL_S).

    A lookup during which any entry was evicted is answered but not kept: it may have read
    the database before the revocation that evicted it committed."""

    def __init__(self, ttl_s: float, max_entries: int = 100_000) -> None:
        def expiry(key: bytes, value: P | None, now: float) -> float:
            return now + (ttl_s if value is not None else min(ttl_s, NEGATIVE_TTL_S))

        self._entries: TLRUCache[bytes, P | None] = TLRUCache(
            maxsize=max_entries, ttu=expiry, timer=time.monotonic
        )
        self._evictions = 0

    async def get(self, key: bytes, load: Callable[[], Awaitable[P | None]]) -> P | None:
        hit = self._entries.get(key, _UNCACHED)
        if hit is not _UNCACHED:
            return hit  # type: ignore[return-value]
        evictions = self._evictions
        value = await load()
        if evictions == self._evictions:
            self._entries[key] = value
        return value

    def evict(self, keys: Iterable[bytes]) -> None:
        self._evictions += 1
        for key in keys:
            self._entries.pop(key, None)

    def clear(self) -> None:
        self._evictions += 1
        self._entries.clear()


@dataclass(frozen=True, kw_only=True, slots=True)
class SharedCredentials:
    """Where and how long the processes share credentials (:mod:`app.revocation`)."""

    redis: Redis
    prefix: str = ""
    db_timeout_s: float = 1.0
    """How long a lookup waits for PostgreSQL before it reads the fallback copy."""
    fallback_ttl_s: float = 86_400.0
    """How long a resolved principal's copy (and a revocation's tombstone) is kept."""


class Authenticator:
    """Resolves tokens to principals through the database, with a small TTL cache.

    With :class:`SharedCredentials`, revocations published by any process evict this
    process's entries at once (:meth:`watch`), and a lookup that PostgreSQL does not answer in
    time is answered from the fallback copy in Redis (503 when there is none).
    """

    def __init__(
        self,
        pool: AsyncConnectionPool,
        *,
        ttl_s: float,
        shared: SharedCredentials | None = None,
        throttle: FailedCredentials | None = None,
    ) -> None:
        self._pool = pool
        self._shared = shared
        self._throttle = throttle
        self._devices: _Cache[DevicePrincipal] = _Cache(ttl_s)
        self._keys: _Cache[ApiPrincipal] = _Cache(ttl_s)
        self._sessions: _Cache[ApiPrincipal] = _Cache(ttl_s)
        self._db_down_until = -float("inf")
        self._watchers: dict[bytes, set[asyncio.Event]] = {}
        """Per token hash, the events of the open sockets it authenticated."""

    async def device(self, token: str) -> DevicePrincipal | None:
        """The device behind ``token``, or None when it is unknown or revoked."""
        return await self.device_by_hash(hash_token(token))

    async def device_by_hash(self, token_hash: bytes) -> DevicePrincipal | None:
        """The device whose token has this SHA-256, or None."""

        async def load() -> DevicePrincipal | None:
            return await self._load("device", token_hash, tenants.find_device, DevicePrincipal)

        return await self._devices.get(token_hash, load)

    async def api_key(self, token: str) -> ApiPrincipal | None:
        """The API key behind ``token``, or None when it is unknown or revoked."""
        return await self.api_key_by_hash(hash_token(token))

    async def api_key_by_hash(self, token_hash: bytes) -> ApiPrincipal | None:
        """The API key whose token has this SHA-256, or None."""

        async def load() -> ApiPrincipal | None:
            return await self._load("key", token_hash, tenants.find_api_key, ApiPrincipal)

        return await self._keys.get(token_hash, load)

    async def session_by_hash(self, token_hash: bytes) -> ApiPrincipal | None:
        """The signed-in user of the open session whose token has this SHA-256, or None."""

        async def load() -> ApiPrincipal | None:
            return await self._load("session", token_hash, users.find_session, ApiPrincipal)

        return await self._sessions.get(token_hash, load)

    @property
    def throttle(self) -> FailedCredentials | None:
        """The failed-credential limits (None: not counted)."""
        return self._throttle

    async def _load(
        self,
        kind: CredentialKind,
        token_hash: bytes,
        find: Callable[[AsyncConnection, bytes], Awaitable[S | None]],
        principal: type[S],
    ) -> S | None:
        """From PostgreSQL (keeping a fallback copy), or from the copy when it does not answer."""
        shared = self._shared
        if shared is None:
            async with self._pool.connection() as conn:
                return await find(conn, token_hash)
        if time.monotonic() >= self._db_down_until:
            try:
                async with asyncio.timeout(shared.db_timeout_s):
                    async with self._pool.connection() as conn:
                        found = await find(conn, token_hash)
            except (psycopg.Error, TimeoutError, OSError) as exc:
                self._db_down_until = time.monotonic() + DB_RETRY_S
                log.warning(
                    "credentials from the fallback: PostgreSQL did not answer", error=repr(exc)
                )
            else:
                if found is not None:
                    with contextlib.suppress(RedisError, OSError):
                        await revocation.remember(
                            shared.redis,
                            shared.prefix,
                            kind,
                            token_hash,
                            msgspec.json.encode(found),
                            shared.fallback_ttl_s,
                        )
                return found
        try:
            copy = await revocation.recall(shared.redis, shared.prefix, kind, token_hash)
        except (RedisError, OSError) as exc:
            raise Unavailable("neither PostgreSQL nor Redis answered") from exc
        if copy is None:
            raise Unavailable("PostgreSQL is unavailable, and this credential was not seen lately")
        if copy == revocation.REVOKED:
            return None
        return msgspec.json.decode(copy, type=principal)

    def forget(self, token_hashes: Iterable[bytes]) -> None:
        """Drop these tokens from this process's cache (they were revoked), and tell the open
        sockets they authenticated (:meth:`revocable`)."""
        hashes = list(token_hashes)
        self._devices.evict(hashes)
        self._keys.evict(hashes)
        self._sessions.evict(hashes)
        for token_hash in hashes:
            for event in self._watchers.get(token_hash, ()):
                event.set()

    @contextlib.contextmanager
    def revocable(self, conn: HTTPConnection) -> Iterator[asyncio.Event]:
        """An event set when the credential ``conn`` authenticated with (``require_*``) is
        revoked while the block runs: a socket closes then, rather than outliving it."""
        token_hash: bytes = getattr(conn.state, "token_hash", b"")
        event = asyncio.Event()
        self._watchers.setdefault(token_hash, set()).add(event)
        try:
            yield event
        finally:
            watching = self._watchers.get(token_hash)
            if watching is not None:
                watching.discard(event)
                if not watching:
                    del self._watchers[token_hash]

    async def watch(self, hub: Hub) -> None:
        """Forget every token any process revokes, for as long as it runs (a task of the
        process's resources). Whenever it starts listening (again), it forgets everything: a
        revocation may have been published while it was not."""
        if self._shared is None:
            return
        name = revocation.channel(self._shared.prefix)
        while True:
            try:
                async with hub.subscribe(name) as subscription:
                    self._devices.clear()
                    self._keys.clear()
                    self._sessions.clear()
                    while True:
                        self.forget(revocation.revoked_hashes(await subscription.get()))
            except Overflowed:
                continue
            except Exception as exc:  # Redis away: the hub reconnects; listen again
                log.warning("revocations not followed; retrying", error=repr(exc))
                await asyncio.sleep(1.0)

    def check(self, conn: HTTPConnection) -> None:
        """Refuse (429) a caller whose address sent too many failed credentials lately."""
        if self._throttle is not None:
            self._throttle.check(conn.client.host if conn.client else None)

    async def failed(self, conn: HTTPConnection) -> None:
        """Count a failed credential of the caller's address (429 once it is over the limit)."""
        if self._throttle is not None:
            await self._throttle.failed(conn.client.host if conn.client else None)

    async def _presented(
        self, conn: HTTPConnection, kinds: tuple[CredentialKind, ...]
    ) -> tuple[CredentialKind, bytes] | None:
        """The kind and SHA-256 of the credential ``conn`` carries: a token
        (``Authorization: Bearer``, ``?token=``; of ``kinds[0]``), the credential its
        ``?ticket=`` stands for (sockets), or a session cookie (HTTP, when ``kinds`` has
        sessions); None when it carries none."""
        token = token_of(conn)
        if token:
            return kinds[0], hash_token(token)
        if conn.scope["type"] == "websocket":  # tickets open sockets; cookies do not
            ticket = conn.query_params.get("ticket")
            if not ticket:
                return None
            redeemed = None
            if self._shared is not None:
                redeemed = await tickets.redeem(self._shared.redis, self._shared.prefix, ticket)
            if redeemed is None or redeemed[0] not in kinds:
                await self.failed(conn)
                raise Unauthorized("unknown, used or expired ticket")
            return redeemed
        cookie = session_cookie(conn) if "session" in kinds else None
        if cookie is None:
            return None
        if conn.scope.get("method", "GET") not in SAFE_METHODS:
            sent = conn.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode(), csrf_token(cookie).encode()):
                raise Forbidden(
                    "a change made with the session cookie needs its CSRF token in the"
                    " X-CSRF-Token header (GET /v1/session gives it)"
                )
        return "session", hash_token(cookie)

    async def require_device(self, conn: HTTPConnection) -> DevicePrincipal:
        """The calling device, from ``Authorization: Bearer``, a ``token`` query parameter or a
        socket ticket (:mod:`app.tickets`)."""
        self.check(conn)
        presented = await self._presented(conn, ("device",))
        if presented is None:
            raise Unauthorized("a device token is required (Authorization: Bearer lmd_...)")
        kind, token_hash = presented
        principal = await self.device_by_hash(token_hash)
        if principal is None:
            await self.failed(conn)
            raise Unauthorized("unknown or revoked device token")
        conn.state.token_hash = token_hash
        conn.state.credential_kind = kind
        return principal

    async def require_api_key(
        self, conn: HTTPConnection, roles: tuple[Role, ...] = ("admin", "dispatcher")
    ) -> ApiPrincipal:
        """The calling API key, or signed-in user (session cookie), which must hold one of
        ``roles``."""
        self.check(conn)
        presented = await self._presented(conn, ("key", "session"))
        if presented is None:
            raise Unauthorized(
                "an API key (Authorization: Bearer lmk_...) or a signed-in session is required"
            )
        kind, token_hash = presented
        if kind == "session":
            principal = await self.session_by_hash(token_hash)
            noun = "session"
        else:
            principal = await self.api_key_by_hash(token_hash)
            noun = "API key"
        if principal is None:
            await self.failed(conn)
            raise Unauthorized(f"unknown, revoked or expired {noun}")
        if principal.expires_at is not None and principal.expires_at <= datetime.now(UTC):
            raise Unauthorized(f"expired {noun}")  # cached before it expired
        conn.state.token_hash = token_hash
        conn.state.credential_kind = kind
        if principal.role not in roles:
            raise Forbidden(
                f"this needs the role {' or '.join(roles)}; the {noun} has {principal.role}"
            )
        return principal


def actor_of(principal: ApiPrincipal) -> dict[str, int | None]:
    """Who made a change, as the audit chain records it: the API key or the signed-in user."""
    return {"key_id": principal.key_id, "user_id": principal.user_id}


def token_of(conn: HTTPConnection) -> str | None:
    """The credential a request or socket carries: ``Authorization: Bearer`` or ``?token=``."""
    return bearer_token(conn) or conn.query_params.get("token")


def bearer_token(conn: HTTPConnection) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if there is one."""
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def basic_credentials(conn: HTTPConnection) -> tuple[str, str] | None:
    """User and password of an ``Authorization: Basic`` header, if there is a valid one."""
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


async def issue_api_key(conn: AsyncConnection, org_id: OrgId, *, role: Role, name: str) -> str:
    """Create an API key for ``org_id`` and return it; only its hash is stored."""
    token = new_token(API_KEY_PREFIX)
    await tenants.create_api_key(
        conn,
        org_id,
        name=name,
        role=role,
        token_hash=hash_token(token),
        token_prefix=token_prefix(token),
    )
    return token


async def issue_device_token(
    conn: AsyncConnection, org_id: OrgId, driver_id: DriverId, *, name: str = "phone"
) -> tuple[DeviceId, str] | None:
    """Register a device for a driver of ``org_id``; its id and token, or None (no such driver)."""
    token = new_token(DEVICE_TOKEN_PREFIX)
    device_id = await tenants.create_device(
        conn,
        org_id,
        driver_id,
        token_hash=hash_token(token),
        token_prefix=token_prefix(token),
        name=name,
    )
    return None if device_id is None else (device_id, token)
