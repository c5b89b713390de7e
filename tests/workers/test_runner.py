"""The shared runner: dead letters, retries, claiming, and trimming that never loses an entry."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import psycopg
import pytest
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from app.settings import Settings
from realtime.streams import trim_consumed
from tests.helpers import StreamEntries, eventually, relayed_redis, stream_entries
from tests.workers.consumers import Picky, dead_letters, quick, running, seen_at_least
from workers.runner import DeadLetter, Entry, Runner, RunnerConfig, backoff_s


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
    dead = stream_entries(await redis.xrange(f"{settings.redis_prefix}dead:recorder"))
    assert [d[1][b"v"] for d in dead] == [b"poison"]
    letter = dead[0][1]
    assert letter[b"_stream"] == stream.encode()
    assert letter[b"_group"] == b"recorder"
    assert letter[b"_cause"] == b"undecodable"
    assert letter[b"_reason"] == b"ValueError: cannot decode poison"
    assert letter[b"_attempts"] == b"1"
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
    ids = [cast(bytes, await redis.xadd(stream, {"v": str(i)})) for i in range(6)]
    fast = cast(
        "list[tuple[bytes, StreamEntries]]",
        await redis.xreadgroup("fast", "f", {stream: ">"}, count=10),
    )
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
    remaining = [e[0] for e in stream_entries(await redis.xrange(stream))]
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


async def test_an_entry_the_handler_keeps_failing_on_is_moved_aside_and_the_rest_handled(
    redis: Redis, settings: Settings
) -> None:
    """A batch failing on one entry is retried an entry at a time: the others are handled, the
    failing one is dead-lettered after ``max_attempts`` tries with its last error, and the
    entries after it are handled."""
    stream = f"{settings.redis_prefix}s"
    for value in ("a", "bad", "b"):
        await redis.xadd(stream, {"v": value})
    consumer = Picky(stream, bad=frozenset({"bad"}))
    async with running(Runner(redis, consumer, quick(settings, max_attempts=3))):
        await seen_at_least(consumer, 2)
        await redis.xadd(stream, {"v": "c"})
        await seen_at_least(consumer, 3)
    assert consumer.seen == ["a", "b", "c"]
    assert consumer.tries["bad"] == 3
    [letter] = await dead_letters(redis, settings, "picky")
    assert letter[b"v"] == b"bad"
    assert letter[b"_cause"] == b"exhausted"
    assert letter[b"_attempts"] == b"3"
    assert letter[b"_reason"] == b"failed 3 times, the last with ValueError: cannot handle bad"
    assert [(d.value, d.cause) for d in consumer.letters] == [("bad", "exhausted")]
    assert (await redis.xpending(stream, "picky"))["pending"] == 0


async def test_an_entry_the_handler_refuses_is_moved_aside_at_once_and_the_consumer_told(
    redis: Redis, settings: Settings
) -> None:
    """An entry the handler names in a PoisonEntry is dead-lettered on its first try, and the
    consumer hears of it and of an undecodable entry, each with its reason."""
    stream = f"{settings.redis_prefix}s"
    for value in ("undecodable", "a", "refused", "b"):
        await redis.xadd(stream, {"v": value})
    consumer = Picky(stream, refused=frozenset({"refused"}))
    async with running(Runner(redis, consumer, quick(settings))):
        await seen_at_least(consumer, 2)
    assert consumer.seen == ["a", "b"]
    assert consumer.tries["refused"] == 1
    told = [(d.value, d.cause, d.reason, d.attempts) for d in consumer.letters]
    assert told == [
        (None, "undecodable", "ValueError: cannot decode undecodable", 1),
        ("refused", "rejected", "refused is refused", 1),
    ]
    letters = await dead_letters(redis, settings, "picky")
    assert [(d[b"v"], d[b"_cause"]) for d in letters] == [
        (b"undecodable", b"undecodable"),
        (b"refused", b"rejected"),
    ]
    assert (await redis.xpending(stream, "picky"))["pending"] == 0


async def test_a_failing_reaction_to_a_dead_letter_does_not_stall_the_stream(
    redis: Redis, settings: Settings
) -> None:
    """When the consumer's reaction to a dead letter fails for good, the entry is acknowledged
    all the same and the next one handled."""
    stream = f"{settings.redis_prefix}s"
    for value in ("refused", "a"):
        await redis.xadd(stream, {"v": value})
    consumer = Picky(stream, refused=frozenset({"refused"}))

    async def broken(letters: Sequence[DeadLetter[Any]]) -> None:
        raise RuntimeError("cannot react")

    consumer.dead_lettered = broken  # type: ignore[method-assign]
    async with running(Runner(redis, consumer, quick(settings))):
        await seen_at_least(consumer, 1)
    assert consumer.seen == ["a"]
    assert [d[b"v"] for d in await dead_letters(redis, settings, "picky")] == [b"refused"]
    assert (await redis.xpending(stream, "picky"))["pending"] == 0


@dataclass
class Flaky:
    """A consumer whose backing service is away for its first ``outages`` attempts."""

    stream: str
    error: Exception
    outages: int
    group: str = "flaky"
    seen: list[str] = field(default_factory=list)

    def streams(self) -> Sequence[str]:
        return [self.stream]

    def decode(self, fields: dict[bytes, bytes]) -> str:
        return fields[b"v"].decode()

    async def handle(self, entries: Sequence[Entry[str]]) -> None:
        if self.outages > 0:
            self.outages -= 1
            raise self.error
        self.seen.extend(e.value for e in entries)


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connection refused"),
        redis_errors.ConnectionError("Connection reset by peer"),
        psycopg.OperationalError("server closed the connection unexpectedly"),
    ],
    ids=["socket", "redis", "postgres"],
)
async def test_transient_failures_are_retried_past_max_attempts_and_never_dead_lettered(
    redis: Redis, settings: Settings, error: Exception
) -> None:
    """While the handler fails because Redis or PostgreSQL is away, the entry is retried well
    past ``max_attempts``, then handled once; nothing is dead-lettered."""
    stream = f"{settings.redis_prefix}s"
    await redis.xadd(stream, {"v": "x"})
    consumer = Flaky(stream, error, outages=6)
    async with running(Runner(redis, consumer, quick(settings, max_attempts=2))):

        async def handled() -> list[str]:
            return consumer.seen

        await eventually(handled, "the entry handled")
    assert consumer.seen == ["x"]
    assert consumer.outages == 0
    assert await dead_letters(redis, settings, "flaky") == []
    assert (await redis.xpending(stream, "flaky"))["pending"] == 0


async def test_stopping_while_an_entry_keeps_failing_leaves_it_pending(
    redis: Redis, settings: Settings
) -> None:
    """A runner stopped between attempts at a failing entry leaves it pending for the next
    run, neither acknowledged nor dead-lettered."""
    stream = f"{settings.redis_prefix}s"
    await redis.xadd(stream, {"v": "bad"})
    consumer = Picky(stream, bad=frozenset({"bad"}))
    async with running(Runner(redis, consumer, quick(settings, max_attempts=1000))):

        async def retried() -> bool:
            return consumer.tries.get("bad", 0) >= 2

        await eventually(retried, "the entry tried twice")
    assert (await redis.xpending(stream, "picky"))["pending"] == 1
    assert await dead_letters(redis, settings, "picky") == []


def test_backoff_doubles_from_a_tenth_of_a_second_up_to_its_ceiling() -> None:
    """Each wait lies in the upper half of a ceiling that doubles from 0.1 s up to ``max_s``,
    however many attempts came before."""
    for attempt, _ in itertools.product(range(1, 12), range(20)):
        ceiling = min(2.0, 0.1 * 2 ** (attempt - 1))
        assert ceiling / 2 <= backoff_s(attempt, 2.0) <= ceiling
    assert 1.0 <= backoff_s(100_000, 2.0) <= 2.0
