"""Leases in Redis, and sharing the ping shards among ETA processes with them.

The ETA worker keeps each driver's tracker in memory between pings, so two processes must never
work on the same driver at once: they would each see some of its pings and could fire an event
twice. Drivers are hashed to ping shards, so the unit of work is a shard. Each ETA process
(a :class:`ShardKeeper`) works on the shards whose lease it holds (``lease:eta:{shard}``), one
runner and one set of trackers per shard, and takes a fair share: the shards divided by the
processes alive (each announces itself in ``eta:members`` on every tick). A process holding
more than its share gives the extra shards back (after finishing the batch in hand) and the
newcomer takes them; a process that stops gives all of its shards back; a process that dies
loses its leases after ``ttl_s`` and the others take its shards over, continuing from the
trackers saved in Redis.

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


ShardWork = Callable[[int, asyncio.Event], Coroutine[Any, Any, None]]
"""Works on one shard until its event is set; returns after the batch in hand is settled."""


@dataclass
class _Working:
    stop: asyncio.Event
    task: asyncio.Task[None]


@dataclass
class ShardKeeper:
    """Holds a fair share of ``shards`` shard leases and runs ``work`` on each held shard."""

    leases: Leases
    lease_key: Callable[[int], str]
    members_key: str
    shards: int
    work: ShardWork
    _held: dict[int, _Working] = field(default_factory=dict)

    @property
    def held(self) -> list[int]:
        """The shards this keeper works on now."""
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
                except (ConnectionError, OSError, TimeoutError) as exc:
                    log.warning("shard leases could not be kept; retrying", error=repr(exc))
                    if asyncio.get_running_loop().time() - last_ok > 2 * period_s:
                        log.error("shard leases lost; stopping work", shards=self.held)
                        for shard in self.held:
                            await self._halt(self._held.pop(shard))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=period_s)
        finally:
            for shard in self.held:
                await self._halt(self._held.pop(shard))
                with contextlib.suppress(Exception):  # unreachable: the lease expires instead
                    await self.leases.give_back(self.lease_key(shard))
            with contextlib.suppress(Exception):
                await redis.zrem(self.members_key, self.leases.holder)

    async def _tick(self) -> None:
        fair = await self._fair_share()
        for shard in self.held:
            working = self._held[shard]
            if working.task.done():  # its runner failed: give the shard back, retake it later
                self._held.pop(shard)
                await self._halt(working)
                await self.leases.give_back(self.lease_key(shard))
            elif not await self.leases.renew(self.lease_key(shard)):
                log.error("shard lease lost; stopping work on it", shard=shard)
                await self._halt(self._held.pop(shard))
        while len(self._held) > fair:
            shard = max(self._held)
            await self._halt(self._held.pop(shard))
            await self.leases.give_back(self.lease_key(shard))
            log.info("shard given back to balance the load", shard=shard, fair_share=fair)
        for shard in range(self.shards):
            if len(self._held) >= fair:
                break
            if shard not in self._held and await self.leases.take(self.lease_key(shard)):
                stop = asyncio.Event()
                task = asyncio.create_task(self.work(shard, stop), name=f"shard-{shard}")
                self._held[shard] = _Working(stop, task)
                log.info("shard taken", shard=shard, fair_share=fair)

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

    @staticmethod
    async def _halt(working: _Working) -> None:
        working.stop.set()
        try:
            await working.task
        except Exception as exc:
            log.error("shard work failed", error=repr(exc))
