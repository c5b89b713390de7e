"""Leases in Redis, and sharing the ping shards among ETA processes with them.

The ETA worker keeps each driver's tracker in memory between pings, so two processes must never
work on the same driver at once: they would each see some of its pings and could fire an event
twice. Drivers are hashed to ping shards, so the unit of work is a shard. Each ETA process
(a :class:`ShardKeeper`) works on the shards whose lease it holds (``lease:eta:{shard}``), with
one runner over them, and takes a fair share: the shards divided by the processes alive (each
announces itself in ``members:eta`` on every tick). A process holding more than its share gives
the extra shards back (after finishing the batch in hand) and the newcomer takes them; a process
that stops gives all of its shards back; a process that dies loses its leases after ``ttl_s``
and the others take its shards over, continuing from the trackers saved in Redis.

A holder renews its leases every ``ttl_s / 3``. One that could not renew in time (Redis
unreachable, the process stalled) stops working on those shards at once: by then another
process may hold them.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import structlog
from redis.exceptions import RedisError

log = structlog.get_logger(__name__)

# Renew or give back only a lease this holder still holds (compare and act, atomically).
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_GIVE_BACK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


def holder_name(base: str) -> str:
    """A holder name unique to this process and call, readable in ``GET <lease key>``."""
    return f"{base}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass
class Leases:
    """The leases one holder takes, renews and gives back; each lives ``ttl_s`` unless renewed."""

    redis: Any
    holder: str
    ttl_s: float

    @property
    def ttl_ms(self) -> int:
        return max(1, int(self.ttl_s * 1000))

    async def take(self, key: str) -> bool:
        """Take ``key`` if nobody holds it."""
        return bool(await self.redis.set(key, self.holder, nx=True, px=self.ttl_ms))

    async def renew(self, key: str) -> bool:
        """Extend ``key`` by ``ttl_s``; False when this holder no longer holds it."""
        return bool(await self.redis.eval(_RENEW, 1, key, self.holder, self.ttl_ms))

    async def give_back(self, key: str) -> None:
        """Release ``key`` now, if this holder still holds it."""
        await self.redis.eval(_GIVE_BACK, 1, key, self.holder)


ShardWork = Callable[[tuple[int, ...], asyncio.Event], Coroutine[Any, Any, None]]
"""Works on the given shards until the event is set; returns after the batch in hand is
settled."""


@dataclass
class _Working:
    shards: tuple[int, ...]
    stop: asyncio.Event
    task: asyncio.Task[None]


@dataclass
class ShardKeeper:
    """Holds a fair share of ``shards`` shard leases and runs ``work`` on the shards it holds.

    One ``work`` at a time, over every held shard: when the held set changes, the running one
    is stopped (its batch settled) before a lease is given back, and a new one starts on the
    new set.
    """

    leases: Leases
    lease_key: Callable[[int], str]
    members_key: str
    shards: int
    work: ShardWork
    _held: set[int] = field(default_factory=set)
    _working: _Working | None = None

    @property
    def held(self) -> list[int]:
        """The shards this keeper holds now."""
        return sorted(self._held)

    async def run(self, stop: asyncio.Event) -> None:
        """Keep a fair share until ``stop`` is set; then give every shard back."""
        redis = self.leases.redis
        period_s = self.leases.ttl_s / 3
        last_ok = asyncio.get_running_loop().time()
        try:
            while not stop.is_set():
                try:
                    await self._tick()
                    last_ok = asyncio.get_running_loop().time()
                except (OSError, RedisError, TimeoutError) as exc:
                    log.warning("shard leases could not be kept; retrying", error=repr(exc))
                    if asyncio.get_running_loop().time() - last_ok > 2 * period_s:
                        log.error("shard leases lost; stopping work", shards=self.held)
                        await self._halt()
                        self._held.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=period_s)
        finally:
            await self._halt()
            for shard in self.held:
                with contextlib.suppress(Exception):  # unreachable: the lease expires instead
                    await self.leases.give_back(self.lease_key(shard))
            self._held.clear()
            with contextlib.suppress(Exception):
                await redis.zrem(self.members_key, self.leases.holder)

    async def _tick(self) -> None:
        fair = await self._fair_share()
        if self._working is not None and self._working.task.done():
            await self._halt()  # it failed (logged there): start again below
        lost = [s for s in self.held if not await self.leases.renew(self.lease_key(s))]
        extra = self.held[fair:] if len(self._held) > fair else []
        if lost or extra:
            await self._halt()  # before any lease goes: never two processes on one shard
            for shard in lost:
                log.error("shard lease lost; stopping work on it", shard=shard)
            for shard in extra:
                await self.leases.give_back(self.lease_key(shard))
                log.info("shard given back to balance the load", shard=shard, fair_share=fair)
            self._held -= {*lost, *extra}
        for shard in range(self.shards):
            if len(self._held) >= fair:
                break
            if shard not in self._held and await self.leases.take(self.lease_key(shard)):
                self._held.add(shard)
                log.info("shard taken", shard=shard, fair_share=fair)
        wanted = tuple(self.held)
        if self._working is not None and self._working.shards != wanted:
            await self._halt()
        if self._working is None and wanted:
            stop = asyncio.Event()
            task = asyncio.create_task(self.work(wanted, stop), name=f"shards-{wanted}")
            self._working = _Working(wanted, stop, task)

    async def _fair_share(self) -> int:
        """Announce this keeper, forget silent ones, and divide the shards among the rest."""
        redis = self.leases.redis
        seconds, microseconds = await redis.time()  # one clock for every host: Redis's
        now_ms = int(seconds) * 1000 + int(microseconds) // 1000
        async with redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self.members_key, {self.leases.holder: now_ms})
            pipe.zremrangebyscore(self.members_key, "-inf", now_ms - self.leases.ttl_ms)
            pipe.zcard(self.members_key)
            members = (await pipe.execute())[-1]
        return math.ceil(self.shards / max(1, int(members)))

    async def _halt(self) -> None:
        working, self._working = self._working, None
        if working is None:
            return
        working.stop.set()
        try:
            await working.task
        except Exception as exc:
            log.error("shard work failed", shards=working.shards, error=repr(exc))
