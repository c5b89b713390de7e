"""Idempotency keys of create commands: claim a key, record the answer, replay it.

A key belongs to an organisation (primary key ``(org_id, key)``) and lives
:data:`KEY_TTL`. The caller runs :func:`claim`, its command and :func:`record` in **one
transaction**: the claim inserts the key's row, so a second transaction claiming the same key
waits on that row until the first commits, then finds its recorded answer (or, when the first
rolled back, claims the key itself). Two concurrent retries therefore never both create.

Expired keys are deleted as keys are claimed: the claimed key itself when it has expired, and
up to :data:`SWEEP_BATCH` other expired keys of the organisation, skipping rows another
transaction holds, so that the sweep never waits and never deadlocks.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final, NamedTuple

from psycopg import AsyncConnection
from psycopg.rows import class_row

from schemas.ids import OrgId
from store.rows import fetch_one

KEY_TTL: Final = timedelta(hours=24)
SWEEP_BATCH: Final = 100
PENDING_STATUS: Final = 0
"""The status of a claimed key whose command has not answered yet (never visible outside)."""


class Recorded(NamedTuple):
    """The first request's fingerprint, and the answer it got."""

    request_hash: bytes
    status: int
    response: bytes


async def claim(
    conn: AsyncConnection, org_id: OrgId, key: str, request_hash: bytes
) -> Recorded | None:
    """Claim ``key`` for this request, or return what it recorded before.

    None means the key is now this transaction's: run the command, then :func:`record`.
    Must run inside a transaction that also runs the command.
    """
    await conn.execute(
        "DELETE FROM idempotency_keys WHERE org_id = %s AND key = %s AND created_at < now() - %s",
        (org_id, key, KEY_TTL),
    )
    await conn.execute(
        "DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY("
        "  SELECT ctid FROM idempotency_keys WHERE org_id = %s AND created_at < now() - %s"
        "  LIMIT %s FOR UPDATE SKIP LOCKED))",
        (org_id, KEY_TTL, SWEEP_BATCH),
    )
    # A row deleted by another sweep between our INSERT and SELECT is simply claimed again.
    for _ in range(3):
        claimed = await (
            await conn.execute(
                "INSERT INTO idempotency_keys (org_id, key, request_hash, status, response)"
                " VALUES (%s, %s, %s, %s, '') ON CONFLICT (org_id, key) DO NOTHING RETURNING 1",
                (org_id, key, request_hash, PENDING_STATUS),
            )
        ).fetchone()
        if claimed is not None:
            return None
        # bytea columns load as bytes, the type Recorded promises.
        recorded = await fetch_one(
            conn,
            class_row(Recorded),
            "SELECT request_hash, status, response FROM idempotency_keys"
            " WHERE org_id = %s AND key = %s",
            (org_id, key),
        )
        if recorded is not None:
            return recorded
    raise RuntimeError(f"idempotency key {key!r} could be neither claimed nor read")


async def record(
    conn: AsyncConnection, org_id: OrgId, key: str, status: int, response: bytes
) -> None:
    """Store the answer of the command that claimed ``key`` (same transaction)."""
    await conn.execute(
        "UPDATE idempotency_keys SET status = %s, response = %s WHERE org_id = %s AND key = %s",
        (status, response, org_id, key),
    )


async def release(conn: AsyncConnection, org_id: OrgId, key: str) -> None:
    """Give ``key`` up (the command refused the request): a later request may use it."""
    await conn.execute("DELETE FROM idempotency_keys WHERE org_id = %s AND key = %s", (org_id, key))
