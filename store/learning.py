"""Learned models: what the learner reads to learn, where it keeps what it learned, and the
model a plan uses.

The learner reads an organisation's completed routes of a day range (from ``route_facts``), each
with its closed stops in the order they were served, and the closed stops' service times with
their order's address, customer and size. ``route_passes`` keeps what it cut from each route's
track, so a route's positions are read once, not every night. ``learned_models`` keeps every
run; the newest one of an organisation is the one in use.
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
    day: date
    started_at: datetime
    completed_at: datetime
    computed_at: datetime
    """When its fact was (last) computed: passes cut before are cut again."""


@dataclass(frozen=True)
class KeptPasses:
    """What the learner cut from a route before (see :func:`kept_passes`)."""

    route_id: RouteId
    facts_computed_at: datetime
    passes: bytes
    """``solver.learning.SpeedPass`` values as MessagePack."""
    circuities: list[float]


@dataclass(frozen=True)
class CutPasses:
    """What the learner cut from a route now, to keep (see :func:`keep_passes`)."""

    route_id: RouteId
    org_id: OrgId
    day: date
    facts_computed_at: datetime
    passes: bytes
    circuities: list[float]


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
        "SELECT route_id, driver_id, day, started_at, completed_at, computed_at FROM route_facts"
        " WHERE org_id = %s AND day BETWEEN %s AND %s ORDER BY started_at",
        (org_id, day_from, day_to),
    )


async def kept_passes(
    conn: AsyncConnection[Any], route_ids: list[RouteId], basis: str
) -> dict[RouteId, KeptPasses]:
    """The passes kept for ``route_ids`` that were cut on ``basis`` (rules and time zone)."""
    rows = await fetch_all(
        conn,
        class_row(KeptPasses),
        "SELECT route_id, facts_computed_at, passes, circuities FROM route_passes"
        " WHERE route_id = ANY(%s) AND basis = %s",
        (route_ids, basis),
    )
    return {r.route_id: r for r in rows}


async def keep_passes(conn: AsyncConnection[Any], basis: str, cut: list[CutPasses]) -> None:
    """Keep what was cut from routes now, in place of what was kept for them before."""
    async with conn.cursor() as cursor:
        await cursor.executemany(
            "INSERT INTO route_passes (route_id, org_id, day, basis, facts_computed_at, passes,"
            " circuities) VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (route_id) DO UPDATE SET basis = excluded.basis,"
            "  facts_computed_at = excluded.facts_computed_at, passes = excluded.passes,"
            "  circuities = excluded.circuities, cut_at = now()",
            [
                (c.route_id, c.org_id, c.day, basis, c.facts_computed_at, c.passes, c.circuities)
                for c in cut
            ],
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


async def model_by_id(conn: AsyncConnection[Any], org_id: OrgId, model_id: int) -> ModelRow | None:
    """The organisation's model ``model_id`` (a row never changes once stored), or None."""
    return await fetch_one(
        conn,
        class_row(ModelRow),
        "SELECT id, org_id, learned_at, day_from, day_to, routes, speeds, service"
        " FROM learned_models WHERE id = %s AND org_id = %s",
        (model_id, org_id),
    )
