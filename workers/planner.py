"""Planner worker: queued plans in PostgreSQL → solved plans, fairly between organisations.

``POST /v1/plans`` stores a queued plan and appends a :class:`~schemas.plan.PlanJob` to the
``plans`` stream. A planner process runs two loops:

* :class:`Planner` takes plans from the table in the fair order of :func:`store.plans.claim_next`
  (at most one running plan per organisation, organisations in turn), loads the day (one
  consistent snapshot), turns it into a problem (:mod:`workers.plan_problem`), runs the search
  in a thread so the loop stays responsive, and stores the outcome. While the search runs, the
  loop renews the plan's lease every :data:`CHECK_EVERY_S`, which also tells it whether a
  cancel was asked for (the API is another process: the request travels through PostgreSQL);
  then the search is told to stop and its best solution so far is stored as ``cancelled``.
  Idle, it waits on the ``plans`` stream (every planner sees every entry) or at most
  ``block_ms``, then looks again.
* :class:`PlannerConsumer`, on the shared runner and the ``planner`` consumer group, reads each
  job once and checks the plan's options: one that breaks the rules is moved to the
  dead-letter stream at once and marked failed with the reason
  (:meth:`PlannerConsumer.dead_lettered`), so a bad plan is refused before any planner starts
  it.

Nothing accepted is lost: a planner that is stopped puts its running plan back in the queue
(:func:`store.plans.release_plan`); one that is killed stops renewing its lease, and after
``LASTMILE_PLAN_LEASE_S`` another planner takes the plan over and computes it afresh.

The bound, with P planner processes: a plan waits behind at most one plan of each other
organisation with plans waiting (and its own organisation's earlier plans), each running at
most ``LASTMILE_PLAN_MAX_S``; P planners work through those P at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import msgspec
import psycopg
import structlog

from realtime.streams import StreamNames, as_text
from schemas.codecs import PLAN_JOB_DECODER, PLAN_JOB_ENCODER
from schemas.ids import OrgId, PlanId
from schemas.plan import PlanJob, PlanProgress
from solver.errors import SolverError
from solver.matrix import MatrixProvider
from solver.search import Progress
from solver.vrptw import solve
from store import plans as plans_store
from store.delivery import load_day
from store.learning import latest_model
from workers.connection import OwnConnection
from workers.errors import InvalidPlan, PoisonEntry, is_transient
from workers.learner import planning_model
from workers.plan_problem import outcome_of, problem_of, settings_of
from workers.runner import DeadLetter, Entry, Runner, RunnerConfig, backoff_s

log = structlog.get_logger(__name__)

GROUP = "planner"
PROGRESS_EVERY_S = 0.5
"""How often, at most, a running plan's progress is written while the search improves."""
CHECK_EVERY_S = 0.5
"""How often a running plan's lease is renewed and its cancel request looked for: a cancel
stops the search within about this long (plus the search's own reaction time)."""
MAX_BACKOFF_S = 30.0

Ending = Literal["cancel", "shutdown", "lost"]
"""Why a search was told to stop early: a cancel was asked for, the planner is stopping, or
the plan is no longer this planner's."""


async def enqueue(redis: Any, names: StreamNames, org_id: OrgId, plan_id: PlanId) -> None:
    """Wake the planner workers for a plan (the plan must be committed first)."""
    job = PlanJob(org_id=org_id, plan_id=plan_id)
    await redis.xadd(names.plans, {"j": PLAN_JOB_ENCODER.encode(job)})


async def requeue_lost(
    conn: psycopg.AsyncConnection, redis: Any, names: StreamNames, older_than: timedelta
) -> int:
    """Append the jobs of queued plans whose job never reached the stream; how many were
    appended (the planners would find them on their next look anyway; this checks their
    options and wakes them now).

    Safe beside other processes doing the same: each plan is locked while its job is appended
    and marked, and the others skip it.
    """
    async with conn.transaction():
        lost = await plans_store.lock_unqueued_plans(conn, older_than)
        for org_id, plan_id in lost:
            await enqueue(redis, names, org_id, plan_id)
            await plans_store.mark_enqueued(conn, plan_id)
    return len(lost)


@dataclass
class PlannerConsumer(OwnConnection):
    """Checks each job's plan once, as it arrives; the planners compute it (:class:`Planner`)."""

    names: StreamNames
    database_url: str
    group: str = GROUP
    _conn: psycopg.AsyncConnection | None = field(default=None, repr=False)

    def streams(self) -> Sequence[str]:
        return [self.names.plans]

    def decode(self, fields: dict[bytes, bytes]) -> PlanJob:
        job: PlanJob = PLAN_JOB_DECODER.decode(fields[b"j"])
        return job

    async def handle(self, entries: Sequence[Entry[PlanJob]]) -> None:
        """Move a job whose plan's options break the rules aside (whatever its status: a
        planner may have failed it already)."""
        conn = await self._connection()
        for entry in entries:
            plan = await plans_store.plan_by_id(conn, entry.value.plan_id)
            if plan is None:
                continue
            try:
                settings_of(plan)
            except InvalidPlan as exc:  # computing it cannot help
                raise PoisonEntry.of(entry, exc.detail) from exc

    async def dead_lettered(self, letters: Sequence[DeadLetter[PlanJob]]) -> None:
        """Mark the plans of jobs moved aside failed, with the reason (unless they ended)."""
        conn = await self._connection()
        for letter in letters:
            if letter.value is None:  # an undecodable job names no plan
                continue
            error = letter.reason
            if letter.cause == "exhausted":
                error = f"the planner gave up on this plan: {error}"
            await plans_store.fail_plan(conn, letter.value.plan_id, error)


@dataclass
class Planner(OwnConnection):
    """Computes plans one at a time, taken from the fair queue, as planner ``name``.

    ``max_s`` caps a plan's time limit (``LASTMILE_PLAN_MAX_S``); ``lease_s`` is how long the
    plan stays this planner's without a renewal (``LASTMILE_PLAN_LEASE_S``); ``block_ms`` is
    the longest an idle planner waits before looking at the queue again.
    """

    name: str
    names: StreamNames
    database_url: str
    provider: MatrixProvider
    redis: Any
    max_s: float
    lease_s: float
    block_ms: int = 1000
    learning: bool = True
    """Plan with the organisation's learned model when it has one."""
    _conn: psycopg.AsyncConnection | None = field(default=None, repr=False)
    _seen: str = field(default="$", repr=False)

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.lease_s)

    async def run(self, stop: asyncio.Event) -> None:
        """Compute plans until ``stop`` is set; a running plan then goes back to the queue.

        Redis or PostgreSQL being away is waited out with backoff, never fatal.
        """
        attempt = 0
        while not stop.is_set():
            try:
                if self._seen == "$":
                    self._seen = await self._stream_end()
                if not await self.next(stop):
                    await self.idle()
                attempt = 0
            except Exception as exc:
                if not is_transient(exc):
                    raise
                attempt += 1
                delay = backoff_s(attempt, MAX_BACKOFF_S, first_s=0.5)
                log.warning("planner waits for its services", error=str(exc), delay_s=delay)
                await self.close()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)

    async def _stream_end(self) -> str:
        # From the newest entry now, not "$" at each read: a job appended while this planner
        # was busy still wakes it.
        newest = await self.redis.xrevrange(self.names.plans, count=1)
        if not newest:
            return "0-0"
        last = newest[0][0]
        return as_text(last)

    async def idle(self) -> None:
        """Wait for a job on the ``plans`` stream, or ``block_ms`` at most."""
        found = await self.redis.xread(
            {self.names.plans: self._seen}, count=100, block=self.block_ms
        )
        for _stream, entries in found or ():
            if entries:
                last = entries[-1][0]
                self._seen = as_text(last)

    async def next(self, stop: asyncio.Event) -> bool:
        """Claim and compute the next plan in the fair order; False when none may start."""
        conn = await self._connection()
        plan = await plans_store.claim_next(conn, self.name, self.lease)
        if plan is None:
            return False
        try:
            await self.compute(plan, stop)
        except Exception as exc:
            if is_transient(exc):
                # Not its fault: queue it again (if PostgreSQL is still there to hear it; if
                # not, the lease runs out and it is taken over).
                with contextlib.suppress(Exception):
                    await plans_store.release_plan(await self._connection(), plan.id, self.name)
                raise
            log.exception("planning failed", plan=plan.id)
            await plans_store.fail_plan(
                conn, plan.id, f"the planner failed on this plan: {type(exc).__name__}: {exc}"
            )
        return True

    async def compute(self, plan: plans_store.PlanRow, stop: asyncio.Event) -> None:
        """Solve one claimed plan and store its outcome, or why it has none."""
        conn = await self._connection()
        try:
            options, tuning = settings_of(plan, self.max_s)
        except InvalidPlan as exc:
            await plans_store.fail_plan(conn, plan.id, exc.detail)
            return
        day = await load_day(conn, plan.org_id, plan.day)
        model = await latest_model(conn, plan.org_id) if self.learning else None
        chosen = planning_model(day, self.provider, model)
        day = chosen.day
        problem = problem_of(day, options, plan.order_ids)
        loop = asyncio.get_running_loop()
        halt = threading.Event()
        last_write = 0.0

        def on_progress(progress: Progress) -> None:
            nonlocal last_write
            if time.monotonic() - last_write < PROGRESS_EVERY_S:
                return
            last_write = time.monotonic()
            latest = PlanProgress(
                objective=progress.objective,
                solutions_found=progress.solutions_found,
                elapsed_s=round(progress.elapsed_s, 3),
            )
            asyncio.run_coroutine_threadsafe(self._progress(plan.id, latest), loop)

        log.info(
            "planning",
            plan=plan.id,
            org=plan.org_id,
            orders=len(problem.orders),
            shifts=len(problem.vehicles),
            claims=plan.claims,
        )
        search = asyncio.ensure_future(
            asyncio.to_thread(
                solve,
                problem,
                chosen.provider,
                on_progress=on_progress,
                tuning=tuning,
                should_stop=halt.is_set,
            )
        )
        ending = await self._watch(plan.id, search, halt, stop)
        try:
            result = await search
        except SolverError as exc:
            if ending != "lost":  # else it is another planner's to fail or finish now
                await plans_store.fail_plan(conn, plan.id, str(exc))
            return
        if ending == "lost":
            log.warning("plan taken over by another planner; result dropped", plan=plan.id)
            return
        # Stopped for the planner's own stop: queued again, unless its cancel came meanwhile
        # (then what was found is its outcome, stored below).
        stopped = ending == "shutdown" and result.stats.status == "cancelled"
        if stopped and await plans_store.release_plan(conn, plan.id, self.name):
            log.info("planner stopping; plan queued again", plan=plan.id)
            return
        outcome = msgspec.structs.replace(
            outcome_of(day, result), model=chosen.note, model_id=chosen.model_id
        )
        final = PlanProgress(
            objective=result.stats.objective,
            solutions_found=result.stats.solutions_found,
            elapsed_s=round(result.stats.wall_time_s, 3),
        )
        status = await plans_store.finish_plan(
            conn, plan.id, self.name, msgspec.to_builtins(outcome), msgspec.to_builtins(final)
        )
        log.info(
            "planned",
            plan=plan.id,
            status=status,
            routes=len(outcome.routes),
            left_out=len(outcome.unassigned),
        )

    async def _watch(
        self,
        plan_id: PlanId,
        search: asyncio.Future[Any],
        halt: threading.Event,
        stop: asyncio.Event,
    ) -> Ending | None:
        """While the search runs: renew the lease, and halt the search on a cancel, a stop of
        this planner, or the loss of the plan. Why it was halted, or None."""
        ending: Ending | None = None
        while not search.done():
            await asyncio.wait([search], timeout=CHECK_EVERY_S)
            if search.done():
                break
            if stop.is_set() and ending is None:
                ending = "shutdown"
            try:
                held = await plans_store.renew_lease(
                    await self._connection(), plan_id, self.name, self.lease
                )
            except Exception as exc:
                if not is_transient(exc):
                    raise
                # The search goes on; if PostgreSQL stays away past the lease, another
                # planner takes the plan over and this one's result is dropped.
                log.warning("lease not renewed", plan=plan_id, error=str(exc))
                await self.close()
                continue
            if held != "held" and ending is None:
                ending = held
            if ending is not None and not halt.is_set():
                log.info("halting the search", plan=plan_id, because=ending)
                halt.set()
        return ending

    async def _progress(self, plan_id: PlanId, progress: PlanProgress) -> None:
        # The planner's connection is idle while the search runs in its thread but for the
        # lease renewals; psycopg serialises them with this write.
        conn = await self._connection()
        await plans_store.save_progress(conn, plan_id, self.name, msgspec.to_builtins(progress))


async def run_planner(
    redis: Any,
    names: StreamNames,
    database_url: str,
    provider: MatrixProvider,
    config: RunnerConfig,
    *,
    max_s: float,
    lease_s: float,
    stop: asyncio.Event,
    learning: bool = True,
) -> None:
    """One planner process: the :class:`Planner` and the job checker, until ``stop`` is set."""
    consumer = PlannerConsumer(names=names, database_url=database_url)
    planner = Planner(
        # Unique to this process even when several share a consumer name (started by hand on
        # one host): the name is whose lease a running plan is under.
        name=f"{config.consumer_name}:{os.getpid()}:{secrets.token_hex(3)}",
        names=names,
        database_url=database_url,
        provider=provider,
        redis=redis,
        max_s=max_s,
        lease_s=lease_s,
        block_ms=config.block_ms,
        learning=learning,
    )
    try:
        async with asyncio.TaskGroup() as group:  # one failing stops the other
            group.create_task(Runner(redis, consumer, config).run(stop))
            group.create_task(planner.run(stop))
    finally:
        await consumer.close()
        await planner.close()
