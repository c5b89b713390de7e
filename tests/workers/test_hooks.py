"""The webhooks worker through real PostgreSQL, Redis and a local receiver that verifies each
delivery with the ``standardwebhooks`` library: fan-out, signing, retries, disabling, SSRF at
send time, claims that never overlap, and a SIGKILLed sender that loses nothing."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import secrets
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from standardwebhooks.webhooks import Webhook as Verifier
from starlette.requests import Request
from starlette.responses import Response

from adapters.webhooks import WebhookConfig, WebhookSender
from app.process.server import run_worker
from app.resources import stream_names
from app.settings import Settings
from realtime.events import emit
from realtime.streams import StreamNames
from schemas.codecs import EVENT_DECODER
from schemas.eta import EnRoute
from schemas.events import DeliveryUpdate, Event, StopDelivered, WebhookDisabled
from schemas.ids import DriverId, OrderId, OrgId, RouteId, StopId
from schemas.webhooks import webhook_id
from store import webhook_deliveries
from store import webhooks as store
from tests.adapters.peers import HttpPeer, Recorded, SilentServer, WebhookReceiver
from tests.conftest import Tenant, make_tenant
from tests.helpers import eventually
from tests.workers.consumers import quick, running
from workers.hooks import HooksConsumer, HookSender, HookSenderConfig
from workers.runner import Entry, Runner

ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec_" + base64.b64encode(b"w" * 32).decode()
LOOPBACK = WebhookConfig(allowed_address_classes=frozenset({"loopback"}), timeout_s=5.0)
FAST = HookSenderConfig(
    batch=20, max_tries=4, disable_after=50, lease_s=2.0, idle_s=0.02, first_retry_s=0.05,
    retry_span_s=0.3,
)  # fmt: skip


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[HttpPeer, WebhookReceiver]]:
    """A receiver that verifies signatures with :data:`SECRET`."""
    check = WebhookReceiver(secret=SECRET)
    async with HttpPeer(check) as peer:
        yield peer, check


@pytest.fixture
async def cleanup(db: psycopg.AsyncConnection) -> AsyncIterator[list[OrgId]]:
    """Organisations whose endpoints are removed after the test, so that no later test's sender
    finds their deliveries due."""
    orgs: list[OrgId] = []
    yield orgs
    await db.execute("DELETE FROM webhook_endpoints WHERE org_id = ANY(%s)", (orgs,))


async def _endpoint(
    db: psycopg.AsyncConnection, org_id: OrgId, url: str, types: list[str], **more: Any
) -> int:
    made = await store.create(
        db,
        org_id,
        url=url,
        secret=SECRET,
        event_types=types,
        description="",
        enabled=more.get("enabled", True),
    )
    return made.id


def _delivered(tenant: Tenant, order: int, stop: int = 1) -> StopDelivered:
    return StopDelivered(
        org_id=tenant.org_id,
        at=datetime.now(UTC),
        route_id=RouteId(1),
        stop_id=StopId(stop),
        order_id=OrderId(order),
        driver_id=DriverId(tenant.drivers[0].id),
    )


def _sender(
    settings: Settings,
    redis: Redis,
    config: HookSenderConfig = FAST,
    *,
    webhooks: WebhookConfig = LOOPBACK,
) -> HookSender:
    """A delivery loop on the test database, sending through an adapter of ``webhooks``."""
    return HookSender(
        settings.database_url or "",
        WebhookSender(webhooks),
        config,
        redis=redis,
        names=stream_names(settings),
    )


async def _drain(sender: HookSender, db: psycopg.AsyncConnection, ids: list[int]) -> None:
    """Run passes until none of ``ids`` is pending or sending."""

    async def settled() -> bool:
        await sender.run_once()
        cursor = await db.execute(
            "SELECT count(*) FROM webhook_deliveries WHERE id = ANY(%s)"
            " AND state IN ('pending', 'sending')",
            (ids,),
        )
        row = await cursor.fetchone()
        return row is not None and row[0] == 0

    await eventually(settled, "every delivery settled", deadline_s=20.0)


async def _deliveries(db: psycopg.AsyncConnection, endpoint_id: int) -> list[dict[str, Any]]:
    cursor = await db.execute(
        "SELECT id, event_id, event_type, webhook_id, state, attempts FROM webhook_deliveries"
        " WHERE endpoint_id = %s ORDER BY id",
        (endpoint_id,),
    )
    names = [c.name for c in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in await cursor.fetchall()]


async def test_subscribed_events_reach_each_enabled_endpoint_once_signed(
    settings: Settings,
    redis: Redis,
    db: psycopg.AsyncConnection,
    tenant: Tenant,
    cleanup: list[OrgId],
    receiver: tuple[HttpPeer, WebhookReceiver],
) -> None:
    """Each event reaches every enabled endpoint of its organisation subscribed to its type,
    once, signed so that the library verifies it, with ``webhook-id`` per (event, endpoint);
    a redelivered entry stores nothing twice; other organisations and disabled endpoints get
    nothing."""
    peer, check = receiver
    other = await make_tenant(db, drivers=1)
    cleanup.extend([tenant.org_id, other.org_id])
    only_delivered = await _endpoint(db, tenant.org_id, f"{peer.url}/a", ["stop_delivered"])
    everything = await _endpoint(db, tenant.org_id, f"{peer.url}/b", ["*"])
    switched_off = await _endpoint(db, tenant.org_id, f"{peer.url}/c", ["*"], enabled=False)
    elsewhere = await _endpoint(db, other.org_id, f"{peer.url}/d", ["*"])
    names = stream_names(settings)
    now = datetime.now(UTC)
    en_route = DeliveryUpdate(
        org_id=tenant.org_id,
        at=now,
        detail=EnRoute(
            driver_id=tenant.drivers[0].id,
            route_id=RouteId(1),
            route_version=1,
            at_epoch_s=int(now.timestamp()),
            stop_id=StopId(1),
            order_id=OrderId(7),
        ),
    )
    await emit(redis, names, _delivered(tenant, 7), en_route)

    consumer = HooksConsumer(names=names, database_url=settings.database_url or "")
    try:
        async with running(Runner(redis, consumer, quick(settings))):

            async def stored() -> bool:
                return len(await _deliveries(db, everything)) == 2

            await eventually(stored, "both events stored for the endpoint of every type")
        raw: Any = await redis.xrange(names.events)
        again: list[Entry[Event]] = [
            Entry(names.events, i.decode(), EVENT_DECODER.decode(f[b"e"])) for i, f in raw
        ]
        await consumer.handle(again)  # as after a worker died before acknowledging
    finally:
        await consumer.close()
    first = await _deliveries(db, only_delivered)
    every = await _deliveries(db, everything)
    assert [d["event_type"] for d in first] == ["stop_delivered"]
    assert sorted(d["event_type"] for d in every) == ["en_route", "stop_delivered"]
    assert await _deliveries(db, switched_off) == []
    assert await _deliveries(db, elsewhere) == []

    sender = _sender(settings, redis)
    try:
        await _drain(sender, db, [d["id"] for d in first + every])
    finally:
        await sender.close()
    assert check.refused == []
    by_path: dict[str, list[Recorded]] = {}
    for request in peer.requests:
        by_path.setdefault(request.path, []).append(request)
    assert sorted(by_path) == ["/a", "/b"]
    [to_a] = by_path["/a"]
    assert to_a.headers["webhook-id"] == webhook_id(first[0]["event_id"], only_delivered)
    payload = Verifier(SECRET).verify(to_a.body, to_a.headers)
    assert payload["type"] == "stop_delivered"
    assert payload["data"]["order_id"] == 7
    assert payload["data"]["type"] == "stop_delivered"
    assert sorted(p["type"] for p in check.verified) == [
        "en_route",
        "stop_delivered",
        "stop_delivered",
    ]
    assert {d["state"] for d in await _deliveries(db, everything)} == {"delivered"}


async def _events(redis: Redis, key: str) -> list[Event]:
    raw: Any = await redis.xrange(key)
    return [EVENT_DECODER.decode(fields[b"e"]) for _, fields in raw]


def _disabled_count() -> float:
    return REGISTRY.get_sample_value("lastmile_webhook_endpoints_disabled_total") or 0.0


class Flaky:
    """Answers 503 to the first ``failures`` requests, then as ``inner`` does."""

    def __init__(self, inner: WebhookReceiver, failures: int) -> None:
        self.inner = inner
        self.failures = failures

    def __call__(self, request: Recorded) -> Response:
        if self.failures > 0:
            self.failures -= 1
            return Response("busy", status_code=503)
        return self.inner(request)


async def test_a_failing_receiver_is_retried_with_the_same_webhook_id_until_it_accepts(
    settings: Settings,
    redis: Redis,
    db: psycopg.AsyncConnection,
    tenant: Tenant,
    cleanup: list[OrgId],
    receiver: tuple[HttpPeer, WebhookReceiver],
) -> None:
    """Two 503s are retried after a backoff and the third attempt is delivered; every attempt
    carries the same ``webhook-id`` and is in the log with its status code; the success clears
    the endpoint's run of failures."""
    peer, check = receiver
    peer.answer = Flaky(check, failures=2)
    cleanup.append(tenant.org_id)
    endpoint = await _endpoint(db, tenant.org_id, f"{peer.url}/r", ["*"])
    delivery = await _fan_out_one(settings, db, tenant, endpoint, order=8)
    sender = _sender(settings, redis)
    try:
        await _drain(sender, db, [delivery])
    finally:
        await sender.close()
    [log] = await store.list_deliveries(db, tenant.org_id, endpoint, before=None, limit=10)
    assert log.state == "delivered"
    assert [(a.attempt, a.outcome, a.status_code) for a in log.attempts] == [
        (1, "retry", 503),
        (2, "retry", 503),
        (3, "delivered", 204),
    ]
    assert all(a.latency_ms >= 0 and a.address == "127.0.0.1" for a in log.attempts)
    assert {r.headers["webhook-id"] for r in peer.requests} == {log.webhook_id}
    assert len(peer.requests) == 3
    found = await store.get(db, tenant.org_id, endpoint)
    assert found is not None
    assert found.consecutive_failures == 0


def _entry_id(seconds_ago: float = 0.0) -> str:
    """A stream entry id as Redis would have given it ``seconds_ago``."""
    millis = int((datetime.now(UTC).timestamp() - seconds_ago) * 1000)
    return f"{millis}-{secrets.randbelow(10**6)}"


async def _fan_out_one(
    settings: Settings, db: psycopg.AsyncConnection, tenant: Tenant, endpoint: int, order: int
) -> int:
    """One delivery to ``endpoint``, through the fan-out's own code; its id."""
    consumer = HooksConsumer(
        names=StreamNames(prefix=settings.redis_prefix), database_url=settings.database_url or ""
    )
    event_id = _entry_id()
    try:
        await consumer.handle([Entry("events", event_id, _delivered(tenant, order))])
    finally:
        await consumer.close()
    [row] = [d for d in await _deliveries(db, endpoint) if d["event_id"] == event_id]
    return int(row["id"])


async def test_a_run_of_failures_disables_the_endpoint_and_says_so_on_the_stream(
    settings: Settings,
    redis: Redis,
    db: psycopg.AsyncConnection,
    tenant: Tenant,
    cleanup: list[OrgId],
    receiver: tuple[HttpPeer, WebhookReceiver],
) -> None:
    """After ``disable_after`` failed attempts in a row the endpoint is disabled, its remaining
    deliveries wait unclaimed, a ``webhook_disabled`` event is on the organisation's own
    stream (what dispatcher screens read) and the shared one, and the metric counts it."""
    peer, _check = receiver
    peer.answer = lambda request: Response("down", status_code=500)
    cleanup.append(tenant.org_id)
    endpoint = await _endpoint(db, tenant.org_id, f"{peer.url}/down", ["*"])
    ids = [await _fan_out_one(settings, db, tenant, endpoint, order=n) for n in range(4)]
    before = _disabled_count()
    sender = _sender(
        settings,
        redis,
        HookSenderConfig(batch=3, max_tries=10, disable_after=3, lease_s=2.0, idle_s=0.02),
    )
    try:
        await sender.run_once()  # three deliveries claimed, three failures: disabled
        assert await sender.run_once() == 0  # the fourth waits: its endpoint is disabled
    finally:
        await sender.close()
    found = await store.get(db, tenant.org_id, endpoint)
    assert found is not None
    assert (found.enabled, found.consecutive_failures) == (False, 3)
    assert found.disabled_reason is not None
    assert "3 failed attempts" in found.disabled_reason
    assert _disabled_count() == before + 1
    states = {d["id"]: d["state"] for d in await _deliveries(db, endpoint)}
    assert sorted(states[i] for i in ids) == ["pending"] * 4
    names = stream_names(settings)
    own = await _events(redis, names.org_events(tenant.org_id))
    disabled = [e for e in own if isinstance(e, WebhookDisabled)]
    assert [(e.endpoint_id, e.consecutive_failures) for e in disabled] == [(endpoint, 3)]
    shared = await _events(redis, names.events)
    assert any(isinstance(e, WebhookDisabled) for e in shared)

    # Enabled again, the endpoint's run starts afresh and its waiting deliveries go out.
    peer.answer = _check
    await store.update(
        db, tenant.org_id, endpoint, url=found.url, event_types=["*"], description="", enabled=True
    )
    sender = _sender(settings, redis)
    try:
        await _drain(sender, db, ids)
    finally:
        await sender.close()
    assert {d["state"] for d in await _deliveries(db, endpoint)} == {"delivered"}


async def test_a_410_disables_at_once_and_other_4xx_are_dead_letters(
    settings: Settings,
    redis: Redis,
    db: psycopg.AsyncConnection,
    tenant: Tenant,
    cleanup: list[OrgId],
    receiver: tuple[HttpPeer, WebhookReceiver],
) -> None:
    """A 400 makes its delivery dead without a retry; a 410 Gone makes it dead and disables
    the endpoint at once."""
    peer, _check = receiver
    cleanup.append(tenant.org_id)
    refusing = await _endpoint(db, tenant.org_id, f"{peer.url}/400", ["*"])
    gone = await _endpoint(db, tenant.org_id, f"{peer.url}/410", ["*"])
    peer.answer = lambda request: Response("no", status_code=int(request.path.strip("/")))
    await _fan_out_one(settings, db, tenant, refusing, order=11)  # to both endpoints
    ids = [d["id"] for e in (refusing, gone) for d in await _deliveries(db, e)]
    sender = _sender(settings, redis)
    try:
        await _drain(sender, db, ids)
    finally:
        await sender.close()
    assert [d["state"] for d in await _deliveries(db, refusing)] == ["dead"]
    assert [d["attempts"] for d in await _deliveries(db, gone)] == [1]
    after_400 = await store.get(db, tenant.org_id, refusing)
    after_410 = await store.get(db, tenant.org_id, gone)
    assert after_400 is not None
    assert after_400.enabled
    assert after_410 is not None
    assert not after_410.enabled
    assert after_410.disabled_reason == "the receiver answered 410 Gone"


async def test_a_target_that_resolves_to_loopback_is_refused_at_send_time(
    settings: Settings,
    redis: Redis,
    db: psycopg.AsyncConnection,
    tenant: Tenant,
    cleanup: list[OrgId],
    receiver: tuple[HttpPeer, WebhookReceiver],
) -> None:
    """With no address class allowed, a delivery to a loopback URL (stored before the rule, or
    whose name now resolves there) is refused without a request and is a dead letter."""
    peer, _check = receiver
    cleanup.append(tenant.org_id)
    endpoint = await _endpoint(db, tenant.org_id, peer.url.replace("127.0.0.1", "localhost"), ["*"])
    delivery = await _fan_out_one(settings, db, tenant, endpoint, order=12)
    strict = _sender(settings, redis, webhooks=WebhookConfig())
    try:
        await _drain(strict, db, [delivery])
    finally:
        await strict.close()
    [log] = await store.list_deliveries(db, tenant.org_id, endpoint, before=None, limit=10)
    assert log.state == "dead"
    [attempt] = log.attempts
    assert attempt.outcome == "refused"
    assert attempt.error is not None
    assert "loopback" in attempt.error
    assert peer.requests == []


async def test_two_senders_never_claim_the_same_delivery(
    settings: Settings, db: psycopg.AsyncConnection, tenant: Tenant, cleanup: list[OrgId]
) -> None:
    """Claims in two open transactions at once split the due deliveries between them."""
    cleanup.append(tenant.org_id)
    endpoint = await _endpoint(db, tenant.org_id, "http://127.0.0.1:9/none", ["*"])
    ids = {await _fan_out_one(settings, db, tenant, endpoint, order=n) for n in range(6)}
    url = settings.database_url or ""
    async with (
        await psycopg.AsyncConnection.connect(url) as first,
        await psycopg.AsyncConnection.connect(url) as second,
    ):
        one = {c.id for c in await webhook_deliveries.claim_due(first, 3, 30.0)}
        two = {c.id for c in await webhook_deliveries.claim_due(second, 100, 30.0)}
        await first.commit()
        await second.commit()
    assert one
    assert not one & two
    assert ids <= one | two


class Holding(HttpPeer):
    """A receiver that records each request at once and answers only when ``release`` is set:
    a sender killed meanwhile has sent its deliveries but never learns the outcome."""

    def __init__(self, check: WebhookReceiver) -> None:
        super().__init__(check)
        self.release = asyncio.Event()

    async def _handle(self, request: Request) -> Response:
        recorded = await self.record(request)
        await self.release.wait()
        return self.answer(recorded)


KILLED_SENDER = """
import asyncio, sys
from redis.asyncio import Redis
from adapters.webhooks import WebhookConfig, WebhookSender
from realtime.streams import StreamNames
from workers.hooks import HookSender, HookSenderConfig
async def main():
    adapter = WebhookSender(WebhookConfig(allowed_address_classes=frozenset({"loopback"})))
    config = HookSenderConfig(batch=10, lease_s=1.0, idle_s=0.05)
    sender = HookSender(sys.argv[1], adapter, config, redis=Redis.from_url(sys.argv[2]),
                        names=StreamNames(prefix=sys.argv[3]))
    await sender.run(asyncio.Event())
asyncio.run(main())
"""


async def test_a_killed_sender_loses_nothing_and_redeliveries_keep_their_webhook_id(
    settings: Settings,
    redis: Redis,
    db: psycopg.AsyncConnection,
    tenant: Tenant,
    cleanup: list[OrgId],
) -> None:
    """A sender killed (SIGKILL) mid-batch, after its requests reached the receiver and before
    it recorded them, loses none: once the lease runs out another sender delivers each again,
    and every delivery arrives at least once, duplicates with the same ``webhook-id``."""
    check = WebhookReceiver(secret=SECRET)
    peer = Holding(check)
    async with peer:
        cleanup.append(tenant.org_id)
        endpoint = await _endpoint(db, tenant.org_id, f"{peer.url}/k", ["*"])
        ids = [await _fan_out_one(settings, db, tenant, endpoint, order=n) for n in range(6)]
        expected = {d["webhook_id"] for d in await _deliveries(db, endpoint)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            KILLED_SENDER,
            settings.database_url or "",
            settings.redis_url or "",
            settings.redis_prefix,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        try:

            async def all_sent() -> bool:
                return {r.headers["webhook-id"] for r in peer.requests} == expected

            await eventually(
                all_sent, "the killed sender's requests at the receiver", deadline_s=20
            )
        finally:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
        assert {d["state"] for d in await _deliveries(db, endpoint)} == {"sending"}
        peer.release.set()
        survivor = _sender(settings, redis)
        try:
            await _drain(survivor, db, ids)
        finally:
            await survivor.close()
    rows = await _deliveries(db, endpoint)
    assert {r["state"] for r in rows} == {"delivered"}
    assert {r["attempts"] for r in rows} == {2}
    seen: dict[str, int] = {}
    for request in peer.requests:
        seen[request.headers["webhook-id"]] = seen.get(request.headers["webhook-id"], 0) + 1
    assert set(seen) == expected
    assert all(count == 2 for count in seen.values()), seen
    assert check.refused == []


async def test_the_webhooks_worker_runs_as_serve_runs_it(
    settings: Settings,
    redis: Redis,
    db: psycopg.AsyncConnection,
    tenant: Tenant,
    cleanup: list[OrgId],
    receiver: tuple[HttpPeer, WebhookReceiver],
) -> None:
    """``worker webhooks`` (run_worker, from the settings) fans an event out and delivers it."""
    peer, check = receiver
    cleanup.append(tenant.org_id)
    await _endpoint(db, tenant.org_id, f"{peer.url}/w", ["stop_delivered"])
    configured = msgspec.structs.replace(settings, webhook_allow_addresses=("loopback",))
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(configured, "webhooks", stop))
    try:
        await emit(redis, stream_names(settings), _delivered(tenant, 21))

        async def arrived() -> bool:
            return len(check.verified) == 1

        await eventually(arrived, "the event at the receiver", deadline_s=20)
    finally:
        stop.set()
        await task
    assert check.verified[0]["data"]["order_id"] == 21


async def test_the_fan_out_wakes_its_idle_delivery_loop(
    settings: Settings,
    redis: Redis,
    db: psycopg.AsyncConnection,
    tenant: Tenant,
    cleanup: list[OrgId],
    receiver: tuple[HttpPeer, WebhookReceiver],
) -> None:
    """A delivery loop idling between passes (here for a minute) sends a delivery as soon as
    the fan-out in its process stored it, instead of at its next pass."""
    peer, check = receiver
    cleanup.append(tenant.org_id)
    await _endpoint(db, tenant.org_id, f"{peer.url}/wake", ["*"])
    sleepy = _sender(settings, redis, dataclasses.replace(FAST, idle_s=60.0))
    stop = asyncio.Event()
    loop = asyncio.create_task(sleepy.run(stop))
    consumer = HooksConsumer(
        names=stream_names(settings),
        database_url=settings.database_url or "",
        on_stored=sleepy.wake.set,
    )
    try:
        await asyncio.sleep(0.2)  # the loop's first pass found nothing: it idles now
        await consumer.handle([Entry("events", _entry_id(), _delivered(tenant, 31))])

        async def arrived() -> bool:
            return len(check.verified) == 1

        await eventually(arrived, "the delivery sent before the idle pause ended")
    finally:
        stop.set()
        await loop
        await sleepy.close()
        await consumer.close()


async def test_a_receiver_that_hangs_holds_one_place_of_the_window_not_the_others(
    settings: Settings,
    redis: Redis,
    db: psycopg.AsyncConnection,
    tenant: Tenant,
    cleanup: list[OrgId],
    receiver: tuple[HttpPeer, WebhookReceiver],
) -> None:
    """While one delivery waits on a receiver that never answers, the loop keeps sending the
    others through the rest of its window (here of four): all ten arrive while the hanging
    attempt is still in flight, and that attempt is recorded (a retry) once it ends."""
    peer, check = receiver
    cleanup.append(tenant.org_id)
    patient = dataclasses.replace(LOOPBACK, timeout_s=120.0)
    silent = await SilentServer().__aenter__()
    hanging = await _endpoint(db, tenant.org_id, f"http://127.0.0.1:{silent.port}/", ["*"])
    stuck = await _fan_out_one(settings, db, tenant, hanging, order=1)  # claimed first
    await db.execute(  # the hanging endpoint gets no more
        "UPDATE webhook_endpoints SET event_types = '{webhook_disabled}' WHERE id = %s", (hanging,)
    )
    endpoint = await _endpoint(db, tenant.org_id, f"{peer.url}/window", ["*"])
    ids = [await _fan_out_one(settings, db, tenant, endpoint, order=n) for n in range(2, 12)]
    sender = _sender(settings, redis, dataclasses.replace(FAST, batch=4), webhooks=patient)
    stop = asyncio.Event()
    loop = asyncio.create_task(sender.run(stop))
    try:

        async def all_arrived() -> bool:
            return len(check.verified) == len(ids)

        await eventually(all_arrived, "the others delivered past the hanging one")
        cursor = await db.execute("SELECT state FROM webhook_deliveries WHERE id = %s", (stuck,))
        assert await cursor.fetchall() == [("sending",)]
    finally:
        stop.set()
        await silent.__aexit__()  # the hanging answer ends: its attempt finishes
        await loop
        await sender.close()
    cursor = await db.execute(
        "SELECT d.state, a.outcome FROM webhook_deliveries d"
        " JOIN webhook_attempts a ON a.delivery_id = d.id WHERE d.id = %s",
        (stuck,),
    )
    assert await cursor.fetchall() == [("pending", "retry")]


async def test_two_delivery_loops_side_by_side_send_each_delivery_once(
    settings: Settings,
    redis: Redis,
    db: psycopg.AsyncConnection,
    tenant: Tenant,
    cleanup: list[OrgId],
    receiver: tuple[HttpPeer, WebhookReceiver],
) -> None:
    """Two delivery loops running at once (as two ``webhooks`` processes would) share the
    deliveries: every one arrives exactly once, and both loops sent some."""
    peer, check = receiver
    cleanup.append(tenant.org_id)
    endpoint = await _endpoint(db, tenant.org_id, f"{peer.url}/two", ["*"])
    ids = [await _fan_out_one(settings, db, tenant, endpoint, order=n) for n in range(40)]
    small = dataclasses.replace(FAST, batch=5)
    loops = [
        _sender(
            settings, redis, small, webhooks=dataclasses.replace(LOOPBACK, user_agent=f"loop-{n}")
        )
        for n in range(2)
    ]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(loop.run(stop)) for loop in loops]
    try:

        async def all_arrived() -> bool:
            return len(check.verified) >= len(ids)

        await eventually(all_arrived, "every delivery at the receiver", deadline_s=20)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        for loop in loops:
            await loop.close()
    sent = [r.headers["webhook-id"] for r in peer.requests]
    assert len(sent) == len(set(sent)) == len(ids)
    assert {r.headers["user-agent"] for r in peer.requests} == {"loop-0", "loop-1"}
    cursor = await db.execute(
        "SELECT count(*) FROM webhook_attempts a"
        " JOIN webhook_deliveries d ON d.id = a.delivery_id WHERE d.endpoint_id = %s",
        (endpoint,),
    )
    assert (await cursor.fetchone()) == (len(ids),)


async def test_with_redis_away_deliveries_go_on_and_the_announcement_waits(
    settings: Settings,
    redis: Redis,
    db: psycopg.AsyncConnection,
    tenant: Tenant,
    cleanup: list[OrgId],
    receiver: tuple[HttpPeer, WebhookReceiver],
) -> None:
    """A sender whose Redis is unreachable still delivers and records (PostgreSQL is all it
    needs); the endpoint it disabled meanwhile is announced by the next sender that reaches
    Redis."""
    peer, check = receiver
    cleanup.append(tenant.org_id)
    gone = await _endpoint(db, tenant.org_id, f"{peer.url}/gone", ["*"])
    fine = await _endpoint(db, tenant.org_id, f"{peer.url}/fine", ["*"])
    peer.answer = lambda r: Response("", status_code=410) if r.path == "/gone" else check(r)
    await _fan_out_one(settings, db, tenant, gone, order=41)  # one delivery to each endpoint
    nowhere = Redis.from_url("redis://127.0.0.1:9/0")
    cut_off = _sender(settings, nowhere)
    try:
        assert await cut_off.run_once() == 2
    finally:
        await cut_off.close()
        await nowhere.aclose()
    assert [d["state"] for d in await _deliveries(db, fine)] == ["delivered"]
    assert len(check.verified) == 1
    disabled = await store.get(db, tenant.org_id, gone)
    assert disabled is not None
    assert not disabled.enabled
    names = stream_names(settings)
    assert not [e for e in await _events(redis, names.events) if isinstance(e, WebhookDisabled)]

    later = _sender(settings, redis)
    try:
        await later.run_once()
    finally:
        await later.close()
    announced = [e for e in await _events(redis, names.events) if isinstance(e, WebhookDisabled)]
    assert [e.endpoint_id for e in announced] == [gone]


async def test_after_a_rotation_both_secrets_sign_until_the_old_one_expires(
    settings: Settings,
    redis: Redis,
    db: psycopg.AsyncConnection,
    tenant: Tenant,
    cleanup: list[OrgId],
    receiver: tuple[HttpPeer, WebhookReceiver],
) -> None:
    """A rotation that keeps the old secret makes each delivery carry two signatures, so a
    receiver still on the old secret and one on the new both verify it; a rotation with no
    overlap leaves only the newest secret signing."""
    peer, check = receiver  # verifies with SECRET, the secret before the rotations
    cleanup.append(tenant.org_id)
    endpoint = await _endpoint(db, tenant.org_id, f"{peer.url}/rot", ["*"])
    second = "whsec_" + base64.b64encode(b"2" * 32).decode()
    third = "whsec_" + base64.b64encode(b"3" * 32).decode()
    sender = _sender(settings, redis)
    try:
        rotated = await store.rotate_secret(db, tenant.org_id, endpoint, second, 3600)
        assert rotated is not None
        assert rotated.previous_secret_until is not None
        await _drain(sender, db, [await _fan_out_one(settings, db, tenant, endpoint, order=51)])
        overlapping = peer.requests[-1]
        assert len(overlapping.headers["webhook-signature"].split(" ")) == 2
        assert len(check.verified) == 1  # the old secret verifies
        Verifier(second).verify(overlapping.body, overlapping.headers)  # and so does the new

        at_once = await store.rotate_secret(db, tenant.org_id, endpoint, third, 0)
        assert at_once is not None
        assert at_once.previous_secret_until is None
        await _drain(sender, db, [await _fan_out_one(settings, db, tenant, endpoint, order=52)])
    finally:
        await sender.close()
    latest = peer.requests[-1]
    assert len(latest.headers["webhook-signature"].split(" ")) == 1
    Verifier(third).verify(latest.body, latest.headers)
    assert len(check.refused) == 1  # the first secret no longer verifies


async def test_a_new_endpoint_is_not_sent_what_the_stream_held_before_it(
    settings: Settings, db: psycopg.AsyncConnection, tenant: Tenant, cleanup: list[OrgId]
) -> None:
    """An entry put on the stream well before the endpoint was created (a group reading the
    stream from its start) is not fanned out to it; one from just before (clock slack) and
    one from after are."""
    cleanup.append(tenant.org_id)
    endpoint = await _endpoint(db, tenant.org_id, "http://127.0.0.1:9/new", ["*"])
    entries: list[Entry[Event]] = [
        Entry("events", _entry_id(seconds_ago=3600), _delivered(tenant, 61)),
        Entry("events", _entry_id(seconds_ago=5), _delivered(tenant, 62)),
        Entry("events", _entry_id(), _delivered(tenant, 63)),
    ]
    consumer = HooksConsumer(names=stream_names(settings), database_url=settings.database_url or "")
    try:
        await consumer.handle(entries)
    finally:
        await consumer.close()
    stored = {d["event_id"] for d in await _deliveries(db, endpoint)}
    assert stored == {entries[1].id, entries[2].id}
