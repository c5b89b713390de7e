"""A small simulated day through the real API, the notify worker and the sender: the customers
get exactly the mail the day calls for, one per order, kind and channel, and no more."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
import psycopg
import pytest
from redis.asyncio import Redis

from app.process.server import sender_channels
from app.resources import stream_names
from app.settings import Settings
from realtime.events import emit
from schemas.delivery import OrderIn
from schemas.eta import ArrivalWindow, EnRoute
from schemas.events import DeliveryUpdate, StopDelivered
from schemas.ids import DriverId, OrderId, OrgId, RouteId, StopId
from store import notifications as outbox
from store.notifications import OUTBOX_CHANNEL
from store.orders import create_order
from tests.adapters.peers import Received, SmtpSink
from tests.conftest import Tenant
from tests.days import Day, device, key, plan_and_dispatch, running_worker
from tests.helpers import eventually
from tests.workers.outbox_rows import customer_message
from workers.sender import Sender, SenderConfig


@pytest.fixture
def settings(settings: Settings, sink: SmtpSink) -> Settings:
    """The test's settings with the sender's SMTP relay at the sink."""
    return msgspec.structs.replace(
        settings,
        smtp_host="127.0.0.1",
        smtp_port=sink.port,
        smtp_tls="none",
        smtp_from="Deliveries <deliveries@example.com>",
    )


def _mails_of(sink: SmtpSink, keys: set[str]) -> list[Received]:
    """The mails the sink got for these outbox rows (the session's other tests leave rows of
    their own, which a sender may send here too)."""
    return [m for m in sink.received if m.message["X-Lastmile-Idempotency-Key"] in keys]


async def _keys(db: psycopg.AsyncConnection, tenant: Tenant) -> set[str]:
    rows = await (
        await db.execute("SELECT idempotency_key FROM outbox WHERE org_id = %s", (tenant.org_id,))
    ).fetchall()
    return {row[0] for row in rows}


async def _quiet(
    redis: Redis, settings: Settings, db: psycopg.AsyncConnection, tenant: Tenant, sink: SmtpSink
) -> bool:
    """True once the notify group has read and acknowledged every event, nothing of the
    tenant's is waiting in the outbox, and the sink holds as many of its mails as the outbox
    sent."""
    groups = await redis.xinfo_groups(stream_names(settings).events)
    notify = next((g for g in groups if g["name"] == b"notify"), None)
    if notify is None or notify["pending"] or notify.get("lag"):
        return False
    rows = await (
        await db.execute(
            "SELECT state, count(*) FROM outbox WHERE org_id = %s GROUP BY state",
            (tenant.org_id,),
        )
    ).fetchall()
    states: dict[str, int] = dict(rows)
    if set(states) - {"sent"}:
        return False
    sent: int = states.get("sent", 0)
    return len(_mails_of(sink, await _keys(db, tenant))) == sent


async def test_a_simulated_day_sends_the_expected_mail_and_no_more(
    http: httpx.AsyncClient,
    db: psycopg.AsyncConnection,
    redis: Redis,
    settings: Settings,
    tenant: Tenant,
    today: Day,
    planner: None,
    sink: SmtpSink,
) -> None:
    """Six orders with email on two routes: the driver's arrivals tell nobody, each delivery
    and the failed stop send one mail to that customer, an en-route update sent twice and a
    delivery event replayed send nothing more; every mail names its outbox row."""
    for ref, order_id in today.orders.items():
        patched = await http.patch(
            f"/v1/orders/{order_id}", json={"email": f"{ref}@example.com"}, headers=key(tenant)
        )
        assert patched.status_code == 200, patched.text
    await plan_and_dispatch(http, tenant, today)
    routes: list[dict[str, Any]] = (await http.get("/v1/routes", headers=key(tenant))).json()[
        "routes"
    ]
    tokens = {driver.id: driver.token for driver in tenant.drivers}
    expected: list[tuple[int, str]] = []

    async with running_worker(settings, "notify"), running_worker(settings, "sender"):
        for n, route in enumerate(routes):
            token = tokens[route["driver_id"]]
            started = await http.post("/v1/driver/route/start", headers=device(token))
            assert started.status_code == 200, started.text
            for m, stop in enumerate(sorted(route["stops"], key=lambda s: s["seq"])):
                path = f"/v1/driver/stops/{stop['id']}"
                arrived = await http.post(f"{path}/arrive", headers=device(token))
                assert arrived.status_code == 200, arrived.text
                if n == 1 and m == 0:
                    body = {"reason": "nobody home; card left"}
                    failed = await http.post(f"{path}/fail", json=body, headers=device(token))
                    assert failed.status_code == 200, failed.text
                    expected.append((stop["order_id"], "failed"))
                else:
                    done = await http.post(f"{path}/deliver", headers=device(token))
                    assert done.status_code == 200, done.text
                    expected.append((stop["order_id"], "delivered"))

        # What the ETA worker would say of a stop, twice; and a delivery told twice.
        route, stop = routes[0], routes[0]["stops"][0]
        now = datetime.now(UTC)
        window = ArrivalWindow(
            stop_id=StopId(stop["id"]),
            order_id=OrderId(stop["order_id"]),
            lower_epoch_s=int(now.timestamp()) + 600,
            likely_epoch_s=int(now.timestamp()) + 900,
            upper_epoch_s=int(now.timestamp()) + 1200,
            computed_epoch_s=int(now.timestamp()),
        )
        en_route = DeliveryUpdate(
            org_id=OrgId(tenant.org_id),
            at=now,
            detail=EnRoute(
                driver_id=DriverId(route["driver_id"]),
                route_id=RouteId(route["id"]),
                route_version=route["version"],
                stop_id=StopId(stop["id"]),
                order_id=OrderId(stop["order_id"]),
                at_epoch_s=int(now.timestamp()),
                window=window,
            ),
        )
        again = StopDelivered(
            org_id=OrgId(tenant.org_id),
            at=now,
            route_id=RouteId(route["id"]),
            stop_id=StopId(stop["id"]),
            order_id=OrderId(stop["order_id"]),
            driver_id=DriverId(route["driver_id"]),
        )
        await emit(redis, stream_names(settings), en_route, en_route, again)
        expected.append((stop["order_id"], "en_route"))

        await eventually(
            lambda: _quiet(redis, settings, db, tenant, sink),
            "every event decided and every message sent",
            deadline_s=60,
        )

    rows = await (
        await db.execute(
            "SELECT idempotency_key, order_id, kind, channel, address FROM outbox"
            " WHERE org_id = %s",
            (tenant.org_id,),
        )
    ).fetchall()
    by_key = {row[0]: row[1:] for row in rows}
    got: Counter[tuple[int, str]] = Counter()
    mails = _mails_of(sink, set(by_key))
    for mail in mails:
        row = by_key[mail.message["X-Lastmile-Idempotency-Key"]]
        order_id, kind, channel, address = row
        assert (channel, mail.rcpt_tos) == ("email", [address])
        got[(order_id, kind)] += 1
    assert got == Counter(expected)
    assert len(mails) == len(expected) == len(today.orders) + 1


async def test_a_new_message_wakes_an_idle_sender_at_once(
    db: psycopg.AsyncConnection, tenant: Tenant, settings: Settings, sink: SmtpSink
) -> None:
    """A sender idling between polls (here an hour apart) sends a message as soon as the notify
    side commits it: the insert notifies the senders listening on PostgreSQL."""
    sender = Sender(
        settings.database_url or "", sender_channels(settings), SenderConfig(idle_s=3600)
    )
    stop = asyncio.Event()
    running = asyncio.create_task(sender.run(stop))
    try:
        await eventually(lambda: _idle(db, sender), "the sender listening and idle", deadline_s=30)
        order = OrderIn(
            external_ref="wake-1",
            address="1 Main St",
            lat=52.5,
            lon=13.4,
            day=datetime.now(UTC).date(),
            email="wake@example.com",
        )
        order_id = (await create_order(db, tenant.org_id, order)).id
        event_id = f"{int(datetime.now(UTC).timestamp() * 1000)}-0"
        async with db.transaction():
            await outbox.insert_many(
                db,
                [
                    customer_message(
                        tenant.org_id, order_id, event_id, "wake@example.com", kind="delivered"
                    )
                ],
            )

        async def arrived() -> bool:
            return any(m.rcpt_tos == ["wake@example.com"] for m in sink.received)

        await eventually(arrived, "the mail at the SMTP server", deadline_s=30)
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=30)
        await sender.close()


async def _idle(db: psycopg.AsyncConnection, sender: Sender) -> bool:
    """True once the sender's connection listens on the outbox channel and nothing is due."""
    listening = await (
        await db.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query = %s",
            (f"LISTEN {OUTBOX_CHANNEL}",),
        )
    ).fetchone()
    due = await (
        await db.execute(
            "SELECT count(*) FROM outbox WHERE state IN ('pending', 'sending')"
            " AND channel = 'email' AND next_attempt_at <= now()"
        )
    ).fetchone()
    return bool(listening and listening[0] and due and due[0] == 0)
