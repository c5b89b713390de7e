"""Health, readiness and metrics."""

from __future__ import annotations

import asyncio
from typing import cast

import httpx
from redis.asyncio import Redis

from tests.conftest import LiveServer, Tenant, WorkerHandle
from tests.helpers import Trace


async def test_health_and_readiness(http: httpx.AsyncClient) -> None:
    """/healthz answers, and /readyz reports PostgreSQL and Redis as ok."""
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    ready = await http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"postgres": "ok", "redis": "ok"}


async def test_metrics_count_accepted_and_rejected_pings(
    http: httpx.AsyncClient, tenant: Tenant
) -> None:
    """/metrics counts accepted pings by source and rejected ones by reason."""

    def value(text: str, line_start: str) -> float:
        for line in text.splitlines():
            if line.startswith(line_start):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = (await http.get("/metrics")).text
    pings = Trace(seed=31).pings(4)
    pings[0]["lat"] = -100
    await http.post(
        "/v1/pings",
        json={"pings": pings},
        headers={"authorization": f"Bearer {tenant.drivers[0].token}"},
    )
    after = (await http.get("/metrics")).text
    accepted = 'lastmile_pings_accepted_total{source="http"}'
    rejected = 'lastmile_pings_rejected_total{reason="lat",source="http"}'
    assert value(after, accepted) - value(before, accepted) == 3
    assert value(after, rejected) - value(before, rejected) == 1


async def test_metrics_sample_the_lag_of_each_stream_and_group(
    http: httpx.AsyncClient, tenant: Tenant, server: LiveServer, persist_worker: WorkerHandle
) -> None:
    """Once a consumer group exists, /metrics reports its lag and pending entries per stream."""
    await http.post(
        "/v1/pings",
        json={"pings": Trace(seed=32).pings(1)},
        headers={"authorization": f"Bearer {tenant.drivers[0].token}"},
    )
    prefix = server.settings.redis_prefix
    wanted = f'lastmile_stream_lag_entries{{group="persist",stream="{prefix}pings:'
    text, lines = "", []
    for _ in range(150):  # the sampler runs every 5 s, maybe while the groups are being made
        text = (await http.get("/metrics")).text
        lines = [line for line in text.splitlines() if line.startswith(wanted)]
        if len(lines) == server.settings.ping_shards:
            break
        await asyncio.sleep(0.1)
    assert len(lines) == server.settings.ping_shards
    assert all(float(line.rsplit(" ", 1)[1]) >= 0 for line in lines)
    assert f'lastmile_stream_pending_entries{{group="persist",stream="{prefix}pings:' in text


async def test_readiness_names_a_stuck_consumer_group_and_the_api_stays_ready(
    http: httpx.AsyncClient, server: LiveServer, redis: Redis
) -> None:
    """A planning job delivered again and again without an ack makes /readyz say degraded,
    naming the planner group, while the status stays 200 (the API itself serves)."""
    assert (await http.get("/readyz")).json()["workers"] == {
        "persist": "ok",
        "planner": "ok",
        "eta": "ok",
        "notify": "ok",
        "webhooks": "ok",
        "rollups": "ok",
    }
    stream = server.settings.redis_prefix + "plans"
    await redis.xgroup_create(stream, "planner", id="0", mkstream=True)
    entry_id = cast(bytes, await redis.xadd(stream, {b"job": b"{}"}))
    await redis.xreadgroup("planner", "gone-consumer", {stream: ">"})
    # As if it had been claimed again and again by consumers that crashed on it.
    await redis.xclaim(stream, "planner", "gone-consumer", 0, [entry_id], retrycount=50)
    ready = await http.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "degraded"
    assert body["workers"]["planner"].startswith(f"stuck: entry {entry_id.decode()} of {stream}")
    assert body["workers"]["persist"] == "ok"
    wanted = 'lastmile_group_stuck{group="planner"} 1.0'
    for _ in range(150):  # the sampler runs every 5 s
        if wanted in (await http.get("/metrics")).text:
            break
        await asyncio.sleep(0.1)
    assert wanted in (await http.get("/metrics")).text
