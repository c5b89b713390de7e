"""Planning jobs: the fair queue the planner processes take them from, and their states.

A plan goes ``queued → running → done | failed | cancelled``; a queued plan may also go
straight to ``cancelled`` (it never runs), and a running plan whose planner stopped goes back
to ``queued`` (:func:`release_plan`) or is taken over once its lease runs out.

The queue is this table (the ``plans`` stream only wakes the planners). :func:`claim_next` is
the one way a plan starts, and it is fair between organisations:

* at most one running plan per organisation (a partial unique index enforces it, so two
  planners racing cannot both start one);
* organisations are served in turn: of those with a plan waiting, the one whose latest plan
  started longest ago (or never) goes first, and its oldest plan starts;
* a plan whose planner was lost (its lease ran out) is taken over before any other, unless
  it has been started :data:`MAX_CLAIMS` times already (it fails: something in it kills
  planners) or its cancel was asked for (it ends cancelled, without routes).

Claims are serialised by a transaction-scoped advisory lock: a claim is one short transaction,
and a planner claims only when it is idle, so the lock is never a bottleneck.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

from psycopg import AsyncConnection
from psycopg.rows import class_row, scalar_row
from psycopg.types.json import Jsonb

from schemas.ids import OrderId, OrgId, PlanId, RouteId
from store.rows import fetch_all, fetch_one, returned

MAX_CLAIMS = 3
"""How often a plan may be started before a lost planner makes it fail instead."""

CLAIM_LOCK = 0x706C616E
"""The advisory lock key that serialises claims (``plan`` in ASCII)."""

Lease = Literal["held", "cancel", "lost"]
"""What renewing a lease found: keep going, stop (a cancel was asked for), or the plan is no
longer this planner's (another took it over, or it ended)."""


@dataclass(frozen=True)
class PlanRow:
    """A planning job as stored; ``result`` is the JSON-decoded plan once done."""

    id: PlanId
    org_id: OrgId
    day: date
    status: str
    options: dict[str, Any]
    order_ids: list[OrderId] | None
    progress: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    cancel_requested_at: datetime | None
    claims: int


_PLAN_COLUMNS = (
    "id, org_id, day, status, options, order_ids, progress, result, error,"
    " created_at, started_at, finished_at, cancel_requested_at, claims"
)

_PLAN = class_row(PlanRow)


async def create_plan(
    conn: AsyncConnection,
    org_id: OrgId,
    day: date,
    options: dict[str, Any],
    order_ids: Sequence[OrderId] | None,
) -> PlanRow:
    """Queue a planning job."""
    plan = await fetch_one(
        conn,
        _PLAN,
        f"INSERT INTO plans (org_id, day, options, order_ids) VALUES (%s, %s, %s, %s)"
        f" RETURNING {_PLAN_COLUMNS}",
        (org_id, day, Jsonb(options), list(order_ids) if order_ids is not None else None),
    )
    return returned(plan)


async def get_plan(conn: AsyncConnection, org_id: OrgId, plan_id: PlanId) -> PlanRow | None:
    """A plan of ``org_id``, or None."""
    return await fetch_one(
        conn,
        _PLAN,
        f"SELECT {_PLAN_COLUMNS} FROM plans WHERE id = %s AND org_id = %s",
        (plan_id, org_id),
    )


async def list_plans(conn: AsyncConnection, org_id: OrgId, day: date, limit: int) -> list[PlanRow]:
    """The latest ``limit`` plans of ``org_id`` for ``day``, newest first."""
    return await fetch_all(
        conn,
        _PLAN,
        f"SELECT {_PLAN_COLUMNS} FROM plans WHERE org_id = %s AND day = %s"
        " ORDER BY id DESC LIMIT %s",
        (org_id, day, limit),
    )


async def plan_by_id(conn: AsyncConnection, plan_id: PlanId) -> PlanRow | None:
    """A plan of any organisation (for the planner, which serves them all), or None."""
    return await fetch_one(
        conn, _PLAN, f"SELECT {_PLAN_COLUMNS} FROM plans WHERE id = %s", (plan_id,)
    )


async def mark_enqueued(conn: AsyncConnection, plan_id: PlanId) -> None:
    """Record that the plan's wake-up is on the ``plans`` stream."""
    await conn.execute(
        "UPDATE plans SET enqueued_at = now() WHERE id = %s AND enqueued_at IS NULL", (plan_id,)
    )


async def lock_unqueued_plans(
    conn: AsyncConnection, older_than: timedelta, limit: int = 100
) -> list[tuple[OrgId, PlanId]]:
    """Queued plans whose wake-up never reached the stream, locked for this transaction (others
    skip them); the caller appends each job and marks it before committing."""
    cursor = await conn.execute(
        "SELECT org_id, id FROM plans WHERE enqueued_at IS NULL AND status = 'queued'"
        " AND created_at < now() - %s ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED",
        (older_than, limit),
    )
    return [(OrgId(org_id), PlanId(plan_id)) for org_id, plan_id in await cursor.fetchall()]


_LOST = "status = 'running' AND coalesce(lease_until, '-infinity') < now()"

_NEXT = f"""
SELECT p.id FROM plans p
WHERE (p.status = 'queued'
       AND NOT EXISTS (SELECT 1 FROM plans r WHERE r.org_id = p.org_id AND r.status = 'running'))
   OR (p.{_LOST})
ORDER BY p.status = 'running' DESC,
         (SELECT max(s.started_at) FROM plans s WHERE s.org_id = p.org_id) NULLS FIRST,
         p.created_at, p.id
LIMIT 1
FOR UPDATE SKIP LOCKED
"""


async def claim_next(
    conn: AsyncConnection, planner: str, lease: timedelta, *, max_claims: int = MAX_CLAIMS
) -> PlanRow | None:
    """Start the next plan in the fair order above for ``planner``, holding it for ``lease``;
    None when no plan may start now.

    Lost plans that may not be taken over are closed on the way: cancelled ones end
    ``cancelled``, those started ``max_claims`` times end ``failed`` with the reason.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (CLAIM_LOCK,))
        await conn.execute(
            "UPDATE plans SET status = 'cancelled', finished_at = now(), lease_until = NULL,"
            " error = 'cancelled while its planner was lost; no routes were kept'"
            f" WHERE {_LOST} AND cancel_requested_at IS NOT NULL"
        )
        await conn.execute(
            "UPDATE plans SET status = 'failed', finished_at = now(), lease_until = NULL,"
            " error = 'the planner gave up on this plan: its planner stopped without an answer '"
            " || claims || ' times while computing it'"
            f" WHERE {_LOST} AND claims >= %s",
            (max_claims,),
        )
        plan_id = await fetch_one(conn, scalar_row, _NEXT)
        if plan_id is None:
            return None
        return await fetch_one(
            conn,
            _PLAN,
            "UPDATE plans SET status = 'running', started_at = now(), progress = '{}',"
            " claimed_by = %s, lease_until = now() + %s, claims = claims + 1"
            f" WHERE id = %s RETURNING {_PLAN_COLUMNS}",
            (planner, lease, plan_id),
        )


async def renew_lease(
    conn: AsyncConnection, plan_id: PlanId, planner: str, lease: timedelta
) -> Lease:
    """Extend ``planner``'s hold on its running plan; whether to go on, stop, or give it up."""
    cancel = await fetch_one(
        conn,
        scalar_row,
        "UPDATE plans SET lease_until = now() + %s"
        " WHERE id = %s AND claimed_by = %s AND status = 'running'"
        " RETURNING cancel_requested_at IS NOT NULL",
        (lease, plan_id, planner),
    )
    if cancel is None:
        return "lost"
    return "cancel" if cancel else "held"


async def save_progress(
    conn: AsyncConnection, plan_id: PlanId, planner: str, progress: dict[str, Any]
) -> None:
    """Record how far ``planner``'s search of its running plan has come."""
    await conn.execute(
        "UPDATE plans SET progress = %s WHERE id = %s AND claimed_by = %s AND status = 'running'",
        (Jsonb(progress), plan_id, planner),
    )


async def finish_plan(
    conn: AsyncConnection,
    plan_id: PlanId,
    planner: str,
    result: dict[str, Any],
    progress: dict[str, Any],
) -> str | None:
    """Store the result of ``planner``'s running plan: ``done``, or ``cancelled`` when a cancel
    was asked for before it was stored (the routes are kept either way). The status stored;
    None when the plan was no longer this planner's."""
    return await fetch_one(
        conn,
        scalar_row,
        "UPDATE plans SET result = %s, progress = %s, finished_at = now(), lease_until = NULL,"
        " status = CASE WHEN cancel_requested_at IS NULL THEN 'done' ELSE 'cancelled' END"
        " WHERE id = %s AND claimed_by = %s AND status = 'running' RETURNING status",
        (Jsonb(result), Jsonb(progress), plan_id, planner),
    )


async def release_plan(conn: AsyncConnection, plan_id: PlanId, planner: str) -> bool:
    """Queue ``planner``'s running plan again (the planner is stopping): another starts it
    afresh, and this start does not count against it. False when it stays running: it is no
    longer this planner's, or its cancel was asked for (store what was found instead)."""
    released = await fetch_one(
        conn,
        scalar_row,
        "UPDATE plans SET status = 'queued', started_at = NULL, progress = '{}',"
        " claimed_by = NULL, lease_until = NULL, claims = greatest(claims - 1, 0)"
        " WHERE id = %s AND claimed_by = %s AND status = 'running'"
        " AND cancel_requested_at IS NULL RETURNING id",
        (plan_id, planner),
    )
    return released is not None


async def fail_plan(conn: AsyncConnection, plan_id: PlanId, error: str) -> None:
    """Mark a queued or running plan failed with a reason people can read."""
    await conn.execute(
        "UPDATE plans SET status = 'failed', error = %s, finished_at = now(), lease_until = NULL"
        " WHERE id = %s AND status IN ('queued', 'running')",
        (error, plan_id),
    )


async def cancel_plan(conn: AsyncConnection, org_id: OrgId, plan_id: PlanId) -> PlanRow | None:
    """Ask for a plan of ``org_id`` to be cancelled; the plan as it now is, or None.

    A queued plan is ``cancelled`` at once (it never runs); a running one keeps running until
    its planner sees ``cancel_requested_at`` and stores its best routes so far as
    ``cancelled``. A plan that has ended is returned unchanged, so asking again is harmless.
    """
    cancelled = await fetch_one(
        conn,
        _PLAN,
        "UPDATE plans SET cancel_requested_at = coalesce(cancel_requested_at, now()),"
        " finished_at = CASE WHEN status = 'queued' THEN now() ELSE finished_at END,"
        " status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END"
        " WHERE id = %s AND org_id = %s AND status IN ('queued', 'running')"
        f" RETURNING {_PLAN_COLUMNS}",
        (plan_id, org_id),
    )
    return cancelled if cancelled is not None else await get_plan(conn, org_id, plan_id)


async def models_of_routes(
    conn: AsyncConnection, org_id: OrgId, route_ids: Sequence[RouteId]
) -> list[int]:
    """The learned models the plans of ``route_ids`` were made with, each once, by id (a plan
    made at the configured speed, or without an outcome, adds nothing).

    One indexed read per call (``routes`` and ``plans`` by primary key): re-optimisation asks
    on every insertion, move and re-sequence, so that a route is re-timed with its plan's model.
    """
    return await fetch_all(
        conn,
        scalar_row,
        "SELECT DISTINCT (p.result->>'model_id')::bigint FROM routes r"
        " JOIN plans p ON p.org_id = r.org_id AND p.id = r.plan_id"
        " WHERE r.org_id = %s AND r.id = ANY(%s) AND p.result->>'model_id' IS NOT NULL"
        " ORDER BY 1",
        (org_id, list(route_ids)),
    )
