"""The messages sent in the delivery report, on a constructed Auckland day whose answers are
known: per channel, sent and failed, counted on the organisation's day (not UTC's) for the
stop of the message's order, in JSON and in the CSV."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest

from schemas.ids import OrderId
from schemas.notifications import Channel, NotificationKind
from store import notifications as outbox
from tests.conftest import Tenant, make_tenant
from tests.facts import Fact, seed
from tests.workers.outbox_rows import customer_message

ZONE = ZoneInfo("Pacific/Auckland")
DAY = date(2026, 11, 24)
NEXT = DAY + timedelta(days=1)


def local(day: date, hour: int, minute: int = 0) -> datetime:
    """An Auckland instant (UTC+13 in November: before 13:00 the UTC date is the day before)."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZONE)


# order (by its fact's place in FACTS), kind, channel, created, final state
MESSAGES: list[tuple[int, NotificationKind, Channel, datetime, str]] = [
    (0, "en_route", "sms", local(DAY, 10), "sent"),
    (0, "approaching", "email", local(DAY, 0, 30), "delivered"),  # the 23rd in UTC
    (0, "delivered", "email", local(DAY, 11), "failed"),
    (0, "approaching", "sms", local(DAY, 10, 30), "pending"),  # on its way: in neither
    (0, "eta_changed", "sms", local(DAY - timedelta(days=1), 23, 30), "sent"),  # the day before
    (0, "running_late", "sms", local(NEXT, 9), "sent"),  # a day the order had no stop
    (1, "failed", "sms", local(DAY, 12), "dead"),
    (1, "en_route", "email", local(DAY, 12, 5), "sent"),
    (2, "en_route", "sms", local(DAY, 9), "sent"),
    (3, "en_route", "email", local(NEXT, 9), "sent"),  # out of a one-day range
]


@pytest.fixture
async def reported(db: psycopg.AsyncConnection) -> tuple[Tenant, dict[str, Any]]:
    """An Auckland organisation's day: Ada delivers order 0 and fails order 1 (not home), Bo
    delivers order 2; the next day Ada delivers order 3. Their messages as in MESSAGES."""
    tenant = await make_tenant(db, drivers=2)
    await db.execute(
        "UPDATE orgs SET timezone = 'Pacific/Auckland' WHERE id = %s", (tenant.org_id,)
    )
    ada, bo = (d.id for d in tenant.drivers)
    await seed(
        db,
        tenant.org_id,
        [
            Fact(day=DAY, driver=ada),
            Fact(day=DAY, driver=ada, outcome="failed", failure_code="not_home", punctuality=None),
            Fact(day=DAY, driver=bo),
            Fact(day=NEXT, driver=ada),
        ],
    )
    rows = await (
        await db.execute(
            "SELECT id FROM orders WHERE org_id = %s ORDER BY external_ref", (tenant.org_id,)
        )
    ).fetchall()
    orders = [OrderId(row[0]) for row in rows]
    notes = [
        customer_message(
            tenant.org_id, orders[n], f"{tenant.org_id}-{i}", "x@example.com", kind=kind,
            channel=channel, created_at=at,
        )
        for i, (n, kind, channel, at, _state) in enumerate(MESSAGES)
    ]  # fmt: skip
    assert await outbox.insert_many(db, notes) == len(notes)
    for note, (*_, state) in zip(notes, MESSAGES, strict=True):
        await db.execute(
            "UPDATE outbox SET state = %s WHERE idempotency_key = %s",
            (state, note.idempotency_key),
        )
    return tenant, {"ada": str(ada), "bo": str(bo)}


def _sent(row: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {m["channel"]: (m["sent"], m["failed"]) for m in row["notifications"]}


async def test_each_group_counts_its_stops_messages_by_channel(
    http: httpx.AsyncClient, reported: tuple[Tenant, dict[str, Any]]
) -> None:
    """By day, driver and reason: sent and failed per channel for the day's stops; a message
    still pending, one of the day before and one of a day the order had no stop count nowhere,
    and the next day's stop has its own."""
    tenant, drivers = reported
    auth = {"authorization": f"Bearer {tenant.api_key}"}

    async def rows(by: str, day_to: date = DAY) -> dict[str, dict[str, tuple[int, int]]]:
        answer = await http.get(
            "/v1/analytics/deliveries",
            params={"from": str(DAY), "to": str(day_to), "by": by},
            headers=auth,
        )
        assert answer.status_code == 200, answer.text
        return {r["key"]: _sent(r) for r in answer.json()["rows"]}

    assert await rows("day") == {
        str(DAY): {"sms": (2, 1), "email": (2, 1), "webhook": (0, 0)},
    }
    assert await rows("driver") == {
        drivers["ada"]: {"sms": (1, 1), "email": (2, 1), "webhook": (0, 0)},
        drivers["bo"]: {"sms": (1, 0), "email": (0, 0), "webhook": (0, 0)},
    }
    assert await rows("reason") == {"not_home": {"sms": (0, 1), "email": (1, 0), "webhook": (0, 0)}}
    two_days = await rows("day", NEXT)
    assert two_days[str(NEXT)] == {"sms": (0, 0), "email": (1, 0), "webhook": (0, 0)}


async def test_the_csv_has_a_column_per_channel_and_outcome(
    http: httpx.AsyncClient, reported: tuple[Tenant, dict[str, Any]]
) -> None:
    """The CSV export flattens the messages into ``notifications_{channel}_{sent|failed}``."""
    tenant, _ = reported
    answer = await http.get(
        "/v1/analytics/deliveries",
        params={"from": str(DAY), "to": str(DAY), "format": "csv"},
        headers={"authorization": f"Bearer {tenant.api_key}"},
    )
    assert answer.status_code == 200, answer.text
    (row,) = list(csv.DictReader(io.StringIO(answer.text)))
    assert {k: v for k, v in row.items() if k.startswith("notifications_")} == {
        "notifications_sms_sent": "2",
        "notifications_sms_failed": "1",
        "notifications_email_sent": "2",
        "notifications_email_failed": "1",
        "notifications_webhook_sent": "0",
        "notifications_webhook_failed": "0",
    }


async def test_a_day_without_messages_shows_zeros(
    db: psycopg.AsyncConnection, http: httpx.AsyncClient
) -> None:
    """A group whose stops got no message has every channel at zero, not a missing list."""
    tenant = await make_tenant(db, drivers=1)
    await seed(db, tenant.org_id, [Fact(day=DAY, driver=tenant.drivers[0].id)])
    answer = await http.get(
        "/v1/analytics/deliveries",
        params={"from": str(DAY), "to": str(DAY)},
        headers={"authorization": f"Bearer {tenant.api_key}"},
    )
    (row,) = answer.json()["rows"]
    assert _sent(row) == {"sms": (0, 0), "email": (0, 0), "webhook": (0, 0)}
