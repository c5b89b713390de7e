"""Consumer group health: pending entries, the oldest of them, and dead letters."""

from __future__ import annotations

from typing import cast

from redis.asyncio import Redis

from app.settings import Settings
from tests.workers.consumers import Picky, quick, running, seen_at_least
from workers.health import GroupHealth, group_health, groups_health
from workers.runner import Runner


async def test_a_group_without_streams_yet_reports_nothing_pending(
    redis: Redis, settings: Settings
) -> None:
    """Streams that do not exist yet count as empty, not as an error."""
    streams = [f"{settings.redis_prefix}s0", f"{settings.redis_prefix}s1"]
    health = await group_health(
        redis, "persist", streams, dead_letter_base=f"{settings.redis_prefix}dead"
    )
    assert health == GroupHealth(group="persist", pending=0, lag=0, dead_letters=0)


async def test_entries_a_vanished_consumer_holds_show_as_pending_with_the_oldest_named(
    redis: Redis, settings: Settings
) -> None:
    """Entries read and never acknowledged add up over the group's streams; the one added
    first is reported with its stream, idle time and deliveries, and unread ones as lag."""
    first, second = f"{settings.redis_prefix}s0", f"{settings.redis_prefix}s1"
    for stream in (first, second):
        await redis.xgroup_create(stream, "g", id="0", mkstream=True)
    oldest = cast(bytes, await redis.xadd(first, {"v": "1"})).decode()
    await redis.xadd(second, {"v": "2"})
    await redis.xadd(second, {"v": "3"})
    for stream in (first, second):
        await redis.xreadgroup("g", "vanished", {stream: ">"})
    await redis.xreadgroup("g", "vanished", {first: "0"})  # read again, as after a restart
    await redis.xadd(second, {"v": "unread"})
    health = await group_health(
        redis, "g", [first, second], dead_letter_base=f"{settings.redis_prefix}dead"
    )
    assert health.pending == 3
    assert health.lag == 1
    assert health.oldest_pending_stream == first
    assert health.oldest_pending_id == oldest
    assert health.oldest_pending_deliveries == 2
    assert health.oldest_pending_idle_ms is not None
    assert health.oldest_pending_idle_ms >= 0
    assert health.dead_letters == 0


async def test_entries_the_runner_moved_aside_show_as_the_groups_dead_letters(
    redis: Redis, settings: Settings
) -> None:
    """Dead letters are counted for the group that wrote them, not for another group of the
    same stream."""
    stream = f"{settings.redis_prefix}s"
    for value in ("undecodable", "refused", "ok"):
        await redis.xadd(stream, {"v": value})
    await redis.xgroup_create(stream, "idle", id="0")
    consumer = Picky(stream, refused=frozenset({"refused"}))
    async with running(Runner(redis, consumer, quick(settings))):
        await seen_at_least(consumer, 1)
    reports = await groups_health(
        redis,
        {"picky": [stream], "idle": [stream]},
        dead_letter_base=f"{settings.redis_prefix}dead",
    )
    assert [(h.group, h.pending, h.lag, h.dead_letters) for h in reports] == [
        ("picky", 0, 0, 2),
        ("idle", 0, 3, 0),
    ]


async def test_health_reads_the_same_with_a_client_that_decodes_responses(
    redis: Redis, settings: Settings
) -> None:
    """A Redis client answering str instead of bytes gets the same report."""
    stream = f"{settings.redis_prefix}s"
    await redis.xgroup_create(stream, "g", id="0", mkstream=True)
    entry = cast(bytes, await redis.xadd(stream, {"v": "1"})).decode()
    await redis.xreadgroup("g", "c", {stream: ">"})
    text = Redis.from_url(settings.redis_url or "", decode_responses=True)
    try:
        health = await group_health(
            text, "g", [stream], dead_letter_base=f"{settings.redis_prefix}dead"
        )
    finally:
        await text.aclose()
    assert (health.pending, health.oldest_pending_id, health.oldest_pending_deliveries) == (
        1,
        entry,
        1,
    )
