"""The webhooks API on a live server: endpoints and their secrets, the checks at save time
(URL, SSRF, event types), roles, other organisations, the delivery log and replays."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import psycopg
import pytest
import websockets
from redis.asyncio import Redis
from standardwebhooks.webhooks import Webhook as Verifier
from starlette.responses import Response

from adapters.webhooks import WebhookConfig, WebhookSender
from app.api.webhooks import RefusedField, check_url
from app.resources import stream_names
from app.settings import Settings, SettingsError
from schemas.events import StopDelivered
from schemas.ids import DriverId, OrderId, OrgId, RouteId, StopId
from tests.adapters.peers import HttpPeer, WebhookReceiver
from tests.app.test_live_ws import receive
from tests.conftest import LiveServer, Tenant, make_tenant
from tests.helpers import eventually
from workers.hooks import HooksConsumer, HookSender, HookSenderConfig
from workers.runner import Entry


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """This test's settings, allowing webhooks to loopback (the local receiver)."""
    return msgspec.structs.replace(settings, webhook_allow_addresses=("loopback",))


@pytest.fixture
async def admin(db: psycopg.AsyncConnection) -> AsyncIterator[Tenant]:
    """An organisation with an administrator's key; its endpoints are removed afterwards."""
    made = await make_tenant(db, drivers=1, role="admin")
    yield made
    await db.execute("DELETE FROM webhook_endpoints WHERE org_id = %s", (made.org_id,))


@pytest.fixture
async def api(server: LiveServer, admin: Tenant) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the live server with the administrator's key."""
    headers = {"authorization": f"Bearer {admin.api_key}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=10) as client:
        yield client


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[HttpPeer, WebhookReceiver]]:
    """A receiver verifying with a secret the test sets once the API has issued it."""
    check = WebhookReceiver(secret="whsec_" + base64.b64encode(b"-" * 32).decode())
    async with HttpPeer(check) as peer:
        yield peer, check


def _refusal(answer: httpx.Response, status: int, field: str) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["field"] == field
    return str(body["reason"])


async def test_an_endpoint_is_created_with_a_secret_shown_once_changed_and_deleted(
    api: httpx.AsyncClient,
) -> None:
    """Creating answers 201 with a ``whsec_`` secret that no read shows again; a patch changes
    what it names; rotating gives a new secret; deleting makes it 404."""
    created = await api.post(
        "/v1/webhooks",
        json={"url": "http://127.0.0.1:9/hooks", "event_types": ["stop_delivered", "en_route"]},
    )
    assert created.status_code == 201, created.text
    endpoint = created.json()
    assert endpoint["secret"].startswith("whsec_")
    assert len(base64.b64decode(endpoint["secret"].removeprefix("whsec_"))) == 32
    assert endpoint["enabled"] is True
    path = f"/v1/webhooks/{endpoint['id']}"
    listed = (await api.get("/v1/webhooks")).json()["webhooks"]
    assert [e["id"] for e in listed] == [endpoint["id"]]
    assert "secret" not in listed[0]
    read = (await api.get(path)).json()
    assert "secret" not in read
    assert read["event_types"] == ["stop_delivered", "en_route"]

    patched = await api.patch(path, json={"event_types": ["*"], "description": "all of it"})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["event_types"], patched.json()["url"]) == (["*"], endpoint["url"])

    rotated = await api.post(f"{path}/rotate")
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret"].startswith("whsec_")
    assert rotated.json()["secret"] != endpoint["secret"]
    overlap_ends = datetime.fromisoformat(rotated.json()["previous_secret_until"])
    rotated_at = datetime.fromisoformat(rotated.json()["secret_rotated_at"])
    assert overlap_ends - rotated_at == timedelta(days=1)
    at_once = await api.post(f"{path}/rotate", json={"keep_old_s": 0})
    assert at_once.json()["previous_secret_until"] is None
    _refusal(await api.post(f"{path}/rotate", json={"keep_old_s": 8 * 86400}), 400, "keep_old_s")

    assert (await api.delete(path)).status_code == 204
    assert (await api.get(path)).status_code == 404
    assert (await api.delete(path)).status_code == 404


async def test_bad_urls_and_event_types_are_refused_naming_the_field(
    api: httpx.AsyncClient,
) -> None:
    """A URL that is not http(s), carries credentials, or resolves to a private or link-local
    address, and an unknown event type, are 422s naming the field; a body of the wrong shape is
    a 400."""
    cases = {
        "ftp://127.0.0.1/x": "http(s)",
        "http://user:pw@127.0.0.1/x": "user name",
        "http://10.1.2.3/x": "private address 10.1.2.3",
        "http://169.254.169.254/latest/meta-data": "link_local",
        "http://[::ffff:192.168.0.1]/x": "private",
    }
    for url, said in cases.items():
        answer = await api.post("/v1/webhooks", json={"url": url})
        assert said in _refusal(answer, 422, "url"), url
    unknown = await api.post(
        "/v1/webhooks", json={"url": "http://127.0.0.1:9/x", "event_types": ["*", "exploded"]}
    )
    assert "'exploded'" in _refusal(unknown, 422, "event_types[1]")
    shaped = await api.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/x", "event_types": 3})
    _refusal(shaped, 400, "event_types")
    assert (await api.get("/v1/webhooks")).json()["webhooks"] == []


async def test_loopback_is_refused_at_save_time_unless_a_setting_allows_it() -> None:
    """With no address class allowed (production), a URL whose host resolves to loopback is
    refused; allowing ``loopback`` (as these tests do) lets it through."""
    with pytest.raises(RefusedField) as refused:
        await check_url("http://localhost:8080/hook", frozenset())
    assert refused.value.field == "url"
    assert "loopback" in refused.value.reason
    assert await check_url("http://localhost:8080/hook", frozenset({"loopback"}))


async def test_only_administrators_write_and_other_organisations_see_nothing(
    server: LiveServer, api: httpx.AsyncClient, db: psycopg.AsyncConnection, tenant: Tenant
) -> None:
    """A dispatcher's key reads endpoints but may not create one (403); every route of
    another organisation's endpoint answers 404 as if it did not exist."""
    mine = (await api.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/x"})).json()
    headers = {"authorization": f"Bearer {tenant.api_key}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=10) as other:
        assert (
            await other.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/y"})
        ).status_code == 403
        assert (await other.get("/v1/webhooks")).json() == {"webhooks": []}
        path = f"/v1/webhooks/{mine['id']}"
        assert (await other.get(path)).status_code == 404
        assert (await other.get(f"{path}/deliveries")).status_code == 404
    stranger = await make_tenant(db, drivers=0, role="admin")
    headers = {"authorization": f"Bearer {stranger.api_key}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=10) as other:
        assert (await other.patch(path, json={"enabled": False})).status_code == 404
        assert (await other.post(f"{path}/rotate")).status_code == 404
        assert (await other.delete(path)).status_code == 404
        window = {"from": "2026-01-01T00:00:00Z", "to": "2030-01-01T00:00:00Z"}
        assert (await other.post(f"{path}/replay", json=window)).status_code == 404
        assert (await other.post(f"{path}/deliveries/1/replay")).status_code == 404
    assert (await api.get(path)).json()["enabled"] is True


async def test_the_delivery_log_pages_and_replays_resend_with_the_same_webhook_id(
    settings: Settings,
    redis: Redis,
    api: httpx.AsyncClient,
    admin: Tenant,
    receiver: tuple[HttpPeer, WebhookReceiver],
) -> None:
    """Delivered events show in the log with their attempts, newest first, a page at a time;
    replaying one delivery, and then a time range, sends each again with the same body and
    ``webhook-id``, signed with the endpoint's current secret."""
    peer, check = receiver
    created = (await api.post("/v1/webhooks", json={"url": f"{peer.url}/log"})).json()
    check.secret = created["secret"]
    path = f"/v1/webhooks/{created['id']}"
    start = datetime.now(UTC) - timedelta(seconds=1)
    now_ms = int(time.time() * 1000)
    consumer = HooksConsumer(names=stream_names(settings), database_url=settings.database_url or "")
    try:
        await consumer.handle(
            [Entry("events", f"{now_ms}-{n}", _delivered(admin.org_id, n)) for n in range(3)]
        )
    finally:
        await consumer.close()
    sender = _sender(settings, redis)
    try:
        await _sent(sender, check, 3)
        first = (await api.get(f"{path}/deliveries", params={"limit": 2})).json()
        assert [d["event_id"] for d in first["deliveries"]] == [f"{now_ms}-2", f"{now_ms}-1"]
        assert first["next_before"] == first["deliveries"][-1]["id"]
        rest = (await api.get(f"{path}/deliveries", params={"before": first["next_before"]})).json()
        assert [d["event_id"] for d in rest["deliveries"]] == [f"{now_ms}-0"]
        assert rest["next_before"] is None
        [attempt] = rest["deliveries"][0]["attempts"]
        assert (attempt["attempt"], attempt["outcome"], attempt["status_code"]) == (
            1,
            "delivered",
            204,
        )
        assert attempt["latency_ms"] >= 0
        assert rest["deliveries"][0]["state"] == "delivered"

        one = rest["deliveries"][0]
        replayed = await api.post(f"{path}/deliveries/{one['id']}/replay")
        assert replayed.status_code == 202, replayed.text
        assert replayed.json()["state"] == "pending"
        await _sent(sender, check, 4)
        again = peer.requests[-1]
        assert again.headers["webhook-id"] == one["webhook_id"]
        [original] = [r for r in peer.requests[:3] if r.headers["webhook-id"] == one["webhook_id"]]
        assert again.body == original.body

        rotated = (await api.post(f"{path}/rotate")).json()
        check.secret = rotated["secret"]
        window = {
            "from": start.isoformat(),
            "to": (datetime.now(UTC) + timedelta(minutes=1)).isoformat(),
        }
        ranged = await api.post(f"{path}/replay", json=window)
        assert ranged.status_code == 202, ranged.text
        assert ranged.json() == {"replayed": 3}
        await _sent(sender, check, 7)
        assert check.refused == []
        ids = [r.headers["webhook-id"] for r in peer.requests]
        assert sorted(ids[4:]) == sorted(ids[:3])
        Verifier(rotated["secret"]).verify(peer.requests[-1].body, peer.requests[-1].headers)
    finally:
        await sender.close()
    log = (await api.get(f"{path}/deliveries", params={"state": "delivered"})).json()
    assert sorted(len(d["attempts"]) for d in log["deliveries"]) == [2, 2, 3]

    backwards = {"from": "2026-12-06T10:00:00Z", "to": "2026-12-06T09:00:00Z"}
    _refusal(await api.post(f"{path}/replay", json=backwards), 422, "to")
    _refusal(await api.get(f"{path}/deliveries", params={"state": "lost"}), 400, "state")
    _refusal(await api.get(f"{path}/deliveries", params={"limit": "0"}), 400, "limit")


def _delivered(org_id: OrgId, order: int) -> StopDelivered:
    return StopDelivered(
        org_id=org_id,
        at=datetime.now(UTC),
        route_id=RouteId(1),
        stop_id=StopId(order + 1),
        order_id=OrderId(order + 1),
        driver_id=DriverId(1),
    )


def _sender(settings: Settings, redis: Redis) -> HookSender:
    """A delivery loop of the test database that may send to the loopback receiver."""
    return HookSender(
        settings.database_url or "",
        WebhookSender(WebhookConfig(allowed_address_classes=frozenset({"loopback"}))),
        HookSenderConfig(idle_s=0.02),
        redis=redis,
        names=stream_names(settings),
    )


async def _sent(sender: HookSender, check: WebhookReceiver, count: int) -> Any:
    """Run the sender until the receiver verified ``count`` deliveries in all."""

    async def enough() -> bool:
        await sender.run_once()
        return len(check.verified) >= count

    return await eventually(enough, f"{count} deliveries verified")


def test_allowed_address_classes_are_read_from_a_comma_separated_variable() -> None:
    """``LASTMILE_WEBHOOK_ALLOW_ADDRESSES`` takes a list of address classes, empty by default;
    an unknown class fails naming the variable."""
    assert Settings.from_env({}).webhook_allow_addresses == ()
    read = Settings.from_env({"LASTMILE_WEBHOOK_ALLOW_ADDRESSES": "loopback, private"})
    assert read.webhook_allow_addresses == ("loopback", "private")
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"LASTMILE_WEBHOOK_ALLOW_ADDRESSES": "loopback,everywhere"})
    assert refused.value.variable == "LASTMILE_WEBHOOK_ALLOW_ADDRESSES"


async def test_a_disabled_endpoint_is_announced_on_the_dispatchers_live_feed(
    settings: Settings,
    server: LiveServer,
    redis: Redis,
    api: httpx.AsyncClient,
    admin: Tenant,
    receiver: tuple[HttpPeer, WebhookReceiver],
) -> None:
    """When the sender disables an endpoint (here the receiver answers 410 Gone), the
    organisation's dispatcher screens get a ``webhook_disabled`` event naming it and why."""
    peer, _check = receiver
    peer.answer = lambda request: Response("gone", status_code=410)
    created = (await api.post("/v1/webhooks", json={"url": f"{peer.url}/gone"})).json()
    consumer = HooksConsumer(names=stream_names(settings), database_url=settings.database_url or "")
    sender = _sender(settings, redis)
    url = f"{server.ws_url}/v1/live/ws?token={admin.api_key}"
    try:
        async with websockets.connect(url) as socket:
            await receive(socket, "snapshot")
            entry_id = f"{int(time.time() * 1000)}-0"
            await consumer.handle([Entry("events", entry_id, _delivered(admin.org_id, 5))])
            await sender.run_once()
            message = await receive(socket, "event")
    finally:
        await consumer.close()
        await sender.close()
    event = message["event"]
    assert event["type"] == "webhook_disabled"
    assert (event["endpoint_id"], event["url"]) == (created["id"], created["url"])
    assert event["reason"] == "the receiver answered 410 Gone"
    assert (await api.get(f"/v1/webhooks/{created['id']}")).json()["enabled"] is False
