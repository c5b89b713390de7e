"""Patterns worth acting on, found in seeded facts whose answer is known: a zone late four days
running, an address whose first attempts keep failing, a driver twice as slow at the door."""

from __future__ import annotations

from datetime import date, timedelta

import httpx
import psycopg

from tests.conftest import Tenant, make_tenant
from tests.facts import Fact, seed

FIRST = date(2026, 11, 16)
LATE_ZONE = "881f1d4887fffff"


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
