"""Sender: drains the notification outbox at least once, through the channels' adapters.

Not a stream consumer: it polls ``outbox``. Each pass claims up to ``batch`` due rows of the
channels it can send on (:func:`store.notifications.claim_due`: ``FOR UPDATE SKIP LOCKED``,
so senders running side by side never take the same row) and commits the claim at once: each
row is ``sending`` with a lease, its ``next_attempt_at`` moved ``lease_s`` ahead. Then it sends
each row through its channel's adapter and records the batch's attempts and the rows' new
states in one transaction (:func:`store.notifications.record_attempts`):

==========================  =========================================================
the adapter                 the row becomes
==========================  =========================================================
accepted the message        ``sent``, the provider's id kept
RetryableFailure            ``pending`` again at now + backoff; ``dead`` after
                            ``max_tries`` attempts
PermanentFailure            ``failed``
==========================  =========================================================

A killed sender loses nothing: its claimed rows are still ``sending`` when their lease runs
out, and the next claim (by any sender) takes them again as the next attempt. So a message can
be sent twice (killed after the provider accepted it, before the record), never zero times.
Every attempt carries the row's idempotency key: for email it is the ``Message-ID``; SMS
providers (Twilio) take no idempotency key, so an SMS can arrive twice and nothing marks it.

A channel with no adapter configured is never claimed: its rows stay ``pending`` with a
``last_error`` that names the settings to set, and go out once they are set. Webhooks do not
pass through the outbox: they have their own deliveries table and worker (:mod:`workers.hooks`),
so a ``webhook`` row here is never sent and says so.

Message text is what the notify worker rendered with the organisation's template when it
decided the message (stored on the outbox row, read back with
:func:`store.notification_rules.bodies_of` once per batch), so the sender renders nothing: what
the customer reads is what was true when the message was decided. A row without stored text
(written before templates existed) gets the plain default of :func:`render`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any

import psycopg
import structlog
from prometheus_client import Counter, Histogram

from adapters.email import EmailSender
from adapters.errors import ChannelError, PermanentFailure, RetryableFailure
from adapters.sms import SmsSender
from adapters.webhooks import retry_delay_s
from schemas.notifications import NotificationKind, Rendered
from store.notification_rules import bodies_of
from store.notifications import (
    OUTBOX_CHANNEL,
    Attempt,
    AttemptOutcome,
    OutboxRow,
    claim_due,
    note_unsendable,
    record_attempts,
)
from workers.connection import OwnConnection

log = structlog.get_logger(__name__)

ATTEMPTS = Counter("lastmile_sender_attempts_total", "Outbox send attempts", ["channel", "outcome"])
LATENCY = Histogram("lastmile_sender_latency_seconds", "Time an adapter took to send", ["channel"])

UNCONFIGURED: dict[str, str] = {
    "email": "no SMTP relay configured (set LASTMILE_SMTP_HOST and LASTMILE_SMTP_FROM)",
    "sms": "no SMS provider configured (set LASTMILE_TWILIO_ACCOUNT_SID, _AUTH_TOKEN and _FROM)",
    "webhook": "webhooks are delivered by the webhooks worker from webhook_deliveries",
}

_SUBJECTS: dict[NotificationKind, str] = {
    "en_route": "Your delivery is on its way",
    "approaching": "Your delivery is nearly there",
    "delivered": "Your delivery has arrived",
    "failed": "We could not deliver your order",
    "running_late": "Your delivery is running late",
    "eta_changed": "Your delivery window has changed",
    "out_of_sequence": "A driver stopped out of sequence",
    "weekly_summary": "The week in figures",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class SenderConfig:
    """How a sender drains the outbox."""

    batch: int = 20
    """Rows claimed per pass."""
    max_tries: int = 10
    """Attempts before a message that keeps failing for now is ``dead``."""
    lease_s: float = 60.0
    """How long a claimed row is this sender's; longer than any adapter's timeout."""
    idle_s: float = 1.0
    """The pause after a pass that found nothing due."""
    first_retry_s: float = 5.0
    retry_span_s: float = 86_400.0
    """Retries spread over about this long (``adapters.webhooks.retry_delay_s``)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Channels:
    """The adapters this sender sends through; None: that channel is not configured."""

    email: EmailSender | None = None
    sms: SmsSender | None = None

    def names(self) -> list[str]:
        """The channels there is an adapter for."""
        return [n for n, a in (("email", self.email), ("sms", self.sms)) if a is not None]


def render(row: OutboxRow) -> Rendered:
    """The plain English default for a row's event kind, for a row the notify worker stored
    no text on (one written before templates existed)."""
    subject = _SUBJECTS[row.kind]
    lines = [f"{subject}."]
    if row.window_lower_epoch_s is not None and row.window_upper_epoch_s is not None:
        lower = datetime.fromtimestamp(row.window_lower_epoch_s, UTC)
        upper = datetime.fromtimestamp(row.window_upper_epoch_s, UTC)
        lines.append(f"Expected between {lower:%H:%M} and {upper:%H:%M} UTC.")
    text = " ".join(lines)
    html = "".join(f"<p>{escape(line)}</p>" for line in lines)
    return Rendered(subject=subject, text=text, html=f"<html><body>{html}</body></html>")


async def _first(*events: asyncio.Event, timeout_s: float) -> None:
    """Return when any of ``events`` is set, or after ``timeout_s``."""
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


class Sender(OwnConnection):
    """One sender process's loop; run as many side by side as the load needs."""

    def __init__(self, database_url: str, channels: Channels, config: SenderConfig) -> None:
        self.database_url = database_url
        self.channels = channels
        self.config = config
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def close(self) -> None:
        """Close the database connection and the adapters' connection pools (the sender owns
        the adapters it was given)."""
        await super().close()
        for adapter in (self.channels.email, self.channels.sms):
            aclose = getattr(adapter, "aclose", None)
            if aclose is not None:
                await aclose()

    async def note_unconfigured(self) -> None:
        """Name, on each pending row of a channel without an adapter, what to configure."""
        conn = await self._connection()
        for channel, reason in UNCONFIGURED.items():
            if channel not in self.channels.names():
                await note_unsendable(conn, channel, reason)

    async def run_once(self) -> int:
        """Claim one batch, send it, record every attempt; the number of rows claimed."""
        conn = await self._connection()
        rows = await claim_due(
            conn, self.config.batch, self.config.lease_s, channels=self.channels.names()
        )
        if rows:
            texts = await bodies_of(conn, [row.id for row in rows])
            attempts = await asyncio.gather(*(self._send(row, texts.get(row.id)) for row in rows))
            await record_attempts(conn, attempts)
        return len(rows)

    async def run(self, stop: asyncio.Event) -> None:
        """Pass after pass until ``stop`` is set; a database error is logged and retried.

        Between passes that found less than a batch it waits ``idle_s``, or less: until the
        notify worker commits new rows (PostgreSQL ``NOTIFY`` on
        :data:`store.notifications.OUTBOX_CHANNEL`, heard on a connection of its own). The poll
        stays as the fallback (retries falling due, a lost listening connection)."""
        wake = asyncio.Event()
        listener = asyncio.create_task(self._listen(wake))
        try:
            await self._passes(stop, wake)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def _listen(self, wake: asyncio.Event) -> None:
        """Set ``wake`` whenever new outbox rows are committed; reconnects after a failure."""
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.database_url, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {OUTBOX_CHANNEL}")
                    wake.set()  # rows may have come while no connection listened
                    async for _ in conn.notifies():
                        wake.set()
            except psycopg.Error as exc:
                log.warning("sender cannot listen for new rows; polling", error=str(exc))
                await asyncio.sleep(self.config.idle_s)

    async def _passes(self, stop: asyncio.Event, wake: asyncio.Event) -> None:
        noted_at = -1e9
        while not stop.is_set():
            wake.clear()
            claimed = 0
            try:
                if time.monotonic() - noted_at > 60.0:
                    await self.note_unconfigured()
                    noted_at = time.monotonic()
                claimed = await self.run_once()
            except psycopg.Error as exc:
                log.warning("sender pass failed; retrying", error=str(exc))
                if self._conn is not None:
                    await self._conn.close()
            if claimed < self.config.batch:
                await _first(stop, wake, timeout_s=self.config.idle_s)

    async def _send(
        self, row: OutboxRow, text: Rendered | None = None
    ) -> tuple[Attempt, datetime | None]:
        """Send one row (with its stored ``text``, if any); the attempt to record and, for a
        retry, when it is due again."""
        started_at = datetime.now(UTC)
        started = time.perf_counter()
        provider_id: str | None = None
        status_code: int | None = None
        error: str | None = None
        outcome: AttemptOutcome = "sent"
        retry_at: datetime | None = None
        retry_after_s: float | None = None
        try:
            provider_id = await self._deliver(row, text)
        except PermanentFailure as exc:
            outcome, error, status_code = "failed", str(exc), exc.status_code
        except RetryableFailure as exc:
            outcome, error, status_code = "retry", str(exc), exc.status_code
            retry_after_s = exc.retry_after_s
        except ChannelError as exc:  # neither kind: treat as final rather than loop on it
            outcome, error = "failed", str(exc)
        except Exception as exc:
            # A bug in an adapter must not crash the sender on every claim of this row (a
            # poison row): it is retried like a provider's failure, and dead after max_tries.
            log.exception("adapter raised", outbox_id=row.id, channel=row.channel)
            outcome, error = "retry", f"unexpected {type(exc).__name__}: {exc}"
        if outcome == "retry":
            delay_s = retry_delay_s(
                row.attempts,
                max_attempts=self.config.max_tries,
                first_delay_s=self.config.first_retry_s,
                span_s=self.config.retry_span_s,
            )
            if delay_s is None:
                outcome = "dead"
            else:
                delay_s = max(delay_s, retry_after_s or 0.0)
                retry_at = datetime.now(UTC) + timedelta(seconds=delay_s)
        elapsed_s = time.perf_counter() - started
        ATTEMPTS.labels(row.channel, outcome).inc()
        LATENCY.labels(row.channel).observe(elapsed_s)
        log.info(
            "outbox attempt",
            outbox_id=row.id,
            channel=row.channel,
            attempt=row.attempts,
            outcome=outcome,
            error=error,
        )
        attempt = Attempt(
            outbox_id=row.id,
            attempt=row.attempts,
            started_at=started_at,
            finished_at=datetime.now(UTC),
            outcome=outcome,
            status_code=status_code,
            latency_ms=round(elapsed_s * 1000),
            provider_id=provider_id,
            error=error,
        )
        return attempt, retry_at

    async def _deliver(self, row: OutboxRow, text: Rendered | None = None) -> str:
        """Hand the row to its channel's adapter; the provider's id for it."""
        message = text or render(row)
        if row.channel == "email" and self.channels.email is not None:
            return await self.channels.email.send(
                to=row.address,
                subject=message.subject or _SUBJECTS[row.kind],
                text=message.text,
                html=message.html,
                idempotency_key=row.idempotency_key,
            )
        if row.channel == "sms" and self.channels.sms is not None:
            # No idempotency key reaches Twilio (its API has none): see the module's docstring.
            receipt = await self.channels.sms.send(
                to=row.address, body=message.text, idempotency_key=row.idempotency_key
            )
            return receipt.provider_id
        raise PermanentFailure(row.channel, UNCONFIGURED.get(row.channel, "unknown channel"))
