"""Persist benchmark: ping streams → ``positions`` through the real persist worker.

    python -m bench.persist [--entries 5000] [--pings-per-entry 100] [--batch 200] [--out FILE]

Fills the ping streams with encoded batches, then, in the same run and on the same rows:
(1) the raw ceiling, one binary ``COPY`` of all rows straight into ``positions``;
(2) the persist consumer on the shared runner (XREADGROUP, decode, COPY, commit, XACK) until
every entry is acknowledged. ``positions`` is emptied between the two.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from redis.asyncio import Redis

from bench.harness import BenchEnv, BenchTenant, Report, bench_env, make_tenant
from realtime.streams import StreamNames, shard_of
from schemas.codecs import PING_BATCH_ENCODER
from schemas.ids import DriverId, OrgId
from schemas.ping import Ping, PingBatch
from store.partitions import ensure_window
from store.positions import COLUMNS, TYPES, write_positions
from workers.persist import PersistConsumer, rows_of
from workers.runner import Entry, Runner, RunnerConfig


def batches(
    org: OrgId, drivers: Sequence[DriverId], entries: int, per_entry: int
) -> list[PingBatch]:
    """Distinct pings: each driver's entries follow each other in time, one second apart."""
    start = datetime.now(UTC) - timedelta(days=2)
    made: list[PingBatch] = []
    for n in range(entries):
        driver = drivers[n % len(drivers)]
        first = (n // len(drivers)) * per_entry
        pings = [
            Ping(
                time=start + timedelta(seconds=first + i),
                lat=52.5 + i * 1e-5,
                lon=13.4,
                speed_mps=8.0,
                heading_deg=90.0,
                accuracy_m=5.0,
                battery_pct=80.0,
                seq=first + i,
            )
            for i in range(per_entry)
        ]
        made.append(
            PingBatch(org_id=org, driver_id=driver, source="http", received_at=start, pings=pings)
        )
    return made


async def fill(redis: Redis, names: StreamNames, made: Sequence[PingBatch]) -> None:
    for start in range(0, len(made), 500):
        async with redis.pipeline(transaction=False) as pipe:
            for batch in made[start : start + 500]:
                pipe.xadd(
                    names.pings(shard_of(batch.driver_id, names.shards)),
                    {"b": PING_BATCH_ENCODER.encode(batch)},
                )
            await pipe.execute()


async def raw_copy(database_url: str, made: Sequence[PingBatch]) -> float:
    rows = rows_of(made)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("TRUNCATE positions")
        started = time.perf_counter()
        async with conn.transaction():
            statement = f"COPY positions ({', '.join(COLUMNS)}) FROM STDIN (FORMAT binary)"
            async with conn.cursor().copy(statement) as copy:
                copy.set_types(list(TYPES))
                for row in rows:
                    await copy.write_row(row)
        elapsed = time.perf_counter() - started
        await conn.execute("TRUNCATE positions")
    return len(rows) / elapsed


async def run_persist(
    redis: Redis, names: StreamNames, database_url: str, expected: int, batch_entries: int
) -> tuple[float, int]:
    consumer = PersistConsumer(names=names, database_url=database_url)
    done = asyncio.Event()
    written = 0
    handle = consumer.handle

    async def counting(entries: Sequence[Entry[PingBatch]]) -> None:
        nonlocal written
        await handle(entries)
        written += sum(len(e.value.pings) for e in entries)
        if written >= expected:
            done.set()

    consumer.handle = counting  # type: ignore[method-assign]
    config = RunnerConfig(consumer_name="bench", batch_entries=batch_entries, block_ms=100)
    runner = Runner(redis, consumer, config)
    stop = asyncio.Event()
    started = time.perf_counter()
    task = asyncio.create_task(runner.run(stop))
    await done.wait()
    elapsed = time.perf_counter() - started
    stop.set()
    await task
    await consumer.close()
    return expected / elapsed, written


async def scenario(
    args: argparse.Namespace, report: Report, env: BenchEnv, tenant: BenchTenant
) -> None:
    if True:
        drivers = [d for d, _ in tenant.drivers]
        async with await psycopg.AsyncConnection.connect(env.database_url, autocommit=True) as c:
            await ensure_window(c, datetime.now(UTC), days_back=8, days_ahead=2)
        redis = Redis.from_url(env.redis_url)
        for per_entry, entries in ((args.pings_per_entry, args.entries), (1, args.single_entries)):
            names = StreamNames(prefix=f"{env.redis_prefix}{per_entry}-", shards=4)
            made = batches(tenant.org_id, drivers, entries, per_entry)
            rows = entries * per_entry
            ceiling = await raw_copy(env.database_url, made)
            await fill(redis, names, made)
            rate, _written = await run_persist(redis, names, env.database_url, rows, args.batch)
            async with await psycopg.AsyncConnection.connect(
                env.database_url, autocommit=True
            ) as c:
                stored = (
                    await (await c.execute("SELECT count(*) FROM positions")).fetchone() or [0]
                )[0]
                # A second pass over the same rows: every one a duplicate (redelivery path).
                again = time.perf_counter()
                await write_positions(c, rows_of(made[: max(1, len(made) // 10)]))
                dup_rate = sum(len(b.pings) for b in made[: max(1, len(made) // 10)]) / (
                    time.perf_counter() - again
                )
                await c.execute("TRUNCATE positions")
            report.add(
                phase=f"persist, {per_entry}-ping entries",
                rows=rows,
                batch_entries_per_shard=args.batch,
                persist_rows_per_s=rate,
                raw_copy_rows_per_s=ceiling,
                share_of_raw=rate / ceiling,
                stored=stored,
                redelivered_rows_per_s=dup_rate,
            )
            for stream in names.all_pings():
                await redis.delete(stream)
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=5000)
    parser.add_argument("--pings-per-entry", type=int, default=100)
    parser.add_argument("--single-entries", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=200, help="entries per shard per read")
    parser.add_argument("--drivers", type=int, default=200)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report = Report("persist")
    with bench_env() as env:
        tenant = make_tenant(env.database_url, args.drivers)
        asyncio.run(scenario(args, report, env, tenant))
    report.write(args.out)


if __name__ == "__main__":
    main()
