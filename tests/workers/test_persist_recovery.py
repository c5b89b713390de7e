"""A persist worker killed mid-batch loses nothing and stores nothing twice after a restart."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
from redis.asyncio import Redis

from app.resources import stream_names
from app.settings import Settings
from tests.conftest import LiveServer, Tenant
from tests.helpers import Trace

BATCHES_PER_ROUND = 60
PINGS_PER_BATCH = 100


async def start_worker(settings: Settings, consumer: str) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "LASTMILE_DATABASE_URL": settings.database_url or "",
        "LASTMILE_REDIS_URL": settings.redis_url or "",
        "LASTMILE_REDIS_PREFIX": settings.redis_prefix,
        "LASTMILE_PING_SHARDS": str(settings.ping_shards),
        "LASTMILE_CLAIM_IDLE_MS": "300",
        "LASTMILE_PERSIST_BATCH": "2",
        "LASTMILE_WORKER_BLOCK_MS": "100",
        "LASTMILE_LOG_LEVEL": "warning",
    }
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", "worker", "persist", "--consumer", consumer, env=env
    )


async def stored_rows(db: psycopg.AsyncConnection, tenant: Tenant) -> tuple[int, int]:
    """Rows of the tenant's drivers in positions: (distinct driver/time pairs, all rows)."""
    row = await (
        await db.execute(
            "SELECT count(DISTINCT (driver_id, time)), count(*) FROM positions"
            " WHERE driver_id = ANY(%s)",
            ([d.id for d in tenant.drivers],),
        )
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


async def wait_stored(
    db: psycopg.AsyncConnection, tenant: Tenant, expected: int, deadline_s: float
) -> int:
    """Poll until the tenant's rows reach ``expected`` or the deadline passes; the last count."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    count = (await stored_rows(db, tenant))[1]
    while count < expected and loop.time() < end:
        await asyncio.sleep(0.05)
        count = (await stored_rows(db, tenant))[1]
    return count


async def pending(redis: Redis, settings: Settings) -> int:
    total = 0
    for stream in stream_names(settings).all_pings():
        try:
            total += (await redis.xpending(stream, "persist"))["pending"]
        except Exception:  # the group may not exist before the first worker ran
            continue
    return total


async def test_killed_worker_leaves_every_accepted_ping_stored_exactly_once(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    redis: Redis,
    db: psycopg.AsyncConnection,
) -> None:
    """SIGKILL during batches, then a new consumer: positions holds each accepted ping once."""
    settings = server.settings
    start = datetime.now(UTC) - timedelta(days=5)
    traces = [Trace(seed=100 + n, start=start) for n in range(len(tenant.drivers))]
    accepted = 0
    sent_batches = 0

    async def send_more(batches: int) -> None:
        nonlocal accepted, sent_batches
        for _ in range(batches):
            n = sent_batches % len(tenant.drivers)
            offset = (sent_batches // len(tenant.drivers)) * PINGS_PER_BATCH
            response = await http.post(
                "/v1/pings",
                json={"pings": traces[n].pings(PINGS_PER_BATCH, offset=offset)},
                headers={"authorization": f"Bearer {tenant.drivers[n].token}"},
            )
            accepted += response.json()["accepted"]
            sent_batches += 1

    kills_mid_batch = 0
    stored = 0
    for attempt in range(20):
        await send_more(BATCHES_PER_ROUND)
        worker = await start_worker(settings, f"doomed-{attempt}")
        # Kill it once it has committed something new and holds unacknowledged entries.
        for _ in range(5000):
            progressed = (await stored_rows(db, tenant))[1] > stored
            if progressed and await pending(redis, settings) > 0:
                break
            await asyncio.sleep(0.002)
        worker.send_signal(signal.SIGKILL)
        await worker.wait()
        stored = (await stored_rows(db, tenant))[1]
        if await pending(redis, settings) > 0:
            kills_mid_batch += 1
        if kills_mid_batch >= 2:
            break
    assert kills_mid_batch >= 2, "no kill landed between delivery and acknowledgement"
    assert 0 < stored < accepted
    assert accepted == sent_batches * PINGS_PER_BATCH

    survivor = await start_worker(settings, "survivor")
    try:
        assert await wait_stored(db, tenant, accepted, deadline_s=60) == accepted
        for _ in range(100):
            if await pending(redis, settings) == 0:
                break
            await asyncio.sleep(0.1)
        assert await pending(redis, settings) == 0
    finally:
        survivor.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(survivor.wait(), timeout=30) == 0
    assert await stored_rows(db, tenant) == (accepted, accepted)
