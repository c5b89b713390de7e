"""The analytics facts: what the rollups worker reads to compute them, and where it keeps them.

Every write is safe to repeat: signals keep the first arrival and departure seen, publications
are keyed by stop and instant, and facts are replaced whole (a stop's ETA errors with it). A
stop's fact is computed only once it is closed (delivered or failed), a route's only once it
is completed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row

from schemas.ids import DriverId, OrderId, OrgId, RouteId, StopId
from store.rows import fetch_all


@dataclass(frozen=True)
class Signal:
    """What the ETA worker saw at a stop."""

    org_id: OrgId
    stop_id: StopId
    arrived_at: datetime | None = None
    departed_at: datetime | None = None


@dataclass(frozen=True)
class PublicationRow:
    stop_id: StopId
    at: datetime
    likely_at: datetime
    lower_at: datetime
    upper_at: datetime


@dataclass(frozen=True)
class ClosedStop:
    """A closed stop with everything its fact needs."""

    stop_id: StopId
    org_id: OrgId
    day: date
    route_id: RouteId
    route_status: str
    order_id: OrderId
    driver_id: DriverId
    carrier_id: int | None
    address: str
    lat: float
    lon: float
    outcome: str
    failure_code: str | None
    attempt: int
    planned_arrival: datetime
    planned_service_s: int
    arrived_at: datetime | None
    detected_arrival: datetime | None
    completed_at: datetime
    window_starts: list[datetime]
    window_ends: list[datetime]
    proof_lat: float | None
    proof_lon: float | None


@dataclass(frozen=True)
class StopFactRow:
    """One row of ``stop_facts``, as the worker writes it."""

    stop_id: StopId
    org_id: OrgId
    day: date
    route_id: RouteId
    order_id: OrderId
    driver_id: DriverId
    carrier_id: int | None
    zone: str
    address_key: str
    outcome: str
    failure_code: str | None
    attempt: int
    planned_arrival: datetime
    arrived_at: datetime
    arrival_source: str
    completed_at: datetime
    window_start: datetime | None
    window_end: datetime | None
    punctuality: str | None
    lateness_s: int
    wait_s: int
    service_s: int
    planned_service_s: int
    arrival_error_s: int
    completion_m: float | None


@dataclass(frozen=True)
class CompletedRoute:
    """A completed route with what its fact needs."""

    route_id: RouteId
    org_id: OrgId
    day: date
    driver_id: DriverId
    carrier_id: int | None
    vehicle_id: int
    planned_m: float
    planned_start: datetime
    planned_end: datetime
    started_at: datetime
    completed_at: datetime
    delivered: int
    failed: int
    energy: str | None
    consumption_per_km: float | None


@dataclass(frozen=True)
class FixRow:
    time: datetime
    lat: float
    lon: float
    accuracy_m: float | None


@dataclass(frozen=True)
class Visit:
    route_id: RouteId
    arrived_at: datetime
    completed_at: datetime


async def record_signals(conn: AsyncConnection[Any], signals: Sequence[Signal]) -> None:
    """Keep detected arrivals and departures; the first one seen of each stays."""
    if not signals:
        return
    await conn.execute(
        "INSERT INTO stop_signals (org_id, stop_id, arrived_at, departed_at)"
        " SELECT u.* FROM unnest(%s::bigint[], %s::bigint[], %s::timestamptz[],"
        "   %s::timestamptz[]) AS u (org_id, stop_id, arrived_at, departed_at)"
        " WHERE EXISTS (SELECT 1 FROM stops s WHERE s.id = u.stop_id AND s.org_id = u.org_id)"
        " ON CONFLICT (stop_id) DO UPDATE SET"
        "  arrived_at = coalesce(stop_signals.arrived_at, excluded.arrived_at),"
        "  departed_at = coalesce(stop_signals.departed_at, excluded.departed_at)",
        (
            [s.org_id for s in signals],
            [s.stop_id for s in signals],
            [s.arrived_at for s in signals],
            [s.departed_at for s in signals],
        ),
    )


async def record_publications(conn: AsyncConnection[Any], rows: Sequence[PublicationRow]) -> None:
    """Keep published windows; one per stop and instant (the first kept)."""
    if not rows:
        return
    await conn.execute(
        "INSERT INTO eta_publications (stop_id, at, likely_at, lower_at, upper_at)"
        " SELECT u.* FROM unnest(%s::bigint[], %s::timestamptz[], %s::timestamptz[],"
        "   %s::timestamptz[], %s::timestamptz[]) AS u (stop_id, at, likely_at, lower_at, upper_at)"
        " WHERE EXISTS (SELECT 1 FROM stops s WHERE s.id = u.stop_id)"
        " ON CONFLICT (stop_id, at) DO NOTHING",
        (
            [r.stop_id for r in rows],
            [r.at for r in rows],
            [r.likely_at for r in rows],
            [r.lower_at for r in rows],
            [r.upper_at for r in rows],
        ),
    )


async def closed_stops(conn: AsyncConnection[Any], stop_ids: Sequence[int]) -> list[ClosedStop]:
    """Those of ``stop_ids`` that are delivered or failed, with what their facts need."""
    return await fetch_all(
        conn,
        class_row(ClosedStop),
        "SELECT s.id AS stop_id, s.org_id, r.day, s.route_id, r.status AS route_status,"
        "  s.order_id, r.driver_id, coalesce(d.carrier_id, v.carrier_id) AS carrier_id,"
        "  o.address, o.lat, o.lon, s.status AS outcome,"
        "  coalesce(s.failure_code, p.failure_code) AS failure_code, s.attempt,"
        "  s.planned_arrival, o.service_s AS planned_service_s, s.arrived_at,"
        "  g.arrived_at AS detected_arrival, s.completed_at, o.window_starts, o.window_ends,"
        "  p.lat AS proof_lat, p.lon AS proof_lon"
        " FROM stops s JOIN routes r ON r.id = s.route_id JOIN orders o ON o.id = s.order_id"
        " JOIN drivers d ON d.id = r.driver_id JOIN vehicles v ON v.id = r.vehicle_id"
        " LEFT JOIN proofs p ON p.stop_id = s.id LEFT JOIN stop_signals g ON g.stop_id = s.id"
        " WHERE s.id = ANY(%s) AND s.status IN ('delivered', 'failed')"
        "  AND s.completed_at IS NOT NULL",
        (list(stop_ids),),
    )


async def publications_of(
    conn: AsyncConnection[Any], stop_ids: Sequence[int]
) -> list[PublicationRow]:
    """The windows published for ``stop_ids``, in publication order per stop."""
    return await fetch_all(
        conn,
        class_row(PublicationRow),
        "SELECT stop_id, at, likely_at, lower_at, upper_at FROM eta_publications"
        " WHERE stop_id = ANY(%s) ORDER BY stop_id, at",
        (list(stop_ids),),
    )


async def write_stop_facts(
    conn: AsyncConnection[Any],
    facts: Sequence[StopFactRow],
    errors: Sequence[tuple[StopId, int, int, bool]],
) -> None:
    """Replace the facts of these stops, and their ETA errors ``(stop, horizon_min, error_s,
    inside)``, in the caller's transaction."""
    if not facts:
        return
    async with conn.cursor() as cursor:
        await cursor.executemany(
            "INSERT INTO stop_facts (stop_id, org_id, day, route_id, order_id, driver_id,"
            " carrier_id, zone, address_key, outcome, failure_code, attempt, planned_arrival,"
            " arrived_at, arrival_source, completed_at, window_start, window_end, punctuality,"
            " lateness_s, wait_s, service_s, planned_service_s, arrival_error_s, completion_m)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
            "  %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (stop_id) DO UPDATE SET day = excluded.day,"
            "  route_id = excluded.route_id, driver_id = excluded.driver_id,"
            "  carrier_id = excluded.carrier_id, zone = excluded.zone,"
            "  address_key = excluded.address_key, outcome = excluded.outcome,"
            "  failure_code = excluded.failure_code, attempt = excluded.attempt,"
            "  planned_arrival = excluded.planned_arrival, arrived_at = excluded.arrived_at,"
            "  arrival_source = excluded.arrival_source, completed_at = excluded.completed_at,"
            "  window_start = excluded.window_start, window_end = excluded.window_end,"
            "  punctuality = excluded.punctuality, lateness_s = excluded.lateness_s,"
            "  wait_s = excluded.wait_s, service_s = excluded.service_s,"
            "  planned_service_s = excluded.planned_service_s,"
            "  arrival_error_s = excluded.arrival_error_s, completion_m = excluded.completion_m,"
            "  computed_at = now()",
            [
                (
                    f.stop_id,
                    f.org_id,
                    f.day,
                    f.route_id,
                    f.order_id,
                    f.driver_id,
                    f.carrier_id,
                    f.zone,
                    f.address_key,
                    f.outcome,
                    f.failure_code,
                    f.attempt,
                    f.planned_arrival,
                    f.arrived_at,
                    f.arrival_source,
                    f.completed_at,
                    f.window_start,
                    f.window_end,
                    f.punctuality,
                    f.lateness_s,
                    f.wait_s,
                    f.service_s,
                    f.planned_service_s,
                    f.arrival_error_s,
                    f.completion_m,
                )
                for f in facts
            ],
        )
    await conn.execute(
        "DELETE FROM stop_eta_errors WHERE stop_id = ANY(%s)", ([f.stop_id for f in facts],)
    )
    if errors:
        await conn.execute(
            "INSERT INTO stop_eta_errors (stop_id, horizon_min, error_s, inside)"
            " SELECT * FROM unnest(%s::bigint[], %s::smallint[], %s::int[], %s::boolean[])",
            (
                [e[0] for e in errors],
                [e[1] for e in errors],
                [e[2] for e in errors],
                [e[3] for e in errors],
            ),
        )


async def completed_routes(
    conn: AsyncConnection[Any], route_ids: Sequence[int]
) -> list[CompletedRoute]:
    """Those of ``route_ids`` that are completed, with their stops' outcomes and vehicle.

    A route its driver never started counts from its first stop's arrival (reported or
    detected), else from its planned start.
    """
    return await fetch_all(
        conn,
        class_row(CompletedRoute),
        "SELECT r.id AS route_id, r.org_id, r.day, r.driver_id,"
        "  coalesce(d.carrier_id, v.carrier_id) AS carrier_id, r.vehicle_id,"
        "  r.distance_m::float8 AS planned_m, r.planned_start, r.planned_end,"
        "  coalesce(r.started_at, f.first_arrival, r.planned_start) AS started_at,"
        "  r.completed_at, f.delivered, f.failed, v.energy, v.consumption_per_km"
        " FROM routes r JOIN drivers d ON d.id = r.driver_id JOIN vehicles v ON v.id = r.vehicle_id"
        " CROSS JOIN LATERAL (SELECT count(*) FILTER (WHERE s.status = 'delivered') AS delivered,"
        "   count(*) FILTER (WHERE s.status = 'failed') AS failed,"
        "   min(coalesce(s.arrived_at, g.arrived_at)) AS first_arrival"
        "   FROM stops s LEFT JOIN stop_signals g ON g.stop_id = s.id"
        "   WHERE s.route_id = r.id) f"
        " WHERE r.id = ANY(%s) AND r.status = 'completed' AND r.completed_at IS NOT NULL",
        (list(route_ids),),
    )


async def fixes_of(
    conn: AsyncConnection[Any], driver_id: DriverId, start: datetime, end: datetime
) -> list[FixRow]:
    """The driver's stored positions from ``start`` to ``end``, in time order."""
    return await fetch_all(
        conn,
        class_row(FixRow),
        "SELECT time, lat, lon, accuracy_m::float8 AS accuracy_m FROM positions"
        " WHERE driver_id = %s AND time BETWEEN %s AND %s ORDER BY time",
        (driver_id, start, end),
    )


async def visits_of(conn: AsyncConnection[Any], route_ids: Sequence[int]) -> list[Visit]:
    """The time spent at each closed stop of ``route_ids`` (from the stop facts)."""
    return await fetch_all(
        conn,
        class_row(Visit),
        "SELECT route_id, arrived_at, completed_at FROM stop_facts WHERE route_id = ANY(%s)",
        (list(route_ids),),
    )


async def write_route_facts(
    conn: AsyncConnection[Any], rows: Sequence[tuple[CompletedRoute, dict[str, Any]]]
) -> None:
    """Replace the facts of these routes: each a route and its computed fields (the names of
    :class:`solver.facts.RouteFact`)."""
    if not rows:
        return
    fields = (
        "stops",
        "delivered",
        "failed",
        "planned_m",
        "driven_m",
        "planned_s",
        "actual_s",
        "moving_s",
        "idle_s",
        "fixes",
        "jumps",
        "energy",
        "energy_used",
        "co2_kg",
    )
    async with conn.cursor() as cursor:
        await cursor.executemany(
            "INSERT INTO route_facts (route_id, org_id, day, driver_id, carrier_id, vehicle_id,"
            " started_at, completed_at, stops, delivered, failed, planned_m, driven_m,"
            " planned_s, actual_s, moving_s, idle_s, fixes, jumps, energy, energy_used, co2_kg)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
            "  %s, %s, %s, %s)"
            " ON CONFLICT (route_id) DO UPDATE SET day = excluded.day,"
            "  driver_id = excluded.driver_id, carrier_id = excluded.carrier_id,"
            "  vehicle_id = excluded.vehicle_id, started_at = excluded.started_at,"
            "  completed_at = excluded.completed_at, stops = excluded.stops,"
            "  delivered = excluded.delivered, failed = excluded.failed,"
            "  planned_m = excluded.planned_m, driven_m = excluded.driven_m,"
            "  planned_s = excluded.planned_s, actual_s = excluded.actual_s,"
            "  moving_s = excluded.moving_s, idle_s = excluded.idle_s, fixes = excluded.fixes,"
            "  jumps = excluded.jumps, energy = excluded.energy,"
            "  energy_used = excluded.energy_used, co2_kg = excluded.co2_kg,"
            "  computed_at = now()",
            [
                (
                    route.route_id,
                    route.org_id,
                    route.day,
                    route.driver_id,
                    route.carrier_id,
                    route.vehicle_id,
                    route.started_at,
                    route.completed_at,
                    *(computed[name] for name in fields),
                )
                for route, computed in rows
            ],
        )
