"""Webhook endpoints, the delivery log and replays: what the API reads and writes.

:func:`create`, :func:`get`, :func:`list_endpoints`, :func:`update`, :func:`delete`,
:func:`rotate_secret`, the log (:func:`list_deliveries`, :func:`get_delivery`) and replays
(:func:`replay_one`, :func:`replay_range`). Every read and write names the organisation, so
another organisation's ids are simply not found. What the webhooks worker does with the
deliveries (fan-out, claims, records) is :mod:`store.webhook_deliveries`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final, Literal

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import class_row, dict_row, scalar_row

from schemas.ids import OrgId
from schemas.webhooks import (
    Delivery,
    DeliveryAttempt,
    DeliveryState,
    Webhook,
    WebhookCreated,
)
from store.rows import fetch_all, fetch_one, returned

_ENDPOINT: Final = (
    "id, org_id, url, description, event_types, enabled, consecutive_failures, disabled_at,"
    " disabled_reason, secret_rotated_at, created_at, updated_at"
)
_DELIVERY: Final = (
    "id, endpoint_id, event_id, event_type, event_at, webhook_id, state,"
    " CASE WHEN state = 'pending' THEN next_attempt_at END AS next_attempt_at,"
    " last_status_code, last_error, created_at, updated_at"
)


# --- endpoints ------------------------------------------------------------------------------


async def create(
    conn: AsyncConnection[Any],
    org_id: OrgId,
    *,
    url: str,
    secret: str,
    event_types: Sequence[str],
    description: str,
    enabled: bool,
) -> WebhookCreated:
    """Store a new endpoint; it with its secret (the only time the secret is read back)."""
    row = await fetch_one(
        conn,
        class_row(WebhookCreated),
        f"INSERT INTO webhook_endpoints (org_id, url, secret, event_types, description, enabled)"
        f" VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_ENDPOINT}, secret",
        (org_id, url, secret, list(event_types), description, enabled),
    )
    return returned(row)


async def get(
    conn: AsyncConnection[Any], org_id: OrgId, endpoint_id: int, *, lock: bool = False
) -> Webhook | None:
    """The organisation's endpoint, or None (another organisation's is None too)."""
    return await fetch_one(
        conn,
        class_row(Webhook),
        f"SELECT {_ENDPOINT} FROM webhook_endpoints WHERE org_id = %s AND id = %s"
        + (" FOR UPDATE" if lock else ""),
        (org_id, endpoint_id),
    )


async def list_endpoints(conn: AsyncConnection[Any], org_id: OrgId) -> list[Webhook]:
    """The organisation's endpoints, by id."""
    return await fetch_all(
        conn,
        class_row(Webhook),
        f"SELECT {_ENDPOINT} FROM webhook_endpoints WHERE org_id = %s ORDER BY id",
        (org_id,),
    )


async def update(
    conn: AsyncConnection[Any],
    org_id: OrgId,
    endpoint_id: int,
    *,
    url: str,
    event_types: Sequence[str],
    description: str,
    enabled: bool,
) -> Webhook | None:
    """Change an endpoint. Enabling a disabled one clears its failures and why it was disabled
    (its waiting deliveries go out again); disabling one by hand is not announced."""
    return await fetch_one(
        conn,
        class_row(Webhook),
        "UPDATE webhook_endpoints SET url = %(url)s, event_types = %(types)s,"
        " description = %(description)s,"
        " consecutive_failures = CASE WHEN %(enabled)s AND NOT enabled THEN 0"
        "   ELSE consecutive_failures END,"
        " disabled_at = CASE WHEN %(enabled)s THEN NULL"
        "   WHEN enabled THEN now() ELSE disabled_at END,"
        " disabled_reason = CASE WHEN %(enabled)s THEN NULL"
        "   WHEN enabled THEN 'disabled through the API' ELSE disabled_reason END,"
        " disabled_announced = disabled_announced OR %(enabled)s,"
        " enabled = %(enabled)s, updated_at = now()"
        f" WHERE org_id = %(org)s AND id = %(id)s RETURNING {_ENDPOINT}",
        {
            "url": url,
            "types": list(event_types),
            "description": description,
            "enabled": enabled,
            "org": org_id,
            "id": endpoint_id,
        },
    )


async def delete(conn: AsyncConnection[Any], org_id: OrgId, endpoint_id: int) -> bool:
    """Remove an endpoint with its deliveries and their log; False when there was none."""
    async with conn.cursor() as cursor:
        await cursor.execute(
            "DELETE FROM webhook_endpoints WHERE org_id = %s AND id = %s", (org_id, endpoint_id)
        )
        return cursor.rowcount == 1


class Rotated(msgspec.Struct, frozen=True, kw_only=True):
    """When a secret was replaced, and until when the one before it still signs."""

    secret_rotated_at: datetime
    previous_secret_until: datetime | None = None


async def rotate_secret(
    conn: AsyncConnection[Any], org_id: OrgId, endpoint_id: int, secret: str, keep_old_s: float
) -> Rotated | None:
    """Replace an endpoint's secret; the old one goes on signing for ``keep_old_s`` (0: stops
    at once). None when there is no endpoint."""
    return await fetch_one(
        conn,
        class_row(Rotated),
        "UPDATE webhook_endpoints SET previous_secret = CASE WHEN %(keep)s > 0 THEN secret END,"
        " previous_secret_until = CASE WHEN %(keep)s > 0"
        "   THEN now() + make_interval(secs => %(keep)s) END,"
        " secret = %(secret)s, secret_rotated_at = now(), updated_at = now()"
        " WHERE org_id = %(org)s AND id = %(id)s"
        " RETURNING secret_rotated_at, previous_secret_until",
        {"keep": keep_old_s, "secret": secret, "org": org_id, "id": endpoint_id},
    )


# --- the log and replays --------------------------------------------------------------------


async def list_deliveries(
    conn: AsyncConnection[Any],
    org_id: OrgId,
    endpoint_id: int,
    *,
    before: int | None,
    limit: int,
    state: DeliveryState | None = None,
) -> list[Delivery]:
    """A page of an endpoint's deliveries, newest first (ids below ``before``), each with its
    attempts. Two queries."""
    rows = await fetch_all(
        conn,
        dict_row,
        f"SELECT {_DELIVERY} FROM webhook_deliveries"
        " WHERE org_id = %s AND endpoint_id = %s AND (%s::bigint IS NULL OR id < %s)"
        " AND (%s::text IS NULL OR state = %s)"
        " ORDER BY id DESC LIMIT %s",
        (org_id, endpoint_id, before, before, state, state, limit),
    )
    attempts = await _attempts(conn, [row["id"] for row in rows])
    return [Delivery(**row, attempts=attempts.get(row["id"], [])) for row in rows]


async def get_delivery(
    conn: AsyncConnection[Any], org_id: OrgId, endpoint_id: int, delivery_id: int
) -> Delivery | None:
    """One delivery of the organisation's endpoint, with its attempts; None when there is none."""
    row = await fetch_one(
        conn,
        dict_row,
        f"SELECT {_DELIVERY} FROM webhook_deliveries"
        " WHERE org_id = %s AND endpoint_id = %s AND id = %s",
        (org_id, endpoint_id, delivery_id),
    )
    if row is None:
        return None
    attempts = await _attempts(conn, [delivery_id])
    return Delivery(**row, attempts=attempts.get(delivery_id, []))


async def _attempts(
    conn: AsyncConnection[Any], delivery_ids: list[int]
) -> dict[int, list[DeliveryAttempt]]:
    found: dict[int, list[DeliveryAttempt]] = {}
    if not delivery_ids:
        return found
    for row in await fetch_all(
        conn,
        dict_row,
        "SELECT delivery_id, attempt, started_at, finished_at, outcome, status_code,"
        " latency_ms, address, error FROM webhook_attempts"
        " WHERE delivery_id = ANY(%s::bigint[]) ORDER BY delivery_id, attempt",
        (delivery_ids,),
    ):
        found.setdefault(row.pop("delivery_id"), []).append(DeliveryAttempt(**row))
    return found


ReplayResult = Literal["queued", "missing", "sending"]


async def replay_one(
    conn: AsyncConnection[Any], org_id: OrgId, endpoint_id: int, delivery_id: int
) -> ReplayResult:
    """Queue one delivery again, due now, its tries counted afresh; ``"sending"`` (nothing
    changed) while a sender holds it."""
    state = await fetch_one(
        conn,
        scalar_row,
        "SELECT state FROM webhook_deliveries WHERE org_id = %s AND endpoint_id = %s AND id = %s"
        " FOR UPDATE",
        (org_id, endpoint_id, delivery_id),
    )
    if state is None:
        return "missing"
    if state == "sending":
        return "sending"
    await conn.execute(
        "UPDATE webhook_deliveries SET state = 'pending', tries = 0, next_attempt_at = now(),"
        " updated_at = now() WHERE id = %s",
        (delivery_id,),
    )
    return "queued"


async def replay_range(
    conn: AsyncConnection[Any], org_id: OrgId, endpoint_id: int, start: datetime, end: datetime
) -> int:
    """Queue again every delivery of events at ``start`` or later and before ``end`` (but those
    a sender holds now); the number queued."""
    async with conn.cursor() as cursor:
        await cursor.execute(
            "UPDATE webhook_deliveries SET state = 'pending', tries = 0, next_attempt_at = now(),"
            " updated_at = now()"
            " WHERE org_id = %s AND endpoint_id = %s AND event_at >= %s AND event_at < %s"
            " AND state <> 'sending'",
            (org_id, endpoint_id, start, end),
        )
        return cursor.rowcount
