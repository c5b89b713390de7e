"""The Redis lease that keeps one ETA worker at work and the others standing by."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from app.settings import Settings
from workers.lease import holding

TTL_S = 2.0
"""Long enough that a busy machine still renews in time (every TTL_S / 3)."""


async def test_a_second_holder_waits_until_the_first_leaves(
    redis: Redis, settings: Settings
) -> None:
    """While one holder keeps renewing, another waits; the first leaving hands it over at once."""
    key = f"{settings.redis_prefix}lease:job"
    stop = asyncio.Event()
    second_holds = asyncio.Event()

    async def second() -> None:
        async with holding(redis, key, "b", TTL_S, stop) as lease:
            assert lease.held
            second_holds.set()
            await stop.wait()

    async with holding(redis, key, "a", TTL_S, stop) as first:
        assert first.held
        waiter = asyncio.create_task(second())
        await asyncio.sleep(1.5 * TTL_S)  # renewed meanwhile: the lease outlives its TTL
        assert not second_holds.is_set()
        assert await redis.get(key) == b"a"
    await asyncio.wait_for(second_holds.wait(), 10)  # released on leaving: taken at once
    assert await redis.get(key) == b"b"
    stop.set()
    await asyncio.wait_for(waiter, 10)
    assert await redis.get(key) is None


async def test_a_holder_learns_that_its_lease_was_lost(redis: Redis, settings: Settings) -> None:
    """Another process holds the key now (the lease had expired): ``lost`` is set, and leaving
    the block does not delete the other holder's lease."""
    key = f"{settings.redis_prefix}lease:job"
    async with holding(redis, key, "a", TTL_S, asyncio.Event()) as lease:
        await redis.set(key, "b")
        await asyncio.wait_for(lease.lost.wait(), 10)
    assert await redis.get(key) == b"b"


async def test_a_stop_while_standing_by_returns_without_the_lease(
    redis: Redis, settings: Settings
) -> None:
    """A stop while the lease is someone else's ends the wait, and their lease stays."""
    key = f"{settings.redis_prefix}lease:job"
    await redis.set(key, "someone else")
    stop = asyncio.Event()
    stop.set()
    async with holding(redis, key, "a", TTL_S, stop) as lease:
        assert not lease.held
    assert await redis.get(key) == b"someone else"
