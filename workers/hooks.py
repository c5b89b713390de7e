"""Webhooks worker: events fanned out to subscribed endpoints, then delivered at least once.

Detection apart from delivery, as for customer messages (tile38's split), in two parts that
one ``lastmile worker webhooks`` process runs side by side; run as many processes as the load
needs, both parts share the work.

**Fan-out** (:class:`HooksConsumer`): the consumer group ``webhooks`` on the shared events
stream, on the shared runner. For a batch, one query reads the enabled endpoints of the
batch's organisations; each entry whose type an endpoint subscribes to becomes one
``webhook_deliveries`` row per endpoint, carrying the signed body's bytes and a stable
``webhook-id`` (only endpoints created before the entry was added, see :func:`fan_out`). All
rows are inserted in one transaction, ``ON CONFLICT DO NOTHING`` on (endpoint, event); only
then does the handler return and the runner acknowledge. A redelivered entry stores nothing
new. Having stored some, it wakes the delivery loop of its process.

**Delivery** (:class:`HookSender`): a loop that claims due deliveries with ``FOR UPDATE SKIP
LOCKED`` and a lease (:func:`store.webhook_deliveries.claim_due`), POSTs each through
:class:`adapters.webhooks.WebhookSender` (signed afresh for every attempt, same
``webhook-id``; during a secret rotation's overlap, signed by both secrets), and records each
attempt with the delivery's new state and the endpoint's run of failures, attempts that
finished together in one transaction. It keeps a window of ``batch`` sends in flight: a
finished send's place goes to the next due delivery, so one slow receiver holds one place,
not the next batch.

==========================  ================================================================
the attempt                 the delivery
==========================  ================================================================
2xx                         ``delivered``; the endpoint's run of failures is cleared
408, 429, 3xx, 5xx, network ``pending`` again after :func:`adapters.webhooks.retry_delay_s`
                            (about a day over ``max_tries``, jittered, at least the
                            receiver's ``Retry-After``); ``dead`` after the last try
other 4xx, refused target   ``dead`` (a dead letter: sending it again will not help)
410 Gone                    ``dead``, and the endpoint is disabled at once
==========================  ================================================================

Each failed attempt lengthens the endpoint's run of failures; at ``disable_after`` the
endpoint is disabled: its deliveries wait (unclaimed) until an administrator enables it again.
The sender then puts a ``webhook_disabled`` event on the organisation's events (dispatcher
screens see it; other endpoints may subscribe to it), at least once: the endpoint is marked
unannounced in the transaction that disables it, and marked announced in the transaction
that publishes the event (:func:`store.webhook_deliveries.take_unannounced`). Redis being
away delays that event, never a delivery.

A killed sender loses nothing: its claimed deliveries stay ``sending`` until their lease runs
out, and any sender claims them again; a receiver may then get one twice, with the same
``webhook-id``, and drop the duplicate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import psycopg
import structlog
from prometheus_client import Counter, Histogram
from redis.asyncio import Redis
from redis.exceptions import RedisError

from adapters.webhooks import (
    WebhookAttempt,
    WebhookEndpoint,
    WebhookSender,
    envelope,
    retry_delay_s,
)
from realtime.events import emit, event_of
from realtime.streams import StreamNames
from schemas.events import Event, WebhookDisabled
from schemas.ids import OrgId
from schemas.webhooks import DeliveryState, event_type, subscribed, webhook_id
from store.webhook_deliveries import (
    Claimed,
    NewDelivery,
    Outcome,
    Subscriber,
    claim_due,
    insert_deliveries,
    record_attempts,
    subscribers,
    take_unannounced,
)
from workers.connection import OwnConnection
from workers.runner import Entry

log = structlog.get_logger(__name__)

GROUP = "webhooks"

FANNED_OUT = Counter(
    "lastmile_webhook_deliveries_stored_total", "Webhook deliveries decided and newly stored"
)
ATTEMPTS = Counter(
    "lastmile_webhook_attempts_total",
    "Webhook delivery attempts by outcome (delivered, retry, failed, gone, refused)",
    ["outcome"],
)
LATENCY = Histogram(
    "lastmile_webhook_latency_seconds", "Time from the start of an attempt to the answer"
)
RETRIES = Counter("lastmile_webhook_retries_total", "Webhook deliveries scheduled for a retry")
DEAD = Counter(
    "lastmile_webhook_dead_letters_total",
    "Webhook deliveries given up (dead), by the last attempt's outcome",
    ["outcome"],
)
DISABLED = Counter(
    "lastmile_webhook_endpoints_disabled_total", "Webhook endpoints disabled by the sender"
)


@dataclass
class HooksConsumer(OwnConnection):
    """The fan-out: events entries → one stored delivery per subscribed, enabled endpoint."""

    names: StreamNames
    database_url: str
    group: str = GROUP
    on_stored: Callable[[], None] | None = None
    """Called after a batch stored new deliveries: wakes this process's delivery loop, so a
    delivery does not wait out the loop's idle pause."""
    _conn: psycopg.AsyncConnection | None = field(default=None, repr=False)

    def streams(self) -> Sequence[str]:
        return [self.names.events]

    def decode(self, fields: dict[bytes, bytes]) -> Event:
        return event_of(fields)

    async def handle(self, entries: Sequence[Entry[Event]]) -> None:
        if not entries:
            return
        async with self.connected() as conn, conn.transaction():
            found = await subscribers(conn, [e.value.org_id for e in entries])
            by_org: dict[OrgId, list[Subscriber]] = {}
            for endpoint in found:
                by_org.setdefault(endpoint.org_id, []).append(endpoint)
            rows = [
                delivery
                for entry in entries
                for delivery in fan_out(entry.id, entry.value, by_org.get(entry.value.org_id))
            ]
            new = await insert_deliveries(conn, rows)
        FANNED_OUT.inc(new)
        if new and self.on_stored is not None:
            self.on_stored()


CLOCK_SLACK_S = 60.0
"""How much earlier than an endpoint's creation an entry may have been put on the stream and
still reach it: the slack between Redis's clock (entry ids) and PostgreSQL's (``created_at``)."""


def fan_out(
    event_id: str, event: Event, endpoints: Sequence[Subscriber] | None
) -> list[NewDelivery]:
    """The deliveries of events entry ``event_id`` to ``endpoints`` (its organisation's enabled
    ones), one per endpoint subscribed to its type and created before the entry was put on the
    stream (a new endpoint is not sent the stream's past, e.g. when the group first reads it
    from the start); the body is built once for all."""
    kind = event_type(event)
    added_s = entry_time_s(event_id)
    wanted = [
        e
        for e in endpoints or ()
        if subscribed(e.event_types, kind)
        and (added_s is None or added_s >= e.created_at.timestamp() - CLOCK_SLACK_S)
    ]
    if not wanted:
        return []
    body = envelope(kind, event.at, msgspec.to_builtins(event))
    return [
        NewDelivery(
            org_id=event.org_id,
            endpoint_id=endpoint.id,
            event_id=event_id,
            event_type=kind,
            event_at=event.at,
            webhook_id=webhook_id(event_id, endpoint.id),
            body=body,
        )
        for endpoint in wanted
    ]


def entry_time_s(entry_id: str) -> float | None:
    """When a stream entry was added (its id's milliseconds), or None for an id of no time."""
    millis, _, _ = entry_id.partition("-")
    return int(millis) / 1000 if millis.isdigit() else None


@dataclass(frozen=True, kw_only=True, slots=True)
class HookSenderConfig:
    """How a sender delivers webhooks."""

    batch: int = 50
    """Deliveries in flight at once (claimed per pass by :meth:`HookSender.run_once`)."""
    max_tries: int = 15
    """Attempts before a delivery that keeps failing for now is ``dead``."""
    disable_after: int = 50
    """Failed attempts in a row (over all its deliveries) that disable an endpoint."""
    lease_s: float = 60.0
    """How long a claimed delivery is this sender's; longer than the adapter's timeout."""
    idle_s: float = 1.0
    """How long a sender that found nothing due waits before it looks again (unless its
    process's fan-out wakes it); also its pause after a database error."""
    record_s: float = 0.02
    """How long a finished attempt may wait for others to be recorded with it."""
    first_retry_s: float = 5.0
    retry_span_s: float = 86_400.0
    announce_s: float = 10.0
    """How often a sender looks for disabled endpoints nobody announced (those another sender
    disabled, or left unannounced while Redis was away); its own disables it announces at once.
    Not every step: that look is a transaction of its own."""


class HookSender(OwnConnection):
    """One process's delivery loop; run as many side by side as the load needs."""

    def __init__(
        self,
        database_url: str,
        adapter: WebhookSender,
        config: HookSenderConfig,
        *,
        redis: Redis,
        names: StreamNames,
    ) -> None:
        self.database_url = database_url
        self.adapter = adapter
        self.config = config
        self.redis = redis
        self.names = names
        self.wake = asyncio.Event()
        """Set (by this process's fan-out) when deliveries may be due: ends an idle pause."""
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._looked_at = -float("inf")
        """When this sender last looked for unannounced endpoints (monotonic seconds)."""

    async def close(self) -> None:
        """Close the database connection and the adapter's connection pool."""
        await super().close()
        await self.adapter.aclose()

    async def run_once(self) -> int:
        """Announce disabled endpoints when due, claim one batch, send it, record every
        attempt; the number of deliveries claimed. One pass of the simplest shape, for tests
        and tools; :meth:`run` keeps a window of sends in flight instead."""
        await self._announce_when_due()
        conn = await self._connection()
        claimed = await claim_due(conn, self.config.batch, self.config.lease_s)
        if claimed:
            await self._record(list(await asyncio.gather(*(self._send(r) for r in claimed))))
        return len(claimed)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set, keeping up to ``batch`` attempts in flight.

        A finished send frees its place for the next due delivery without waiting for the
        slowest of its batch: claims top the window up whenever a quarter of it is free, and
        finished attempts are recorded together (half a batch, or ``record_s`` after the first
        of them finished, or when nothing else is in flight). The database work runs while the
        sends go on. On stop nothing more is claimed; what is in flight finishes (within the
        adapter's timeout) and is recorded. An error (PostgreSQL's, or a bug's) is logged,
        the connection dropped, and the step tried again after ``idle_s``; finished attempts
        wait for it (recording them twice stores nothing twice, see :func:`record_attempts`).
        """
        config = self.config
        top_up = max(1, config.batch // 4)
        in_flight: set[asyncio.Task[Outcome]] = set()
        finished: list[Outcome] = []
        first_finished = 0.0
        claimed_at = -float("inf")
        drained = False  # the last claim found fewer due deliveries than it asked for
        paused_until = -float("inf")  # after a database error: no database work before then
        while in_flight or finished or not stop.is_set():
            now = time.monotonic()
            if now >= paused_until:
                try:
                    if not stop.is_set():
                        await self._announce_when_due()
                        free = config.batch - len(in_flight)
                        due = not drained or self.wake.is_set() or now - claimed_at >= config.idle_s
                        if free >= top_up and due:
                            self.wake.clear()
                            claimed_at = now
                            rows = await claim_due(await self._connection(), free, config.lease_s)
                            drained = len(rows) < free
                            in_flight.update(asyncio.create_task(self._send(r)) for r in rows)
                    if finished and (
                        not in_flight
                        or stop.is_set()
                        or len(finished) >= config.batch // 2
                        or now - first_finished >= config.record_s
                    ):
                        await self._record(finished)
                        finished = []
                except Exception as exc:  # PostgreSQL's or a bug's: never stop delivering
                    await OwnConnection.close(self)
                    if stop.is_set() and not in_flight:
                        # Unrecorded, they are claimed and sent again once their lease ends.
                        log.warning("webhook attempts not recorded at stop", error=repr(exc))
                        return
                    log.warning("webhook delivery step failed; retrying", error=repr(exc))
                    paused_until = time.monotonic() + config.idle_s
            now = time.monotonic()
            if paused_until > now:
                moments = [paused_until]
            else:
                moments = [claimed_at + config.idle_s] if drained else []
                if finished:
                    moments.append(first_finished + config.record_s)
            claims = not stop.is_set() and config.batch - len(in_flight) >= top_up
            done = await self._wait(
                in_flight,
                stop=None if stop.is_set() else stop,
                wake=self.wake if claims and drained else None,
                timeout_s=max(0.0, min(moments) - now) if moments else config.idle_s,
            )
            if done and not finished:
                first_finished = time.monotonic()
            in_flight -= done
            for task in done:
                if task.exception() is None:
                    finished.append(task.result())
                else:  # a bug: the delivery is claimed again once its lease runs out
                    log.error("webhook send failed", exc_info=task.exception())

    @staticmethod
    async def _wait(
        in_flight: set[asyncio.Task[Outcome]],
        *,
        stop: asyncio.Event | None,
        wake: asyncio.Event | None,
        timeout_s: float,
    ) -> set[asyncio.Task[Outcome]]:
        """Wait up to ``timeout_s`` for a send to finish, or for ``stop`` or ``wake`` to be
        set (each only when given); the sends that finished."""
        signals = [asyncio.ensure_future(e.wait()) for e in (stop, wake) if e is not None]
        if not in_flight and not signals:
            await asyncio.sleep(timeout_s)
            return set()
        try:
            await asyncio.wait(
                [*in_flight, *signals], timeout=timeout_s, return_when="FIRST_COMPLETED"
            )
        finally:
            for signal in signals:
                signal.cancel()
        return {task for task in in_flight if task.done()}

    async def _record(self, outcomes: list[Outcome]) -> None:
        """Record finished attempts in one transaction, and announce what they disabled."""
        # Endpoints locked in one order, so that two senders recording attempts for the same
        # endpoints never deadlock.
        outcomes.sort(key=lambda o: (o.endpoint_id, o.delivery_id))
        conn = await self._connection()
        results = await record_attempts(conn, outcomes, disable_after=self.config.disable_after)
        disabled = 0
        for outcome, (moved, change) in zip(outcomes, results, strict=True):
            if not moved:
                log.info("webhook delivery taken over", delivery_id=outcome.delivery_id)
            if change == "disabled":
                disabled += 1
                DISABLED.inc()
                log.warning("webhook endpoint disabled", endpoint_id=outcome.endpoint_id)
        if disabled:
            await self._announce_or_wait()

    async def _announce_when_due(self) -> None:
        """Look for unannounced endpoints on the first call and every ``announce_s``."""
        if time.monotonic() - self._looked_at >= self.config.announce_s:
            self._looked_at = time.monotonic()
            await self._announce_or_wait()

    async def _announce_or_wait(self) -> None:
        """:meth:`announce_disabled`; when Redis fails, the endpoints stay unannounced (their
        marks roll back) for a later pass."""
        try:
            await self.announce_disabled()
        except (RedisError, OSError) as exc:
            log.warning("webhook_disabled events not published yet", error=str(exc))

    async def announce_disabled(self) -> int:
        """Put a ``webhook_disabled`` event on the stream for each endpoint the senders disabled
        and nobody announced yet; the number announced."""
        conn = await self._connection()
        async with conn.transaction():
            pending = await take_unannounced(conn)
            if pending:
                await emit(
                    self.redis,
                    self.names,
                    *(
                        WebhookDisabled(
                            org_id=p.org_id,
                            at=p.disabled_at,
                            endpoint_id=p.id,
                            url=p.url,
                            reason=p.disabled_reason,
                            consecutive_failures=p.consecutive_failures,
                        )
                        for p in pending
                    ),
                )
        return len(pending)

    async def _send(self, row: Claimed) -> Outcome:
        """One attempt of ``row``, and what follows from it."""
        started_at = datetime.now(UTC)
        try:
            result = await self.adapter.send(
                WebhookEndpoint(
                    url=row.url,
                    secret=row.secret,
                    also_signing=() if row.previous_secret is None else (row.previous_secret,),
                ),
                message_id=row.webhook_id,
                body=row.body,
            )
        except Exception as exc:
            # A bug must not stop the loop on every claim of this row: retried, dead at last.
            log.exception("webhook adapter raised", delivery_id=row.id)
            result = WebhookAttempt(
                outcome="retry",
                status_code=None,
                latency_s=(datetime.now(UTC) - started_at).total_seconds(),
                detail=f"unexpected {type(exc).__name__}: {exc}",
            )
        state, next_at = self._next(row, result)
        ATTEMPTS.labels(result.outcome).inc()
        LATENCY.observe(result.latency_s)
        if state == "dead":
            DEAD.labels(result.outcome).inc()
        elif state == "pending":
            RETRIES.inc()
        failed = result.outcome != "delivered"
        return Outcome(
            delivery_id=row.id,
            endpoint_id=row.endpoint_id,
            attempt=row.attempts,
            started_at=started_at,
            finished_at=datetime.now(UTC),
            outcome=result.outcome,
            status_code=result.status_code,
            latency_ms=round(result.latency_s * 1000),
            address=result.address,
            error=(result.detail or f"HTTP {result.status_code}")[:1000] if failed else None,
            state=state,
            next_attempt_at=next_at,
        )

    def _next(self, row: Claimed, result: WebhookAttempt) -> tuple[DeliveryState, datetime | None]:
        """The delivery's state after ``result``, and when it is tried again."""
        if result.outcome == "delivered":
            return "delivered", None
        if result.outcome != "retry":
            return "dead", None
        delay_s = retry_delay_s(
            row.tries,
            max_attempts=self.config.max_tries,
            first_delay_s=self.config.first_retry_s,
            span_s=self.config.retry_span_s,
        )
        if delay_s is None:
            return "dead", None
        delay_s = max(delay_s, result.retry_after_s or 0.0)
        return "pending", datetime.now(UTC) + timedelta(seconds=delay_s)
