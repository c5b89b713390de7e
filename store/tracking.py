"""Tracking links and what a customer's page reads: one order, its stop and its route.

Tokens arrive hashed (see ``app.auth.hash_token``). Every read here is of one order; nothing
returns another order's data, which is what keeps a customer's page private.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row, dict_row

from schemas.ids import DriverId, OrderId, OrgId, RouteId, StopId
from schemas.route import Window
from store.rows import fetch_one

MAX_LINK_AGE = timedelta(days=30)
"""Outer limit of a link, for orders that never end."""


@dataclass(frozen=True)
class Link:
    """What a token names, and when its order ended (None while it is open)."""

    org_id: OrgId
    order_id: OrderId
    ended_at: datetime | None
    expires_at: datetime


@dataclass(frozen=True)
class OrderTrack:
    """An order with its live stop and route, as far as they exist."""

    order_ref: str
    order_status: str
    time_zone: str
    address: str
    lat: float
    lon: float
    requested: list[Window]
    stop_id: StopId | None
    route_id: RouteId | None
    stop_status: str | None
    planned_arrival: datetime | None
    completed_at: datetime | None
    failure_reason: str | None
    route_status: str | None
    driver_id: DriverId | None
    stops_before: int | None


async def create_link(
    conn: AsyncConnection, org_id: OrgId, order_id: OrderId, token_hash: bytes
) -> bool:
    """Store a link for an order of ``org_id``; False if there is no such order."""
    cursor = await conn.execute(
        "INSERT INTO tracking_tokens (token_hash, org_id, order_id, expires_at)"
        " SELECT %s, org_id, id, now() + %s FROM orders WHERE org_id = %s AND id = %s",
        (token_hash, MAX_LINK_AGE, org_id, order_id),
    )
    return cursor.rowcount == 1


async def create_links(
    conn: AsyncConnection, links: Sequence[tuple[OrgId, OrderId, bytes]]
) -> set[OrderId]:
    """Store one link per ``(org, order, token hash)`` in one statement; the orders that got
    theirs (an order not of that organisation, or gone, gets none)."""
    if not links:
        return set()
    cursor = await conn.execute(
        "INSERT INTO tracking_tokens (token_hash, org_id, order_id, expires_at)"
        " SELECT w.token_hash, o.org_id, o.id, now() + %s"
        " FROM unnest(%s::bigint[], %s::bigint[], %s::bytea[]) AS w (org_id, order_id, token_hash)"
        " JOIN orders o ON o.org_id = w.org_id AND o.id = w.order_id"
        " RETURNING order_id",
        (
            MAX_LINK_AGE,
            [org for org, _, _ in links],
            [order for _, order, _ in links],
            [token_hash for _, _, token_hash in links],
        ),
    )
    return {OrderId(order_id) for (order_id,) in await cursor.fetchall()}


_LINK = """
SELECT t.org_id, t.order_id, t.expires_at,
       CASE WHEN o.status = 'cancelled' THEN coalesce(o.cancelled_at, o.updated_at)
            WHEN o.status IN ('delivered', 'failed') THEN coalesce(
                (SELECT max(s.completed_at) FROM stops s
                 WHERE s.org_id = o.org_id AND s.order_id = o.id), o.updated_at)
       END AS ended_at
FROM tracking_tokens t JOIN orders o ON o.org_id = t.org_id AND o.id = t.order_id
WHERE t.token_hash = %s
"""


async def link(conn: AsyncConnection, token_hash: bytes) -> Link | None:
    """The link of a token, or None if no link has that token."""
    return await fetch_one(conn, class_row(Link), _LINK, (token_hash,))


_TRACK = """
SELECT o.external_ref AS order_ref, o.status AS order_status, g.timezone AS time_zone,
       o.address, o.lat, o.lon, o.window_starts, o.window_ends, s.id AS stop_id, s.route_id,
       s.status AS stop_status, s.planned_arrival, s.completed_at, s.failure_reason,
       r.status AS route_status, r.driver_id,
       (SELECT count(*) FROM stops p WHERE p.route_id = s.route_id AND p.seq < s.seq
            AND p.status IN ('pending', 'arrived')) AS stops_before
FROM orders o
JOIN orgs g ON g.id = o.org_id
LEFT JOIN LATERAL (
    SELECT * FROM stops x WHERE x.org_id = o.org_id AND x.order_id = o.id
    ORDER BY (x.status = 'removed'), x.id DESC LIMIT 1
) s ON s.status <> 'removed'
LEFT JOIN routes r ON r.id = s.route_id
WHERE o.org_id = %s AND o.id = %s
"""


async def order_track(conn: AsyncConnection, org_id: OrgId, order_id: OrderId) -> OrderTrack | None:
    """The order, its live (or completed) stop and that stop's route; None if no such order."""
    row = await fetch_one(conn, dict_row, _TRACK, (org_id, order_id))
    return None if row is None else _track(row)


def _track(row: dict[str, Any]) -> OrderTrack:
    has_stop = row["stop_id"] is not None
    return OrderTrack(
        order_ref=row["order_ref"],
        order_status=row["order_status"],
        time_zone=row["time_zone"],
        address=row["address"],
        lat=row["lat"],
        lon=row["lon"],
        requested=[
            Window(start=a, end=b)
            for a, b in zip(row["window_starts"], row["window_ends"], strict=True)
        ],
        stop_id=StopId(row["stop_id"]) if has_stop else None,
        route_id=RouteId(row["route_id"]) if has_stop else None,
        stop_status=row["stop_status"],
        planned_arrival=row["planned_arrival"],
        completed_at=row["completed_at"],
        failure_reason=row["failure_reason"],
        route_status=row["route_status"],
        driver_id=DriverId(row["driver_id"]) if row["driver_id"] is not None else None,
        stops_before=int(row["stops_before"]) if has_stop else None,
    )
