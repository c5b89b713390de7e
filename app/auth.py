"""Credentials: minting tokens, hashing them, and resolving a request to its principal.

Tokens are 256-bit random strings with a kind prefix (``lmk_`` API keys, ``lmd_`` device
tokens); only their SHA-256 is stored, which is enough for secrets of that entropy. Lookups are
cached in-process for ``auth_cache_ttl_s`` (unknown tokens for a few seconds), so a revoked
token stops working within that time while the hot ingest path rarely touches the database.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Final, Generic, TypeVar

from cachetools import TLRUCache
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from starlette.requests import HTTPConnection

from app.errors import Forbidden, Unauthorized
from schemas.auth import ApiPrincipal, DevicePrincipal, Role
from schemas.ids import DeviceId, DriverId, OrgId
from store import tenants

P = TypeVar("P")

API_KEY_PREFIX = "lmk_"
DEVICE_TOKEN_PREFIX = "lmd_"  # noqa: S105 - a prefix, not a secret
NEGATIVE_TTL_S = 5.0


def new_token(prefix: str) -> str:
    """A fresh secret token with a kind prefix."""
    return prefix + secrets.token_urlsafe(32)


def hash_token(token: str) -> bytes:
    """What is stored for a token: its SHA-256."""
    return hashlib.sha256(token.encode()).digest()


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


_UNCACHED: Final = object()


class _Cache(Generic[P]):
    """Principals by token hash for ``ttl_s`` (unknown tokens for at most NEGATIVE_TTL_S)."""

    def __init__(self, ttl_s: float, max_entries: int = 100_000) -> None:
        def expiry(key: bytes, value: P | None, now: float) -> float:
            return now + (ttl_s if value is not None else min(ttl_s, NEGATIVE_TTL_S))

        self._entries: TLRUCache[bytes, P | None] = TLRUCache(
            maxsize=max_entries, ttu=expiry, timer=time.monotonic
        )

    async def get(self, key: bytes, load: Callable[[], Awaitable[P | None]]) -> P | None:
        hit = self._entries.get(key, _UNCACHED)
        if hit is not _UNCACHED:
            return hit  # type: ignore[return-value]
        value = await load()
        self._entries[key] = value
        return value


class Authenticator:
    """Resolves tokens to principals through the database, with a small TTL cache."""

    def __init__(self, pool: AsyncConnectionPool, *, ttl_s: float) -> None:
        self._pool = pool
        self._devices: _Cache[DevicePrincipal] = _Cache(ttl_s)
        self._keys: _Cache[ApiPrincipal] = _Cache(ttl_s)

    async def device(self, token: str) -> DevicePrincipal | None:
        """The device behind ``token``, or None when it is unknown or revoked."""

        async def load() -> DevicePrincipal | None:
            async with self._pool.connection() as conn:
                return await tenants.find_device(conn, hash_token(token))

        return await self._devices.get(hash_token(token), load)

    async def api_key(self, token: str) -> ApiPrincipal | None:
        """The API key behind ``token``, or None when it is unknown or revoked."""

        async def load() -> ApiPrincipal | None:
            async with self._pool.connection() as conn:
                return await tenants.find_api_key(conn, hash_token(token))

        return await self._keys.get(hash_token(token), load)

    async def require_device(self, conn: HTTPConnection) -> DevicePrincipal:
        """The calling device, from ``Authorization: Bearer`` or a ``token`` query parameter."""
        token = bearer_token(conn) or conn.query_params.get("token")
        if not token:
            raise Unauthorized("a device token is required (Authorization: Bearer lmd_...)")
        principal = await self.device(token)
        if principal is None:
            raise Unauthorized("unknown or revoked device token")
        return principal

    async def require_api_key(
        self, conn: HTTPConnection, roles: tuple[Role, ...] = ("admin", "dispatcher")
    ) -> ApiPrincipal:
        """The calling API key, which must hold one of ``roles``."""
        token = bearer_token(conn) or conn.query_params.get("token")
        if not token:
            raise Unauthorized("an API key is required (Authorization: Bearer lmk_...)")
        principal = await self.api_key(token)
        if principal is None:
            raise Unauthorized("unknown or revoked API key")
        if principal.role not in roles:
            raise Forbidden(f"expected a key with role {' or '.join(roles)}, got {principal.role}")
        return principal


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
