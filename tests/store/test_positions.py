"""Writing positions: each ping once, missing partitions created, tracks scoped by org."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import psycopg

from schemas.ids import DriverId
from store.partitions import ensure_partitions, partition_name
from store.positions import count_positions, track, write_positions
from tests.conftest import make_tenant


def row(driver_id: DriverId, when: datetime, lat: float = 52.5) -> tuple[object, ...]:
    return (driver_id, when, lat, 13.4, 1.0, 2.0, 3.0, 4.0, 50.0, 1, "http", when)


async def test_rewriting_a_batch_stores_nothing_twice(db: psycopg.AsyncConnection) -> None:
    """A batch that overlaps stored rows (and itself) adds only the new ones."""
    tenant = await make_tenant(db, drivers=1)
    driver = tenant.drivers[0].id
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    first = [row(driver, base + timedelta(seconds=i)) for i in range(10)]
    assert await write_positions(db, first) == 10
    overlap = [*first[5:], *[row(driver, base + timedelta(seconds=10 + i)) for i in range(3)]]
    overlap.append(overlap[-1])
    assert await write_positions(db, overlap) == 3
    assert await count_positions(db, driver) == 13


async def test_a_missing_day_gets_its_partition(db: psycopg.AsyncConnection) -> None:
    """A ping from a day without a partition creates that partition and is stored."""
    tenant = await make_tenant(db, drivers=1)
    driver = tenant.drivers[0].id
    when = datetime(2025, 3, 9, 12, 0, tzinfo=UTC)
    assert await write_positions(db, [row(driver, when)]) == 1
    found = await (
        await db.execute(
            "SELECT 1 FROM pg_class WHERE relname = %s", (partition_name(when.date()),)
        )
    ).fetchone()
    assert found is not None


async def test_concurrent_partition_creation_does_not_collide(database_url: str) -> None:
    """Two processes creating the same partitions at once both succeed."""
    first = datetime(2024, 6, 1, tzinfo=UTC).date()
    last = first + timedelta(days=4)

    async def create() -> list[str]:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            return await ensure_partitions(conn, first, last)

    a, b = await asyncio.gather(create(), create())
    assert sorted(a + b) == sorted(partition_name(first + timedelta(days=d)) for d in range(5))


async def test_track_is_scoped_to_the_organisation(db: psycopg.AsyncConnection) -> None:
    """Another organisation asking for a driver's track gets None, as for a missing driver."""
    owner = await make_tenant(db, drivers=1)
    stranger = await make_tenant(db, drivers=0)
    driver = owner.drivers[0].id
    when = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    await write_positions(db, [row(driver, when, lat=10.0)])
    window = (when - timedelta(minutes=1), when + timedelta(minutes=1))
    mine = await track(db, owner.org_id, driver, *window, limit=10)
    assert mine is not None
    assert [p.lat for p in mine] == [10.0]
    assert await track(db, stranger.org_id, driver, *window, limit=10) is None
