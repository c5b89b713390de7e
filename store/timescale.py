"""Everything TimescaleDB-specific, in one place.

``positions`` is a hypertable when the ``timescaledb`` extension can be created, and a table
with native daily range partitions otherwise. Both have the same columns and primary key, so
every query works unchanged on either; only creation and partition upkeep differ.
"""

from __future__ import annotations

from typing import Any

POSITIONS_COLUMNS = """
    driver_id    bigint           NOT NULL,
    time         timestamptz      NOT NULL,
    lat          double precision NOT NULL,
    lon          double precision NOT NULL,
    speed_mps    real,
    heading_deg  real,
    accuracy_m   real,
    altitude_m   real,
    battery_pct  real,
    seq          bigint,
    source       text             NOT NULL,
    received_at  timestamptz      NOT NULL,
    PRIMARY KEY (driver_id, time)
"""

AVAILABLE = "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
INSTALLED = "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'"

HYPERTABLE_DDL = (
    "CREATE EXTENSION IF NOT EXISTS timescaledb",
    f"CREATE TABLE positions ({POSITIONS_COLUMNS})",
    "SELECT create_hypertable('positions', 'time', chunk_time_interval => INTERVAL '1 day')",
    "ALTER TABLE positions"
    " SET (timescaledb.compress, timescaledb.compress_segmentby = 'driver_id')",
    "SELECT add_compression_policy('positions', INTERVAL '7 days')",
)

PARTITIONED_DDL = (f"CREATE TABLE positions ({POSITIONS_COLUMNS}) PARTITION BY RANGE (time)",)


def positions_ddl(connection: Any) -> tuple[str, ...]:
    """The statements that create ``positions`` on this server (a SQLAlchemy connection)."""
    from sqlalchemy import text

    if connection.execute(text(AVAILABLE)).first() is not None:
        return HYPERTABLE_DDL
    return PARTITIONED_DDL
