"""A constructed fortnight of an Auckland organisation whose weekly figures are known: the
weekly summary's tests (``tests/workers/test_summary.py``, ``tests/app/test_analytics_summary.py``)
compose, send and preview it."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypedDict
from zoneinfo import ZoneInfo

import psycopg

from schemas.ids import OrderId, OrgId
from schemas.notifications import Channel, NotificationKind
from store import notifications as outbox
from tests.conftest import make_tenant
from tests.facts import Fact, seed
from tests.workers.outbox_rows import customer_message

AUCKLAND = ZoneInfo("Pacific/Auckland")
WEEK = date(2026, 11, 23)  # a Monday
BEFORE = WEEK - timedelta(days=7)
SUNDAY = WEEK + timedelta(days=6)
NOW = datetime(2026, 11, 29, 20, 0, tzinfo=UTC)
"""Monday 30 November, 09:00 in Auckland; still Sunday the 29th in UTC."""
HOSTILE_ADDRESS = '<b>12 Linden St</b><script>alert("x")</script>'
HOSTILE_CODE = "<i>gate</i>"
HOSTILE_ORG = "Acme & <Sons>"


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=AUCKLAND)


class Outcome(TypedDict):
    """How a :class:`~tests.facts.Fact`'s stop ended."""

    outcome: str
    punctuality: str | None


@dataclass(frozen=True)
class Fortnight:
    org_id: OrgId
    emails: list[str]


async def rows(db: psycopg.AsyncConnection, query: str, params: tuple[object, ...]) -> list[Any]:
    return list(await (await db.execute(query, params)).fetchall())


async def build_fortnight(db: psycopg.AsyncConnection) -> Fortnight:
    """An Auckland organisation (named with markup) whose weeks are known:

    * the week of the 23rd: four deliveries on the Monday (one late) and, on the Sunday, two
      failed first attempts at one hostile address (not home; a hostile code);
    * the week of the 16th: two deliveries on time on the Monday, one failed on the Sunday;
    * outside both: a failure on Monday the 30th and a late delivery on Sunday the 15th.

    Routes, the windows in force 30 minutes before four arrivals, and messages (one sent on
    the 23rd at 00:30, the 22nd in UTC; one failed on the 29th at 23:30; one on the 16th; one
    on the 30th) come with them.
    """
    tenant = await make_tenant(db, drivers=1)
    org, ada = tenant.org_id, tenant.drivers[0].id
    emails = [
        f"ops-{secrets.token_hex(3)}@acme.example",
        f"lead-{secrets.token_hex(3)}@acme.example",
    ]
    await db.execute(
        "UPDATE orgs SET name = %s, timezone = 'Pacific/Auckland', locale = 'de',"
        " summary_emails = %s WHERE id = %s",
        (HOSTILE_ORG, emails, org),
    )
    failed: Outcome = {"outcome": "failed", "punctuality": None}
    await seed(
        db,
        org,
        [
            *[Fact(day=WEEK, driver=ada)] * 3,  # o0-o2
            Fact(day=WEEK, driver=ada, punctuality="late"),  # o3
            Fact(day=SUNDAY, driver=ada, address=HOSTILE_ADDRESS, failure_code="not_home",
                 **failed),  # o4
            Fact(day=SUNDAY, driver=ada, address=HOSTILE_ADDRESS, failure_code=HOSTILE_CODE,
                 **failed),  # o5
            *[Fact(day=BEFORE, driver=ada)] * 2,  # o6, o7
            Fact(day=BEFORE + timedelta(days=6), driver=ada, failure_code="not_home",
                 **failed),  # o8
            Fact(day=SUNDAY + timedelta(days=1), driver=ada, failure_code="access",
                 **failed),  # o9
            Fact(day=BEFORE - timedelta(days=1), driver=ada, punctuality="late"),  # o10
        ],
    )  # fmt: skip
    # planned m, driven m, stops, actual s, per route day
    driving = {
        WEEK: (40_000, 50_000, 4, 4 * 3600),
        SUNDAY: (10_000, 10_000, 2, 3600),
        BEFORE: (20_000, 25_000, 2, 2 * 3600),
        BEFORE + timedelta(days=6): (10_000, 10_000, 1, 3600),
    }
    for route, day, vehicle in await rows(
        db, "SELECT id, day, vehicle_id FROM routes WHERE org_id = %s", (org,)
    ):
        planned, driven, stops, actual = driving.get(day, (5_000, 5_000, 1, 3600))
        at = local(day, 8)
        await db.execute(
            "INSERT INTO route_facts (route_id, org_id, day, driver_id, vehicle_id, stops,"
            " delivered, failed, planned_m, driven_m, planned_s, actual_s, moving_s, idle_s,"
            " fixes, jumps, started_at, completed_at) VALUES (%s, %s, %s, %s, %s, %s, 0, 0,"
            " %s, %s, %s, %s, 0, 0, 0, 0, %s, %s)",
            (route, org, day, ada, vehicle, stops, planned, driven, actual, actual, at,
             at + timedelta(seconds=actual)),
        )  # fmt: skip
    refs = dict(
        await rows(
            db,
            "SELECT o.external_ref, f.stop_id FROM stop_facts f JOIN orders o ON o.id = f.order_id"
            " WHERE f.org_id = %s",
            (org,),
        )
    )
    # ref: (error s, inside) 30 minutes before; o0 also has a 15-minute window, left out
    for ref, (error_s, inside) in {"o0": (120, True), "o1": (-360, False),
                                   "o6": (60, True), "o9": (900, False)}.items():  # fmt: skip
        await db.execute(
            "INSERT INTO stop_eta_errors (stop_id, horizon_min, error_s, inside)"
            " VALUES (%s, 30, %s, %s)",
            (refs[ref], error_s, inside),
        )
    await db.execute("INSERT INTO stop_eta_errors VALUES (%s, 15, 999, false)", (refs["o0"],))
    orders = dict(await rows(db, "SELECT external_ref, id FROM orders WHERE org_id = %s", (org,)))
    messages: list[tuple[str, NotificationKind, Channel, datetime, str]] = [
        ("o0", "en_route", "sms", local(WEEK, 0, 30), "sent"),
        ("o4", "failed", "email", local(SUNDAY, 23, 30), "failed"),
        ("o6", "en_route", "sms", local(BEFORE, 10), "sent"),
        ("o9", "en_route", "sms", local(SUNDAY + timedelta(days=1), 9), "sent"),
    ]
    for n, (ref, kind, channel, at, state) in enumerate(messages):
        note = customer_message(
            org, OrderId(orders[ref]), f"{org}-{n}", "x@example.com", kind=kind,
            channel=channel, created_at=at,
        )  # fmt: skip
        await outbox.insert_many(db, [note])
        await db.execute(
            "UPDATE outbox SET state = %s WHERE idempotency_key = %s",
            (state, note.idempotency_key),
        )
    return Fortnight(org, emails)
