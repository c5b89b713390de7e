"""The one loop every stream consumer shares.

A worker module supplies a :class:`Consumer`: its group, its streams, a ``decode`` of one entry
and a ``handle`` of a batch (and, if it wants to react to entries moved aside, a
``dead_lettered``, see :class:`ReactsToDeadLetters`). The runner owns the rest:

* creating the consumer group (from the start of the stream, so nothing already there is
  skipped);
* on start, re-reading this consumer's own pending entries (a restarted worker with the same
  name resumes exactly where it died), and again after Redis was away (a read whose answer
  was lost on a dropped connection left its entries pending for this consumer);
* ``XREADGROUP`` in batches (optionally lingering after a small one, to gather larger ones);
  ``XACK`` only after ``handle`` returned, i.e. after the effect is durable — so a crash
  between the two redelivers, and handlers must be safe to run twice;
* ``XAUTOCLAIM`` on a timer, taking over entries another consumer left pending too long;
* poison entries go to the group's dead-letter stream (:func:`dead_letter_stream`) and are
  acknowledged, so one bad entry cannot stall a shard, or every later plan of every
  organisation. Three kinds: an entry that cannot be decoded (at once: decoding it again cannot
  help), one the handler names in a :class:`~workers.errors.PoisonEntry` (at once), and one the
  handler keeps failing on, ``max_attempts`` times in a row. When a batch of several entries
  fails, its entries are handled one by one to find the culprit; the others go through;
* a handler failing because Redis or PostgreSQL is away (:func:`~workers.errors.is_transient`)
  is retried with backoff for as long as that lasts, and never dead-letters anything;
* a graceful stop: the batch in hand is finished (or left pending), then the loop returns.

A dead letter holds the entry's own fields plus ``_stream``, ``_id``, ``_group``, ``_cause``
(``undecodable``, ``rejected`` or ``exhausted``), ``_reason`` and ``_attempts``. It is written
before the entry is acknowledged, so a crash between the two may write it twice (same
``_stream`` and ``_id``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar, runtime_checkable

import structlog
from prometheus_client import Counter, Histogram
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError
from redis.typing import EncodableT, FieldT, StreamIdT

from realtime.streams import as_text
from workers.errors import PoisonEntry, is_transient

log = structlog.get_logger(__name__)

T = TypeVar("T")

ENTRIES = Counter(
    "lastmile_worker_entries_total", "Stream entries handled and acknowledged", ["group"]
)
DEAD = Counter(
    "lastmile_worker_dead_letters_total",
    "Entries moved to the dead-letter stream, by cause (undecodable, rejected, exhausted)",
    ["group", "cause"],
)
FAILURES = Counter(
    "lastmile_worker_failures_total",
    "Failed attempts to handle a batch, by kind (transient: a backing service was away)",
    ["group", "kind"],
)
CLAIMED = Counter(
    "lastmile_worker_claimed_total", "Entries taken over from idle consumers", ["group"]
)
HANDLE_SECONDS = Histogram("lastmile_worker_handle_seconds", "Time to handle one batch", ["group"])

DEAD_LETTERS_KEPT = 100_000
"""About how many entries a dead-letter stream keeps (older ones are trimmed)."""

DeadCause = Literal["undecodable", "rejected", "exhausted"]


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One decoded stream entry."""

    stream: str
    id: str
    value: T


@dataclass(frozen=True)
class DeadLetter(Generic[T]):
    """An entry moved aside: where it came from, its fields, and why.

    ``value`` is the decoded entry, or None when it could not be decoded. ``attempts`` is how
    often it was tried (decoded or handled) before it was moved aside.
    """

    stream: str
    id: str
    fields: dict[bytes, bytes]
    value: T | None
    cause: DeadCause
    reason: str
    attempts: int


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
        """Apply the batch; return only once its effect is durable. Must be idempotent.

        Raise :class:`~workers.errors.PoisonEntry` for an entry that can never be applied.
        """
        ...


@runtime_checkable
class ReactsToDeadLetters(Protocol):
    """A consumer that wants to know which of its entries were moved aside (the planner marks
    their plans failed)."""

    async def dead_lettered(self, letters: Sequence[DeadLetter[Any]]) -> None:
        """React to ``letters``, before they are acknowledged; must be idempotent.

        A transient failure (:func:`~workers.errors.is_transient`) is retried; any other is
        logged and the entries are acknowledged all the same.
        """
        ...


def dead_letter_stream(base: str, group: str) -> str:
    """The dead-letter stream of ``group`` (``base`` is :attr:`RunnerConfig.dead_letter_stream`,
    e.g. ``"{prefix}dead"`` → ``"{prefix}dead:persist"``)."""
    return f"{base}:{group}"


def backoff_s(attempt: int, max_s: float, *, first_s: float = 0.1) -> float:
    """Seconds to wait before retry number ``attempt`` (1, 2, ...).

    The ceiling doubles from ``first_s`` up to ``max_s``; the wait is drawn from its upper half,
    so that workers failing together do not all retry in the same instant.
    """
    ceiling = min(max_s, first_s * 2 ** min(max(attempt, 1) - 1, 32))
    return random.uniform(ceiling / 2, ceiling)


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
    """Base name of the dead-letter streams; each group writes to its own
    (:func:`dead_letter_stream`)."""
    max_attempts: int = 5
    """How often in a row ``handle`` may fail on an entry (transient failures aside) before the
    entry is moved to the dead-letter stream."""
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
        self._react = consumer.dead_lettered if isinstance(consumer, ReactsToDeadLetters) else None
        self._last_claim = 0.0
        self._last_trim = time.monotonic()
        self._log = log.bind(group=self.group, consumer=config.consumer_name)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; return after the batch in hand is settled."""
        streams = list(self.consumer.streams())
        await self._ensure_groups(streams)
        self._log.info("worker started", streams=len(streams))
        await self._drain_own_pending(streams, stop)
        outages = 0
        while not stop.is_set():
            try:
                if outages:  # a read whose answer was lost left its entries pending here
                    await self._drain_own_pending(streams, stop)
                await self._maybe_claim(streams, stop)
                await self._maybe_trim(streams)
                batch = await self._read(streams, ">")
            except (OSError, RedisError, TimeoutError) as exc:  # Redis away: wait, read again
                outages += 1
                await self._pause(exc, stop, outages)
                continue
            outages = 0
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
        reply: Any = await self.redis.xreadgroup(
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
                cursor = as_text(cursor_b)
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
        undecodable: list[DeadLetter[T]] = []
        for stream, entry_id, fields in raw:
            try:
                entries.append(Entry(stream, entry_id, self.consumer.decode(fields)))
            except Exception as exc:  # decoding it again cannot help: move it aside now
                reason = _describe(exc)
                undecodable.append(
                    DeadLetter(stream, entry_id, fields, None, "undecodable", reason, 1)
                )
        if undecodable and not await self._bury(undecodable, stop):
            return
        fields_of = {(stream, entry_id): fields for stream, entry_id, fields in raw}
        await self._handle(entries, fields_of, stop)

    async def _handle(
        self,
        entries: list[Entry[T]],
        fields_of: Mapping[tuple[str, str], dict[bytes, bytes]],
        stop: asyncio.Event,
        failed: int = 0,
    ) -> None:
        """Handle ``entries`` and acknowledge them, or move the ones that fail aside.

        ``failed`` is how often they already failed together (when the entries of a failed
        batch are handled one at a time). Returns early, leaving entries pending, on ``stop``.
        """

        def letter(entry: Entry[T], cause: DeadCause, reason: str) -> DeadLetter[T]:
            fields = fields_of[(entry.stream, entry.id)]
            return DeadLetter(entry.stream, entry.id, fields, entry.value, cause, reason, failed)

        outages = 0
        while entries:
            started = time.perf_counter()
            try:
                async with self._keep_claimed(entries):
                    await self.consumer.handle(entries)
            except Exception as exc:
                error = exc
            else:
                HANDLE_SECONDS.labels(self.group).observe(time.perf_counter() - started)
                break
            if stop.is_set():
                self._log.warning("stopping with a batch unacknowledged", entries=len(entries))
                return
            if is_transient(error):  # the entries are not at fault: wait as long as it takes
                FAILURES.labels(self.group, "transient").inc()
                outages += 1
                await self._pause(error, stop, outages)
                continue
            FAILURES.labels(self.group, "entry").inc()
            failed += 1
            poison = _named(error, entries)
            if isinstance(error, PoisonEntry) and poison is not None:
                if not await self._bury([letter(poison, "rejected", error.reason)], stop):
                    return
                entries = [e for e in entries if e is not poison]
                continue
            if len(entries) > 1:
                self._log.warning(
                    "a batch failed; handling its entries one at a time",
                    entries=len(entries),
                    error=_describe(error),
                )
                for entry in entries:
                    if stop.is_set():
                        return
                    await self._handle([entry], fields_of, stop, failed)
                return
            if failed >= self.config.max_attempts:
                reason = f"failed {failed} times, the last with {_describe(error)}"
                await self._bury([letter(entries[0], "exhausted", reason)], stop)
                return
            await self._pause(error, stop, failed)
        if entries and await self._until_done(lambda: self._ack(_ids(entries)), stop):
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
                for stream, ids in _by_stream(_ids(entries)).items():
                    claimed: list[StreamIdT] = [*ids]
                    await self.redis.xclaim(
                        stream, self.group, self.config.consumer_name, 0, claimed, justid=True
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

    async def _bury(self, letters: Sequence[DeadLetter[T]], stop: asyncio.Event) -> bool:
        """Write ``letters`` to the dead-letter stream, let the consumer react, acknowledge.

        False when stopped before the end (the entries stay pending and come back).
        """
        target = dead_letter_stream(self.config.dead_letter_stream, self.group)
        if not await self._until_done(lambda: self._record(target, letters), stop):
            return False
        if self._react is not None and not await self._reacted(self._react, letters, stop):
            return False
        if not await self._until_done(lambda: self._ack(_ids(letters)), stop):
            return False
        for letter in letters:
            DEAD.labels(self.group, letter.cause).inc()
            self._log.error(
                "entry moved to the dead-letter stream",
                stream=letter.stream,
                id=letter.id,
                cause=letter.cause,
                reason=letter.reason,
                attempts=letter.attempts,
                target=target,
            )
        return True

    async def _record(self, target: str, letters: Sequence[DeadLetter[T]]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for letter in letters:
                record: dict[FieldT, EncodableT] = dict(letter.fields.items())
                pipe.xadd(
                    target,
                    {
                        **record,
                        b"_stream": letter.stream,
                        b"_id": letter.id,
                        b"_group": self.group,
                        b"_cause": letter.cause,
                        b"_reason": letter.reason,
                        b"_attempts": letter.attempts,
                    },
                    maxlen=DEAD_LETTERS_KEPT,
                    approximate=True,
                )
            await pipe.execute()

    async def _reacted(
        self,
        react: Callable[[Sequence[DeadLetter[Any]]], Awaitable[None]],
        letters: Sequence[DeadLetter[T]],
        stop: asyncio.Event,
    ) -> bool:
        attempt = 0
        while True:
            try:
                await react(letters)
                return True
            except Exception as exc:
                if not is_transient(exc):  # it must not stall the stream either
                    self._log.error("reacting to dead letters failed", error=_describe(exc))
                    return True
                if stop.is_set():
                    return False
                attempt += 1
                await self._pause(exc, stop, attempt)

    async def _until_done(self, step: Callable[[], Awaitable[None]], stop: asyncio.Event) -> bool:
        """Run a Redis ``step``, retrying while Redis is away; False when stopped first."""
        attempt = 0
        while True:
            try:
                await step()
                return True
            except (OSError, RedisError, TimeoutError) as exc:
                if stop.is_set():  # pending: redelivered, and handlers are safe to run twice
                    self._log.warning("stopping with entries unacknowledged")
                    return False
                attempt += 1
                await self._pause(exc, stop, attempt)

    async def _pause(self, exc: BaseException, stop: asyncio.Event, attempt: int) -> None:
        delay = backoff_s(attempt, self.config.max_backoff_s)
        self._log.warning("worker step failed; backing off", error=repr(exc), delay_s=delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)


def _ids(entries: Sequence[Entry[T]] | Sequence[DeadLetter[T]]) -> list[tuple[str, str]]:
    return [(e.stream, e.id) for e in entries]


def _named(error: Exception, entries: Sequence[Entry[T]]) -> Entry[T] | None:
    """The entry of the batch a :class:`PoisonEntry` names, if it is one and names one."""
    if not isinstance(error, PoisonEntry):
        return None
    return next((e for e in entries if (e.stream, e.id) == (error.stream, error.entry_id)), None)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _by_stream(ids: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for stream, entry_id in ids:
        grouped.setdefault(stream, []).append(entry_id)
    return grouped
