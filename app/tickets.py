"""Short-lived, single-use tickets that open a WebSocket without putting a credential in its URL.

Browsers cannot set headers on a WebSocket, so a page would have to put its API key or device
token in the socket's query string, where proxies and servers log URLs. Instead the page asks
``POST /v1/socket-tickets`` for a ticket (with the credential in the ``Authorization`` header)
and opens the socket with ``?ticket=``. A ticket is 192 random bits, kept in Redis (by its
SHA-256) for :data:`TICKET_TTL_S` seconds, and taken by the first socket that shows it: a URL
that reaches a log is worthless by then.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Final

from redis.asyncio import Redis

from app.revocation import CredentialKind

KINDS: Final[tuple[CredentialKind, ...]] = ("device", "key", "session")
TICKET_TTL_S: Final = 30
"""How long a ticket waits for its socket."""


def _key(prefix: str, ticket: str) -> str:
    return f"{prefix}ticket:{hashlib.sha256(ticket.encode()).hexdigest()}"


async def issue(redis: Redis, prefix: str, kind: CredentialKind, token_hash: bytes) -> str:
    """A new ticket standing for the credential of ``token_hash`` (of ``kind``)."""
    ticket = secrets.token_urlsafe(24)
    await redis.set(_key(prefix, ticket), f"{kind}:{token_hash.hex()}", ex=TICKET_TTL_S)
    return ticket


async def redeem(redis: Redis, prefix: str, ticket: str) -> tuple[CredentialKind, bytes] | None:
    """The credential a ticket stands for, taking the ticket (it works once); None when it is
    unknown, used or expired."""
    if not ticket or len(ticket) > 100:
        return None
    value = await redis.getdel(_key(prefix, ticket))
    if value is None:
        return None
    text = value.decode() if isinstance(value, bytes) else str(value)
    kind, _, token_hash = text.partition(":")
    for known in KINDS:
        if kind == known:
            return known, bytes.fromhex(token_hash)
    return None
