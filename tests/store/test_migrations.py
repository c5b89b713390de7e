"""Migrations: idempotent, and positions partitioned natively where TimescaleDB is absent."""

from __future__ import annotations

import psycopg
from alembic.script import ScriptDirectory

from store.migrate import alembic_config, current, upgrade


async def test_upgrade_twice_is_harmless(database_url: str) -> None:
    """Running the migrations on an up-to-date database changes nothing."""
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    upgrade(database_url)
    assert head is not None
    assert current(database_url) == head


async def test_positions_is_partitioned_or_a_hypertable(db: psycopg.AsyncConnection) -> None:
    """positions is a hypertable when TimescaleDB is installed, else a range-partitioned table."""
    timescale = await (
        await db.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
    ).fetchone()
    kind = await (
        await db.execute("SELECT relkind FROM pg_class WHERE relname = 'positions'")
    ).fetchone()
    assert kind is not None
    assert kind[0] == ("r" if timescale else "p")
