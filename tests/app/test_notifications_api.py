"""The notifications API: an order's messages with their attempts, a recipient's by day, tenancy."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import psycopg
from playwright.async_api import expect
from redis.asyncio import Redis

from app.outbox_metrics import sample_outbox
from app.resources import open_resources, stream_names
from app.settings import Settings
from realtime.events import emit
from schemas.delivery import OrderIn
from schemas.events import StopArrived
from schemas.ids import DriverId, OrderId, RouteId, StopId
from schemas.notifications import NotificationKind
from store import notifications as outbox
from store.orders import create_order
from tests.browser import Pages
from tests.conftest import LiveServer, Tenant, make_tenant
from tests.days import Day, plan_and_dispatch
from tests.workers.outbox_rows import customer_message


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def _order(db: psycopg.AsyncConnection, tenant: Tenant, ref: str, email: str) -> OrderId:
    order = OrderIn(
        external_ref=ref, address="1 Main St", lat=52.5, lon=13.4, day=date.today(), email=email
    )
    return (await create_order(db, tenant.org_id, order)).id


async def _message(
    db: psycopg.AsyncConnection,
    tenant: Tenant,
    order_id: OrderId,
    kind: NotificationKind,
    address: str,
    at: datetime,
) -> int:
    event_id = f"{int(at.timestamp() * 1000)}-{order_id}-{kind}"
    message = customer_message(tenant.org_id, order_id, event_id, address, kind=kind, created_at=at)
    await outbox.insert_many(db, [message])
    row = await (
        await db.execute(
            "SELECT id FROM outbox WHERE idempotency_key = %s", (message.idempotency_key,)
        )
    ).fetchone()
    assert row is not None
    return int(row[0])


async def _attempt(db: psycopg.AsyncConnection, outbox_id: int, error: str | None) -> None:
    """Claim the row (as a sender does) and record one attempt: retried with ``error``, or sent."""
    await db.execute(
        "UPDATE outbox SET state = 'sending', attempts = attempts + 1 WHERE id = %s", (outbox_id,)
    )
    attempts = (
        await (
            await db.execute("SELECT attempts FROM outbox WHERE id = %s", (outbox_id,))
        ).fetchone()
        or (0,)
    )[0]
    now = datetime.now(UTC)
    await outbox.record_attempt(
        db,
        outbox.Attempt(
            outbox_id=outbox_id,
            attempt=attempts,
            started_at=now,
            finished_at=now,
            outcome="retry" if error else "sent",
            status_code=451 if error else 250,
            latency_ms=12,
            provider_id=None if error else f"<{outbox_id}@lastmile>",
            error=error,
        ),
        now + timedelta(seconds=30) if error else None,
    )


async def test_an_orders_notifications_show_state_and_every_attempt(
    http: httpx.AsyncClient, db: psycopg.AsyncConnection, tenant: Tenant
) -> None:
    """An order's messages come oldest first, each with its channel, recipient, state and every
    attempt's outcome, status code and error, and the provider's id once sent."""
    order_id = await _order(db, tenant, "api-1", "dana@example.com")
    now = datetime.now(UTC)
    first = await _message(db, tenant, order_id, "en_route", "dana@example.com", now)
    await _message(db, tenant, order_id, "approaching", "dana@example.com", now + timedelta(1))
    await db.execute(
        "UPDATE outbox SET subject = %s, body_text = %s WHERE id = %s",
        ("On its way", "Your parcel is on its way <b>now</b>", first),
    )
    await _attempt(db, first, "451 mailbox busy")
    await _attempt(db, first, None)

    got = await http.get(f"/v1/orders/{order_id}/notifications", headers=auth(tenant.api_key))

    assert got.status_code == 200, got.text
    body: dict[str, Any] = got.json()
    assert body["order_id"] == order_id
    sent, waiting = body["notifications"]
    assert (sent["kind"], sent["channel"], sent["recipient"], sent["state"]) == (
        "en_route",
        "email",
        "dana@example.com",
        "sent",
    )
    assert [
        (a["attempt"], a["outcome"], a["status_code"], a["error"]) for a in sent["attempts"]
    ] == [
        (1, "retry", 451, "451 mailbox busy"),
        (2, "sent", 250, None),
    ]
    assert sent["provider_id"] == f"<{first}@lastmile>"
    assert (sent["subject"], sent["text"]) == ("On its way", "Your parcel is on its way <b>now</b>")
    assert (waiting["subject"], waiting["text"]) == (None, None)
    assert sent["next_attempt_at"] is None
    assert (waiting["kind"], waiting["state"], waiting["attempts"]) == (
        "approaching",
        "pending",
        [],
    )
    assert waiting["next_attempt_at"] is not None


async def test_another_organisations_order_is_not_found(
    http: httpx.AsyncClient, db: psycopg.AsyncConnection, tenant: Tenant
) -> None:
    """Another organisation's order answers 404, as one that does not exist; a bad id 400."""
    other = await make_tenant(db, drivers=0)
    theirs = await _order(db, other, "api-theirs", "x@example.com")
    await _message(db, other, theirs, "en_route", "x@example.com", datetime.now(UTC))

    got = await http.get(f"/v1/orders/{theirs}/notifications", headers=auth(tenant.api_key))
    assert got.status_code == 404
    bad = await http.get("/v1/orders/abc/notifications", headers=auth(tenant.api_key))
    assert (bad.status_code, bad.json()["field"]) == (400, "order_id")


async def test_a_recipients_notifications_are_listed_by_day_a_page_at_a_time(
    http: httpx.AsyncClient, db: psycopg.AsyncConnection, tenant: Tenant
) -> None:
    """A recipient's messages of one day come by id in pages; other days, other recipients and
    other organisations' messages to the same address are left out."""
    other = await make_tenant(db, drivers=0)
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    mine = [await _order(db, tenant, f"api-r{n}", "eve@example.com") for n in range(3)]
    ids = [
        await _message(
            db, tenant, order, "delivered", "eve@example.com", today + timedelta(minutes=n)
        )
        for n, order in enumerate(mine)
    ]
    yesterday = await _order(db, tenant, "api-old", "eve@example.com")
    await _message(db, tenant, yesterday, "delivered", "eve@example.com", today - timedelta(days=1))
    someone = await _order(db, tenant, "api-else", "sam@example.com")
    await _message(db, tenant, someone, "delivered", "sam@example.com", today)
    theirs = await _order(db, other, "api-their-eve", "eve@example.com")
    await _message(db, other, theirs, "delivered", "eve@example.com", today)

    day = today.date().isoformat()
    query = {"recipient": "eve@example.com", "day": day, "limit": "2"}
    page = (await http.get("/v1/notifications", params=query, headers=auth(tenant.api_key))).json()
    assert [n["id"] for n in page["notifications"]] == ids[:2]
    assert page["next_after"] == ids[1]
    query["after"] = str(page["next_after"])
    rest = (await http.get("/v1/notifications", params=query, headers=auth(tenant.api_key))).json()
    assert ([n["id"] for n in rest["notifications"]], rest["next_after"]) == (ids[2:], None)
    assert {n["order_id"] for n in page["notifications"] + rest["notifications"]} <= set(mine)


async def test_an_integration_key_reads_and_bad_parameters_are_named(
    http: httpx.AsyncClient, db: psycopg.AsyncConnection
) -> None:
    """Integration keys read (READERS); a missing recipient, a bad day and a bad limit are 400s
    naming the parameter; no key is 401."""
    shop = await make_tenant(db, drivers=0, role="integration")
    ok = await http.get(
        "/v1/notifications", params={"recipient": "a@example.com"}, headers=auth(shop.api_key)
    )
    assert (ok.status_code, ok.json()["notifications"]) == (200, [])
    for params, field in (
        ({}, "recipient"),
        ({"recipient": "a@example.com", "day": "24.11.2026"}, "day"),
        ({"recipient": "a@example.com", "limit": "0"}, "limit"),
        ({"recipient": "x" * 400}, "recipient"),
    ):
        bad = await http.get("/v1/notifications", params=params, headers=auth(shop.api_key))
        assert (bad.status_code, bad.json()["field"]) == (400, field), params
    assert (await http.get("/v1/notifications?recipient=a")).status_code == 401


async def test_outbox_gauges_follow_the_table_on_metrics(
    http: httpx.AsyncClient, db: psycopg.AsyncConnection, tenant: Tenant, settings: Settings
) -> None:
    """Sampling the outbox sets lastmile_outbox_messages per channel and state (new rows count,
    a state that has none reads 0) and the oldest due row's age, as /metrics shows them."""
    async with open_resources(settings) as resources:
        await sample_outbox(resources)
        before = _gauge((await http.get("/metrics")).text, "email", "pending")
        order_id = await _order(db, tenant, "api-metrics", "mo@example.com")
        past = datetime.now(UTC) - timedelta(minutes=1)
        await _message(db, tenant, order_id, "en_route", "mo@example.com", past)
        await _message(db, tenant, order_id, "delivered", "mo@example.com", past)
        await db.execute(
            "UPDATE outbox SET next_attempt_at = now() - interval '90 seconds' WHERE order_id = %s",
            (order_id,),
        )
        await sample_outbox(resources)
    text = (await http.get("/metrics")).text
    assert _gauge(text, "email", "pending") == before + 2
    assert _gauge(text, "webhook", "dead") == 0
    waited = float(
        next(
            line.split()[-1]
            for line in text.splitlines()
            if line.startswith('lastmile_outbox_oldest_due_seconds{channel="email"}')
        )
    )
    assert waited >= 90


def _gauge(text: str, channel: str, state: str) -> float:
    prefix = f'lastmile_outbox_messages{{channel="{channel}",state="{state}"}}'
    return float(next(line.split()[-1] for line in text.splitlines() if line.startswith(prefix)))


async def test_the_dispatcher_sees_an_orders_messages_in_its_stop_popup_as_they_change(
    server: LiveServer,
    http: httpx.AsyncClient,
    db: psycopg.AsyncConnection,
    redis: Redis,
    tenant: Tenant,
    today: Day,
    planner: None,
    pages: Pages,
) -> None:
    """Clicking a stop shows its order's messages with channel, recipient and state, the
    recipient as text however it reads; an event of the order brings the new state without a
    reload."""
    await plan_and_dispatch(http, tenant, today)
    routes = (await http.get("/v1/routes", headers=auth(tenant.api_key))).json()["routes"]
    stop = routes[0]["stops"][0]
    hostile = "<b>x</b>@example.com"
    message = await _message(db, tenant, stop["order_id"], "en_route", hostile, datetime.now(UTC))

    page = await pages.open(f"{server.url}/dispatch#key={tenant.api_key}")
    await expect(page.locator("#connection")).to_have_attribute(
        "data-state", "live", timeout=20_000
    )
    await page.locator(f"path.stop[data-stop-id='{stop['id']}']").click()
    notice = page.locator(f".notices li.notice[data-id='{message}']")
    await expect(notice).to_have_attribute("data-state", "pending", timeout=20_000)
    await expect(notice.locator(".notice-recipient")).to_have_text(hostile)
    await expect(notice).to_contain_text("On its way")
    assert await page.locator(".notices b").count() == 0

    await _attempt(db, message, None)
    names = stream_names(server.settings)
    await emit(
        redis,
        names,
        StopArrived(
            org_id=tenant.org_id,
            at=datetime.now(UTC),
            route_id=RouteId(routes[0]["id"]),
            stop_id=StopId(stop["id"]),
            order_id=OrderId(stop["order_id"]),
            driver_id=DriverId(routes[0]["driver_id"]),
        ),
    )
    await expect(notice).to_have_attribute("data-state", "sent", timeout=20_000)
    await expect(notice.locator(".notice-state")).to_have_text("sent")
