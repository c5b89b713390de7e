"""The ``positions`` time series: bulk writes that store each ping once, and track reads.

A ping is identified by ``(driver_id, time)``. :func:`write_positions` copies a batch straight
into ``positions``; only when that meets a row already there (a re-sent batch, or a stream
entry redelivered after a crash) does it fall back to a staging table and
``INSERT ... ON CONFLICT DO NOTHING``. The common case therefore runs at raw ``COPY`` speed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from psycopg import AsyncConnection, errors
from psycopg.rows import class_row, scalar_row

from schemas.ids import DriverId, OrgId
from schemas.ping import Ping
from store.partitions import ensure_partitions
from store.rows import fetch_all, fetch_one

COLUMNS = (
    "driver_id",
    "time",
    "lat",
    "lon",
    "speed_mps",
    "heading_deg",
    "accuracy_m",
    "altitude_m",
    "battery_pct",
    "seq",
    "source",
    "received_at",
)
TYPES = (
    "int8",
    "timestamptz",
    "float8",
    "float8",
    "float4",
    "float4",
    "float4",
    "float4",
    "float4",
    "int8",
    "text",
    "timestamptz",
)
PositionRow = tuple[Any, ...]
"""One row in :data:`COLUMNS` order."""
_TIME: Final = COLUMNS.index("time")

_COLUMN_LIST = ", ".join(COLUMNS)
_COPY_POSITIONS = f"COPY positions ({_COLUMN_LIST}) FROM STDIN (FORMAT binary)"
_COPY_STAGE = f"COPY positions_stage ({_COLUMN_LIST}) FROM STDIN (FORMAT binary)"
_CREATE_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS positions_stage"
    " (LIKE positions INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
)
_MERGE_STAGE = (
    f"INSERT INTO positions ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} FROM positions_stage"
    " ON CONFLICT (driver_id, time) DO NOTHING"
)


async def write_positions(conn: AsyncConnection, rows: Sequence[PositionRow]) -> int:
    """Store ``rows`` in one transaction, each ``(driver_id, time)`` at most once.

    Returns how many rows are new. Creates a missing daily partition and retries. When this
    returns, the rows are committed; on an exception nothing of the batch is stored.
    """
    if not rows:
        return 0
    for _attempt in range(2):
        try:
            async with conn.transaction():
                return await _write(conn, rows)
        except errors.CheckViolation as exc:
            if "no partition" not in str(exc):
                raise
            first = min(r[_TIME] for r in rows).astimezone(UTC).date()
            last = max(r[_TIME] for r in rows).astimezone(UTC).date()
            await ensure_partitions(conn, first, last)
    raise RuntimeError("positions partition still missing after creating it")


async def _write(conn: AsyncConnection, rows: Sequence[PositionRow]) -> int:
    try:
        async with conn.transaction():  # a savepoint: a conflict undoes only the fast path
            await _copy(conn, _COPY_POSITIONS, rows)
        return len(rows)
    except errors.UniqueViolation:
        pass
    await conn.execute(_CREATE_STAGE)
    await _copy(conn, _COPY_STAGE, rows)
    cursor = await conn.execute(_MERGE_STAGE)
    return cursor.rowcount


async def _copy(conn: AsyncConnection, statement: str, rows: Sequence[PositionRow]) -> None:
    async with conn.cursor().copy(statement) as copy:
        copy.set_types(list(TYPES))
        for row in rows:
            await copy.write_row(row)


async def track(
    conn: AsyncConnection,
    org_id: OrgId,
    driver_id: DriverId,
    start: datetime,
    end: datetime,
    *,
    limit: int,
) -> list[Ping] | None:
    """The driver's pings with ``start <= time < end``, oldest first, at most ``limit``.

    Returns None when the driver does not exist in ``org_id``, so another organisation's
    driver looks exactly like a missing one.
    """
    owner = await (
        await conn.execute(
            "SELECT 1 FROM drivers WHERE id = %s AND org_id = %s", (driver_id, org_id)
        )
    ).fetchone()
    if owner is None:
        return None
    return await fetch_all(
        conn,
        class_row(Ping),
        "SELECT time, lat, lon, speed_mps, heading_deg, accuracy_m, altitude_m, battery_pct, seq"
        " FROM positions WHERE driver_id = %s AND time >= %s AND time < %s"
        " ORDER BY time LIMIT %s",
        (driver_id, start, end, limit),
    )


async def count_positions(conn: AsyncConnection, driver_id: DriverId | None = None) -> int:
    """How many rows ``positions`` holds (for one driver, or in all)."""
    if driver_id is None:
        count = await fetch_one(conn, scalar_row, "SELECT count(*) FROM positions")
    else:
        count = await fetch_one(
            conn, scalar_row, "SELECT count(*) FROM positions WHERE driver_id = %s", (driver_id,)
        )
    return int(count) if count is not None else 0
