"""Idempotency-Key on creates: a retry replays the first answer, a different body is refused,
concurrent retries create once, failures and expired keys leave the key free."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import psycopg

from store.idempotency import KEY_TTL
from tests.conftest import Tenant, make_tenant

DEPOT = {"name": "Hub", "lat": 52.5, "lon": 13.4}


def headers(tenant: Tenant, key: str | None = None) -> dict[str, str]:
    sent = {"authorization": f"Bearer {tenant.api_key}"}
    return sent if key is None else {**sent, "idempotency-key": key}


async def depots_named(db: psycopg.AsyncConnection, tenant: Tenant, name: str) -> int:
    row = await (
        await db.execute(
            "SELECT count(*) FROM depots WHERE org_id = %s AND name = %s", (tenant.org_id, name)
        )
    ).fetchone()
    assert row is not None
    count: int = row[0]
    return count


async def test_a_retry_replays_the_first_answer(
    http: httpx.AsyncClient, tenant: Tenant, db: psycopg.AsyncConnection
) -> None:
    """The same key and body answer the same status and body again and create nothing more."""
    first = await http.post("/v1/depots", json=DEPOT, headers=headers(tenant, "depot-1"))
    again = await http.post("/v1/depots", json=DEPOT, headers=headers(tenant, "depot-1"))
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await depots_named(db, tenant, "Hub") == 1
    unkeyed = await http.post("/v1/depots", json=DEPOT, headers=headers(tenant))
    assert unkeyed.status_code == 201
    assert await depots_named(db, tenant, "Hub") == 2


async def test_the_same_key_with_another_body_is_refused(
    http: httpx.AsyncClient, tenant: Tenant, db: psycopg.AsyncConnection
) -> None:
    """A key reused for a different body is 422 naming the header, and creates nothing."""
    await http.post("/v1/depots", json=DEPOT, headers=headers(tenant, "k"))
    other = await http.post(
        "/v1/depots", json={**DEPOT, "name": "Other"}, headers=headers(tenant, "k")
    )
    assert other.status_code == 422
    assert other.json()["error"] == "idempotency_key_reused"
    assert other.json()["field"] == "Idempotency-Key"
    assert await depots_named(db, tenant, "Other") == 0
    elsewhere = await http.post(
        "/v1/carriers", json={"name": "C", "kind": "own"}, headers=headers(tenant, "k")
    )
    assert elsewhere.status_code == 422


async def test_two_concurrent_requests_create_one(
    http: httpx.AsyncClient, tenant: Tenant, db: psycopg.AsyncConnection
) -> None:
    """Several identical keyed requests at once create one depot and all get its answer."""
    body = {**DEPOT, "name": "Racing"}
    answers = await asyncio.gather(
        *(http.post("/v1/depots", json=body, headers=headers(tenant, "race")) for _ in range(6))
    )
    assert {a.status_code for a in answers} == {201}
    assert len({a.content for a in answers}) == 1
    assert sum(a.headers.get("idempotent-replayed") == "true" for a in answers) == 5
    assert await depots_named(db, tenant, "Racing") == 1


async def test_a_refused_request_leaves_the_key_free(
    http: httpx.AsyncClient, tenant: Tenant, db: psycopg.AsyncConnection
) -> None:
    """A keyed request that fails (an unknown carrier) records nothing; the fixed retry creates."""
    bad = await http.post(
        "/v1/vehicles", json={"name": "Van", "carrier_id": 999_999}, headers=headers(tenant, "v")
    )
    assert (bad.status_code, bad.json()["field"]) == (400, "carrier_id")
    good = await http.post("/v1/vehicles", json={"name": "Van"}, headers=headers(tenant, "v"))
    assert good.status_code == 201
    assert "idempotent-replayed" not in good.headers


async def test_an_expired_key_runs_again(
    http: httpx.AsyncClient, tenant: Tenant, db: psycopg.AsyncConnection
) -> None:
    """After 24 hours a key is forgotten: the same request creates a second depot."""
    body = {**DEPOT, "name": "Daily"}
    await http.post("/v1/depots", json=body, headers=headers(tenant, "daily"))
    await db.execute(
        "UPDATE idempotency_keys SET created_at = created_at - %s WHERE org_id = %s",
        (KEY_TTL + timedelta(seconds=1), tenant.org_id),
    )
    later = await http.post("/v1/depots", json=body, headers=headers(tenant, "daily"))
    assert later.status_code == 201
    assert "idempotent-replayed" not in later.headers
    assert await depots_named(db, tenant, "Daily") == 2


async def test_keys_belong_to_one_organisation(
    http: httpx.AsyncClient, tenant: Tenant, db: psycopg.AsyncConnection
) -> None:
    """Two organisations may use the same key; each gets its own depot."""
    other = await make_tenant(db, drivers=0)
    mine = await http.post("/v1/depots", json=DEPOT, headers=headers(tenant, "shared"))
    theirs = await http.post("/v1/depots", json=DEPOT, headers=headers(other, "shared"))
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert mine.json()["id"] != theirs.json()["id"]


async def test_device_tokens_are_not_replayed(http: httpx.AsyncClient, tenant: Tenant) -> None:
    """A replayed device registration answers the same device with token null (never stored)."""
    path = f"/v1/drivers/{tenant.drivers[0].id}/devices"
    first = await http.post(path, json={"name": "phone 2"}, headers=headers(tenant, "dev"))
    again = await http.post(path, json={"name": "phone 2"}, headers=headers(tenant, "dev"))
    shown: dict[str, Any] = first.json()
    assert shown["token"].startswith("lmd_")
    assert again.json() == {**shown, "token": None}


async def test_imports_and_orders_replay_too(http: httpx.AsyncClient, tenant: Tenant) -> None:
    """A keyed import or order create replays its first answer instead of reporting duplicates."""
    csv = b"ref,address,lat,lon,day\nK-1,a,1,2,2026-12-01\n"
    sent = {**headers(tenant, "imp"), "content-type": "text/csv"}
    first = await http.post("/v1/orders/import", content=csv, headers=sent)
    again = await http.post("/v1/orders/import", content=csv, headers=sent)
    assert [r["external_ref"] for r in first.json()["created"]] == ["K-1"]
    assert again.content == first.content
    order = {"external_ref": "K-2", "address": "a", "lat": 1, "lon": 2, "day": "2026-12-01"}
    one = await http.post("/v1/orders", json=order, headers=headers(tenant, "ord"))
    two = await http.post("/v1/orders", json=order, headers=headers(tenant, "ord"))
    assert (one.status_code, two.status_code) == (201, 201)
    assert two.content == one.content


async def test_a_malformed_key_is_named(http: httpx.AsyncClient, tenant: Tenant) -> None:
    """A key with spaces or over 255 characters is a 400 naming the header."""
    for key in ("has space", "k" * 256):
        response = await http.post("/v1/depots", json=DEPOT, headers=headers(tenant, key))
        assert (response.status_code, response.json()["field"]) == (400, "Idempotency-Key")
