"""Patterns worth acting on, found in seeded facts whose answer is known: a zone late four days
running, an address whose first attempts keep failing, a driver twice as slow at the door."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import psycopg

from schemas.ids import DriverId, OrgId
from solver.learning import address_key
from tests.conftest import Tenant, make_tenant

FIRST = date(2026, 11, 16)
LATE_ZONE = "881f1d4887fffff"
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


async def _one(db: psycopg.AsyncConnection, query: str, params: tuple[Any, ...]) -> Any:
    row = await (await db.execute(query, params)).fetchone()  # type: ignore[arg-type]
    assert row is not None
    return row[0]


async def seed(db: psycopg.AsyncConnection, org: OrgId, facts: list[Fact]) -> None:
    """Stops (on one route per driver and day) with these facts."""
    vehicle = await _one(
        db, "INSERT INTO vehicles (org_id, name) VALUES (%s, 'Van') RETURNING id", (org,)
    )
    routes: dict[tuple[date, DriverId], int] = {}
    for n, fact in enumerate(facts):
        at = datetime(fact.day.year, fact.day.month, fact.day.day, 9, tzinfo=UTC)
        if (fact.day, fact.driver) not in routes:
            shift = await _one(
                db,
                "INSERT INTO shifts (org_id, driver_id, vehicle_id, day, start_lat, start_lon,"
                " work_start, work_end) VALUES (%s, %s, %s, %s, 52.5, 13.4, %s, %s) RETURNING id",
                (org, fact.driver, vehicle, fact.day, at, at + timedelta(hours=9)),
            )
            plan = await _one(
                db, "INSERT INTO plans (org_id, day) VALUES (%s, %s) RETURNING id", (org, fact.day)
            )
            routes[(fact.day, fact.driver)] = await _one(
                db,
                "INSERT INTO routes (org_id, plan_id, shift_id, driver_id, vehicle_id, day,"
                " planned_start, planned_end) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                " RETURNING id",
                (org, plan, shift, fact.driver, vehicle, fact.day, at, at + timedelta(hours=9)),
            )
        route = routes[(fact.day, fact.driver)]
        order = await _one(
            db,
            "INSERT INTO orders (org_id, external_ref, address, lat, lon, day) VALUES"
            " (%s, %s, %s, 52.5, 13.4, %s) RETURNING id",
            (org, f"o{n}", fact.address, fact.day),
        )
        stop = await _one(
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


async def test_patterns_name_what_recurs_with_its_evidence(
    db: psycopg.AsyncConnection, http: httpx.AsyncClient
) -> None:
    """Six days: one zone has late stops on four of them, one address fails its first attempt
    three times (not home twice), one of three drivers takes twice the fleet's time at the
    door; a zone late once and an address failing once are not patterns."""
    tenant: Tenant = await make_tenant(db, drivers=3)
    ada, bo, cy = (d.id for d in tenant.drivers)
    facts: list[Fact] = []
    for n in range(6):
        day = FIRST + timedelta(days=n)
        for driver, service in ((ada, 120), (bo, 130), (cy, 260)):
            facts += [Fact(day=day, driver=driver, service_s=service)] * 4
        facts.append(
            Fact(day=day, driver=ada, zone=LATE_ZONE, punctuality="late" if n < 4 else "on_time")
        )
    facts.append(Fact(day=FIRST, driver=bo, zone="881f1d4883fffff", punctuality="late"))
    for n, code in enumerate(["not_home", "access", "not_home"]):
        facts.append(
            Fact(day=FIRST + timedelta(days=n), driver=bo, address="12  Linden St",
                 outcome="failed", failure_code=code, punctuality=None)
        )  # fmt: skip
    facts.append(
        Fact(day=FIRST, driver=bo, address="3 Once Rd", outcome="failed", punctuality=None)
    )
    await seed(db, tenant.org_id, facts)
    answer = await http.get(
        "/v1/analytics/patterns",
        params={"from": str(FIRST), "to": str(FIRST + timedelta(days=5))},
        headers={"authorization": f"Bearer {tenant.api_key}"},
    )
    assert answer.status_code == 200, answer.text
    found = {(p["kind"], p["key"]): p for p in answer.json()["patterns"]}
    late = found.pop(("late_zone", LATE_ZONE))
    assert (late["days"], late["late"], late["stops"]) == (4, 4, 6)
    failing = found.pop(("failing_address", "12 linden st"))
    assert failing["label"] == "12  Linden St"
    assert (failing["failed"], failing["reasons"]) == (3, {"not_home": 2, "access": 1})
    slow = found.pop(("slow_service", str(cy)))
    assert (slow["median_service_s"], slow["fleet_median_service_s"]) == (260, 130)
    # The calm zone holds every failed first attempt of the range: 4 of 76, the organisation's
    # rate is 4 of 83, not twice it.
    assert found == {}
