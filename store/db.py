"""Connections: the async pool the server uses, and database housekeeping for the CLI and tests."""

from __future__ import annotations

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool


async def open_pool(database_url: str, *, max_size: int = 10) -> AsyncConnectionPool:
    """Open a connection pool and wait until its first connection works.

    The caller owns the pool and must ``await pool.close()``.
    """
    pool = AsyncConnectionPool(
        database_url,
        min_size=1,
        max_size=max_size,
        open=False,
        # Times come back in UTC whatever the server's default zone, so answers are stable.
        kwargs={"autocommit": True, "options": "-c TimeZone=UTC"},
        name="lastmile",
    )
    await pool.open(wait=True, timeout=30.0)
    return pool


async def ping(pool: AsyncConnectionPool) -> None:
    """Raise unless the database answers a trivial query."""
    async with pool.connection(timeout=5.0) as conn:
        await conn.execute("SELECT 1")


def ensure_database(admin_url: str, name: str) -> None:
    """Create database ``name`` on the server behind ``admin_url`` unless it exists."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if found is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(admin_url: str, name: str) -> None:
    """Drop database ``name``, disconnecting its sessions first (used by the test suite)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` on the same server."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))
