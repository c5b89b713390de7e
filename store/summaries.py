"""The weekly summary's schedule: which organisations want one, and which weeks went out.

:func:`with_recipients` lists the organisations that named recipients (``orgs.summary_emails``)
with their time zones; :func:`queued_weeks` says which of some (organisation, week) pairs were
queued already; :func:`claim_week` takes one for the caller's transaction, so that of two
processes due at once exactly one queues it (the other's insert waits for the first's commit,
then finds the row).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row, tuple_row

from schemas.ids import OrgId
from store.rows import fetch_all


@dataclass(frozen=True)
class Subscribed:
    """An organisation with somewhere to send its summary."""

    org_id: OrgId
    time_zone: str


async def with_recipients(conn: AsyncConnection[Any]) -> list[Subscribed]:
    """The organisations whose ``summary_emails`` are not empty, by id."""
    return await fetch_all(
        conn,
        class_row(Subscribed),
        "SELECT id AS org_id, timezone AS time_zone FROM orgs"
        " WHERE cardinality(summary_emails) > 0 ORDER BY id",
    )


async def queued_weeks(
    conn: AsyncConnection[Any], weeks: Sequence[tuple[OrgId, date]]
) -> set[tuple[OrgId, date]]:
    """Which of ``weeks`` (organisation, Monday) had their summary queued; one query."""
    if not weeks:
        return set()
    rows = await fetch_all(
        conn,
        tuple_row,
        "SELECT s.org_id, s.week_start FROM weekly_summaries s"
        " JOIN unnest(%s::bigint[], %s::date[]) AS w (org_id, week_start)"
        "   ON s.org_id = w.org_id AND s.week_start = w.week_start",
        ([org for org, _ in weeks], [week for _, week in weeks]),
    )
    return {(OrgId(org), week) for org, week in rows}


async def claim_week(
    conn: AsyncConnection[Any], org_id: OrgId, week_start: date, recipients: int
) -> bool:
    """Record the organisation's summary of the week starting ``week_start`` as queued; False
    when it already was (by another process, or before a restart). Call it in the transaction
    that queues the emails: a rollback takes the claim back with them."""
    async with conn.cursor() as cursor:
        await cursor.execute(
            "INSERT INTO weekly_summaries (org_id, week_start, recipients) VALUES (%s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (org_id, week_start, recipients),
        )
        return cursor.rowcount == 1
