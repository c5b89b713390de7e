"""Leases in Redis, and ETA processes sharing the ping shards with them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from redis.asyncio import Redis

from app.settings import Settings
from tests.helpers import relayed_redis
from workers.lease import Leases, ShardKeeper, ShardWork

TTL_S = 1.0
SHARDS = 4


async def test_a_lease_has_one_holder_until_it_is_given_back(
    redis: Redis, settings: Settings
) -> None:
    """A second holder can neither take nor renew nor give back another's lease."""
    key = f"{settings.redis_prefix}lease:job"
    first, second = Leases(redis, "a", TTL_S), Leases(redis, "b", TTL_S)
    assert await first.take(key)
    assert not await second.take(key)
    assert not await second.renew(key)
    await second.give_back(key)
    assert await redis.get(key) == b"a"
    assert await first.renew(key)
    await first.give_back(key)
    assert await second.take(key)


class Shards:
    """What the keepers of one test work on: shard → the holder working on it now."""

    def __init__(self) -> None:
        self.working: dict[int, str] = {}
        self.overlaps: list[int] = []

    def work_of(self, holder: str) -> ShardWork:
        async def work(shards: tuple[int, ...], halt: asyncio.Event) -> None:
            for shard in shards:
                if shard in self.working:
                    self.overlaps.append(shard)
                self.working[shard] = holder
            await halt.wait()
            for shard in shards:
                del self.working[shard]

        return work


def keeper(redis: Redis, settings: Settings, shards: Shards, holder: str) -> ShardKeeper:
    prefix = settings.redis_prefix
    return ShardKeeper(
        leases=Leases(redis, holder, TTL_S),
        lease_key=lambda shard: f"{prefix}lease:eta:{shard}",
        members_key=f"{prefix}members:eta",
        shards=SHARDS,
        work=shards.work_of(holder),
    )


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(300):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the keepers never got there")


async def test_keepers_share_the_shards_and_take_over_from_one_that_stops(
    redis: Redis, settings: Settings
) -> None:
    """Alone, a keeper works on every shard; a second one gets half of them given back to it;
    when the first stops, the second works on all; never two on one shard."""
    shards = Shards()
    first, second = keeper(redis, settings, shards, "a"), keeper(redis, settings, shards, "b")
    stop_first, stop_second = asyncio.Event(), asyncio.Event()
    running = [asyncio.create_task(first.run(stop_first))]
    try:
        await until(lambda: first.held == [0, 1, 2, 3])
        running.append(asyncio.create_task(second.run(stop_second)))
        await until(lambda: len(first.held) == 2 and len(second.held) == 2)
        assert set(first.held).isdisjoint(second.held)
        stop_first.set()
        await asyncio.wait_for(running[0], 10)
        await until(lambda: second.held == [0, 1, 2, 3])
        assert shards.working == dict.fromkeys(range(SHARDS), "b")
    finally:
        stop_first.set()
        stop_second.set()
        await asyncio.wait_for(asyncio.gather(*running), 10)
    assert shards.overlaps == []
    assert shards.working == {}
    assert await redis.keys(f"{settings.redis_prefix}lease:*") == []


async def test_a_keeper_stops_work_on_a_shard_whose_lease_it_lost(
    redis: Redis, settings: Settings
) -> None:
    """Someone else holds shard 0's lease now (ours had expired): work on it stops, and the
    lease stays theirs."""
    shards = Shards()
    only = keeper(redis, settings, shards, "a")
    stop = asyncio.Event()
    task = asyncio.create_task(only.run(stop))
    try:
        await until(lambda: only.held == [0, 1, 2, 3])
        await redis.set(f"{settings.redis_prefix}lease:eta:0", "someone else")
        await until(lambda: only.held == [1, 2, 3])
        assert 0 not in shards.working
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert await redis.get(f"{settings.redis_prefix}lease:eta:0") == b"someone else"


async def test_a_keeper_keeps_its_shards_through_a_dropped_connection(
    redis: Redis, settings: Settings
) -> None:
    """Its connections to Redis are cut: it reconnects and renews in time, so it never stops
    working on its shards, and nobody else could take them."""
    async with relayed_redis(settings.redis_url or "") as (relayed, relay):
        shards = Shards()
        prefix = settings.redis_prefix
        only = ShardKeeper(
            leases=Leases(relayed, "a", 3.0),  # renewed every second: a cut costs one renewal
            lease_key=lambda shard: f"{prefix}lease:eta:{shard}",
            members_key=f"{prefix}members:eta",
            shards=SHARDS,
            work=shards.work_of("a"),
        )
        stop = asyncio.Event()
        task = asyncio.create_task(only.run(stop))
        try:
            await until(lambda: only.held == [0, 1, 2, 3])
            started = dict(shards.working)
            for _ in range(3):
                relay.cut()
                await asyncio.sleep(1.0)
            assert only.held == [0, 1, 2, 3]
            assert shards.working == started
            assert not task.done()
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
    assert shards.overlaps == []
