"""Learned models: what the learner reads to learn, where it keeps what it learned, and the
model a plan uses.

The learner reads an organisation's completed routes of a day range (from ``route_facts``), each
with its closed stops in the order they were served, and the closed stops' service times with
their order's address, customer and size. ``learned_models`` keeps every run; the newest one of
an organisation is the one in use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row, scalar_row
from psycopg.types.json import Jsonb

from schemas.ids import DriverId, OrgId, RouteId
from store.rows import fetch_all, fetch_one, returned


@dataclass(frozen=True)
class RouteToLearn:
    route_id: RouteId
    driver_id: DriverId
    started_at: datetime
    completed_at: datetime


@dataclass(frozen=True)
class StopVisit:
    """A closed stop of a route, in the order it was served."""

    route_id: RouteId
    lat: float
    lon: float
    arrived_at: datetime
    completed_at: datetime


@dataclass(frozen=True)
class ServiceRow:
    address_key: str
    customer: str | None
    """The order's email, else phone."""
    parcels: int
    service_s: int


@dataclass(frozen=True)
class ModelRow:
    id: int
    org_id: OrgId
    learned_at: datetime
    day_from: date
    day_to: date
    routes: int
    speeds: Any
    service: Any


async def routes_to_learn(
    conn: AsyncConnection[Any], org_id: OrgId, day_from: date, day_to: date
) -> list[RouteToLearn]:
    """The organisation's routes of the range that have a fact (completed and rolled up)."""
    return await fetch_all(
        conn,
        class_row(RouteToLearn),
        "SELECT route_id, driver_id, started_at, completed_at FROM route_facts"
        " WHERE org_id = %s AND day BETWEEN %s AND %s ORDER BY started_at",
        (org_id, day_from, day_to),
    )


async def visits_in_order(conn: AsyncConnection[Any], route_ids: list[RouteId]) -> list[StopVisit]:
    """The closed stops of ``route_ids`` by route, in the order they were reached."""
    return await fetch_all(
        conn,
        class_row(StopVisit),
        "SELECT f.route_id, o.lat, o.lon, f.arrived_at, f.completed_at"
        " FROM stop_facts f JOIN orders o ON o.id = f.order_id"
        " WHERE f.route_id = ANY(%s) ORDER BY f.route_id, f.arrived_at",
        (route_ids,),
    )


async def service_rows(
    conn: AsyncConnection[Any], org_id: OrgId, day_from: date, day_to: date
) -> list[ServiceRow]:
    """The service times of the range's closed stops whose arrival is known (reported or
    detected), with their order's address key, customer (email, else phone) and parcel
    count."""
    return await fetch_all(
        conn,
        class_row(ServiceRow),
        "SELECT f.address_key, coalesce(nullif(o.email, ''), o.phone) AS customer,"
        "  greatest(1, (SELECT count(*) FROM parcels p WHERE p.order_id = o.id)::int,"
        "   coalesce((o.size->>'parcels')::numeric::int, 1)) AS parcels,"
        "  f.service_s"
        " FROM stop_facts f JOIN orders o ON o.id = f.order_id"
        " WHERE f.org_id = %s AND f.day BETWEEN %s AND %s AND f.arrival_source <> 'completion'",
        (org_id, day_from, day_to),
    )


async def store_model(
    conn: AsyncConnection[Any],
    org_id: OrgId,
    day_from: date,
    day_to: date,
    routes: int,
    speeds: Any,
    service: Any,
) -> int:
    """Keep a learning run's tables (builtins, or None); its id."""
    new_id = await fetch_one(
        conn,
        scalar_row,
        "INSERT INTO learned_models (org_id, day_from, day_to, routes, speeds, service)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (
            org_id,
            day_from,
            day_to,
            routes,
            None if speeds is None else Jsonb(speeds),
            None if service is None else Jsonb(service),
        ),
    )
    return int(returned(new_id))


async def latest_model(conn: AsyncConnection[Any], org_id: OrgId) -> ModelRow | None:
    """The organisation's model in use (its newest), or None."""
    return await fetch_one(
        conn,
        class_row(ModelRow),
        "SELECT id, org_id, learned_at, day_from, day_to, routes, speeds, service"
        " FROM learned_models WHERE org_id = %s ORDER BY id DESC LIMIT 1",
        (org_id,),
    )


async def orgs_due(conn: AsyncConnection[Any], older_than: datetime) -> list[OrgId]:
    """Organisations with routes rolled up since their newest model, or with no model yet,
    whose newest model (if any) was learned before ``older_than``."""
    rows = await fetch_all(
        conn,
        scalar_row,
        "SELECT o.id FROM orgs o"
        " LEFT JOIN LATERAL (SELECT learned_at FROM learned_models m WHERE m.org_id = o.id"
        "   ORDER BY m.id DESC LIMIT 1) m ON true"
        " WHERE (m.learned_at IS NULL OR m.learned_at < %s) AND EXISTS"
        "  (SELECT 1 FROM route_facts f WHERE f.org_id = o.id"
        "   AND (m.learned_at IS NULL OR f.computed_at > m.learned_at))",
        (older_than,),
    )
    return [OrgId(r) for r in rows]
