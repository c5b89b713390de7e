"""Credentials shared by every process through Redis: revocations that take effect at once,
and a copy that lets devices authenticate while PostgreSQL is away.

PostgreSQL stays the truth: each process resolves a token there, through a short cache of its
own (:class:`app.auth.Authenticator`). Redis carries two things besides:

- **Revocations.** Revoking an API key or a device token, or deactivating a driver, commits in
  PostgreSQL and then :func:`announce` publishes the token hashes on ``{prefix}auth:revoked``.
  Every API process drops them from its cache at once, so its next request with one asks
  PostgreSQL and is refused. A revocation whose message is lost (Redis away at that moment)
  still takes effect when the cache entry expires (``LASTMILE_AUTH_CACHE_TTL_S``).
- **A fallback copy** of every principal a process resolved, ``{prefix}auth:{kind}:{hash}``,
  kept ``LASTMILE_AUTH_FALLBACK_TTL_S`` and read only when PostgreSQL does not answer in
  ``LASTMILE_AUTH_DB_TIMEOUT_S``: ingest and the driver socket go on authenticating the devices
  they know through a database outage. A revocation overwrites the copy with a tombstone that
  no later copy overwrites (:data:`_REMEMBER`), so the fallback never lets a revoked token in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Literal

from redis.asyncio import Redis

CredentialKind = Literal["device", "key", "session"]

REVOKED: Final = b"revoked"
"""A fallback copy's value once its token was revoked."""

_REMEMBER: Final = """
if redis.call('GET', KEYS[1]) == ARGV[3] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""
"""Store a copy unless the token is revoked (a copy read from PostgreSQL just before the
revocation committed must not overwrite the tombstone written just after)."""


def channel(prefix: str) -> str:
    """The channel revocations are published on."""
    return f"{prefix}auth:revoked"


def copy_key(prefix: str, kind: CredentialKind, token_hash: bytes) -> str:
    """Where the fallback copy of a principal lives."""
    return f"{prefix}auth:{kind}:{token_hash.hex()}"


async def remember(
    redis: Redis,
    prefix: str,
    kind: CredentialKind,
    token_hash: bytes,
    principal: bytes,
    ttl_s: float,
) -> bool:
    """Keep ``principal`` (its JSON) as the fallback copy for ``ttl_s``; False when the token
    is revoked (its tombstone stays)."""
    stored = await redis.eval(
        _REMEMBER,
        1,
        copy_key(prefix, kind, token_hash),
        principal,
        max(1, round(ttl_s)),
        REVOKED,
    )
    return bool(stored)


async def recall(
    redis: Redis, prefix: str, kind: CredentialKind, token_hash: bytes
) -> bytes | None:
    """The fallback copy (a principal's JSON, or :data:`REVOKED`), None when there is none."""
    value = await redis.get(copy_key(prefix, kind, token_hash))
    return value.encode() if isinstance(value, str) else value


async def announce(
    redis: Redis,
    prefix: str,
    kind: CredentialKind,
    token_hashes: Sequence[bytes],
    ttl_s: float,
) -> None:
    """Tombstone the fallback copies of ``token_hashes`` and tell every process to forget them.

    Call it after the revocation committed; the tombstones last as long as a copy would."""
    if not token_hashes:
        return
    async with redis.pipeline(transaction=False) as pipe:
        for token_hash in token_hashes:
            pipe.set(copy_key(prefix, kind, token_hash), REVOKED, ex=max(1, round(ttl_s)))
        pipe.publish(channel(prefix), ",".join(h.hex() for h in token_hashes))
        await pipe.execute()


async def evict(redis: Redis, prefix: str, token_hashes: Sequence[bytes]) -> None:
    """Tell every process to forget these tokens' cached principals (they changed, e.g. a key
    now expires), without a tombstone: they still work."""
    if token_hashes:
        await redis.publish(channel(prefix), ",".join(h.hex() for h in token_hashes))


def revoked_hashes(message: bytes) -> list[bytes]:
    """The token hashes a revocation message names (malformed parts are skipped)."""
    hashes: list[bytes] = []
    for part in message.split(b","):
        try:
            hashes.append(bytes.fromhex(part.decode("ascii")))
        except (UnicodeDecodeError, ValueError):
            continue
    return hashes


async def unrevoke(
    redis: Redis, prefix: str, kind: CredentialKind, token_hashes: Sequence[bytes]
) -> None:
    """Remove the tombstones of tokens that are valid again (a driver made active again)."""
    if token_hashes:
        await redis.delete(*(copy_key(prefix, kind, h) for h in token_hashes))
