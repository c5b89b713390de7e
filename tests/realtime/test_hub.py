"""The fan-out hub on a real Redis: across processes, per-channel refcounts, slow consumers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from app.settings import Settings
from realtime.hub import Hub, Overflowed


@pytest.fixture
async def hubs(redis: Redis, settings: Settings) -> AsyncIterator[tuple[Hub, Hub]]:
    """Two hubs on separate connections, as two API processes would have."""
    other = Redis.from_url(settings.redis_url or "")
    first, second = Hub(redis), Hub(other)
    await first.start()
    await second.start()
    yield first, second
    await first.close()
    await second.close()
    await other.aclose()


async def test_a_message_reaches_subscribers_on_every_hub(
    hubs: tuple[Hub, Hub], redis: Redis, settings: Settings
) -> None:
    """One publish reaches a subscriber on each of two hubs."""
    channel = f"{settings.redis_prefix}driver:1"
    first, second = hubs
    async with first.subscribe(channel) as a, second.subscribe(channel) as b:
        await redis.publish(channel, b"route v1")
        assert await asyncio.wait_for(a.get(), 5) == b"route v1"
        assert await asyncio.wait_for(b.get(), 5) == b"route v1"


async def test_redis_subscription_follows_the_local_listeners(
    hubs: tuple[Hub, Hub], redis: Redis, settings: Settings
) -> None:
    """The hub subscribes with the first local listener and unsubscribes after the last."""
    channel = f"{settings.redis_prefix}driver:2"
    hub = hubs[0]
    async with hub.subscribe(channel):
        async with hub.subscribe(channel):
            assert hub.listeners(channel) == 2
            assert dict(await redis.pubsub_numsub(channel))[channel.encode()] == 1
        assert hub.listeners(channel) == 1
    assert hub.listeners(channel) == 0
    assert dict(await redis.pubsub_numsub(channel))[channel.encode()] == 0


async def test_a_slow_subscriber_is_cut_off_without_slowing_others(
    redis: Redis, settings: Settings
) -> None:
    """A subscriber that stops reading is cut off on overflow; a reading one gets everything."""
    hub = Hub(redis, max_queue=3)
    await hub.start()
    channel = f"{settings.redis_prefix}driver:3"
    try:
        async with hub.subscribe(channel) as slow, hub.subscribe(channel) as fast:
            received = []
            for n in range(6):
                await redis.publish(channel, f"m{n}".encode())
                received.append(await asyncio.wait_for(fast.get(), 5))
            assert received == [f"m{n}".encode() for n in range(6)]
            assert slow.overflowed
            with pytest.raises(Overflowed):
                await asyncio.wait_for(slow.get(), 5)
    finally:
        await hub.close()
