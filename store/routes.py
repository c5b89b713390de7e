"""Dispatched routes and stops: every query of the dispatch side (plans: :mod:`store.plans`).

State machines, enforced here in SQL so that two racing requests cannot both win:

* route: ``dispatched → started → completed`` (``cancelled`` by a dispatcher);
* stop: ``pending → arrived → delivered | failed``, ``pending → delivered | failed`` (no
  arrival reported), and ``pending → removed`` (cancelled or moved away).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row, dict_row, scalar_row

from schemas.customer import Instructions
from schemas.ids import DriverId, OrderId, OrgId, PlanId, RouteId, ShiftId, StopId, VehicleId
from schemas.route import RouteStop, RouteView, Window
from store import audit
from store.rows import fetch_all, fetch_one, returned

# --- routes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewStop:
    """A stop of a route about to be dispatched."""

    order_id: OrderId
    planned_arrival: datetime
    planned_departure: datetime
    service_s: int | None = None
    """The service time the plan gave the stop: an order that named none takes it (the
    organisation's default or a learned estimate), so the driver's route, the live ETAs,
    re-optimisation and the day's facts time the stop as its plan did. None: the order's own."""


@dataclass(frozen=True)
class NewRoute:
    """A plan's route about to be dispatched."""

    shift_id: ShiftId
    driver_id: DriverId
    vehicle_id: VehicleId
    planned_start: datetime
    planned_end: datetime
    distance_m: int
    stops: list[NewStop]


@dataclass(frozen=True)
class Dispatched:
    """What dispatching did: the routes created, and orders skipped because they changed."""

    route_ids: list[RouteId]
    skipped_orders: list[OrderId]


async def dispatch_routes(
    conn: AsyncConnection, org_id: OrgId, plan_id: PlanId, day: date, routes: Sequence[NewRoute]
) -> Dispatched:
    """Create the routes and stops of a plan in one transaction; orders become ``dispatched``.

    An order that named no service time takes the one its stop was planned with
    (:attr:`NewStop.service_s`). An order that is no longer pending (cancelled, or already on
    another dispatched route) or no longer for ``day`` (moved to another day by its customer)
    is skipped and reported. A route dispatched before from this plan is not created twice
    (``(plan, shift)`` is unique); re-dispatching returns the existing one.
    """
    created: list[RouteId] = []
    skipped: list[OrderId] = []
    async with conn.transaction():
        for route in routes:
            existing = await fetch_one(
                conn,
                scalar_row,
                "SELECT id FROM routes WHERE plan_id = %s AND shift_id = %s",
                (plan_id, route.shift_id),
            )
            if existing is not None:
                created.append(RouteId(existing))
                continue
            new_id = await fetch_one(
                conn,
                scalar_row,
                "INSERT INTO routes (org_id, plan_id, shift_id, driver_id, vehicle_id, day,"
                " planned_start, planned_end, distance_m)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (
                    org_id,
                    plan_id,
                    route.shift_id,
                    route.driver_id,
                    route.vehicle_id,
                    day,
                    route.planned_start,
                    route.planned_end,
                    route.distance_m,
                ),
            )
            route_id = RouteId(returned(new_id))
            seq = 0
            for stop in route.stops:
                if not await take_order(conn, org_id, stop.order_id, day, stop.service_s):
                    skipped.append(stop.order_id)
                    continue
                await conn.execute(
                    "INSERT INTO stops (org_id, route_id, order_id, seq, planned_arrival,"
                    " planned_departure) VALUES (%s, %s, %s, %s, %s, %s)",
                    (
                        org_id,
                        route_id,
                        stop.order_id,
                        seq,
                        stop.planned_arrival,
                        stop.planned_departure,
                    ),
                )
                seq += 1
            placed = [stop.order_id for stop in route.stops if stop.order_id not in skipped]
            await audit.append(
                conn,
                org_id,
                "route.dispatched",
                f"route:{route_id}",
                {"plan_id": plan_id, "driver_id": route.driver_id, "order_ids": placed},
            )
            created.append(route_id)
    return Dispatched(created, skipped)


_ROUTE_COLUMNS = (
    "id, plan_id, driver_id, vehicle_id, shift_id, day, status, version, planned_start,"
    " planned_end, distance_m"
)
_STOP_COLUMNS = """
SELECT s.id, s.seq, s.status, o.id AS order_id, o.external_ref AS order_ref, o.customer_name,
       o.phone, o.address, o.lat, o.lon, o.window_starts, o.window_ends, o.service_s, o.notes,
       s.planned_arrival, s.planned_departure, s.lateness_s, s.arrived_at, s.completed_at,
       s.failure_reason,
       coalesce((SELECT array_agg(p.barcode ORDER BY p.position) FROM parcels p
                 WHERE p.order_id = o.id), '{}') AS barcodes,
       ci.order_id AS ci_order_id, ci.gate_code AS ci_gate_code, ci.leave_at AS ci_leave_at,
       ci.safe_place_allowed AS ci_safe_place_allowed, ci.note AS ci_note,
       ci.source AS ci_source, ci.updated_at AS ci_updated_at
FROM stops s JOIN orders o ON o.org_id = s.org_id AND o.id = s.order_id
LEFT JOIN customer_instructions ci ON ci.order_id = o.id
"""
_STOPS = _STOP_COLUMNS + "WHERE s.route_id = %s AND s.status <> 'removed' ORDER BY s.seq"
_DAY_STOPS = (
    _STOP_COLUMNS.replace("SELECT s.id,", "SELECT s.route_id, s.id,", 1)
    + "JOIN routes r ON r.id = s.route_id"
    " WHERE r.org_id = %s AND r.day = %s AND s.status <> 'removed' ORDER BY s.route_id, s.seq"
)


async def route_view(conn: AsyncConnection, org_id: OrgId, route_id: RouteId) -> RouteView | None:
    """A route of ``org_id`` with its live stops in order, or None."""
    row = await fetch_one(
        conn,
        dict_row,
        f"SELECT {_ROUTE_COLUMNS} FROM routes WHERE id = %s AND org_id = %s",
        (route_id, org_id),
    )
    if row is None:
        return None
    stops = await fetch_all(conn, dict_row, _STOPS, (route_id,))
    return _route(row, [_stop(s) for s in stops])


async def day_views(conn: AsyncConnection, org_id: OrgId, day: date) -> list[RouteView]:
    """Every route of ``org_id`` on ``day`` with its live stops, by id, in two queries."""
    rows = await fetch_all(
        conn,
        dict_row,
        f"SELECT {_ROUTE_COLUMNS} FROM routes WHERE org_id = %s AND day = %s ORDER BY id",
        (org_id, day),
    )
    stops: dict[int, list[RouteStop]] = {row["id"]: [] for row in rows}
    for s in await fetch_all(conn, dict_row, _DAY_STOPS, (org_id, day)):
        stops[s["route_id"]].append(_stop(s))
    return [_route(row, stops[row["id"]]) for row in rows]


def _route(row: dict[str, Any], stops: list[RouteStop]) -> RouteView:
    """A route from a row of :data:`_ROUTE_COLUMNS`, with its stops."""
    return RouteView(
        id=RouteId(row["id"]),
        plan_id=PlanId(row["plan_id"]),
        driver_id=DriverId(row["driver_id"]),
        vehicle_id=row["vehicle_id"],
        shift_id=row["shift_id"],
        day=row["day"].isoformat(),
        status=row["status"],
        version=row["version"],
        planned_start=row["planned_start"],
        planned_end=row["planned_end"],
        distance_m=row["distance_m"],
        stops=stops,
    )


def _stop(row: dict[str, Any]) -> RouteStop:
    """A stop from a row of :data:`_STOP_COLUMNS` (other columns, like a route id, ignored)."""
    return RouteStop(
        id=StopId(row["id"]),
        seq=row["seq"],
        status=row["status"],
        order_id=row["order_id"],
        order_ref=row["order_ref"],
        customer_name=row["customer_name"],
        phone=row["phone"],
        address=row["address"],
        lat=row["lat"],
        lon=row["lon"],
        windows=[
            Window(start=a, end=b)
            for a, b in zip(row["window_starts"], row["window_ends"], strict=True)
        ],
        service_s=row["service_s"],
        notes=row["notes"],
        planned_arrival=row["planned_arrival"],
        planned_departure=row["planned_departure"],
        lateness_s=row["lateness_s"],
        arrived_at=row["arrived_at"],
        completed_at=row["completed_at"],
        failure_reason=row["failure_reason"],
        barcodes=list(row["barcodes"]),
        instructions=(
            None
            if row["ci_order_id"] is None
            else Instructions(
                gate_code=row["ci_gate_code"],
                leave_at=row["ci_leave_at"],
                safe_place_allowed=row["ci_safe_place_allowed"],
                note=row["ci_note"],
                source=row["ci_source"],
                updated_at=row["ci_updated_at"],
            )
        ),
    )


async def current_route_id(
    conn: AsyncConnection, org_id: OrgId, driver_id: DriverId
) -> RouteId | None:
    """The driver's route in hand: the latest dispatched or started one, if any."""
    route_id = await fetch_one(
        conn,
        scalar_row,
        "SELECT id FROM routes WHERE org_id = %s AND driver_id = %s"
        " AND status IN ('dispatched', 'started') ORDER BY dispatched_at DESC, id DESC LIMIT 1",
        (org_id, driver_id),
    )
    return None if route_id is None else RouteId(route_id)


async def running_routes(conn: AsyncConnection, org_id: OrgId, day: date) -> list[RouteId]:
    """Routes of ``day`` that can still take stops (dispatched or started), by id."""
    route_ids = await fetch_all(
        conn,
        scalar_row,
        "SELECT id FROM routes WHERE org_id = %s AND day = %s"
        " AND status IN ('dispatched', 'started') ORDER BY id",
        (org_id, day),
    )
    return [RouteId(route_id) for route_id in route_ids]


async def start_route(
    conn: AsyncConnection,
    org_id: OrgId,
    driver_id: DriverId,
    route_id: RouteId,
    at: datetime | None = None,
) -> bool:
    """The driver starts its dispatched route (at ``at``, default now); False unless it was
    dispatched to this driver."""
    cursor = await conn.execute(
        "UPDATE routes SET status = 'started', started_at = coalesce(%s, now())"
        " WHERE id = %s AND org_id = %s AND driver_id = %s AND status = 'dispatched'",
        (at, route_id, org_id, driver_id),
    )
    return cursor.rowcount == 1


@dataclass(frozen=True)
class StopRef:
    """Which route and order a stop belongs to."""

    stop_id: StopId
    route_id: RouteId
    order_id: OrderId
    status: str


async def stop_of_driver(
    conn: AsyncConnection, org_id: OrgId, driver_id: DriverId, stop_id: StopId
) -> StopRef | None:
    """A live stop on one of the driver's routes, or None (another driver's stop looks missing)."""
    return await fetch_one(
        conn,
        class_row(StopRef),
        "SELECT s.id AS stop_id, s.route_id, s.order_id, s.status FROM stops s"
        " JOIN routes r ON r.id = s.route_id"
        " WHERE s.id = %s AND s.org_id = %s AND r.driver_id = %s AND s.status <> 'removed'",
        (stop_id, org_id, driver_id),
    )


async def arrive(conn: AsyncConnection, stop_id: StopId, at: datetime | None = None) -> bool:
    """Record arrival at a pending stop (at ``at``, default now); False if it was not pending."""
    cursor = await conn.execute(
        "UPDATE stops SET status = 'arrived', arrived_at = coalesce(%s, now()), updated_at = now()"
        " WHERE id = %s AND status = 'pending'",
        (at, stop_id),
    )
    return cursor.rowcount == 1


async def complete(
    conn: AsyncConnection,
    org_id: OrgId,
    stop: StopRef,
    *,
    delivered: bool,
    reason: str | None,
    at: datetime | None = None,
) -> bool:
    """Close a pending or arrived stop as delivered or failed (at ``at``, default now), with
    its order, in one step.

    Also completes the route when no stop is left open. False if the stop was already closed.
    """
    async with conn.transaction():
        cursor = await conn.execute(
            "UPDATE stops SET status = %s, completed_at = coalesce(%s, now()),"
            " failure_reason = %s, updated_at = now()"
            " WHERE id = %s AND status IN ('pending', 'arrived')",
            ("delivered" if delivered else "failed", at, reason, stop.stop_id),
        )
        if cursor.rowcount != 1:
            return False
        await conn.execute(
            "UPDATE orders SET status = %s, updated_at = now() WHERE org_id = %s AND id = %s",
            ("delivered" if delivered else "failed", org_id, stop.order_id),
        )
        await conn.execute(
            "UPDATE routes SET status = 'completed', completed_at = coalesce(%s, now())"
            " WHERE id = %s AND status IN ('dispatched', 'started') AND NOT EXISTS"
            " (SELECT 1 FROM stops WHERE route_id = %s AND status IN ('pending', 'arrived'))",
            (at, stop.route_id, stop.route_id),
        )
    return True


@dataclass(frozen=True)
class PlannedTime:
    """New planned times of one pending stop, in its new position."""

    order_id: OrderId
    planned_arrival: datetime
    planned_departure: datetime
    lateness_s: int


async def rewrite_pending(
    conn: AsyncConnection,
    org_id: OrgId,
    route_id: RouteId,
    expected_version: int,
    pending: Sequence[PlannedTime],
    *,
    removed_order_ids: Sequence[OrderId] = (),
) -> int | None:
    """Replace the route's pending stops with ``pending`` (in order), bump its version.

    Visited stops (arrived, delivered, failed) keep their place ahead of the pending ones. An
    order in ``pending`` without a live stop on this route gets one (an insertion or a move);
    ``removed_order_ids`` are marked removed. Returns the new version, or None when the route
    changed meanwhile (``expected_version`` is stale) — the caller re-reads and retries.
    """
    async with conn.transaction():
        # version is NOT NULL, so None means no row: the route changed or is not running.
        version = await fetch_one(
            conn,
            scalar_row,
            "UPDATE routes SET version = version + 1 WHERE id = %s AND org_id = %s"
            " AND version = %s AND status IN ('dispatched', 'started') RETURNING version",
            (route_id, org_id, expected_version),
        )
        if version is None:
            return None
        if removed_order_ids:
            await conn.execute(
                "UPDATE stops SET status = 'removed', updated_at = now()"
                " WHERE route_id = %s AND order_id = ANY(%s) AND status = 'pending'",
                (route_id, list(removed_order_ids)),
            )
        await audit.append(
            conn,
            org_id,
            "route.changed",
            f"route:{route_id}",
            {
                "version": version,
                "removed_order_ids": list(removed_order_ids),
                "pending_order_ids": [item.order_id for item in pending],
            },
        )
        last_seq = await fetch_one(
            conn,
            scalar_row,
            "SELECT coalesce(max(seq), -1) FROM stops WHERE route_id = %s"
            " AND status IN ('arrived', 'delivered', 'failed')",
            (route_id,),
        )
        seq = (last_seq if last_seq is not None else -1) + 1
        for item in pending:
            updated = await conn.execute(
                "UPDATE stops SET seq = %s, planned_arrival = %s, planned_departure = %s,"
                " lateness_s = %s, updated_at = now()"
                " WHERE route_id = %s AND order_id = %s AND status = 'pending'",
                (
                    seq,
                    item.planned_arrival,
                    item.planned_departure,
                    item.lateness_s,
                    route_id,
                    item.order_id,
                ),
            )
            if updated.rowcount == 0:
                await conn.execute(
                    "INSERT INTO stops (org_id, route_id, order_id, seq, planned_arrival,"
                    " planned_departure, lateness_s) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (
                        org_id,
                        route_id,
                        item.order_id,
                        seq,
                        item.planned_arrival,
                        item.planned_departure,
                        item.lateness_s,
                    ),
                )
            seq += 1
        return int(version)


@dataclass(frozen=True)
class RouteHead:
    """What re-optimisation needs of a route besides its stops."""

    route_id: RouteId
    org_id: OrgId
    driver_id: DriverId
    shift_id: ShiftId
    day: date
    status: str
    version: int
    started_at: datetime | None


async def route_head(conn: AsyncConnection, org_id: OrgId, route_id: RouteId) -> RouteHead | None:
    """The route's header, or None when ``org_id`` has no such route."""
    return await fetch_one(
        conn,
        class_row(RouteHead),
        "SELECT id AS route_id, org_id, driver_id, shift_id, day, status, version, started_at"
        " FROM routes WHERE id = %s AND org_id = %s",
        (route_id, org_id),
    )


@dataclass(frozen=True)
class OpenStop:
    """A stop still to visit, with what the re-optimiser needs of its order."""

    stop_id: StopId
    order_id: OrderId
    lat: float
    lon: float
    window_starts: list[datetime]
    window_ends: list[datetime]
    service_s: int
    size: dict[str, int]
    required_skills: list[str]


async def open_stops(conn: AsyncConnection, route_id: RouteId) -> list[OpenStop]:
    """The route's pending stops in their order."""
    return await fetch_all(
        conn,
        class_row(OpenStop),
        "SELECT s.id AS stop_id, o.id AS order_id, o.lat, o.lon, o.window_starts, o.window_ends,"
        " o.service_s, o.size, o.required_skills"
        " FROM stops s JOIN orders o ON o.org_id = s.org_id AND o.id = s.order_id"
        " WHERE s.route_id = %s AND s.status = 'pending' ORDER BY s.seq",
        (route_id,),
    )


async def last_visited(conn: AsyncConnection, route_id: RouteId) -> tuple[float, float] | None:
    """Where the route's latest visited stop is, if any stop was visited."""
    row = await (
        await conn.execute(
            "SELECT o.lat, o.lon FROM stops s JOIN orders o ON o.org_id = s.org_id"
            " AND o.id = s.order_id WHERE s.route_id = %s"
            " AND s.status IN ('arrived', 'delivered', 'failed') ORDER BY s.seq DESC LIMIT 1",
            (route_id,),
        )
    ).fetchone()
    if row is None:
        return None
    lat, lon = row
    return (lat, lon)


async def live_stop_of_order(
    conn: AsyncConnection, org_id: OrgId, order_id: OrderId
) -> tuple[StopId, RouteId, str] | None:
    """The order's live stop (id, route, status), if it is on a route: its newest one (an order
    tried again after a failure keeps its failed stops)."""
    row = await (
        await conn.execute(
            "SELECT id, route_id, status FROM stops WHERE org_id = %s AND order_id = %s"
            " AND status <> 'removed' ORDER BY id DESC LIMIT 1",
            (org_id, order_id),
        )
    ).fetchone()
    if row is None:
        return None
    stop_id, route_id, status = row
    return (StopId(stop_id), RouteId(route_id), status)


async def take_order(
    conn: AsyncConnection,
    org_id: OrgId,
    order_id: OrderId,
    day: date | None = None,
    service_s: int | None = None,
) -> bool:
    """Mark a pending order dispatched (it is being put on a route); False if not pending, or
    when ``day`` is given and the order is no longer for that day (its customer moved it).
    ``service_s``, the time its stop was planned with, becomes its service time if it named
    none."""
    cursor = await conn.execute(
        "UPDATE orders SET status = 'dispatched', updated_at = now(),"
        " service_s = CASE WHEN service_s_given THEN service_s"
        "  ELSE coalesce(%s::int, service_s) END"
        " WHERE org_id = %s AND id = %s AND status IN ('pending', 'planned')"
        " AND (%s::date IS NULL OR day = %s::date)",
        (service_s, org_id, order_id, day, day),
    )
    return cursor.rowcount == 1


async def order_day(conn: AsyncConnection, org_id: OrgId, order_id: OrderId) -> date | None:
    """The service day of an order of ``org_id``, or None."""
    day: date | None = await fetch_one(
        conn, scalar_row, "SELECT day FROM orders WHERE org_id = %s AND id = %s", (org_id, order_id)
    )
    return day


async def stop_by_id(
    conn: AsyncConnection, org_id: OrgId, stop_id: StopId
) -> tuple[OrderId, RouteId, str] | None:
    """A live stop's order, route and status."""
    row = await (
        await conn.execute(
            "SELECT order_id, route_id, status FROM stops WHERE org_id = %s AND id = %s"
            " AND status <> 'removed'",
            (org_id, stop_id),
        )
    ).fetchone()
    if row is None:
        return None
    order_id, route_id, status = row
    return (OrderId(order_id), RouteId(route_id), status)


async def pending_order(conn: AsyncConnection, org_id: OrgId, order_id: OrderId) -> OpenStop | None:
    """A pending order of ``org_id`` as a stop to place (its ``stop_id`` is 0: none yet)."""
    return await fetch_one(
        conn,
        class_row(OpenStop),
        "SELECT 0 AS stop_id, id AS order_id, lat, lon, window_starts, window_ends, service_s,"
        " size, required_skills"
        " FROM orders WHERE org_id = %s AND id = %s AND status IN ('pending', 'planned')",
        (org_id, order_id),
    )
