"""The one loop every stream consumer shares.

A worker module supplies a :class:`Consumer`: its group, its streams, a ``decode`` of one entry
and a ``handle`` of a batch. The runner owns the rest:

* creating the consumer group (from the start of the stream, so nothing already there is
  skipped);
* on start, re-reading this consumer's own pending entries (a restarted worker with the same
  name resumes exactly where it died);
* ``XREADGROUP`` in batches (optionally lingering after a small one, to gather larger ones);
  ``XACK`` only after ``handle`` returned, i.e. after the effect is durable — so a crash
  between the two redelivers, and handlers must be safe to run twice;
* ``XAUTOCLAIM`` on a timer, taking over entries another consumer left pending too long;
* entries that cannot be decoded go to a dead-letter stream and are acknowledged, so one bad
  entry cannot stall a shard;
* a failing ``handle`` is retried with jittered exponential backoff, without acknowledging;
* a graceful stop: the batch in hand is finished (or left pending), then the loop returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import structlog
from prometheus_client import Counter, Histogram
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError
from tenacity import wait_exponential_jitter

log = structlog.get_logger(__name__)

T = TypeVar("T")

ENTRIES = Counter(
    "lastmile_worker_entries_total", "Stream entries handled and acknowledged", ["group"]
)
DEAD = Counter("lastmile_worker_dead_letters_total", "Entries that could not be decoded", ["group"])
FAILURES = Counter("lastmile_worker_failures_total", "Failed attempts to handle a batch", ["group"])
CLAIMED = Counter(
    "lastmile_worker_claimed_total", "Entries taken over from idle consumers", ["group"]
)
HANDLE_SECONDS = Histogram("lastmile_worker_handle_seconds", "Time to handle one batch", ["group"])


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One decoded stream entry."""

    stream: str
    id: str
    value: T


class Consumer(Protocol[T]):
    """What a worker module provides to the runner."""

    group: str

    def streams(self) -> Sequence[str]:
        """The streams this consumer reads."""
        ...

    def decode(self, fields: dict[bytes, bytes]) -> T:
        """Decode one entry; raise ValueError (or msgspec's errors) for an undecodable one."""
        ...

    async def handle(self, entries: Sequence[Entry[T]]) -> None:
        """Apply the batch; return only once its effect is durable. Must be idempotent."""
        ...


@dataclass(frozen=True)
class RunnerConfig:
    """How a runner reads: batch size, blocking time, claiming and trimming."""

    consumer_name: str
    batch_entries: int = 500
    block_ms: int = 1000
    claim_idle_ms: int = 30_000
    claim_every_s: float = 5.0
    trim_every_s: float | None = None
    retention_s: float = 3600.0
    max_backoff_s: float = 30.0
    dead_letter_stream: str = "dead"
    linger_s: float = 0.0
    """After a batch smaller than ``batch_entries``, wait this long before reading again, so
    that a steady trickle gathers into fewer, larger batches (each batch has a fixed cost: a
    transaction, an ``XACK``). For consumers whose effect may wait, not for live ones."""


TrimFunction = Callable[[Redis, str, float], Awaitable[int]]


class Runner(Generic[T]):
    """Runs one :class:`Consumer` until ``stop`` is set."""

    def __init__(
        self,
        redis: Redis,
        consumer: Consumer[T],
        config: RunnerConfig,
        *,
        trim: TrimFunction | None = None,
    ) -> None:
        self.redis = redis
        self.consumer = consumer
        self.config = config
        self.trim = trim
        self.group = consumer.group
        self._wait = wait_exponential_jitter(multiplier=0.1, max=config.max_backoff_s)
        self._last_claim = 0.0
        self._last_trim = time.monotonic()
        self._log = log.bind(group=self.group, consumer=config.consumer_name)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; return after the batch in hand is settled."""
        streams = list(self.consumer.streams())
        await self._ensure_groups(streams)
        self._log.info("worker started", streams=len(streams))
        await self._drain_own_pending(streams, stop)
        while not stop.is_set():
            try:
                await self._maybe_claim(streams, stop)
                await self._maybe_trim(streams)
                batch = await self._read(streams, ">")
            except (OSError, RedisError, TimeoutError) as exc:  # Redis away: wait, read again
                await self._pause(exc, stop, attempt=1)
                continue
            if batch:
                await self._process(batch, stop)
            if self.config.linger_s and len(batch) < self.config.batch_entries:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.config.linger_s)
        self._log.info("worker stopped")

    async def _ensure_groups(self, streams: Sequence[str]) -> None:
        for stream in streams:
            try:
                await self.redis.xgroup_create(stream, self.group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def _drain_own_pending(self, streams: Sequence[str], stop: asyncio.Event) -> None:
        while not stop.is_set():
            batch = await self._read(streams, "0")
            if not batch:
                return
            self._log.info("resuming own pending entries", entries=len(batch))
            await self._process(batch, stop)

    async def _read(self, streams: Sequence[str], start: str) -> list[tuple[str, str, Any]]:
        reply = await self.redis.xreadgroup(
            self.group,
            self.config.consumer_name,
            dict.fromkeys(streams, start),
            count=self.config.batch_entries,
            block=None if start == "0" else self.config.block_ms,
        )
        return [
            (stream.decode(), entry_id.decode(), fields)
            for stream, entries in reply or []
            for entry_id, fields in entries
            if fields  # a pending entry that was trimmed meanwhile comes back empty
        ]

    async def _maybe_claim(self, streams: Sequence[str], stop: asyncio.Event) -> None:
        now = time.monotonic()
        if now - self._last_claim < self.config.claim_every_s:
            return
        self._last_claim = now
        for stream in streams:
            cursor = "0-0"
            while not stop.is_set():
                cursor_b, claimed, *_deleted = await self.redis.xautoclaim(
                    stream,
                    self.group,
                    self.config.consumer_name,
                    min_idle_time=self.config.claim_idle_ms,
                    start_id=cursor,
                    count=self.config.batch_entries,
                )
                batch = [(stream, eid.decode(), fields) for eid, fields in claimed if fields]
                if batch:
                    CLAIMED.labels(self.group).inc(len(batch))
                    self._log.warning("claimed entries of an idle consumer", entries=len(batch))
                    await self._process(batch, stop)
                cursor = cursor_b.decode() if isinstance(cursor_b, bytes) else str(cursor_b)
                if cursor == "0-0":
                    break

    async def _maybe_trim(self, streams: Sequence[str]) -> None:
        if self.trim is None or self.config.trim_every_s is None:
            return
        now = time.monotonic()
        if now - self._last_trim < self.config.trim_every_s:
            return
        self._last_trim = now
        for stream in streams:
            try:
                removed = await self.trim(self.redis, stream, self.config.retention_s)
            except Exception as exc:  # housekeeping: a failed trim waits for the next round
                self._log.warning("trimming failed", stream=stream, error=repr(exc))
                continue
            if removed:
                self._log.debug("trimmed stream", stream=stream, removed=removed)

    async def _process(self, raw: list[tuple[str, str, Any]], stop: asyncio.Event) -> None:
        entries: list[Entry[T]] = []
        dead: list[tuple[str, str, Any, str]] = []
        for stream, entry_id, fields in raw:
            try:
                entries.append(Entry(stream, entry_id, self.consumer.decode(fields)))
            except Exception as exc:  # an undecodable entry must not stall the shard
                dead.append((stream, entry_id, fields, repr(exc)))
        if dead:
            await self._dead_letter(dead)
        attempt = 0
        while entries:
            attempt += 1
            started = time.perf_counter()
            try:
                async with self._keep_claimed(entries):
                    await self.consumer.handle(entries)
            except Exception as exc:
                FAILURES.labels(self.group).inc()
                if stop.is_set():
                    self._log.warning("stopping with a batch unacknowledged", entries=len(entries))
                    return
                await self._pause(exc, stop, attempt)
                continue
            HANDLE_SECONDS.labels(self.group).observe(time.perf_counter() - started)
            break
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._ack([(e.stream, e.id) for e in entries])
                break
            except (OSError, RedisError, TimeoutError) as exc:
                if stop.is_set():  # pending: redelivered, and handlers are safe to run twice
                    self._log.warning("stopping with a batch unacknowledged", entries=len(entries))
                    return
                await self._pause(exc, stop, attempt)
        ENTRIES.labels(self.group).inc(len(entries))

    @contextlib.asynccontextmanager
    async def _keep_claimed(self, entries: Sequence[Entry[T]]) -> AsyncIterator[None]:
        """While a long ``handle`` runs, keep resetting its entries' idle time.

        Without this, a handler slower than ``claim_idle_ms`` (a planning job) would see its
        entries taken over by another consumer and done twice.
        """
        period_s = self.config.claim_idle_ms / 3000

        async def refresh() -> None:
            while True:
                await asyncio.sleep(period_s)
                for stream, ids in _by_stream([(e.stream, e.id) for e in entries]).items():
                    await self.redis.xclaim(
                        stream, self.group, self.config.consumer_name, 0, ids, justid=True
                    )

        task = asyncio.create_task(refresh())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _ack(self, ids: Sequence[tuple[str, str]]) -> None:
        by_stream = _by_stream(ids)
        if not by_stream:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream, entry_ids in by_stream.items():
                pipe.xack(stream, self.group, *entry_ids)
            await pipe.execute()

    async def _dead_letter(self, dead: Sequence[tuple[str, str, Any, str]]) -> None:
        target = f"{self.config.dead_letter_stream}:{self.group}"
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream, entry_id, fields, reason in dead:
                pipe.xadd(
                    target,
                    {b"stream": stream, b"id": entry_id, b"reason": reason, **fields},
                    maxlen=100_000,
                    approximate=True,
                )
            await pipe.execute()
        DEAD.labels(self.group).inc(len(dead))
        self._log.error("dead-lettered undecodable entries", entries=len(dead), target=target)
        await self._ack([(s, i) for s, i, _, _ in dead])

    async def _pause(self, exc: BaseException, stop: asyncio.Event, attempt: int) -> None:
        delay = self._wait(_RetryState(attempt))  # type: ignore[arg-type]
        self._log.warning("worker step failed; backing off", error=repr(exc), delay_s=delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)


def _by_stream(ids: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for stream, entry_id in ids:
        grouped.setdefault(stream, []).append(entry_id)
    return grouped


@dataclass
class _RetryState:
    """The one attribute tenacity's wait strategies read."""

    attempt_number: int
