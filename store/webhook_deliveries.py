"""Webhook deliveries as the webhooks worker sees them: the fan-out's inserts, the delivery
loop's claims and records, and the announcement of endpoints it disabled.

* the fan-out (``workers/hooks``): :func:`subscribers` and :func:`insert_deliveries`, one row
  per (event, endpoint), ``ON CONFLICT DO NOTHING`` on that pair so a redelivered events entry
  stores nothing twice;
* the delivery loop: :func:`claim_due` (``FOR UPDATE SKIP LOCKED`` and a lease, like the
  outbox's), :func:`record_attempts` (each attempt, its delivery's new state and its
  endpoint's run of failures; a batch in one transaction) and :func:`take_unannounced`
  (endpoints disabled but not yet announced on the events stream).

The endpoints themselves, the delivery log and replays are :mod:`store.webhooks`'.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import msgspec
from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import class_row, dict_row

from schemas.ids import OrgId
from schemas.webhooks import AttemptOutcome, DeliveryState
from store.rows import fetch_all

# --- the fan-out ----------------------------------------------------------------------------


class Subscriber(msgspec.Struct, frozen=True, kw_only=True):
    """An enabled endpoint as the fan-out sees it."""

    id: int
    org_id: OrgId
    event_types: list[str]
    created_at: datetime


class NewDelivery(msgspec.Struct, frozen=True, kw_only=True):
    """A delivery the fan-out decided."""

    org_id: OrgId
    endpoint_id: int
    event_id: str
    event_type: str
    event_at: datetime
    webhook_id: str
    body: bytes


async def subscribers(conn: AsyncConnection[Any], org_ids: Sequence[OrgId]) -> list[Subscriber]:
    """The enabled endpoints of ``org_ids``."""
    if not org_ids:
        return []
    return await fetch_all(
        conn,
        class_row(Subscriber),
        "SELECT id, org_id, event_types, created_at FROM webhook_endpoints"
        " WHERE enabled AND org_id = ANY(%s::bigint[]) ORDER BY id",
        (sorted(set(org_ids)),),
    )


async def insert_deliveries(conn: AsyncConnection[Any], rows: Sequence[NewDelivery]) -> int:
    """Store ``rows``, skipping (event, endpoint) pairs already stored; the number of new rows."""
    if not rows:
        return 0
    async with conn.cursor() as cursor:
        await cursor.execute(
            "INSERT INTO webhook_deliveries"
            " (org_id, endpoint_id, event_id, event_type, event_at, webhook_id, body)"
            " SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::text[],"
            " %s::timestamptz[], %s::text[], %s::bytea[])"
            " ON CONFLICT (endpoint_id, event_id) DO NOTHING",
            (
                [r.org_id for r in rows],
                [r.endpoint_id for r in rows],
                [r.event_id for r in rows],
                [r.event_type for r in rows],
                [r.event_at for r in rows],
                [r.webhook_id for r in rows],
                [r.body for r in rows],
            ),
        )
        return cursor.rowcount


# --- the delivery loop ----------------------------------------------------------------------


class Claimed(msgspec.Struct, frozen=True, kw_only=True):
    """A delivery a sender holds, with what it needs to send it."""

    id: int
    org_id: OrgId
    endpoint_id: int
    event_id: str
    event_type: str
    webhook_id: str
    body: bytes
    attempts: int
    """This attempt's number in the log."""
    tries: int
    """This attempt's number since the last replay: what the backoff counts."""
    url: str
    secret: str
    previous_secret: str | None = None
    """The secret before the last rotation, while it still signs."""

    def __repr__(self) -> str:  # the secret stays out of logs
        return f"Claimed(id={self.id}, endpoint_id={self.endpoint_id}, attempts={self.attempts})"


async def claim_due(conn: AsyncConnection[Any], limit: int, lease_s: float) -> list[Claimed]:
    """Take up to ``limit`` due deliveries of enabled endpoints: pending ones, and ones whose
    sender's lease ran out. Each becomes ``sending``, one more attempt, due again after
    ``lease_s`` unless its sender records an outcome first. Rows another transaction holds are
    skipped, never waited for; run it in autocommit so the lease shows before anything is sent.
    """
    rows = await fetch_all(
        conn,
        dict_row,
        "UPDATE webhook_deliveries d SET state = 'sending', attempts = d.attempts + 1,"
        " tries = d.tries + 1, next_attempt_at = now() + make_interval(secs => %s),"
        " updated_at = now()"
        " FROM webhook_endpoints e"
        " WHERE e.id = d.endpoint_id AND d.id IN ("
        "   SELECT w.id FROM webhook_deliveries w JOIN webhook_endpoints p ON p.id = w.endpoint_id"
        "   WHERE w.state IN ('pending', 'sending') AND w.next_attempt_at <= now() AND p.enabled"
        "   ORDER BY w.next_attempt_at LIMIT %s FOR UPDATE OF w SKIP LOCKED)"
        " RETURNING d.id, d.org_id, d.endpoint_id, d.event_id, d.event_type, d.webhook_id,"
        " d.body, d.attempts, d.tries, e.url, e.secret,"
        " CASE WHEN e.previous_secret_until > now() THEN e.previous_secret END"
        " AS previous_secret",
        (lease_s, limit),
    )
    return [Claimed(**row) for row in rows]


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """One finished attempt and what follows from it."""

    delivery_id: int
    endpoint_id: int
    attempt: int
    started_at: datetime
    finished_at: datetime
    outcome: AttemptOutcome
    status_code: int | None = None
    latency_ms: int
    address: str | None = None
    error: str | None = None
    state: DeliveryState
    """``delivered``, ``pending`` (a retry) or ``dead``."""
    next_attempt_at: datetime | None = None
    """For a retry."""


EndpointChange = Literal["none", "disabled"]


async def record_attempt(
    conn: AsyncConnection[Any], outcome: Outcome, *, disable_after: int
) -> tuple[bool, EndpointChange]:
    """Store the attempt and move its delivery and endpoint on, in one transaction.

    The delivery moves only if this sender still holds it (``sending`` at this attempt);
    otherwise another sender took it over after the lease ran out, and only the attempt is
    stored (nothing at all when the delivery was deleted with its endpoint meanwhile). A
    delivered attempt clears the endpoint's run of failures; any other lengthens it,
    and the endpoint is disabled (to be announced, :func:`take_unannounced`) once the run
    reaches ``disable_after``, or at once on ``410 Gone``. Answers whether the delivery moved,
    and ``"disabled"`` when this attempt disabled the endpoint.
    """
    [result] = await record_attempts(conn, [outcome], disable_after=disable_after)
    return result


async def record_attempts(
    conn: AsyncConnection[Any], outcomes: Sequence[Outcome], *, disable_after: int
) -> list[tuple[bool, EndpointChange]]:
    """:func:`record_attempt` for each of ``outcomes``, in order, in one transaction (one
    commit for a sender's whole batch).

    The attempts go into the log in one statement. A batch that was all delivered (the usual
    one) then takes two more whatever its size; any other outcome needs each attempt in order,
    since a failure lengthens its endpoint's run and a delivery ends it, so such a batch takes
    two more statements per attempt.
    """
    if not outcomes:
        return []
    async with conn.transaction(), conn.cursor() as cursor:
        # What each attempt was does not depend on the others: logged set-wise first.
        await _insert_attempts(cursor, outcomes)
        if all(o.outcome == "delivered" for o in outcomes):
            return await _record_delivered(cursor, outcomes)
        return [await _record(cursor, o, disable_after) for o in outcomes]


async def _record_delivered(
    cursor: AsyncCursor[Any], outcomes: Sequence[Outcome]
) -> list[tuple[bool, EndpointChange]]:
    """:func:`_record` for a batch of delivered attempts, set-wise: the same rows and the same
    answers as one call per attempt."""
    ids = [o.delivery_id for o in outcomes]
    await cursor.execute(
        "UPDATE webhook_deliveries d SET state = 'delivered', last_status_code = u.status_code,"
        " last_error = NULL, updated_at = now()"
        " FROM unnest(%s::bigint[], %s::integer[], %s::integer[])"
        "   AS u(id, attempt, status_code)"
        " WHERE d.id = u.id AND d.state = 'sending' AND d.attempts = u.attempt"
        " RETURNING d.id",
        (ids, [o.attempt for o in outcomes], [o.status_code for o in outcomes]),
    )
    moved = {row[0] for row in await cursor.fetchall()}
    endpoints = sorted({o.endpoint_id for o in outcomes if o.delivery_id in moved})
    if endpoints:
        # Locked in id order, as the per-attempt path locks them, so that two senders never
        # deadlock; only endpoints with a run of failures to end are written at all.
        await cursor.execute(
            "UPDATE webhook_endpoints SET consecutive_failures = 0"
            " WHERE id IN (SELECT id FROM webhook_endpoints WHERE id = ANY(%s)"
            "   AND consecutive_failures <> 0 ORDER BY id FOR UPDATE)",
            (endpoints,),
        )
    return [(o.delivery_id in moved, "none") for o in outcomes]


async def _insert_attempts(cursor: AsyncCursor[Any], outcomes: Sequence[Outcome]) -> None:
    """Store the attempts of ``outcomes`` in the log (an attempt already there is kept)."""
    await cursor.execute(
        # A delivery may be gone with its endpoint (deleted while this attempt ran).
        "INSERT INTO webhook_attempts (delivery_id, attempt, started_at, finished_at,"
        " outcome, status_code, latency_ms, address, error)"
        " SELECT a.* FROM unnest(%s::bigint[], %s::integer[], %s::timestamptz[],"
        "   %s::timestamptz[], %s::text[], %s::integer[], %s::integer[], %s::text[], %s::text[])"
        "   AS a(delivery_id, attempt, started_at, finished_at, outcome, status_code,"
        "   latency_ms, address, error)"
        " WHERE EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.id = a.delivery_id)"
        " ON CONFLICT DO NOTHING",
        (
            [o.delivery_id for o in outcomes],
            [o.attempt for o in outcomes],
            [o.started_at for o in outcomes],
            [o.finished_at for o in outcomes],
            [o.outcome for o in outcomes],
            [o.status_code for o in outcomes],
            [o.latency_ms for o in outcomes],
            [o.address for o in outcomes],
            [o.error for o in outcomes],
        ),
    )


async def _record(
    cursor: AsyncCursor[Any], outcome: Outcome, disable_after: int
) -> tuple[bool, EndpointChange]:
    """Move the delivery of an attempt already in the log, and its endpoint's run of failures."""
    await cursor.execute(
        "UPDATE webhook_deliveries SET state = %s, last_status_code = %s, last_error = %s,"
        " next_attempt_at = coalesce(%s, next_attempt_at), updated_at = now()"
        " WHERE id = %s AND state = 'sending' AND attempts = %s",
        (
            outcome.state,
            outcome.status_code,
            outcome.error,
            outcome.next_attempt_at,
            outcome.delivery_id,
            outcome.attempt,
        ),
    )
    if cursor.rowcount != 1:
        return False, "none"
    if outcome.outcome == "delivered":
        await cursor.execute(
            "UPDATE webhook_endpoints SET consecutive_failures = 0"
            " WHERE id = %s AND consecutive_failures <> 0",
            (outcome.endpoint_id,),
        )
        return True, "none"
    gone = outcome.outcome == "gone"
    reason = (
        "the receiver answered 410 Gone"
        if gone
        else f"{disable_after} failed attempts in a row; the last: {outcome.error or '-'}"
    )
    await cursor.execute(
        "UPDATE webhook_endpoints SET consecutive_failures = consecutive_failures + 1,"
        " enabled = enabled AND NOT (%(gone)s OR consecutive_failures + 1 >= %(limit)s),"
        " disabled_at = CASE WHEN enabled AND (%(gone)s OR consecutive_failures + 1"
        "   >= %(limit)s) THEN now() ELSE disabled_at END,"
        " disabled_reason = CASE WHEN enabled AND (%(gone)s OR consecutive_failures + 1"
        "   >= %(limit)s) THEN %(reason)s ELSE disabled_reason END,"
        " disabled_announced = disabled_announced AND NOT (enabled AND (%(gone)s"
        "   OR consecutive_failures + 1 >= %(limit)s)),"
        " updated_at = now()"
        " WHERE id = %(id)s RETURNING NOT enabled AND disabled_at = now()",
        {
            "gone": gone,
            "limit": disable_after,
            "reason": reason[:500],
            "id": outcome.endpoint_id,
        },
    )
    row = await cursor.fetchone()
    # now() is the transaction's start: equal only if this statement disabled it.
    return True, "disabled" if row is not None and row[0] else "none"


class Unannounced(msgspec.Struct, frozen=True, kw_only=True):
    """An endpoint disabled by the sender whose event is not on the stream yet."""

    id: int
    org_id: OrgId
    url: str
    disabled_at: datetime
    disabled_reason: str
    consecutive_failures: int


async def take_unannounced(conn: AsyncConnection[Any], limit: int = 100) -> list[Unannounced]:
    """Within the caller's transaction: lock up to ``limit`` endpoints disabled but not yet
    announced, and mark them announced. The caller publishes their events before it commits
    (a failure rolls the marks back, so they are announced on a later pass: at least once)."""
    return await fetch_all(
        conn,
        class_row(Unannounced),
        "UPDATE webhook_endpoints SET disabled_announced = true"
        " WHERE id IN (SELECT id FROM webhook_endpoints WHERE NOT disabled_announced"
        "   ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)"
        " RETURNING id, org_id, url, disabled_at, coalesce(disabled_reason, '') AS"
        " disabled_reason, consecutive_failures",
        (limit,),
    )
