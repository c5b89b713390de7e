"""Credentials an administrator manages, and revocations that take effect in every process at
once; devices that go on authenticating from Redis while PostgreSQL does not answer."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest
import websockets
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis
from websockets.exceptions import ConnectionClosed

from app.auth import Authenticator, SharedCredentials, hash_token
from app.errors import Unavailable
from app.revocation import announce
from app.settings import Settings
from realtime.hub import Hub
from schemas.ids import DeviceId
from store import tenants
from store.db import open_pool
from tests.adapters.peers import free_port
from tests.conftest import LiveServer, Tenant, make_tenant
from tests.helpers import eventually

HOUR_S = 3600.0


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def ping() -> dict[str, Any]:
    """A batch of one fresh ping."""
    return {"pings": [{"time": datetime.now(UTC).isoformat(), "lat": 52.5, "lon": 13.4}]}


@contextlib.asynccontextmanager
async def process(
    settings: Settings, database_url: str | None = None
) -> AsyncIterator[Authenticator]:
    """Another process's authenticator: its own pool, hub and cache (kept an hour, so that
    only a revocation can make it forget), following revocations."""
    url = database_url or settings.database_url or ""
    redis = Redis.from_url(settings.redis_url or "")
    hub = Hub(Redis.from_url(settings.redis_url or ""))
    await hub.start()
    pool = (
        await open_pool(url)
        if database_url is None
        else AsyncConnectionPool(url, min_size=1, open=False, reconnect_timeout=1.0)
    )
    if database_url is not None:
        await pool.open(wait=False)
    shared = SharedCredentials(redis=redis, prefix=settings.redis_prefix, db_timeout_s=1.0)
    authenticator = Authenticator(pool, ttl_s=HOUR_S, shared=shared)
    watching = asyncio.create_task(authenticator.watch(hub))
    try:
        await eventually(
            lambda: _listening(hub, settings), "the process follows revocations", deadline_s=5
        )
        yield authenticator
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
        await hub.close()
        await hub.redis.aclose()
        await redis.aclose()
        await pool.close()


async def _listening(hub: Hub, settings: Settings) -> bool:
    return hub.listeners(f"{settings.redis_prefix}auth:revoked") == 1


async def test_a_revoked_api_key_is_refused_by_every_process_at_once(
    http: httpx.AsyncClient, settings: Settings, db: psycopg.AsyncConnection
) -> None:
    """An integration key known to two processes (cached for an hour) and to the server: once
    an admin revokes it through the API, all three refuse it, long before any cache expires."""
    admin = await make_tenant(db, drivers=0, role="admin")
    created = await http.post(
        "/v1/api-keys", json={"name": "shop", "role": "integration"}, headers=auth(admin.api_key)
    )
    assert created.status_code == 201, created.text
    key = created.json()["token"]
    assert (await http.get("/v1/orders", headers=auth(key))).status_code == 200
    async with process(settings) as first, process(settings) as second:
        assert await first.api_key(key) is not None
        assert await second.api_key(key) is not None
        revoked = await http.post(
            f"/v1/api-keys/{created.json()['id']}/revoke", headers=auth(admin.api_key)
        )
        assert revoked.status_code == 200
        assert revoked.json()["revoked_at"] is not None

        async def everywhere() -> bool:
            refused = (await http.get("/v1/orders", headers=auth(key))).status_code == 401
            return (
                refused and await first.api_key(key) is None and await second.api_key(key) is None
            )

        await eventually(everywhere, "the key refused by every process", deadline_s=10)
    again = await http.post(
        f"/v1/api-keys/{created.json()['id']}/revoke", headers=auth(admin.api_key)
    )
    assert again.json() == revoked.json()


async def test_a_revoked_device_and_a_deactivated_driver_are_refused_at_once(
    http: httpx.AsyncClient, settings: Settings, tenant: Tenant
) -> None:
    """A device revoked by a dispatcher, and the devices of a driver made inactive, are
    refused by another process at once; the driver made active again is accepted again."""
    headers = auth(tenant.api_key)
    first, second = tenant.drivers
    async with process(settings) as other:
        for driver in (first, second):
            sent = await http.post("/v1/pings", json=ping(), headers=auth(driver.token))
            assert sent.status_code == 200, sent.text
            assert await other.device(driver.token) is not None
        listed = await http.get(f"/v1/drivers/{first.id}/devices", headers=headers)
        [device] = listed.json()["devices"]
        assert "token" not in device
        assert device["revoked_at"] is None
        revoked = await http.post(f"/v1/devices/{device['id']}/revoke", headers=headers)
        assert revoked.status_code == 200
        deactivated = await http.patch(
            f"/v1/drivers/{second.id}", json={"active": False}, headers=headers
        )
        assert deactivated.status_code == 200

        async def refused() -> bool:
            return (
                await other.device(first.token) is None and await other.device(second.token) is None
            )

        await eventually(refused, "both devices refused by the other process", deadline_s=10)
        pinged = await http.post("/v1/pings", json=ping(), headers=auth(second.token))
        assert pinged.status_code == 401
        await http.patch(f"/v1/drivers/{second.id}", json={"active": True}, headers=headers)

        async def accepted() -> bool:
            return await other.device(second.token) is not None

        await eventually(accepted, "the driver's device accepted again", deadline_s=10)


async def test_devices_authenticate_from_redis_while_postgresql_does_not_answer(
    settings: Settings, db: psycopg.AsyncConnection, tenant: Tenant
) -> None:
    """A process whose PostgreSQL does not answer still knows the devices another process
    resolved lately (their copies in Redis), refuses a revoked one (its tombstone), and answers
    503 for a token it cannot check."""
    known, revoked = tenant.drivers
    async with process(settings) as live:
        assert await live.device(known.token) is not None
        assert await live.device(revoked.token) is not None
    found = await tenants.list_devices(db, tenant.org_id, revoked.id)
    token_hash = await tenants.revoke_device(db, tenant.org_id, DeviceId(found[0].id))
    assert token_hash == hash_token(revoked.token)
    redis = Redis.from_url(settings.redis_url or "")
    try:
        await announce(redis, settings.redis_prefix, "device", [token_hash], HOUR_S)
    finally:
        await redis.aclose()
    unreachable = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere?connect_timeout=1"
    async with process(settings, database_url=unreachable) as cut_off:
        principal = await cut_off.device(known.token)
        assert principal is not None
        assert (principal.org_id, principal.driver_id) == (tenant.org_id, known.id)
        assert await cut_off.device(revoked.token) is None
        with pytest.raises(Unavailable):
            await cut_off.device("lmd_never-seen-anywhere")


async def test_only_admins_manage_api_keys_and_secrets_are_shown_once(
    http: httpx.AsyncClient, db: psycopg.AsyncConnection, tenant: Tenant
) -> None:
    """A dispatcher's key may not list or create keys; an admin's may, sees no secret in the
    list and the new key's once (a replay answers ``token: null``); a bad role is named; a key
    or a device of another organisation is 404."""
    admin = await make_tenant(db, drivers=0, role="admin")
    assert (await http.get("/v1/api-keys", headers=auth(tenant.api_key))).status_code == 403
    body = {"name": "ops", "role": "dispatcher"}
    refused = await http.post("/v1/api-keys", json=body, headers=auth(tenant.api_key))
    assert refused.status_code == 403
    headers = auth(admin.api_key) | {"idempotency-key": "new-ops-key"}
    first = await http.post("/v1/api-keys", json=body, headers=headers)
    replay = await http.post("/v1/api-keys", json=body, headers=headers)
    assert (first.status_code, replay.status_code) == (201, 201)
    assert first.json()["token"].startswith("lmk_")
    assert replay.json() == first.json() | {"token": None}
    listed = (await http.get("/v1/api-keys", headers=auth(admin.api_key))).json()["api_keys"]
    assert [k["name"] for k in listed] == ["test", "ops"]
    assert all("token" not in k for k in listed)
    bad = await http.post(
        "/v1/api-keys", json={"name": "x", "role": "root"}, headers=auth(admin.api_key)
    )
    assert (bad.status_code, bad.json()["field"]) == (400, "role")
    other_key = listed[0]["id"]
    stranger = await make_tenant(db, drivers=0, role="admin")
    assert (
        await http.post(f"/v1/api-keys/{other_key}/revoke", headers=auth(stranger.api_key))
    ).status_code == 404
    assert (
        await http.get(
            f"/v1/drivers/{tenant.drivers[0].id}/devices", headers=auth(stranger.api_key)
        )
    ).status_code == 404
    device = (await tenants.list_devices(db, tenant.org_id, tenant.drivers[0].id))[0]
    assert (
        await http.post(f"/v1/devices/{device.id}/revoke", headers=auth(stranger.api_key))
    ).status_code == 404


async def test_open_sockets_close_when_their_credential_is_revoked(
    http: httpx.AsyncClient, server: LiveServer, db: psycopg.AsyncConnection
) -> None:
    """A driver's socket and a dispatcher screen's socket, open before the revocation, are
    closed with 4401 by it rather than outliving it."""
    admin = await make_tenant(db, drivers=1, role="admin")
    created = await http.post(
        "/v1/api-keys", json={"name": "screen", "role": "dispatcher"}, headers=auth(admin.api_key)
    )
    screen_key = created.json()["token"]
    driver = admin.drivers[0]
    [device] = await tenants.list_devices(db, admin.org_id, driver.id)
    async with (
        websockets.connect(f"{server.ws_url}/v1/driver/ws?token={driver.token}") as phone,
        websockets.connect(f"{server.ws_url}/v1/live/ws?token={screen_key}") as screen,
    ):
        sent = {"type": "ping", "id": 1, **ping()["pings"][0]}
        await phone.send(json.dumps(sent))
        assert json.loads(await phone.recv())["type"] == "ack"  # the socket is up
        assert json.loads(await screen.recv())["type"] == "snapshot"
        headers = auth(admin.api_key)
        await http.post(f"/v1/devices/{device.id}/revoke", headers=headers)
        await http.post(f"/v1/api-keys/{created.json()['id']}/revoke", headers=headers)
        for socket in (phone, screen):
            assert await _close_code(socket) == 4401


async def _close_code(socket: websockets.ClientConnection) -> int | None:
    """Read until the server closes the socket; its close code."""
    try:
        while True:
            await asyncio.wait_for(socket.recv(), timeout=10)
    except ConnectionClosed as closed:
        return None if closed.rcvd is None else closed.rcvd.code


async def test_a_socket_ticket_opens_one_socket_once_and_nothing_else(
    http: httpx.AsyncClient, server: LiveServer, tenant: Tenant
) -> None:
    """A ticket asked for with the key in a header opens the dispatcher feed without the key in
    its URL; shown again it is refused (4401), as is a key's ticket on the driver socket and a
    ticket on an HTTP request. A device's ticket opens the driver socket."""
    made = await http.post("/v1/socket-tickets", headers=auth(tenant.api_key))
    assert made.status_code == 201
    ticket = made.json()["ticket"]
    assert made.json()["expires_in_s"] > 0
    url = f"{server.ws_url}/v1/live/ws?ticket={ticket}"
    async with websockets.connect(url) as screen:
        assert json.loads(await screen.recv())["type"] == "snapshot"
    async with websockets.connect(url) as again:
        assert await _close_code(again) == 4401
    other = (await http.post("/v1/socket-tickets", headers=auth(tenant.api_key))).json()["ticket"]
    async with websockets.connect(f"{server.ws_url}/v1/driver/ws?ticket={other}") as wrong:
        assert await _close_code(wrong) == 4401
    third = (await http.post("/v1/socket-tickets", headers=auth(tenant.api_key))).json()["ticket"]
    assert (await http.get("/v1/orders", params={"ticket": third})).status_code == 401
    driver = tenant.drivers[0]
    phone_ticket = await http.post("/v1/driver/socket-tickets", headers=auth(driver.token))
    assert phone_ticket.status_code == 201
    phone_url = f"{server.ws_url}/v1/driver/ws?ticket={phone_ticket.json()['ticket']}"
    async with websockets.connect(phone_url) as phone:
        await phone.send(json.dumps({"type": "ping", "id": 1, **ping()["pings"][0]}))
        assert json.loads(await phone.recv())["type"] == "ack"
    refused = await http.post("/v1/socket-tickets", headers=auth(driver.token))
    assert refused.status_code == 401


async def test_keys_expire_rotate_with_a_grace_and_say_when_they_were_last_used(
    http: httpx.AsyncClient, db: psycopg.AsyncConnection
) -> None:
    """A key issued until a past time is refused at creation (400 naming ``expires_at``); a
    used key lists ``last_used_at``; rotated with a grace, the old key works beside its
    successor until the grace ends, then is refused; rotated without, it is revoked at once."""
    admin = await make_tenant(db, drivers=0, role="admin")
    headers = auth(admin.api_key)
    past = await http.post(
        "/v1/api-keys",
        json={"name": "late", "role": "integration", "expires_at": "2020-01-01T00:00:00Z"},
        headers=headers,
    )
    assert (past.status_code, past.json()["field"]) == (400, "expires_at")
    made = (
        await http.post(
            "/v1/api-keys", json={"name": "shop", "role": "integration"}, headers=headers
        )
    ).json()
    assert (await http.get("/v1/orders", headers=auth(made["token"]))).status_code == 200
    listed = (await http.get("/v1/api-keys", headers=headers)).json()["api_keys"]
    shop = next(k for k in listed if k["id"] == made["id"])
    assert shop["last_used_at"] is not None
    assert shop["expires_at"] is None

    rotated = await http.post(
        f"/v1/api-keys/{made['id']}/rotate", json={"grace_s": 3600}, headers=headers
    )
    assert rotated.status_code == 201
    successor = rotated.json()
    assert (successor["name"], successor["role"]) == ("shop", "integration")
    for token in (made["token"], successor["token"]):
        assert (await http.get("/v1/orders", headers=auth(token))).status_code == 200
    listed = (await http.get("/v1/api-keys", headers=headers)).json()["api_keys"]
    assert next(k for k in listed if k["id"] == made["id"])["expires_at"] is not None
    await db.execute(  # the grace has passed
        "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = %s",
        (made["id"],),
    )

    async def old_refused() -> bool:
        return (await http.get("/v1/orders", headers=auth(made["token"]))).status_code == 401

    await eventually(old_refused, "the old key refused once its grace ended", deadline_s=40)
    again = await http.post(f"/v1/api-keys/{successor['id']}/rotate", headers=headers)
    assert again.status_code == 201
    assert (await http.get("/v1/orders", headers=auth(successor["token"]))).status_code == 401
    assert (await http.get("/v1/orders", headers=auth(again.json()["token"]))).status_code == 200
