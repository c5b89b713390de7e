"""The notify worker through real PostgreSQL and Redis: events become outbox rows, once."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

import psycopg
from redis.asyncio import Redis

from app.process.server import run_worker
from app.resources import stream_names
from app.settings import Settings
from realtime.events import emit
from schemas.codecs import EVENT_DECODER
from schemas.delivery import OrderIn
from schemas.eta import EnRoute, OutOfSequence
from schemas.events import DeliveryUpdate, Event, StopDelivered
from schemas.ids import DriverId, OrderId, RouteId, StopId
from store import notifications as outbox
from store.orders import create_order
from tests.conftest import Tenant
from tests.helpers import eventually
from tests.workers.consumers import quick, running
from workers.notify import NotifyConsumer
from workers.runner import Entry, Runner


async def _order(db: psycopg.AsyncConnection, tenant: Tenant, ref: str, **contact: str) -> OrderId:
    order = OrderIn(
        external_ref=ref, address="1 Main St", lat=52.5, lon=13.4, day=date.today(), **contact
    )
    return (await create_order(db, tenant.org_id, order)).id


async def test_events_become_outbox_rows_once_and_claims_never_overlap(
    settings: Settings, redis: Redis, db: psycopg.AsyncConnection, tenant: Tenant
) -> None:
    """Events on the stream become one outbox row per order, kind and channel; a redelivered
    entry stores nothing twice; two concurrent claims never hand out the same row."""
    names = stream_names(settings)
    texted = await _order(db, tenant, "n-1", phone="+4915550001")
    mailed = await _order(db, tenant, "n-2", email="b@example.com")
    now = datetime.now(UTC)
    driver, route = tenant.drivers[0].id, RouteId(1)
    stop = {
        "driver_id": driver,
        "route_id": route,
        "route_version": 1,
        "at_epoch_s": int(now.timestamp()),
    }
    en_route = DeliveryUpdate(
        org_id=tenant.org_id, at=now, detail=EnRoute(**stop, stop_id=StopId(1), order_id=texted)
    )
    out_of_sequence = DeliveryUpdate(
        org_id=tenant.org_id,
        at=now,
        detail=OutOfSequence(
            **stop,
            stop_id=StopId(1),
            order_id=texted,
            expected_stop_id=StopId(2),
            expected_order_id=mailed,
            stay_start_epoch_s=int(now.timestamp()),
            dwell_s=60,
        ),
    )
    delivered = StopDelivered(
        org_id=tenant.org_id,
        at=now,
        route_id=route,
        stop_id=StopId(2),
        order_id=mailed,
        driver_id=DriverId(driver),
    )
    await emit(redis, names, en_route, out_of_sequence, en_route)
    await emit(redis, names, delivered)

    consumer = NotifyConsumer(names=names, database_url=settings.database_url or "")
    try:
        async with running(Runner(redis, consumer, quick(settings))):
            await eventually(
                lambda: outbox.list_for_order(db, tenant.org_id, mailed), "the delivery mailed"
            )
        [sms] = await outbox.list_for_order(db, tenant.org_id, texted)
        [mail] = await outbox.list_for_order(db, tenant.org_id, mailed)
        assert (sms.kind, sms.channel, sms.address, sms.state) == (
            "en_route",
            "sms",
            "+4915550001",
            "pending",
        )
        assert (mail.kind, mail.channel, mail.address) == ("delivered", "email", "b@example.com")

        # The same entries once more, as after a worker died before acknowledging them.
        raw = await redis.xrange(names.events)
        again: list[Entry[Event]] = [
            Entry(names.events, i.decode(), EVENT_DECODER.decode(f[b"e"])) for i, f in raw
        ]
        await consumer.handle(again)
        assert len(await outbox.list_for_order(db, tenant.org_id, texted)) == 1
        assert len(await outbox.list_for_order(db, tenant.org_id, mailed)) == 1
    finally:
        await consumer.close()

    mine = {sms.id, mail.id}
    url = settings.database_url or ""
    async with (
        await psycopg.AsyncConnection.connect(url) as first,
        await psycopg.AsyncConnection.connect(url) as second,
    ):
        claimed_first = {r.id for r in await outbox.claim_due(first, 1)}
        claimed_second = {r.id for r in await outbox.claim_due(second, 10_000)}
        assert claimed_first
        assert not claimed_first & claimed_second
        assert mine <= claimed_first | claimed_second
        await first.commit()
        await second.commit()
    rows = await outbox.list_for_order(db, tenant.org_id, texted)
    assert [(r.state, r.attempts) for r in rows] == [("sending", 1)]
    assert not mine & {r.id for r in await outbox.claim_due(db, 10_000)}


async def test_the_notify_worker_runs_as_serve_runs_it(
    settings: Settings, redis: Redis, db: psycopg.AsyncConnection, tenant: Tenant
) -> None:
    """``worker notify``, as ``serve`` starts it, turns a delivery into the customer's SMS."""
    names = stream_names(settings)
    order = await _order(db, tenant, "n-3", phone="+4915550003", email="c@example.com")
    delivered = StopDelivered(
        org_id=tenant.org_id,
        at=datetime.now(UTC),
        route_id=RouteId(1),
        stop_id=StopId(3),
        order_id=order,
        driver_id=tenant.drivers[0].id,
    )
    await emit(redis, names, delivered)
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(settings, "notify", stop, consumer_name="in-test"))
    try:
        [row] = await eventually(
            lambda: outbox.list_for_order(db, tenant.org_id, order), "the delivery texted"
        )
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
    assert (row.kind, row.channel, row.address) == ("delivered", "sms", "+4915550003")
