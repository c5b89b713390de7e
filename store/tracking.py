"""Tracking links and what a customer's page reads: one order, its stop and its route.

Tokens arrive hashed (see ``app.auth.hash_token``). Every read here is of one order; nothing
returns another order's data, which is what keeps a customer's page private.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from schemas.ids import DriverId, OrgId, RouteId, StopId
from schemas.route import Window

MAX_LINK_AGE = timedelta(days=30)
"""Outer limit of a link, for orders that never end."""


@dataclass(frozen=True)
class Link:
    """What a token names, and when its order ended (None while it is open)."""

    org_id: OrgId
    order_id: int
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
    conn: AsyncConnection, org_id: OrgId, order_id: int, token_hash: bytes
) -> bool:
    """Store a link for an order of ``org_id``; False if there is no such order."""
    cursor = await conn.execute(
        "INSERT INTO tracking_tokens (token_hash, org_id, order_id, expires_at)"
        " SELECT %s, org_id, id, now() + %s FROM orders WHERE org_id = %s AND id = %s",
        (token_hash, MAX_LINK_AGE, org_id, order_id),
    )
    return cursor.rowcount == 1


_LINK = """
SELECT t.org_id, t.order_id, t.expires_at,
       CASE WHEN o.status = 'cancelled' THEN coalesce(o.cancelled_at, o.updated_at)
            WHEN o.status IN ('delivered', 'failed') THEN coalesce(
                (SELECT max(s.completed_at) FROM stops s
                 WHERE s.org_id = o.org_id AND s.order_id = o.id), o.updated_at)
       END
FROM tracking_tokens t JOIN orders o ON o.org_id = t.org_id AND o.id = t.order_id
WHERE t.token_hash = %s
"""


async def link(conn: AsyncConnection, token_hash: bytes) -> Link | None:
    """The link of a token, or None if no link has that token."""
    row = await (await conn.execute(_LINK, (token_hash,))).fetchone()
    if row is None:
        return None
    return Link(OrgId(row[0]), row[1], ended_at=row[3], expires_at=row[2])


_TRACK = """
SELECT o.external_ref, o.status, g.timezone, o.address, o.lat, o.lon, o.window_starts,
       o.window_ends, s.id, s.route_id, s.status, s.planned_arrival, s.completed_at,
       s.failure_reason, r.status, r.driver_id,
       (SELECT count(*) FROM stops p WHERE p.route_id = s.route_id AND p.seq < s.seq
            AND p.status IN ('pending', 'arrived'))
FROM orders o
JOIN orgs g ON g.id = o.org_id
LEFT JOIN LATERAL (
    SELECT * FROM stops x WHERE x.org_id = o.org_id AND x.order_id = o.id
    ORDER BY (x.status = 'removed'), x.id DESC LIMIT 1
) s ON s.status <> 'removed'
LEFT JOIN routes r ON r.id = s.route_id
WHERE o.org_id = %s AND o.id = %s
"""


async def order_track(conn: AsyncConnection, org_id: OrgId, order_id: int) -> OrderTrack | None:
    """The order, its live (or completed) stop and that stop's route; None if no such order."""
    row = await (await conn.execute(_TRACK, (org_id, order_id))).fetchone()
    return None if row is None else _track(row)


def _track(r: Sequence[Any]) -> OrderTrack:
    has_stop = r[8] is not None
    return OrderTrack(
        order_ref=r[0],
        order_status=r[1],
        time_zone=r[2],
        address=r[3],
        lat=r[4],
        lon=r[5],
        requested=[Window(start=a, end=b) for a, b in zip(r[6], r[7], strict=True)],
        stop_id=StopId(r[8]) if has_stop else None,
        route_id=RouteId(r[9]) if has_stop else None,
        stop_status=r[10],
        planned_arrival=r[11],
        completed_at=r[12],
        failure_reason=r[13],
        route_status=r[14],
        driver_id=DriverId(r[15]) if r[15] is not None else None,
        stops_before=int(r[16]) if has_stop else None,
    )


async def first_orders(
    conn: AsyncConnection, org_id: OrgId, day: date, limit: int
) -> list[tuple[int, str]]:
    """The first open stop's order (id, reference) of up to ``limit`` routes of ``day``: the
    customers whose drivers reach them soonest, for showing tracking links."""
    cursor = await conn.execute(
        "SELECT DISTINCT ON (s.route_id) o.id, o.external_ref FROM stops s"
        " JOIN orders o ON o.org_id = s.org_id AND o.id = s.order_id"
        " JOIN routes r ON r.id = s.route_id"
        " WHERE s.org_id = %s AND r.day = %s AND s.status IN ('pending', 'arrived')"
        " ORDER BY s.route_id, s.seq LIMIT %s",
        (org_id, day, limit),
    )
    return [(r[0], r[1]) for r in await cursor.fetchall()]
