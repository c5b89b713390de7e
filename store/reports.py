"""Analytics reports over the facts (``stop_facts``, ``stop_eta_errors``, ``route_facts``).

Each report is one grouped query over an organisation's day range (plus one for the ETA
accuracy by horizon and one for the messages sent), served by the ``(org_id, day)`` indexes;
rates and means that need care with empty groups are finished in :mod:`app.api.analytics`. A
group's ``key`` and ``label`` come from a fixed table of SQL expressions, never from the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Final, LiteralString

from psycopg import AsyncConnection, sql
from psycopg.rows import class_row

from schemas.analytics import DeliveryGroup, RouteGroup
from schemas.ids import OrgId
from store.rows import fetch_all

_GROUPS: Final[dict[str, tuple[LiteralString, LiteralString]]] = {
    "day": ("f.day::text", "f.day::text"),
    "driver": ("f.driver_id::text", "coalesce(d.name, 'driver ' || f.driver_id)"),
    "carrier": ("coalesce(f.carrier_id::text, 'own')", "coalesce(c.name, 'own fleet')"),
    "zone": ("f.zone", "f.zone"),
    "reason": (
        "coalesce(f.failure_code, 'unspecified')",
        "coalesce(f.failure_code, 'unspecified')",
    ),
}
_NAMES: Final = (
    " LEFT JOIN drivers d ON d.id = f.driver_id LEFT JOIN carriers c ON c.id = f.carrier_id"
)


@dataclass(frozen=True)
class DeliveryTotals:
    key: str
    label: str
    stops: int
    delivered: int
    failed: int
    first_attempts: int
    first_delivered: int
    with_window: int
    on_time: int
    early: int
    late: int
    mean_lateness_s: float | None
    mean_wait_s: float | None
    mean_service_s: float | None
    arrival_mae_s: float | None
    ratings: int
    rating_mean: float | None


@dataclass(frozen=True)
class EtaTotals:
    key: str
    horizon_min: int
    arrivals: int
    mae_s: float
    inside_rate: float


def ratio(part: float, whole: float, digits: int = 4) -> float | None:
    """``part / whole`` rounded to ``digits``; None for an empty group (``whole`` 0)."""
    return None if whole <= 0 else round(part / whole, digits)


@dataclass(frozen=True)
class NotificationTotals:
    key: str
    channel: str
    sent: int
    failed: int


@dataclass(frozen=True)
class RouteTotals:
    key: str
    label: str
    routes: int
    stops: int
    delivered: int
    planned_m: float
    driven_m: float
    planned_s: int
    actual_s: int
    idle_s: int
    fuel_l: float
    electricity_kwh: float
    co2_kg: float
    gps_jumps: int


async def _rows(
    conn: AsyncConnection[Any], shape: type[Any], query: sql.Composed, params: tuple[Any, ...]
) -> list[Any]:
    async with conn.cursor(row_factory=class_row(shape)) as cursor:
        await cursor.execute(query, params)
        return await cursor.fetchall()


def _failed_only(by: str) -> sql.SQL:
    return sql.SQL(" AND f.outcome = 'failed'" if by == "reason" else "")


async def delivery_totals(
    conn: AsyncConnection[Any], org_id: OrgId, day_from: date, day_to: date, by: DeliveryGroup
) -> list[DeliveryTotals]:
    """The closed stops of the range, totalled per group (grouped by failure reason, the failed
    ones only), in label order."""
    key, label = _GROUPS[by]
    query = sql.SQL(
        "SELECT {key} AS key, max({label}) AS label, count(*)::int AS stops,"
        " count(*) FILTER (WHERE f.outcome = 'delivered')::int AS delivered,"
        " count(*) FILTER (WHERE f.outcome = 'failed')::int AS failed,"
        " count(*) FILTER (WHERE f.attempt = 1)::int AS first_attempts,"
        " count(*) FILTER (WHERE f.attempt = 1 AND f.outcome = 'delivered')::int"
        "  AS first_delivered,"
        " count(f.punctuality)::int AS with_window,"
        " count(*) FILTER (WHERE f.punctuality = 'on_time')::int AS on_time,"
        " count(*) FILTER (WHERE f.punctuality = 'early')::int AS early,"
        " count(*) FILTER (WHERE f.punctuality = 'late')::int AS late,"
        " avg(f.lateness_s) FILTER (WHERE f.punctuality = 'late')::float8 AS mean_lateness_s,"
        " avg(f.wait_s)::float8 AS mean_wait_s,"
        " avg(f.service_s) FILTER (WHERE f.arrival_source <> 'completion')::float8"
        "  AS mean_service_s,"
        " avg(abs(f.arrival_error_s))::float8 AS arrival_mae_s,"
        " count(r.stars)::int AS ratings, avg(r.stars)::float8 AS rating_mean"
        " FROM stop_facts f"
        " LEFT JOIN ratings r ON r.order_id = f.order_id AND f.outcome = 'delivered'"
        " {names}"
        " WHERE f.org_id = %s AND f.day BETWEEN %s AND %s{failed}"
        " GROUP BY 1 ORDER BY 2, 1"
    ).format(key=sql.SQL(key), label=sql.SQL(label), names=sql.SQL(_NAMES), failed=_failed_only(by))
    return await _rows(conn, DeliveryTotals, query, (org_id, day_from, day_to))


async def eta_totals(
    conn: AsyncConnection[Any], org_id: OrgId, day_from: date, day_to: date, by: DeliveryGroup
) -> list[EtaTotals]:
    """The ETA errors of the range's arrivals per group and horizon."""
    key, _label = _GROUPS[by]
    query = sql.SQL(
        "SELECT {key} AS key, e.horizon_min::int AS horizon_min, count(*)::int AS arrivals,"
        " avg(abs(e.error_s))::float8 AS mae_s, avg(e.inside::int)::float8 AS inside_rate"
        " FROM stop_eta_errors e JOIN stop_facts f ON f.stop_id = e.stop_id"
        " WHERE f.org_id = %s AND f.day BETWEEN %s AND %s{failed}"
        " GROUP BY 1, 2 ORDER BY 1, 2"
    ).format(key=sql.SQL(key), failed=_failed_only(by))
    return await _rows(conn, EtaTotals, query, (org_id, day_from, day_to))


async def notification_totals(
    conn: AsyncConnection[Any], org_id: OrgId, day_from: date, day_to: date, by: DeliveryGroup
) -> list[NotificationTotals]:
    """The outbox messages of the range's closed stops per group and channel.

    A message belongs to the stop of its order on the organisation's day it was created (its
    time zone's day, as ``stop_facts.day``; of two stops of one order that day, the later
    attempt): so a re-attempted order's messages count on each attempt's day, once. ``sent``:
    the provider took it or reported it delivered; ``failed``: refused, or given up after its
    retries; messages still on their way are in neither, and messages of no order (the weekly
    summary) in none. Only the range's orders' messages are read (by order: ``outbox_order``).
    """
    key, _label = _GROUPS[by]
    query = sql.SQL(
        "WITH f AS (SELECT DISTINCT ON (f.order_id, f.day) f.order_id, f.day, f.driver_id,"
        "  f.carrier_id, f.zone, f.failure_code FROM stop_facts f"
        "  WHERE f.org_id = %(org)s AND f.day BETWEEN %(from)s AND %(to)s{failed}"
        "  ORDER BY f.order_id, f.day, f.attempt DESC, f.stop_id DESC)"
        " SELECT {key} AS key, o.channel,"
        " count(*) FILTER (WHERE o.state IN ('sent', 'delivered'))::int AS sent,"
        " count(*) FILTER (WHERE o.state IN ('failed', 'dead'))::int AS failed"
        " FROM f JOIN outbox o ON o.order_id = f.order_id"
        # The stop's day in the organisation's zone; the zone is one value for the query (an
        # init plan), so the bounds can be an index condition on outbox_order.
        "  AND o.created_at >= f.day::timestamp AT TIME ZONE {zone}"
        "  AND o.created_at < (f.day + 1)::timestamp AT TIME ZONE {zone}"
        " WHERE o.org_id = %(org)s AND o.state IN ('sent', 'delivered', 'failed', 'dead')"
        " GROUP BY 1, 2 ORDER BY 1, 2"
    ).format(
        key=sql.SQL(key),
        failed=_failed_only(by),
        zone=sql.SQL("(SELECT timezone FROM orgs WHERE id = %(org)s)"),
    )
    async with conn.cursor(row_factory=class_row(NotificationTotals)) as cursor:
        await cursor.execute(query, {"org": org_id, "from": day_from, "to": day_to})
        return await cursor.fetchall()


async def route_totals(
    conn: AsyncConnection[Any], org_id: OrgId, day_from: date, day_to: date, by: RouteGroup
) -> list[RouteTotals]:
    """The completed routes of the range, totalled per group, in label order."""
    key, label = _GROUPS[by]
    query = sql.SQL(
        "SELECT {key} AS key, max({label}) AS label, count(*)::int AS routes,"
        " sum(f.stops)::int AS stops, sum(f.delivered)::int AS delivered,"
        " sum(f.planned_m)::float8 AS planned_m, sum(f.driven_m)::float8 AS driven_m,"
        " sum(f.planned_s)::int AS planned_s, sum(f.actual_s)::int AS actual_s,"
        " sum(f.idle_s)::int AS idle_s,"
        " coalesce(sum(f.energy_used) FILTER (WHERE f.energy IN ('diesel', 'petrol')), 0)::float8"
        "  AS fuel_l,"
        " coalesce(sum(f.energy_used) FILTER (WHERE f.energy = 'electric'), 0)::float8"
        "  AS electricity_kwh,"
        " coalesce(sum(f.co2_kg), 0)::float8 AS co2_kg, sum(f.jumps)::int AS gps_jumps"
        " FROM route_facts f {names}"
        " WHERE f.org_id = %s AND f.day BETWEEN %s AND %s"
        " GROUP BY 1 ORDER BY 2, 1"
    ).format(key=sql.SQL(key), label=sql.SQL(label), names=sql.SQL(_NAMES))
    return await _rows(conn, RouteTotals, query, (org_id, day_from, day_to))


@dataclass(frozen=True)
class LateZone:
    zone: str
    days: int
    late_days: int
    with_window: int
    late: int
    mean_lateness_s: float


@dataclass(frozen=True)
class FailingPlace:
    key: str
    label: str
    zone: str
    failed: int
    first_attempts: int
    days: int
    reasons: list[str]


@dataclass(frozen=True)
class DriverService:
    driver_id: int
    label: str
    stops: int
    median_service_s: float


async def late_zones(
    conn: AsyncConnection[Any], org_id: OrgId, day_from: date, day_to: date, min_days: int
) -> list[LateZone]:
    """Zones with late stops on at least ``min_days`` days of the range, most late days first."""
    return await fetch_all(
        conn,
        class_row(LateZone),
        "SELECT zone, count(DISTINCT day)::int AS days,"
        " count(DISTINCT day) FILTER (WHERE punctuality = 'late')::int AS late_days,"
        " count(punctuality)::int AS with_window,"
        " count(*) FILTER (WHERE punctuality = 'late')::int AS late,"
        " coalesce(avg(lateness_s) FILTER (WHERE punctuality = 'late'), 0)::float8"
        "  AS mean_lateness_s"
        " FROM stop_facts WHERE org_id = %s AND day BETWEEN %s AND %s GROUP BY zone"
        " HAVING count(DISTINCT day) FILTER (WHERE punctuality = 'late') >= %s"
        " ORDER BY late_days DESC, late DESC, zone LIMIT 50",
        (org_id, day_from, day_to, min_days),
    )


async def failing_addresses(
    conn: AsyncConnection[Any], org_id: OrgId, day_from: date, day_to: date, min_failed: int
) -> list[FailingPlace]:
    """Addresses whose first attempts failed at least ``min_failed`` times, with the reasons."""
    return await fetch_all(
        conn,
        class_row(FailingPlace),
        "SELECT f.address_key AS key, max(o.address) AS label, max(f.zone) AS zone,"
        " count(*) FILTER (WHERE f.outcome = 'failed')::int AS failed,"
        " count(*)::int AS first_attempts,"
        " count(DISTINCT f.day) FILTER (WHERE f.outcome = 'failed')::int AS days,"
        " array_agg(coalesce(f.failure_code, 'unspecified') ORDER BY f.completed_at)"
        "  FILTER (WHERE f.outcome = 'failed') AS reasons"
        " FROM stop_facts f JOIN orders o ON o.id = f.order_id"
        " WHERE f.org_id = %s AND f.day BETWEEN %s AND %s AND f.attempt = 1"
        " GROUP BY f.address_key"
        " HAVING count(*) FILTER (WHERE f.outcome = 'failed') >= %s"
        " ORDER BY failed DESC, key LIMIT 50",
        (org_id, day_from, day_to, min_failed),
    )


async def failing_zones(
    conn: AsyncConnection[Any], org_id: OrgId, day_from: date, day_to: date, min_failed: int
) -> list[FailingPlace]:
    """Zones with at least ``min_failed`` failed first attempts, with the reasons."""
    return await fetch_all(
        conn,
        class_row(FailingPlace),
        "SELECT zone AS key, zone AS label, zone,"
        " count(*) FILTER (WHERE outcome = 'failed')::int AS failed,"
        " count(*)::int AS first_attempts,"
        " count(DISTINCT day) FILTER (WHERE outcome = 'failed')::int AS days,"
        " array_agg(coalesce(failure_code, 'unspecified') ORDER BY completed_at)"
        "  FILTER (WHERE outcome = 'failed') AS reasons"
        " FROM stop_facts WHERE org_id = %s AND day BETWEEN %s AND %s AND attempt = 1"
        " GROUP BY zone HAVING count(*) FILTER (WHERE outcome = 'failed') >= %s"
        " ORDER BY failed DESC, key LIMIT 200",
        (org_id, day_from, day_to, min_failed),
    )


async def driver_service(
    conn: AsyncConnection[Any], org_id: OrgId, day_from: date, day_to: date
) -> list[DriverService]:
    """Each driver's median service time over the stops whose arrival is known."""
    return await fetch_all(
        conn,
        class_row(DriverService),
        "SELECT f.driver_id, max(coalesce(d.name, 'driver ' || f.driver_id)) AS label,"
        " count(*)::int AS stops,"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY f.service_s)::float8 AS median_service_s"
        " FROM stop_facts f LEFT JOIN drivers d ON d.id = f.driver_id"
        " WHERE f.org_id = %s AND f.day BETWEEN %s AND %s AND f.arrival_source <> 'completion'"
        " GROUP BY f.driver_id ORDER BY f.driver_id",
        (org_id, day_from, day_to),
    )
