"""The notify worker through real PostgreSQL and Redis: events become outbox rows, once."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import msgspec
import psycopg
from redis.asyncio import Redis

from adapters.email import SmtpConfig, SmtpEmailSender
from app.auth import hash_token
from app.resources import stream_names
from app.settings import Settings
from realtime.events import emit
from schemas.codecs import EVENT_DECODER
from schemas.delivery import OrderIn
from schemas.eta import Approaching, ArrivalWindow, EnRoute, OutOfSequence
from schemas.events import DeliveryUpdate, Event, StopDelivered
from schemas.ids import DriverId, OrderId, RouteId, StopId
from schemas.notifications import RulesDoc, Template
from store import notification_rules as rules_store
from store import notifications as outbox
from store import tracking as tracking_store
from store.orders import create_order, set_opt_out
from tests.adapters.peers import SmtpSink
from tests.conftest import Tenant
from tests.days import running_worker
from tests.helpers import eventually
from tests.workers.consumers import quick, running
from workers.notify import NotifyConsumer
from workers.runner import Entry, Runner
from workers.sender import Channels, Sender, SenderConfig


async def _order(db: psycopg.AsyncConnection, tenant: Tenant, ref: str, **contact: Any) -> OrderId:
    order = OrderIn(
        external_ref=ref, address="1 Main St", lat=52.5, lon=13.4, day=date.today(), **contact
    )
    return (await create_order(db, tenant.org_id, order)).id


async def _entries(redis: Redis, stream: str) -> list[Entry[Event]]:
    """Every entry of the events stream, as the runner hands them to the worker."""
    raw: list[Any] = list(await redis.xrange(stream) or [])
    return [Entry(stream, i.decode(), EVENT_DECODER.decode(f[b"e"])) for i, f in raw]


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
    stop: dict[str, Any] = {
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
        await consumer.handle(await _entries(redis, names.events))
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
    async with running_worker(settings, "notify", consumer="in-test"):
        [row] = await eventually(
            lambda: outbox.list_for_order(db, tenant.org_id, order), "the delivery texted"
        )
    assert (row.kind, row.channel, row.address) == ("delivered", "sms", "+4915550003")


async def test_messages_carry_the_organisations_templates_language_and_one_tracking_link(
    settings: Settings, redis: Redis, db: psycopg.AsyncConnection, tenant: Tenant
) -> None:
    """The worker renders each message when it decides it: the organisation's own template
    (else the default) in its language, escaped in HTML, with the full tracking link (one link
    per order, live); dispatchers get one alert each; a redelivered entry keeps the text first
    rendered; the sender sends exactly that text."""
    names = stream_names(settings)
    await rules_store.put_rules(
        db,
        tenant.org_id,
        RulesDoc(language="de", dispatcher_emails=["ops@example.com", "lead@example.com"]),
    )
    mine = Template(
        kind="en_route",
        channel="email",
        language="de",
        subject="Unterwegs: {{ order.ref }}",
        text="Hallo {{ order.customer_name }}: {{ tracking_url }}",
        html='<p>{{ order.address }}</p><a href="{{ tracking_url }}">Verfolgen</a>',
        custom=True,
    )
    await rules_store.put_template(db, tenant.org_id, mine)
    order = OrderIn(
        external_ref="n-4",
        address="<b>2 Side St</b>",
        lat=52.5,
        lon=13.4,
        day=date.today(),
        email="d@example.com",
        customer_name="Dana",
    )
    order_id = (await create_order(db, tenant.org_id, order)).id
    now = datetime.now(UTC)
    t = int(now.timestamp())
    common: dict[str, Any] = {
        "driver_id": tenant.drivers[0].id,
        "route_id": RouteId(1),
        "route_version": 1,
        "stop_id": StopId(4),
        "order_id": order_id,
        "at_epoch_s": t,
    }
    window = ArrivalWindow(
        stop_id=StopId(4),
        order_id=order_id,
        likely_epoch_s=t + 900,
        lower_epoch_s=t + 600,
        upper_epoch_s=t + 1200,
        computed_epoch_s=t,
    )
    await emit(
        redis,
        names,
        DeliveryUpdate(org_id=tenant.org_id, at=now, detail=EnRoute(**common, window=window)),
        DeliveryUpdate(
            org_id=tenant.org_id, at=now, detail=Approaching(**common, distance_m=300.0)
        ),
        DeliveryUpdate(
            org_id=tenant.org_id,
            at=now,
            detail=OutOfSequence(
                **common,
                expected_stop_id=StopId(3),
                expected_order_id=OrderId(order_id - 1),
                stay_start_epoch_s=t - 120,
                dwell_s=120,
            ),
        ),
    )
    entries = await _entries(redis, names.events)
    consumer = NotifyConsumer(
        names=names, database_url=settings.database_url or "", public_url="https://t.example/"
    )
    try:
        await consumer.handle(entries)
        rows = await outbox.list_for_order(db, tenant.org_id, order_id)
        texts = await rules_store.bodies_of(db, [r.id for r in rows])
        by = {(r.kind, r.recipient_kind, r.address): texts[r.id] for r in rows}
        assert set(by) == {
            ("en_route", "customer", "d@example.com"),
            ("approaching", "customer", "d@example.com"),
            ("out_of_sequence", "dispatcher", "ops@example.com"),
            ("out_of_sequence", "dispatcher", "lead@example.com"),
        }
        en_route = by[("en_route", "customer", "d@example.com")]
        assert en_route.subject == "Unterwegs: n-4"
        url = en_route.text.removeprefix("Hallo Dana: ")
        assert url.startswith("https://t.example/t/")
        token = url.removeprefix("https://t.example/t/")
        link = await tracking_store.link(db, hash_token(token))
        assert link is not None
        assert (link.org_id, link.order_id) == (tenant.org_id, order_id)
        assert en_route.html == (
            f'<p>&lt;b&gt;2 Side St&lt;/b&gt;</p><a href="{url}">Verfolgen</a>'
        )
        approaching = by[("approaching", "customer", "d@example.com")]
        assert approaching.subject == "Ihre Lieferung von " + (await _org_name(db, tenant)) + (
            " ist gleich da"
        )
        assert url in approaching.text
        alert = by[("out_of_sequence", "dispatcher", "ops@example.com")]
        assert alert.subject == "Außer der Reihe: Auftrag n-4"
        assert "2 min" in alert.text

        # A template changed afterwards does not rewrite what was decided.
        changed = msgspec.structs.replace(mine, subject="Geändert")
        await rules_store.put_template(db, tenant.org_id, changed)
        await consumer.handle(entries)
        again = await rules_store.bodies_of(db, [r.id for r in rows])
        assert again == texts
    finally:
        await consumer.close()

    sink = SmtpSink()
    sink.start()
    try:
        email = SmtpEmailSender(
            SmtpConfig(host="127.0.0.1", port=sink.port, sender="d@acme.example", tls="none")
        )
        sender = Sender(settings.database_url or "", Channels(email=email), SenderConfig())
        keys = {r.idempotency_key for r in rows}

        async def sent() -> bool:
            await sender.run_once()
            now_rows = await outbox.list_for_order(db, tenant.org_id, order_id)
            return all(r.state == "sent" for r in now_rows if r.idempotency_key in keys)

        try:
            await eventually(sent, "the messages sent")
        finally:
            await sender.close()
    finally:
        sink.stop()
    [mail] = [m.message for m in sink.received if m.rcpt_tos == ["d@example.com"]
              and m.message["Subject"] == "Unterwegs: n-4"]  # fmt: skip
    html = mail.get_body(("html",))
    assert html is not None
    assert f'<a href="{url}">Verfolgen</a>' in str(html.get_content())


async def _org_name(db: psycopg.AsyncConnection, tenant: Tenant) -> str:
    cursor = await db.execute("SELECT name FROM orgs WHERE id = %s", (tenant.org_id,))
    row = await cursor.fetchone()
    assert row is not None
    return str(row[0])


async def test_an_order_in_its_own_language_is_told_in_it(
    settings: Settings, redis: Redis, db: psycopg.AsyncConnection, tenant: Tenant
) -> None:
    """An order naming its customer's language gets messages in it, with times in that locale,
    though the organisation's rules say English."""
    names = stream_names(settings)
    order = OrderIn(
        external_ref="n-5",
        address="5 Ring St",
        lat=52.5,
        lon=13.4,
        day=date.today(),
        email="e@example.com",
        language="de",
    )
    order_id = (await create_order(db, tenant.org_id, order)).id
    delivered = StopDelivered(
        org_id=tenant.org_id,
        at=datetime.now(UTC),
        route_id=RouteId(1),
        stop_id=StopId(5),
        order_id=order_id,
        driver_id=tenant.drivers[0].id,
    )
    await emit(redis, names, delivered)
    consumer = NotifyConsumer(names=names, database_url=settings.database_url or "")
    try:
        await consumer.handle(await _entries(redis, names.events))
    finally:
        await consumer.close()
    [row] = await outbox.list_for_order(db, tenant.org_id, order_id)
    text = (await rules_store.bodies_of(db, [row.id]))[row.id]
    assert row.language == "de"
    assert text.subject is not None
    assert text.subject.startswith("Ihre Lieferung von ")
    assert " Uhr zugestellt" in text.text


async def test_the_served_worker_links_to_the_public_url(
    settings: Settings, redis: Redis, db: psycopg.AsyncConnection, tenant: Tenant
) -> None:
    """``worker notify``, as ``serve`` starts it, puts ``LASTMILE_PUBLIC_URL`` in front of the
    tracking link of an en-route text."""
    served = msgspec.structs.replace(settings, public_url="https://track.acme.example/")
    names = stream_names(served)
    order = await _order(db, tenant, "n-6", phone="+4915550006")
    en_route = DeliveryUpdate(
        org_id=tenant.org_id,
        at=datetime.now(UTC),
        detail=EnRoute(
            driver_id=tenant.drivers[0].id,
            route_id=RouteId(1),
            route_version=1,
            stop_id=StopId(6),
            order_id=order,
            at_epoch_s=int(datetime.now(UTC).timestamp()),
        ),
    )
    await emit(redis, names, en_route)
    async with running_worker(served, "notify", consumer="in-test"):
        [row] = await eventually(
            lambda: outbox.list_for_order(db, tenant.org_id, order), "the en route texted"
        )
    text = (await rules_store.bodies_of(db, [row.id]))[row.id].text
    assert "Track it: https://track.acme.example/t/" in text


async def test_an_opted_out_customer_gets_nothing_from_the_moment_of_opting_out(
    settings: Settings, redis: Redis, db: psycopg.AsyncConnection, tenant: Tenant
) -> None:
    """An order created opted out gets no message; one opted out after its en route message
    gets no more (its delivery is not mailed), while another order's customer is told."""
    names = stream_names(settings)
    silent = await _order(
        db, tenant, "o-1", email="a@example.com", phone="+4915550011", notifications_opt_out=True
    )
    later = await _order(db, tenant, "o-2", email="b@example.com")
    told = await _order(db, tenant, "o-3", email="c@example.com")
    now = datetime.now(UTC)
    head: dict[str, Any] = {
        "driver_id": tenant.drivers[0].id,
        "route_id": RouteId(1),
        "route_version": 1,
        "at_epoch_s": int(now.timestamp()),
    }

    def en_route(order_id: OrderId, stop: int) -> DeliveryUpdate:
        detail = EnRoute(**head, stop_id=StopId(stop), order_id=order_id)
        return DeliveryUpdate(org_id=tenant.org_id, at=now, detail=detail)

    def delivered(order_id: OrderId, stop: int) -> StopDelivered:
        return StopDelivered(
            org_id=tenant.org_id,
            at=now,
            route_id=RouteId(1),
            stop_id=StopId(stop),
            order_id=order_id,
            driver_id=DriverId(tenant.drivers[0].id),
        )

    consumer = NotifyConsumer(names=names, database_url=settings.database_url or "")
    try:
        async with running(Runner(redis, consumer, quick(settings))):
            await emit(redis, names, en_route(silent, 1), en_route(later, 2))
            await eventually(
                lambda: outbox.list_for_order(db, tenant.org_id, later), "o-2 told en route"
            )
            await set_opt_out(db, tenant.org_id, later, True)
            await emit(redis, names, delivered(later, 2), delivered(told, 3))
            await eventually(
                lambda: outbox.list_for_order(db, tenant.org_id, told), "o-3 told delivered"
            )
    finally:
        await consumer.close()
    assert await outbox.list_for_order(db, tenant.org_id, silent) == []
    assert [r.kind for r in await outbox.list_for_order(db, tenant.org_id, later)] == ["en_route"]
