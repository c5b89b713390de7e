"""Daily partitions of ``positions``, created ahead of time (native partitioning only).

A TimescaleDB hypertable creates its chunks itself, so there :func:`ensure_partitions` does
nothing. Creation runs under a transaction-scoped advisory lock so that several processes
(the server's upkeep task and persist workers meeting an unexpected day) never race.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from psycopg import AsyncConnection, sql
from psycopg.rows import scalar_row

from store.rows import fetch_all
from store.timescale import INSTALLED

PARTITION_LOCK_KEY = 0x6C6D_7061


def partition_name(day: date) -> str:
    """The name of the partition holding ``day`` (UTC), e.g. ``positions_p20261124``."""
    return f"positions_p{day:%Y%m%d}"


async def ensure_partitions(conn: AsyncConnection, first: date, last: date) -> list[str]:
    """Make sure a partition exists for every UTC day from ``first`` to ``last`` inclusive.

    Returns the names of the partitions created now. ``conn`` must not be inside a
    transaction that the caller wants to keep separate: this commits its own.
    """
    if last < first:
        raise ValueError(f"expected first <= last, got {first} > {last}")
    if await (await conn.execute(INSTALLED)).fetchone() is not None:
        return []
    created: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK_KEY,))
        existing = set(
            await fetch_all(
                conn,
                scalar_row,
                "SELECT c.relname FROM pg_inherits i"
                " JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'positions'::regclass",
            )
        )
        day = first
        while day <= last:
            name = partition_name(day)
            if name not in existing:
                start = datetime.combine(day, time(), tzinfo=UTC)
                await conn.execute(
                    sql.SQL(
                        "CREATE TABLE {} PARTITION OF positions FOR VALUES FROM ({}) TO ({})"
                    ).format(
                        sql.Identifier(name),
                        sql.Literal(start),
                        sql.Literal(start + timedelta(days=1)),
                    )
                )
                created.append(name)
            day += timedelta(days=1)
    return created


async def ensure_window(
    conn: AsyncConnection, now: datetime, *, days_back: int, days_ahead: int
) -> list[str]:
    """Partitions for the window in which pings are accepted, around ``now``."""
    today = now.astimezone(UTC).date()
    return await ensure_partitions(
        conn, today - timedelta(days=days_back), today + timedelta(days=days_ahead)
    )
