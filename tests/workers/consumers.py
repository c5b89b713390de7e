"""Consumers and helpers for tests of the shared runner and of what it leaves behind."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from app.settings import Settings
from tests.helpers import eventually, stream_entries
from workers.errors import PoisonEntry
from workers.runner import DeadLetter, Entry, Runner, RunnerConfig, dead_letter_stream


@dataclass
class Picky:
    """A consumer that fails every time on ``bad`` values, refuses ``refused`` ones as poison
    and cannot decode ``"undecodable"``; it records what it handled, how often it tried each
    value, and the dead letters it was told of."""

    stream: str
    group: str = "picky"
    bad: frozenset[str] = frozenset()
    refused: frozenset[str] = frozenset()
    seen: list[str] = field(default_factory=list)
    tries: dict[str, int] = field(default_factory=dict)
    letters: list[DeadLetter[Any]] = field(default_factory=list)

    def streams(self) -> Sequence[str]:
        return [self.stream]

    def decode(self, fields: dict[bytes, bytes]) -> str:
        value = fields[b"v"].decode()
        if value == "undecodable":
            raise ValueError("cannot decode undecodable")
        return value

    async def handle(self, entries: Sequence[Entry[str]]) -> None:
        for entry in entries:
            self.tries[entry.value] = self.tries.get(entry.value, 0) + 1
        for entry in entries:
            if entry.value in self.refused:
                raise PoisonEntry.of(entry, f"{entry.value} is refused")
            if entry.value in self.bad:
                raise ValueError(f"cannot handle {entry.value}")
        self.seen.extend(e.value for e in entries)

    async def dead_lettered(self, letters: Sequence[DeadLetter[Any]]) -> None:
        self.letters.extend(letters)


def quick(settings: Settings, **overrides: Any) -> RunnerConfig:
    """A runner config for tests: short blocking and backoff, this test's dead-letter streams."""
    config = RunnerConfig(
        consumer_name="c1",
        block_ms=50,
        max_backoff_s=0.05,
        dead_letter_stream=f"{settings.redis_prefix}dead",
    )
    return dataclasses.replace(config, **overrides)


@contextlib.asynccontextmanager
async def running(runner: Runner[Any]) -> AsyncIterator[None]:
    """The runner consuming for the duration of the block; stopped gracefully after it."""
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


async def seen_at_least(consumer: Picky, count: int) -> None:
    """Wait until ``consumer`` handled at least ``count`` entries."""

    async def enough() -> list[str]:
        return consumer.seen if len(consumer.seen) >= count else []

    await eventually(enough, f"{count} entries handled")


async def dead_letters(redis: Redis, settings: Settings, group: str) -> list[dict[bytes, bytes]]:
    """The fields of the group's dead letters, oldest first."""
    target = dead_letter_stream(f"{settings.redis_prefix}dead", group)
    entries = stream_entries(await redis.xrange(target))
    return [fields for _, fields in entries]
