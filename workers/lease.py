"""A lease in Redis: one process at a time does a job, the others stand by to take over.

The ETA worker needs it: it keeps each driver's tracker in memory between pings, so two ETA
processes sharing the ping streams would each see half of a driver's pings and could fire an
event twice. With the lease, any number of ETA processes may run: one works, the rest wait,
and when the holder stops (its lease is released) or dies (its lease expires after
``ttl_s``), one of them takes over from the state the holder saved in Redis.

The holder renews the lease every ``ttl_s / 3``. A holder that could not renew in time (Redis
unreachable, the process stalled) is told through the ``lost`` event and must stop working at
once: by then another process may hold the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import structlog

log = structlog.get_logger(__name__)

# Renew or release only a lease this holder still holds (compare and act, atomically).
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass
class Lease:
    """What :func:`holding` yields: whether the lease is held, and the event set on its loss."""

    key: str
    holder: str
    held: bool = False
    lost: asyncio.Event = field(default_factory=asyncio.Event)


def holder_name(base: str) -> str:
    """A holder name unique to this process and call, readable in ``GET <lease key>``."""
    return f"{base}:{os.getpid()}:{secrets.token_hex(4)}"


@contextlib.asynccontextmanager
async def holding(
    redis: Any, key: str, holder: str, ttl_s: float, stop: asyncio.Event
) -> AsyncIterator[Lease]:
    """Wait until ``holder`` holds ``key`` (or ``stop`` is set), keep it for the block.

    Yields a :class:`Lease` whose ``held`` is False when ``stop`` came first. On leaving the
    block the lease is released, so a standby takes over without waiting for it to expire.
    """
    lease = Lease(key=key, holder=holder)
    ttl_ms = max(1, int(ttl_s * 1000))
    waiting_logged = False
    while not stop.is_set():
        if await redis.set(key, holder, nx=True, px=ttl_ms):
            lease.held = True
            break
        if not waiting_logged:
            log.info("standing by: another process holds the lease", key=key)
            waiting_logged = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=ttl_s / 3)
    if not lease.held:
        yield lease
        return
    log.info("lease taken", key=key, holder=holder)
    renewer = asyncio.create_task(_renew(redis, lease, ttl_s))
    try:
        yield lease
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer
        with contextlib.suppress(Exception):  # unreachable Redis: the lease expires by itself
            await redis.eval(_RELEASE, 1, key, holder)


async def _renew(redis: Any, lease: Lease, ttl_s: float) -> None:
    loop = asyncio.get_running_loop()
    renewed_at = loop.time()
    ttl_ms = max(1, int(ttl_s * 1000))
    while True:
        await asyncio.sleep(ttl_s / 3)
        try:
            still = await redis.eval(_RENEW, 1, lease.key, lease.holder, ttl_ms)
        except Exception as exc:
            if loop.time() - renewed_at < ttl_s * 2 / 3:
                log.warning("could not renew the lease; retrying", key=lease.key, error=repr(exc))
                continue
            still = 0
        if not still:
            log.error("lease lost; stopping work", key=lease.key, holder=lease.holder)
            lease.lost.set()
            return
        renewed_at = loop.time()
