"""The shared runner: dead letters, claiming, and trimming that never loses an entry."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from redis.asyncio import Redis

from app.settings import Settings
from realtime.streams import trim_consumed
from tests.helpers import relayed_redis
from workers.runner import Entry, Runner, RunnerConfig


@dataclass
class Recorder:
    """A consumer that records what it handled, failing the first ``fail_times`` batches."""

    stream: str
    group: str = "recorder"
    fail_times: int = 0
    seen: list[str] = field(default_factory=list)

    def streams(self) -> Sequence[str]:
        return [self.stream]

    def decode(self, fields: dict[bytes, bytes]) -> str:
        value = fields[b"v"].decode()
        if value == "poison":
            raise ValueError("cannot decode poison")
        return value

    async def handle(self, entries: Sequence[Entry[str]]) -> None:
        if self.fail_times > 0:
            self.fail_times -= 1
            raise ConnectionError("database down")
        self.seen.extend(e.value for e in entries)


async def run_until(runner: Runner[str], done: asyncio.Event, *, deadline_s: float = 20) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        await asyncio.wait_for(done.wait(), timeout=deadline_s)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


async def test_undecodable_entries_are_dead_lettered_and_the_rest_handled(
    redis: Redis, settings: Settings
) -> None:
    """A poison entry goes to the dead-letter stream, is acknowledged, and does not block others."""
    stream = f"{settings.redis_prefix}s"
    for value in ("a", "poison", "b"):
        await redis.xadd(stream, {"v": value})
    consumer = Recorder(stream)
    done = asyncio.Event()
    original = consumer.handle

    async def handle(entries: Sequence[Entry[str]]) -> None:
        await original(entries)
        if len(consumer.seen) >= 2:
            done.set()

    consumer.handle = handle  # type: ignore[method-assign]
    config = RunnerConfig(
        consumer_name="c1", block_ms=50, dead_letter_stream=f"{settings.redis_prefix}dead"
    )
    await run_until(Runner(redis, consumer, config), done)
    assert consumer.seen == ["a", "b"]
    dead = await redis.xrange(f"{settings.redis_prefix}dead:recorder")
    assert [d[1][b"v"] for d in dead] == [b"poison"]
    assert (await redis.xpending(stream, "recorder"))["pending"] == 0


async def test_a_failing_handler_is_retried_without_acknowledging(
    redis: Redis, settings: Settings
) -> None:
    """Entries stay pending while the handler fails and are handled once it recovers."""
    stream = f"{settings.redis_prefix}s"
    await redis.xadd(stream, {"v": "x"})
    consumer = Recorder(stream, fail_times=2)
    done = asyncio.Event()
    original = consumer.handle

    async def handle(entries: Sequence[Entry[str]]) -> None:
        await original(entries)
        done.set()

    consumer.handle = handle  # type: ignore[method-assign]
    await run_until(Runner(redis, consumer, RunnerConfig(consumer_name="c1", block_ms=50)), done)
    assert consumer.seen == ["x"]
    assert (await redis.xpending(stream, "recorder"))["pending"] == 0


async def test_entries_of_an_idle_consumer_are_claimed(redis: Redis, settings: Settings) -> None:
    """An entry left pending by a vanished consumer is taken over after the idle time."""
    stream = f"{settings.redis_prefix}s"
    await redis.xgroup_create(stream, "recorder", id="0", mkstream=True)
    await redis.xadd(stream, {"v": "orphan"})
    await redis.xreadgroup("recorder", "vanished", {stream: ">"}, count=10)
    consumer = Recorder(stream)
    done = asyncio.Event()
    original = consumer.handle

    async def handle(entries: Sequence[Entry[str]]) -> None:
        await original(entries)
        done.set()

    consumer.handle = handle  # type: ignore[method-assign]
    config = RunnerConfig(consumer_name="heir", block_ms=50, claim_idle_ms=100, claim_every_s=0.1)
    await run_until(Runner(redis, consumer, config), done)
    assert consumer.seen == ["orphan"]


async def redis_ms(redis: Redis) -> int:
    """Redis's clock, in milliseconds (the clock stream entry ids carry)."""
    seconds, microseconds = await redis.time()
    return int(seconds) * 1000 + int(microseconds) // 1000


async def test_trimming_keeps_unread_and_pending_entries(redis: Redis, settings: Settings) -> None:
    """Trimming removes only entries every group acknowledged, never unread or pending ones."""
    stream = f"{settings.redis_prefix}s"
    await redis.xgroup_create(stream, "fast", id="0", mkstream=True)
    await redis.xgroup_create(stream, "slow", id="0", mkstream=True)
    ids = [await redis.xadd(stream, {"v": str(i)}) for i in range(6)]
    fast = await redis.xreadgroup("fast", "f", {stream: ">"}, count=10)
    await redis.xack(stream, "fast", *[e[0] for e in fast[0][1]])
    await redis.xreadgroup("slow", "s", {stream: ">"}, count=4)
    await redis.xack(stream, "slow", ids[0], ids[1])
    # "Older than 0 s" excludes entries of Redis's current millisecond: let its clock move on.
    last_ms = int(ids[-1].split(b"-")[0])
    for _ in range(1000):
        if await redis_ms(redis) > last_ms:
            break
        await asyncio.sleep(0.001)
    removed = await trim_consumed(redis, stream, retention_s=0)
    remaining = [e[0] for e in await redis.xrange(stream)]
    groups = await redis.xinfo_groups(stream)
    assert removed == 2, (removed, ids, remaining, groups)
    assert remaining == ids[2:]


async def test_a_slow_handler_keeps_its_entries_from_being_claimed(
    redis: Redis, settings: Settings
) -> None:
    """While a handler runs longer than the claim idle time, no other consumer takes its entry."""
    stream = f"{settings.redis_prefix}s"
    await redis.xadd(stream, {"v": "long job"})
    slow, rival = Recorder(stream), Recorder(stream)
    release = asyncio.Event()
    original = slow.handle

    async def handle(entries: Sequence[Entry[str]]) -> None:
        await release.wait()
        await original(entries)

    slow.handle = handle  # type: ignore[method-assign]
    stop = asyncio.Event()
    slow_task = asyncio.create_task(
        Runner(redis, slow, RunnerConfig(consumer_name="slow", block_ms=50, claim_idle_ms=150)).run(
            stop
        )
    )
    await asyncio.sleep(0.3)  # the slow consumer now holds the entry
    rival_task = asyncio.create_task(
        Runner(
            redis,
            rival,
            RunnerConfig(consumer_name="rival", block_ms=50, claim_idle_ms=150, claim_every_s=0.05),
        ).run(stop)
    )
    await asyncio.sleep(1.0)  # several claim rounds of the rival, each past the idle time
    release.set()
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.gather(slow_task, rival_task)
    assert slow.seen == ["long job"]
    assert rival.seen == []


async def test_a_failing_trim_does_not_stop_the_worker(redis: Redis, settings: Settings) -> None:
    """Trimming is housekeeping: when it raises, entries are still handled and acknowledged."""
    stream = f"{settings.redis_prefix}s"
    await redis.xadd(stream, {"v": "a"})
    consumer = Recorder(stream)
    done = asyncio.Event()
    original = consumer.handle
    trims = 0

    async def broken_trim(client: Redis, name: str, retention_s: float) -> int:
        nonlocal trims
        trims += 1
        raise AttributeError("'NoneType' object has no attribute 'partition'")

    async def handle(entries: Sequence[Entry[str]]) -> None:
        await original(entries)
        if len(consumer.seen) == 2:
            done.set()

    consumer.handle = handle  # type: ignore[method-assign]
    config = RunnerConfig(consumer_name="c1", block_ms=50, trim_every_s=0.01)
    runner = Runner(redis, consumer, config, trim=broken_trim)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    await asyncio.sleep(0.3)
    await redis.xadd(stream, {"v": "b"})
    await asyncio.wait_for(done.wait(), 10)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert consumer.seen == ["a", "b"]
    assert trims >= 1


async def test_lingering_gathers_a_trickle_into_one_batch(redis: Redis, settings: Settings) -> None:
    """After a small batch the runner waits ``linger_s``: entries added one by one meanwhile
    come as one batch, not one each."""
    stream = f"{settings.redis_prefix}s"
    await redis.xadd(stream, {"v": "first"})
    consumer = Recorder(stream)
    batches: list[list[str]] = []
    first_done, done = asyncio.Event(), asyncio.Event()

    async def handle(entries: Sequence[Entry[str]]) -> None:
        batches.append([e.value for e in entries])
        first_done.set()
        if sum(map(len, batches)) == 6:
            done.set()

    consumer.handle = handle  # type: ignore[method-assign]
    config = RunnerConfig(consumer_name="c1", block_ms=1000, batch_entries=100, linger_s=2.0)
    stop = asyncio.Event()
    task = asyncio.create_task(Runner(redis, consumer, config).run(stop))
    try:
        await asyncio.wait_for(first_done.wait(), 10)
        for i in range(5):
            await redis.xadd(stream, {"v": f"later {i}"})
        await asyncio.wait_for(done.wait(), 10)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert batches == [["first"], [f"later {i}" for i in range(5)]]


async def test_a_runner_rides_out_redis_dropping_its_connections(
    redis: Redis, settings: Settings
) -> None:
    """Its connections to Redis are cut while it waits for entries and again after a batch: it
    backs off, reconnects, and handles every entry added meanwhile, each once."""
    stream = f"{settings.redis_prefix}s"
    async with relayed_redis(settings.redis_url or "") as (relayed, relay):
        consumer = Recorder(stream)
        config = RunnerConfig(consumer_name="c1", block_ms=200, max_backoff_s=0.2)
        stop = asyncio.Event()
        task = asyncio.create_task(Runner(relayed, consumer, config).run(stop))
        try:
            await redis.xadd(stream, {"v": "before"})
            for _ in range(200):
                if consumer.seen:
                    break
                await asyncio.sleep(0.05)
            for round_ in range(3):
                relay.cut()
                await asyncio.sleep(0.1)
                await redis.xadd(stream, {"v": f"after cut {round_}"})
            for _ in range(200):
                if len(consumer.seen) == 4:
                    break
                await asyncio.sleep(0.05)
            assert not task.done()
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
    assert consumer.seen == ["before", "after cut 0", "after cut 1", "after cut 2"]
    assert (await redis.xpending(stream, "recorder"))["pending"] == 0
