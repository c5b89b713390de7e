"""Persist worker: ping streams → ``positions``, with ``COPY``, each ping stored once.

Its group reads every ping shard. A batch of entries becomes one ``COPY`` in one transaction;
the runner acknowledges the entries only after that transaction commits. A redelivered entry
(its worker died after the commit, before the acknowledgement) meets its own rows and the
store's conflict path skips them, so nothing is stored twice. A batch PostgreSQL refuses for
something in it (a value out of range) is retried an entry at a time by the runner, which moves
the entry at fault to the dead-letter stream and stores the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg
import structlog
from prometheus_client import Counter

from realtime.streams import StreamNames
from schemas.codecs import PING_BATCH_DECODER
from schemas.ping import PingBatch
from store.positions import PositionRow, write_positions
from workers.connection import OwnConnection
from workers.runner import Entry

log = structlog.get_logger(__name__)

GROUP = "persist"

ROWS = Counter("lastmile_persist_rows_total", "Pings written to positions (new rows only)")
DUPLICATES = Counter(
    "lastmile_persist_duplicates_total", "Pings skipped because positions already held them"
)


def rows_of(batches: Sequence[PingBatch]) -> list[PositionRow]:
    """The ``positions`` rows of some stream entries, in entry order."""
    rows: list[PositionRow] = []
    append = rows.append
    for batch in batches:
        driver, source, received = batch.driver_id, batch.source, batch.received_at
        for p in batch.pings:
            append(
                (
                    driver,
                    p.time,
                    p.lat,
                    p.lon,
                    p.speed_mps,
                    p.heading_deg,
                    p.accuracy_m,
                    p.altitude_m,
                    p.battery_pct,
                    p.seq,
                    source,
                    received,
                )
            )
    return rows


@dataclass
class PersistConsumer(OwnConnection):
    """Writes ping batches to PostgreSQL; one connection, reopened after a failure."""

    names: StreamNames
    database_url: str
    group: str = GROUP
    _conn: psycopg.AsyncConnection | None = field(default=None, repr=False)

    def streams(self) -> Sequence[str]:
        return self.names.all_pings()

    def decode(self, fields: dict[bytes, bytes]) -> PingBatch:
        batch: PingBatch = PING_BATCH_DECODER.decode(fields[b"b"])
        return batch

    async def handle(self, entries: Sequence[Entry[PingBatch]]) -> None:
        rows = rows_of([e.value for e in entries])
        async with self.connected() as conn:
            new = await write_positions(conn, rows)
        ROWS.inc(new)
        if new < len(rows):
            DUPLICATES.inc(len(rows) - new)
