"""The notification outbox: the notify worker's inserts, a sender's claims, an order's list.

:func:`insert_many` writes decided messages with ``ON CONFLICT DO NOTHING``: a message whose
idempotency key is stored (a redelivered events entry), or a second message of a kind an order
already got on that channel (index ``outbox_once``), is skipped. :func:`claim_due` hands due
rows to one sender: ``FOR UPDATE SKIP LOCKED`` so two senders never take the same row, and a
lease (``next_attempt_at`` moved ahead) so a row whose sender died becomes due again.
:func:`load_for_decide` reads, in two queries for a whole batch, what the worker's decide needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Literal

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from schemas.ids import OrderId, OrgId
from schemas.notifications import Notification, OrderContact, OutboxState, Sent
from store.notification_rules import OrderFacts
from store.rows import fetch_all

OUTBOX_CHANNEL: Final = "lastmile_outbox"
"""The PostgreSQL notification channel :func:`insert_many` notifies when it stored new rows;
senders ``LISTEN`` on it so a new message does not wait for their next idle poll."""


class OutboxRow(Notification, frozen=True, kw_only=True):
    """A stored message with its delivery state."""

    id: int
    state: OutboxState
    attempts: int
    next_attempt_at: datetime
    last_error: str | None = None
    provider_id: str | None = None
    updated_at: datetime


_COLUMNS: Final = (
    "org_id, order_id, event_id, kind, recipient_kind, channel, address, template, language,"
    " idempotency_key, created_at, window_lower, window_upper"
)
_RETURNED: Final = (
    "id, org_id, order_id, event_id, kind, recipient_kind, channel, address, template, language,"
    " idempotency_key, created_at, window_lower, window_upper, state, attempts, next_attempt_at,"
    " last_error, provider_id, updated_at"
)


def _stamp(epoch_s: float | None) -> datetime | None:
    return None if epoch_s is None else datetime.fromtimestamp(epoch_s, UTC)


def _epoch(at: datetime | None) -> float | None:
    return None if at is None else at.timestamp()


def _row(row: dict[str, Any]) -> OutboxRow:
    lower, upper = row.pop("window_lower"), row.pop("window_upper")
    return OutboxRow(**row, window_lower_epoch_s=_epoch(lower), window_upper_epoch_s=_epoch(upper))


async def insert_many(conn: AsyncConnection[Any], notifications: Sequence[Notification]) -> int:
    """Store ``notifications``, skipping any already stored; the number of new rows."""
    if not notifications:
        return 0
    async with conn.cursor() as cursor:
        await cursor.execute(
            f"INSERT INTO outbox ({_COLUMNS})"
            " SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::text[], %s::text[],"
            " %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[],"
            " %s::timestamptz[], %s::timestamptz[])"
            " ON CONFLICT DO NOTHING",
            (
                [n.org_id for n in notifications],
                [n.order_id for n in notifications],
                [n.event_id for n in notifications],
                [n.kind for n in notifications],
                [n.recipient_kind for n in notifications],
                [n.channel for n in notifications],
                [n.address for n in notifications],
                [n.template for n in notifications],
                [n.language for n in notifications],
                [n.idempotency_key for n in notifications],
                [n.created_at for n in notifications],
                [_stamp(n.window_lower_epoch_s) for n in notifications],
                [_stamp(n.window_upper_epoch_s) for n in notifications],
            ),
        )
        new = cursor.rowcount
        if new:
            # Wakes listening senders when the transaction commits (never before: PostgreSQL
            # delivers notifications at commit, and drops them on rollback).
            await cursor.execute("SELECT pg_notify(%s, '')", (OUTBOX_CHANNEL,))
        return new


async def claim_due(
    conn: AsyncConnection[Any],
    limit: int,
    lease_s: float = 60.0,
    channels: Sequence[str] | None = None,
) -> list[OutboxRow]:
    """Take up to ``limit`` due rows for this sender: pending ones, and ones whose sender's
    lease ran out, of ``channels`` only when given (those this sender can send on; rows of
    other channels stay as they are). Each becomes ``sending``, one more attempt, due again
    after ``lease_s`` unless the sender records an outcome first. Rows another open transaction
    claims are skipped, never waited for. Run it in autocommit (or commit at once) so the lease
    is visible to other senders before anything is sent."""
    wanted = None if channels is None else list(channels)
    if wanted == []:
        return []
    return [
        _row(row)
        for row in await fetch_all(
            conn,
            dict_row,
            f"UPDATE outbox SET state = 'sending', attempts = attempts + 1,"
            f" next_attempt_at = now() + make_interval(secs => %s), updated_at = now()"
            f" WHERE id IN (SELECT id FROM outbox WHERE state IN ('pending', 'sending')"
            f"   AND next_attempt_at <= now()"
            f"   AND (%s::text[] IS NULL OR channel = ANY(%s::text[]))"
            f"   ORDER BY next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED)"
            f" RETURNING {_RETURNED}",
            (lease_s, wanted, wanted, limit),
        )
    ]


async def list_for_order(
    conn: AsyncConnection[Any], org_id: OrgId, order_id: OrderId
) -> list[OutboxRow]:
    """An order's messages, oldest first."""
    return [
        _row(row)
        for row in await fetch_all(
            conn,
            dict_row,
            f"SELECT {_RETURNED} FROM outbox WHERE org_id = %s AND order_id = %s"
            " ORDER BY created_at, id",
            (org_id, order_id),
        )
    ]


async def load_for_decide(
    conn: AsyncConnection[Any], orders: Iterable[tuple[OrgId, OrderId]]
) -> tuple[dict[OrderId, OrderContact], dict[OrderId, OrderFacts], dict[OrderId, list[Sent]]]:
    """For a batch's orders: each order's contact and state, what its messages tell of it,
    and the messages it already has in the outbox. Two queries."""
    pairs = sorted(set(orders))
    if not pairs:
        return {}, {}, {}
    orgs = [org for org, _ in pairs]
    ids = [order for _, order in pairs]
    contacts: dict[OrderId, OrderContact] = {}
    facts: dict[OrderId, OrderFacts] = {}
    for row in await fetch_all(
        conn,
        dict_row,
        # A number that replied STOP to this organisation (sms_opt_outs, migration 0010) is
        # no number to text: it reads as none, so the customer hears by email or not at all.
        "SELECT o.org_id, o.id AS order_id, o.status, o.email,"
        " CASE WHEN EXISTS (SELECT 1 FROM sms_opt_outs x WHERE x.org_id = o.org_id"
        "   AND x.phone = regexp_replace(o.phone, '[^0-9+]', '', 'g')) THEN NULL"
        "   ELSE o.phone END AS phone,"
        " o.notifications_opt_out AS opted_out,"
        " o.external_ref AS ref, o.address, o.customer_name, o.language"
        " FROM unnest(%s::bigint[], %s::bigint[]) AS w (org_id, order_id)"
        " JOIN orders o ON o.org_id = w.org_id AND o.id = w.order_id",
        (orgs, ids),
    ):
        told = OrderFacts(
            org_id=row["org_id"],
            order_id=row["order_id"],
            ref=row.pop("ref"),
            address=row.pop("address"),
            customer_name=row.pop("customer_name"),
            language=row.pop("language"),
        )
        contact = OrderContact(**row)
        contacts[contact.order_id] = contact
        facts[contact.order_id] = told
    sent: dict[OrderId, list[Sent]] = {}
    for row in await fetch_all(
        conn,
        dict_row,
        "SELECT order_id, kind, channel, recipient_kind, created_at, window_lower, window_upper"
        " FROM outbox WHERE order_id = ANY(%s::bigint[]) ORDER BY created_at, id",
        (list(contacts),),
    ):
        order_id = OrderId(row.pop("order_id"))
        lower, upper = row.pop("window_lower"), row.pop("window_upper")
        sent.setdefault(order_id, []).append(
            Sent(**row, window_lower_epoch_s=_epoch(lower), window_upper_epoch_s=_epoch(upper))
        )
    return contacts, facts, sent


# --- The sender's side ---------------------------------------------------------------------------

AttemptOutcome = Literal["sent", "retry", "failed", "dead"]


class Attempt(msgspec.Struct, frozen=True, kw_only=True):
    """One attempt to send an outbox row, as ``outbox_attempts`` stores it."""

    outbox_id: int
    attempt: int
    started_at: datetime
    finished_at: datetime
    outcome: AttemptOutcome
    status_code: int | None = None
    latency_ms: int
    provider_id: str | None = None
    error: str | None = None


async def note_unsendable(conn: AsyncConnection[Any], channel: str, reason: str) -> int:
    """Write ``reason`` as ``last_error`` of ``channel``'s pending rows (they stay pending, to
    be sent once the channel is configured); the number of rows changed."""
    async with conn.cursor() as cursor:
        await cursor.execute(
            "UPDATE outbox SET last_error = %s, updated_at = now()"
            " WHERE state = 'pending' AND channel = %s AND last_error IS DISTINCT FROM %s",
            (reason, channel, reason),
        )
        return cursor.rowcount


_INSERT_ATTEMPT: Final = (
    "INSERT INTO outbox_attempts (outbox_id, attempt, started_at, finished_at, outcome,"
    " status_code, latency_ms, provider_id, error)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
)
"""Takes an :class:`Attempt` as ``msgspec.structs.astuple`` gives it (the columns are its
fields, in order)."""
_MOVE_ROW: Final = (
    "UPDATE outbox SET state = %s, last_error = %s,"
    " provider_id = coalesce(%s, provider_id),"
    " next_attempt_at = coalesce(%s, next_attempt_at), updated_at = now()"
    " WHERE id = %s AND state = 'sending' AND attempts = %s"
)
_ATTEMPT_COLUMNS: Final = (
    "outbox_id, attempt, started_at, finished_at, outcome, status_code, latency_ms,"
    " provider_id, error"
)


def _move_values(a: Attempt, next_attempt_at: datetime | None) -> tuple[Any, ...]:
    """The move of ``a``'s row as :data:`_MOVE_ROW` takes it (``retry``: pending again)."""
    state = "pending" if a.outcome == "retry" else a.outcome
    return (state, a.error, a.provider_id, next_attempt_at, a.outbox_id, a.attempt)


async def record_attempt(
    conn: AsyncConnection[Any], attempt: Attempt, next_attempt_at: datetime | None = None
) -> bool:
    """Store ``attempt`` and move its outbox row on, in one transaction: ``sent`` keeps the
    provider id; ``retry`` makes the row pending again at ``next_attempt_at``; ``failed`` and
    ``dead`` are final. The row moves only if this sender still holds it (still ``sending``
    at this attempt number); False when another sender took it over after the lease ran out
    (the attempt is stored all the same)."""
    async with conn.transaction(), conn.cursor() as cursor:
        await cursor.execute(_INSERT_ATTEMPT, msgspec.structs.astuple(attempt))
        await cursor.execute(_MOVE_ROW, _move_values(attempt, next_attempt_at))
        return cursor.rowcount == 1


async def record_attempts(
    conn: AsyncConnection[Any], attempts: Sequence[tuple[Attempt, datetime | None]]
) -> None:
    """:func:`record_attempt` for a sender's whole batch (each attempt with its
    ``next_attempt_at``), in one transaction and two pipelined statements instead of a
    transaction per row; each row still moves only if this sender holds it."""
    if not attempts:
        return
    async with conn.transaction(), conn.cursor() as cursor:
        await cursor.executemany(_INSERT_ATTEMPT, [msgspec.structs.astuple(a) for a, _ in attempts])
        await cursor.executemany(_MOVE_ROW, [_move_values(a, at) for a, at in attempts])


async def list_attempts(conn: AsyncConnection[Any], outbox_id: int) -> list[Attempt]:
    """An outbox row's attempts, first first."""
    return (await attempts_of(conn, [outbox_id])).get(outbox_id, [])


# --- What people read: the API, the metrics ------------------------------------------------------


async def list_for_recipient(
    conn: AsyncConnection[Any],
    org_id: OrgId,
    address: str,
    start: datetime,
    end: datetime,
    *,
    after: int = 0,
    limit: int = 100,
) -> list[OutboxRow]:
    """The messages to ``address`` (a phone, an email address or an endpoint id, as stored)
    created in ``[start, end)``, by id, from the first id above ``after``; at most ``limit``."""
    return [
        _row(row)
        for row in await fetch_all(
            conn,
            dict_row,
            f"SELECT {_RETURNED} FROM outbox WHERE org_id = %s AND address = %s"
            " AND created_at >= %s AND created_at < %s AND id > %s ORDER BY id LIMIT %s",
            (org_id, address, start, end, after, limit),
        )
    ]


async def attempts_of(
    conn: AsyncConnection[Any], outbox_ids: Sequence[int]
) -> dict[int, list[Attempt]]:
    """The attempts of each of ``outbox_ids``, first first (one query; rows never tried are
    absent)."""
    found: dict[int, list[Attempt]] = {}
    if not outbox_ids:
        return found
    for row in await fetch_all(
        conn,
        dict_row,
        f"SELECT {_ATTEMPT_COLUMNS} FROM outbox_attempts WHERE outbox_id = ANY(%s::bigint[])"
        " ORDER BY outbox_id, attempt",
        (list(outbox_ids),),
    ):
        found.setdefault(row["outbox_id"], []).append(Attempt(**row))
    return found


async def count_by_state(conn: AsyncConnection[Any]) -> dict[tuple[str, str], int]:
    """How many outbox rows each (channel, state) has now, every organisation together."""
    return {
        (row["channel"], row["state"]): row["rows"]
        for row in await fetch_all(
            conn,
            dict_row,
            "SELECT channel, state, count(*) AS rows FROM outbox GROUP BY channel, state",
        )
    }


async def keys_of_org(conn: AsyncConnection[Any], org_id: OrgId, keys: Sequence[str]) -> set[str]:
    """Which of the idempotency ``keys`` belong to ``org_id``'s messages."""
    if not keys:
        return set()
    return {
        row["idempotency_key"]
        for row in await fetch_all(
            conn,
            dict_row,
            "SELECT idempotency_key FROM outbox WHERE org_id = %s"
            " AND idempotency_key = ANY(%s::text[])",
            (org_id, list(keys)),
        )
    }


async def oldest_due_s(conn: AsyncConnection[Any]) -> dict[str, float]:
    """Per channel, how long the longest-waiting due row (pending, or sending with its lease
    run out) has been due, in seconds; channels with nothing due are absent."""
    return {
        row["channel"]: float(row["waited_s"])
        for row in await fetch_all(
            conn,
            dict_row,
            "SELECT channel, extract(epoch FROM now() - min(next_attempt_at)) AS waited_s"
            " FROM outbox WHERE state IN ('pending', 'sending') AND next_attempt_at <= now()"
            " GROUP BY channel",
        )
    }
