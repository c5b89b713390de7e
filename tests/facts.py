"""Analytics facts seeded straight into ``stop_facts`` (with the stops, routes and orders they
belong to), for tests of what reads them: the reports, the patterns, the page. How facts are
computed is tested in ``tests/workers/test_rollups.py``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg

from schemas.ids import DriverId, OrgId
from solver.learning import address_key

CALM_ZONE = "881f1d4881fffff"


@dataclass(frozen=True)
class Fact:
    day: date
    driver: DriverId
    zone: str = CALM_ZONE
    address: str = "1 Calm St"
    punctuality: str | None = "on_time"
    outcome: str = "delivered"
    failure_code: str | None = None
    service_s: int = 120


async def one(db: psycopg.AsyncConnection, query: str, params: tuple[Any, ...]) -> Any:
    """The first column of the one row ``query`` gives (an ``INSERT ... RETURNING id``)."""
    row = await (await db.execute(query, params)).fetchone()
    assert row is not None
    return row[0]


async def seed(db: psycopg.AsyncConnection, org: OrgId, facts: list[Fact]) -> None:
    """Stops (on one route per driver and day) with these facts."""
    vehicle = await one(
        db, "INSERT INTO vehicles (org_id, name) VALUES (%s, 'Van') RETURNING id", (org,)
    )
    routes: dict[tuple[date, DriverId], int] = {}
    for n, fact in enumerate(facts):
        at = datetime(fact.day.year, fact.day.month, fact.day.day, 9, tzinfo=UTC)
        if (fact.day, fact.driver) not in routes:
            shift = await one(
                db,
                "INSERT INTO shifts (org_id, driver_id, vehicle_id, day, start_lat, start_lon,"
                " work_start, work_end) VALUES (%s, %s, %s, %s, 52.5, 13.4, %s, %s) RETURNING id",
                (org, fact.driver, vehicle, fact.day, at, at + timedelta(hours=9)),
            )
            plan = await one(
                db, "INSERT INTO plans (org_id, day) VALUES (%s, %s) RETURNING id", (org, fact.day)
            )
            routes[(fact.day, fact.driver)] = await one(
                db,
                "INSERT INTO routes (org_id, plan_id, shift_id, driver_id, vehicle_id, day,"
                " planned_start, planned_end) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                " RETURNING id",
                (org, plan, shift, fact.driver, vehicle, fact.day, at, at + timedelta(hours=9)),
            )
        route = routes[(fact.day, fact.driver)]
        order = await one(
            db,
            "INSERT INTO orders (org_id, external_ref, address, lat, lon, day) VALUES"
            " (%s, %s, %s, 52.5, 13.4, %s) RETURNING id",
            (org, f"o{n}", fact.address, fact.day),
        )
        stop = await one(
            db,
            "INSERT INTO stops (org_id, route_id, order_id, seq, planned_arrival,"
            " planned_departure, status) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (org, route, order, n, at, at, fact.outcome),
        )
        await db.execute(
            "INSERT INTO stop_facts (stop_id, org_id, day, route_id, order_id, driver_id, zone,"
            " address_key, outcome, failure_code, attempt, planned_arrival, arrived_at,"
            " arrival_source, completed_at, punctuality, lateness_s, service_s,"
            " arrival_error_s) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 1, %s, %s,"
            " 'reported', %s, %s, %s, %s, 0)",
            (
                stop, org, fact.day, route, order, fact.driver, fact.zone,
                address_key(fact.address), fact.outcome, fact.failure_code, at, at,
                at + timedelta(seconds=fact.service_s), fact.punctuality,
                900 if fact.punctuality == "late" else 0, fact.service_s,
            ),
        )  # fmt: skip
