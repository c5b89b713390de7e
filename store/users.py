"""Users and their sessions.

Passwords reach this module only as Argon2 hashes and session tokens only as SHA-256 hashes
(see ``app.passwords`` and ``app.auth``). Every read an administrator makes is scoped by
``org_id``; signing in looks a user up by email alone (addresses are unique across
organisations).
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import class_row, scalar_row

from schemas.auth import ApiPrincipal
from schemas.ids import OrgId, UserId
from schemas.users import User, UserRole
from store.rows import fetch_all, fetch_one

_USER: Final = "id, email, name, role, created_at, deactivated_at, last_sign_in_at"


class EmailTaken(Exception):
    """Another user (of any organisation) has this email address."""


class Account(msgspec.Struct, frozen=True, kw_only=True):
    """What signing in needs of a user."""

    id: UserId
    org_id: OrgId
    password_hash: str
    active: bool


async def create(
    conn: AsyncConnection,
    org_id: OrgId,
    *,
    email: str,
    name: str,
    role: UserRole,
    password_hash: str,
) -> User:
    """A new user of ``org_id``; :class:`EmailTaken` when the address is in use."""
    created = await fetch_one(
        conn,
        class_row(User),
        "INSERT INTO users (org_id, email, name, role, password_hash)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT ((lower(email))) DO NOTHING"
        f" RETURNING {_USER}",
        (org_id, email, name, role, password_hash),
    )
    if created is None:
        raise EmailTaken(email)
    return created


async def get(conn: AsyncConnection, org_id: OrgId, user_id: UserId) -> User | None:
    """One user of ``org_id``, or None."""
    return await fetch_one(
        conn,
        class_row(User),
        f"SELECT {_USER} FROM users WHERE org_id = %s AND id = %s",
        (org_id, user_id),
    )


async def list_users(conn: AsyncConnection, org_id: OrgId) -> list[User]:
    """Every user of ``org_id``, deactivated ones too, oldest first."""
    return await fetch_all(
        conn,
        class_row(User),
        f"SELECT {_USER} FROM users WHERE org_id = %s ORDER BY id",
        (org_id,),
    )


async def account(conn: AsyncConnection, email: str) -> Account | None:
    """The user signing in with ``email`` (any case), or None."""
    return await fetch_one(
        conn,
        class_row(Account),
        "SELECT id, org_id, password_hash, deactivated_at IS NULL AS active FROM users"
        " WHERE lower(email) = lower(%s)",
        (email,),
    )


async def password_hash(conn: AsyncConnection, org_id: OrgId, user_id: UserId) -> str | None:
    """The stored hash of a user's password, or None when there is no such user."""
    return await fetch_one(
        conn,
        scalar_row,
        "SELECT password_hash FROM users WHERE org_id = %s AND id = %s",
        (org_id, user_id),
    )


async def set_password_hash(conn: AsyncConnection, user_id: UserId, hashed: str) -> None:
    """Store a new hash (a new password, or the old one re-hashed with today's parameters)."""
    await conn.execute("UPDATE users SET password_hash = %s WHERE id = %s", (hashed, user_id))


async def update(
    conn: AsyncConnection,
    org_id: OrgId,
    user_id: UserId,
    *,
    name: str | None,
    role: UserRole | None,
    active: bool | None,
) -> User | None:
    """Change the fields given (None: unchanged); the user as stored, or None."""
    await conn.execute(
        "UPDATE users SET name = coalesce(%(name)s::text, name),"
        " role = coalesce(%(role)s::text, role),"
        " deactivated_at = CASE WHEN %(active)s::boolean IS NULL THEN deactivated_at"
        "   WHEN %(active)s::boolean THEN NULL ELSE coalesce(deactivated_at, now()) END"
        " WHERE org_id = %(org)s AND id = %(user)s",
        {"name": name, "role": role, "active": active, "org": org_id, "user": user_id},
    )
    return await get(conn, org_id, user_id)


async def active_admins(conn: AsyncConnection, org_id: OrgId) -> list[UserId]:
    """The active administrators of ``org_id``."""
    found = await fetch_all(
        conn,
        scalar_row,
        "SELECT id FROM users WHERE org_id = %s AND role = 'admin' AND deactivated_at IS NULL",
        (org_id,),
    )
    return [UserId(user_id) for user_id in found]


async def start_session(
    conn: AsyncConnection, account: Account, token_hash: bytes, expires_at: datetime
) -> None:
    """Store a session of ``account`` (its token's hash) and note the sign-in."""
    await conn.execute(
        "INSERT INTO user_sessions (org_id, user_id, token_hash, expires_at)"
        " VALUES (%s, %s, %s, %s)",
        (account.org_id, account.id, token_hash, expires_at),
    )
    await conn.execute("UPDATE users SET last_sign_in_at = now() WHERE id = %s", (account.id,))


async def find_session(conn: AsyncConnection, token_hash: bytes) -> ApiPrincipal | None:
    """The principal of an unrevoked, unexpired session of an active user, or None."""
    return await fetch_one(
        conn,
        class_row(ApiPrincipal),
        "SELECT s.org_id, NULL::bigint AS key_id, u.role, s.expires_at, u.id AS user_id"
        " FROM user_sessions s JOIN users u ON u.id = s.user_id"
        " WHERE s.token_hash = %s AND s.revoked_at IS NULL AND s.expires_at > now()"
        " AND u.deactivated_at IS NULL",
        (token_hash,),
    )


async def end_sessions(
    conn: AsyncConnection, user_id: UserId, *, keep: bytes | None = None
) -> list[bytes]:
    """Revoke every open session of a user (but ``keep``): their token hashes."""
    return await fetch_all(
        conn,
        scalar_row,
        "UPDATE user_sessions SET revoked_at = now() WHERE user_id = %s AND revoked_at IS NULL"
        " AND token_hash IS DISTINCT FROM %s RETURNING token_hash",
        (user_id, keep),
    )


async def session_hashes(conn: AsyncConnection, user_id: UserId) -> list[bytes]:
    """The token hashes of a user's open sessions."""
    return await fetch_all(
        conn,
        scalar_row,
        "SELECT token_hash FROM user_sessions WHERE user_id = %s AND revoked_at IS NULL"
        " AND expires_at > now()",
        (user_id,),
    )


async def end_session(conn: AsyncConnection, token_hash: bytes) -> bool:
    """Revoke one session; False when it was not open."""
    cursor = await conn.execute(
        "UPDATE user_sessions SET revoked_at = now() WHERE token_hash = %s AND revoked_at IS NULL",
        (token_hash,),
    )
    return cursor.rowcount > 0
