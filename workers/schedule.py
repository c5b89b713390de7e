"""A job beside a worker, run every so often on a connection of its own (the learner, the
weekly summaries): a database that is away for a while fails one pass, logged, not the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import psycopg
import structlog

log = structlog.get_logger(__name__)


async def every(
    period_s: float,
    stop: asyncio.Event,
    database_url: str,
    what: str,
    job: Callable[[psycopg.AsyncConnection], Awaitable[None]],
) -> None:
    """Run ``job`` on a fresh autocommit connection now and every ``period_s`` until ``stop``;
    a pass that fails on the database or the network is logged as ``what`` and tried again at
    the next one."""
    while not stop.is_set():
        try:
            async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
                await job(conn)
        except (psycopg.Error, OSError) as exc:
            log.warning(f"{what} failed; trying again later", error=str(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=period_s)
