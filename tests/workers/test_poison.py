"""Each worker moves a poison entry of its stream aside, says why, and goes on with the next
entry, of another organisation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import psycopg
from redis.asyncio import Redis

from app.resources import stream_names
from app.settings import Settings
from realtime.streams import shard_of
from schemas.codecs import PING_BATCH_ENCODER
from schemas.ids import DriverId, OrgId
from schemas.ping import Ping, PingBatch
from store import plans as plans_store
from tests.conftest import LiveServer, Tenant, WorkerHandle, make_tenant
from tests.days import Day, device, key, plan_and_dispatch, planned
from tests.helpers import eventually, wait_for_positions
from tests.workers.consumers import dead_letters
from tests.workers.test_eta_worker import fixes, wait_for_kind
from workers import planner as planner_worker

NO_SUCH_ORG = OrgId(999_999_999)


def batch_of(org_id: OrgId, driver_id: DriverId, *pings: Ping) -> bytes:
    """A ping-stream entry's payload, encoded without the checks a decoder applies."""
    return PING_BATCH_ENCODER.encode(
        PingBatch(
            org_id=org_id,
            driver_id=driver_id,
            source="http",
            received_at=datetime.now(UTC),
            pings=list(pings),
        )
    )


async def letters_of(
    redis: Redis, settings: Settings, group: str, count: int
) -> list[dict[bytes, bytes]]:
    """Wait until ``group`` dead-lettered ``count`` entries; their fields, oldest first."""

    async def enough() -> list[dict[bytes, bytes]]:
        found = await dead_letters(redis, settings, group)
        return found if len(found) >= count else []

    return await eventually(enough, f"{count} dead letters of {group}")


async def test_persist_moves_poison_batches_aside_and_stores_the_next(
    settings: Settings,
    redis: Redis,
    db: psycopg.AsyncConnection,
    tenant: Tenant,
    persist_worker: WorkerHandle,
) -> None:
    """An undecodable batch and one that cannot be stored (a fix dated 9999-12-31, whose daily
    partition would end past the last date there is) go to the persist group's dead letters
    with their reasons, and the next batch on the shard, the tenant's, is stored."""
    names = stream_names(settings)
    driver = tenant.drivers[0]
    stream = names.pings(shard_of(driver.id, names.shards))
    doomsday = Ping(time=datetime(9999, 12, 31, 12, tzinfo=UTC), lat=52.52, lon=13.40)
    await redis.xadd(stream, {"b": b"\xc1 is no MessagePack"})
    await redis.xadd(stream, {"b": batch_of(NO_SUCH_ORG, DriverId(1), doomsday)})
    undecodable, refused = await letters_of(redis, settings, "persist", 2)
    # Sent only now: in one transaction with the poison, today's fix would have the store
    # create a partition for every day until 9999 (a limit of the store, not of the runner).
    ping = Ping(time=datetime.now(UTC) - timedelta(seconds=30), lat=52.52, lon=13.40)
    await redis.xadd(stream, {"b": batch_of(tenant.org_id, driver.id, ping)})
    assert await wait_for_positions(db, driver.id, 1) == 1
    assert undecodable[b"_cause"] == b"undecodable"
    assert b"MessagePack" in undecodable[b"_reason"]
    assert refused[b"_cause"] == b"exhausted"
    assert refused[b"_attempts"] == b"5"
    assert refused[b"_reason"].endswith(b"OverflowError: date value out of range")
    assert {undecodable[b"_stream"], refused[b"_stream"]} == {stream.encode()}
    assert (await redis.xpending(stream, "persist"))["pending"] == 0


async def test_a_plan_the_api_would_refuse_fails_with_its_reason_and_the_next_plan_is_computed(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    delivery_day: Day,
    planner: None,
    db: psycopg.AsyncConnection,
    redis: Redis,
    settings: Settings,
) -> None:
    """Another organisation's plan asking for negative unassigned penalties is moved aside at
    once and marked failed naming the field, an undecodable job is moved aside too, and the
    tenant's plan queued behind them is computed."""
    names = stream_names(settings)
    other = await make_tenant(db)
    # Stored straight into the database, as an older version or a looser check could have:
    # the worker must not rely on the API having refused it.
    options = {"time_limit_s": 1.0, "unassigned_penalty": [-1e308, -1.0, 0.0]}
    bad = await plans_store.create_plan(db, other.org_id, delivery_day.day, options, None)
    await redis.xadd(names.plans, {"j": b"\xc1"})
    await planner_worker.enqueue(redis, names, other.org_id, bad.id)
    await plans_store.mark_enqueued(db, bad.id)
    response = await http.post(
        "/v1/plans",
        json={"day": delivery_day.day.isoformat(), "time_limit_s": 1},
        headers=key(tenant),
    )
    assert response.status_code == 202, response.text
    assert (await planned(http, tenant, response.json()["id"]))["status"] == "done"
    failed = await plans_store.get_plan(db, other.org_id, bad.id)
    assert failed is not None
    assert failed.status == "failed"
    assert failed.error is not None
    # PostgreSQL keeps -1e308 as a 309-digit integer; the reason quotes it shortened.
    assert failed.error.startswith(
        "invalid options: unassigned_penalty[0]: expected a number >= 0.0, got -1000"
    )
    undecodable, rejected = await letters_of(redis, settings, "planner", 2)
    assert (undecodable[b"_cause"], rejected[b"_cause"]) == (b"undecodable", b"rejected")
    assert rejected[b"_reason"] == failed.error.encode()
    assert (await redis.xpending(names.plans, "planner"))["pending"] == 0


async def test_eta_moves_an_undecodable_batch_aside_and_tracks_the_next(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    delivery_day: Day,
    planner: None,
    eta_worker: None,
    redis: Redis,
    settings: Settings,
) -> None:
    """Another organisation's batch with a latitude beyond 90° goes to the ETA group's dead
    letters naming the field; the pings of the tenant's driver behind it on the same shard
    still fire en route."""
    await plan_and_dispatch(http, tenant, delivery_day)
    driver = tenant.drivers[0]
    route = (await http.get("/v1/driver/route", headers=device(driver.token))).json()
    first = route["stops"][0]
    names = stream_names(settings)
    stream = names.pings(shard_of(driver.id, names.shards))
    north = Ping(time=datetime.now(UTC) - timedelta(minutes=4), lat=91.0, lon=13.40)
    await redis.xadd(stream, {"b": batch_of(NO_SUCH_ORG, DriverId(1), north)})
    track = fixes(first["lat"], first["lon"], datetime.now(UTC) - timedelta(minutes=3))
    sent = await http.post("/v1/pings", json={"pings": track[:1]}, headers=device(driver.token))
    assert sent.json()["accepted"] == 1
    await wait_for_kind(redis, names, first["id"], "en_route")
    [letter] = await letters_of(redis, settings, "eta", 1)
    assert letter[b"_cause"] == b"undecodable"
    assert b"<= 90.0" in letter[b"_reason"]
    assert b"].lat`" in letter[b"_reason"]
    assert letter[b"_stream"] == stream.encode()
