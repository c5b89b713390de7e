"""The long-lived clients of one API process, opened and closed in one exit stack.

:func:`open_resources` opens the Redis client, the PostgreSQL pool, the ping appender and the
authenticator, and starts the process's upkeep tasks (daily partitions ahead of time, stream
lag for ``/metrics``); leaving it cancels the tasks and closes the clients in reverse order.

It also keeps the learned speed tables the process has read (:class:`LearnedModels`), which
re-optimisation sends to the solver pool with the calls of routes planned at learned speeds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import structlog
from cachetools import LRUCache
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from app import outbox_metrics
from app.auth import Authenticator, SharedCredentials
from app.metrics import (
    GROUP_DEAD_LETTERS,
    GROUP_OLDEST_PENDING,
    GROUP_STUCK,
    STREAM_LAG,
    STREAM_PENDING,
    count_accepted,
)
from app.process.solver_pool import SolverPool
from app.settings import Settings
from app.throttle import FailedCredentials
from realtime.hub import Hub
from realtime.streams import APPEND_SCRIPT, PingAppender, StreamNames
from schemas.ids import OrgId
from solver.matrix import ConstantSpeed, GreatCircleProvider, MatrixProvider
from store.db import open_pool
from store.learning import model_by_id
from store.partitions import ensure_window
from workers.learner import tables_of
from workers.planner import requeue_lost

log = structlog.get_logger(__name__)

PARTITION_UPKEEP_S = 3600.0
LAG_SAMPLE_S = 5.0
REQUEUE_S = 15.0
REQUEUE_AFTER = timedelta(seconds=10)
"""A plan committed this long ago whose job is not on the stream is handed over again."""


MODELS_KEPT = 32
"""Learned speed tables an API process keeps: about one per organisation re-optimising, each
its JSON (a dense table of every cell of a city at every working hour is about 2 MB)."""


class LearnedModels:
    """The speed tables of the learned models this API process has read, by model id.

    A stored model never changes (the learner adds a new one), so a table read once serves
    every later call, and a re-optimisation reads one only the first time its plan's model comes
    up. At most :data:`MODELS_KEPT` are kept, the least recently used leaving first.
    """

    def __init__(self, limit: int = MODELS_KEPT) -> None:
        self._kept: LRUCache[tuple[OrgId, int], bytes | None] = LRUCache(maxsize=limit)

    async def speeds_json(
        self, conn: AsyncConnection[Any], org_id: OrgId, model_id: int
    ) -> bytes | None:
        """Model ``model_id``'s :class:`~solver.learning.SpeedTable` as msgspec JSON; None when
        it learned no speeds or ``org_id`` has no such model."""
        key = (org_id, model_id)
        if key in self._kept:
            return self._kept[key]
        model = await model_by_id(conn, org_id, model_id)
        speeds = None if model is None else tables_of(model)[0]
        encoded = None if speeds is None else msgspec.json.encode(speeds)
        self._kept[key] = encoded
        return encoded


@dataclass(frozen=True)
class Resources:
    """Everything a request handler may use."""

    settings: Settings
    redis: Redis
    pool: AsyncConnectionPool
    names: StreamNames
    appender: PingAppender
    auth: Authenticator
    hub: Hub
    solver: SolverPool
    images: ThreadPoolExecutor
    """Where proof photos are decoded: few threads, so that decoded pixels in memory are
    bounded by them (and malloc keeps few arenas), not by how many uploads arrive together."""
    models: LearnedModels
    """The learned speed tables read so far, for re-optimisation."""


IMAGE_WORKERS = 2
"""Captures whose images are decoded at once per API process (each holds one decoded photo)."""


def matrix_provider(settings: Settings) -> MatrixProvider:
    """Travel times for planning and re-optimisation, as configured."""
    if settings.osrm_url:
        from adapters.osrm import OsrmProvider

        return OsrmProvider(settings.osrm_url)
    return live_provider(settings)


def drives_learned_speeds(settings: Settings) -> bool:
    """Whether re-optimisation drives at the learned speeds a route was planned with: learning
    is on and travel times are the great-circle model's (a road router's are kept, as the
    planner keeps them)."""
    return settings.learning and not settings.osrm_url


def live_provider(settings: Settings) -> MatrixProvider:
    """Travel times for live arrival windows: the great-circle model, whatever plans routes.

    The ETA worker asks for a few legs on every fix (2,000 a second in the benchmark); a road
    router answering over HTTP would be a round trip per fix. The model's bias on a driver's
    roads is what the learned pace (actual ÷ predicted per leg) absorbs.
    """
    return GreatCircleProvider(
        speed=ConstantSpeed(settings.travel_speed_mps), circuity=settings.circuity
    )


def stream_names(settings: Settings) -> StreamNames:
    """The key names for these settings."""
    return StreamNames(prefix=settings.redis_prefix, shards=settings.ping_shards)


@contextlib.asynccontextmanager
async def open_resources(settings: Settings) -> AsyncIterator[Resources]:
    """Open every client of an API process; ``settings`` must name both services."""
    if settings.database_url is None or settings.redis_url is None:
        raise ValueError("open_resources needs database_url and redis_url (start embedded first)")
    async with contextlib.AsyncExitStack() as stack:
        redis = Redis.from_url(settings.redis_url, health_check_interval=30)
        stack.push_async_callback(redis.aclose)
        await redis.ping()
        pool = await open_pool(settings.database_url, max_size=settings.db_pool_max)
        stack.push_async_callback(pool.close)
        names = stream_names(settings)
        hub = Hub(Redis.from_url(settings.redis_url))
        await hub.start()
        stack.push_async_callback(hub.redis.aclose)
        stack.push_async_callback(hub.close)
        script = redis.register_script(APPEND_SCRIPT)
        solver = SolverPool(settings, settings.solver_processes)
        stack.callback(solver.close)
        images = ThreadPoolExecutor(IMAGE_WORKERS, thread_name_prefix="proof-images")
        stack.callback(images.shutdown, cancel_futures=True)
        if settings.warm_solver:
            solver.warm()

        async def run_script(keys: Sequence[str], args: Sequence[Any]) -> list[bytes]:
            result: list[bytes] = await script(keys=list(keys), args=list(args))
            return result

        resources = Resources(
            settings=settings,
            redis=redis,
            pool=pool,
            names=names,
            appender=PingAppender(names=names, run_script=run_script, on_stored=count_accepted),
            auth=Authenticator(
                pool,
                ttl_s=settings.auth_cache_ttl_s,
                shared=SharedCredentials(
                    redis=redis,
                    prefix=settings.redis_prefix,
                    db_timeout_s=settings.auth_db_timeout_s,
                    fallback_ttl_s=settings.auth_fallback_ttl_s,
                ),
                throttle=FailedCredentials(
                    redis,
                    settings.redis_url,
                    prefix=settings.redis_prefix,
                    limit=settings.auth_failure_limit,
                    account_limit=settings.signin_failure_limit,
                ),
            ),
            hub=hub,
            solver=solver,
            images=images,
            models=LearnedModels(),
        )
        tasks = [
            asyncio.create_task(_every(PARTITION_UPKEEP_S, _partitions, resources)),
            asyncio.create_task(_every(LAG_SAMPLE_S, _sample_lag, resources)),
            asyncio.create_task(
                _every(outbox_metrics.SAMPLE_S, outbox_metrics.sample_outbox, resources)
            ),
            asyncio.create_task(_every(REQUEUE_S, _requeue_plans, resources)),
            asyncio.create_task(resources.auth.watch(hub)),
            asyncio.create_task(_autopilot(resources)),
        ]
        stack.push_async_callback(_cancel, tasks)
        yield resources


async def _autopilot(resources: Resources) -> None:
    """Late routes re-sequenced by themselves where organisations asked (app.autopilot reads
    Resources and the API: imported when it starts)."""
    from app import autopilot

    while True:
        try:
            await autopilot.run(resources)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # it must outlive a passing outage
            log.warning("autopilot stopped; restarting", error=repr(exc))
            await asyncio.sleep(5.0)


async def _every(period_s: float, job: Any, resources: Resources) -> None:
    while True:
        try:
            await job(resources)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # upkeep must outlive a passing outage
            log.warning("upkeep job failed", job=job.__name__, error=repr(exc))
        await asyncio.sleep(period_s)


async def _partitions(resources: Resources) -> None:
    days_back = int(resources.settings.ping_max_age_s // 86400) + 1
    async with resources.pool.connection() as conn:
        created = await ensure_window(
            conn,
            datetime.now(UTC),
            days_back=days_back,
            days_ahead=resources.settings.partition_days_ahead,
        )
    if created:
        log.info("created positions partitions", partitions=created)


async def _requeue_plans(resources: Resources) -> None:
    async with resources.pool.connection() as conn:
        appended = await requeue_lost(conn, resources.redis, resources.names, REQUEUE_AFTER)
    if appended:
        log.warning("plans handed to the planners again", plans=appended)


async def _sample_lag(resources: Resources) -> None:
    for stream in resources.names.all_pings():
        try:
            groups = await resources.redis.xinfo_groups(stream)
        except Exception:  # the stream does not exist until the first ping
            log.debug("no stream info yet", stream=stream)
            continue
        for group in groups:
            name = group["name"].decode()
            STREAM_LAG.labels(stream, name).set(group.get("lag") or 0)
            STREAM_PENDING.labels(stream, name).set(group.get("pending") or 0)
    from app.groups import group_states  # app.groups reads Resources: imported when used

    for worker, state in (await group_states(resources)).items():
        health = state.health
        GROUP_OLDEST_PENDING.labels(worker).set((health.oldest_pending_idle_ms or 0) / 1000)
        GROUP_DEAD_LETTERS.labels(worker).set(health.dead_letters)
        GROUP_STUCK.labels(worker).set(int(state.stuck))


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    await asyncio.gather(*(cancel_and_wait(task) for task in tasks))


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait until it ended, whatever it raised.

    A cancellation can be swallowed on the way (the Redis client does when it lands while a
    command is being sent, and so does ``asyncio.wait_for`` on Python 3.11 when the awaited
    thing finishes in the same instant): the task then carries on, an upkeep loop goes back to
    sleep, and whoever waits for it (the server's shutdown) waits for ever. So cancel again
    until it ends."""
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=0.1)
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()
