"""The native batch API end to end: HTTP in, Redis stream, persist worker, ``positions`` out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import msgspec
import psycopg

from tests.conftest import LiveServer, Tenant, WorkerHandle
from tests.helpers import Trace, wait_for_positions


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_json_batch_is_stored_once_even_when_resent(
    http: httpx.AsyncClient,
    tenant: Tenant,
    persist_worker: WorkerHandle,
    db: psycopg.AsyncConnection,
) -> None:
    """A JSON batch is accepted whole, and sending it again stores nothing twice."""
    driver = tenant.drivers[0]
    body = {"pings": Trace(seed=1).pings(100)}
    first = await http.post("/v1/pings", json=body, headers=auth(driver.token))
    assert first.status_code == 200, first.text
    assert first.json() == {"accepted": 100, "rejected": []}
    assert await wait_for_positions(db, driver.id, 100) == 100
    again = await http.post("/v1/pings", json=body, headers=auth(driver.token))
    assert again.json()["accepted"] == 100
    more = await http.post(
        "/v1/pings", json={"pings": Trace(seed=1).pings(1, offset=500)}, headers=auth(driver.token)
    )
    assert more.status_code == 200
    assert await wait_for_positions(db, driver.id, 101) == 101
    row = await (
        await db.execute(
            "SELECT battery_pct, source FROM positions WHERE driver_id = %s LIMIT 1", (driver.id,)
        )
    ).fetchone()
    assert row == (80.0, "http")


async def test_msgpack_batch_is_answered_in_msgpack(
    http: httpx.AsyncClient,
    tenant: Tenant,
    persist_worker: WorkerHandle,
    db: psycopg.AsyncConnection,
) -> None:
    """A MessagePack body is decoded by its Content-Type and answered in MessagePack."""
    driver = tenant.drivers[1]
    body = msgspec.msgpack.encode({"pings": Trace(seed=2).pings(10)})
    response = await http.post(
        "/v1/pings",
        content=body,
        headers={**auth(driver.token), "content-type": "application/msgpack"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/msgpack"
    assert msgspec.msgpack.decode(response.content) == {"accepted": 10, "rejected": []}
    assert await wait_for_positions(db, driver.id, 10) == 10


async def test_bad_pings_are_reported_one_by_one_and_good_ones_kept(
    http: httpx.AsyncClient,
    tenant: Tenant,
    persist_worker: WorkerHandle,
    db: psycopg.AsyncConnection,
) -> None:
    """Each invalid ping is reported with its index and field while the valid ones are stored."""
    driver = tenant.drivers[0]
    pings = Trace(seed=3).pings(5)
    pings[1]["lat"] = 91.2
    pings[3]["time"] = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    response = await http.post("/v1/pings", json={"pings": pings}, headers=auth(driver.token))
    assert response.status_code == 200
    result = response.json()
    assert result["accepted"] == 3
    assert [(r["index"], r["field"]) for r in result["rejected"]] == [(1, "lat"), (3, "time")]
    assert "91.2" in result["rejected"][0]["reason"]
    assert await wait_for_positions(db, driver.id, 3) == 3


async def test_a_batch_with_nothing_valid_is_unprocessable(
    http: httpx.AsyncClient, tenant: Tenant
) -> None:
    """When every ping is invalid the answer is 422 with each reason."""
    pings = Trace(seed=4).pings(2)
    for ping in pings:
        ping["speed_mps"] = -3
    response = await http.post(
        "/v1/pings", json={"pings": pings}, headers=auth(tenant.drivers[0].token)
    )
    assert response.status_code == 422
    assert [r["field"] for r in response.json()["rejected"]] == ["speed_mps", "speed_mps"]


async def test_malformed_bodies_get_a_4xx_that_names_the_problem(
    http: httpx.AsyncClient, tenant: Tenant, server: LiveServer
) -> None:
    """Broken JSON is 400, an unknown media type 415, an oversized batch 413."""
    headers = auth(tenant.drivers[0].token)
    broken = await http.post(
        "/v1/pings", content=b'{"pings": [', headers={**headers, "content-type": "application/json"}
    )
    assert broken.status_code == 400
    assert broken.json()["error"] == "malformed_body"
    xml = await http.post(
        "/v1/pings", content=b"<pings/>", headers={**headers, "content-type": "application/xml"}
    )
    assert xml.status_code == 415
    assert "application/xml" in xml.json()["reason"]
    too_many = await http.post(
        "/v1/pings", json={"pings": Trace(seed=5).pings(1001)}, headers=headers
    )
    assert too_many.status_code == 413
    huge = await http.post(
        "/v1/pings",
        content=b" " * (server.settings.max_body_bytes + 1),
        headers={**headers, "content-type": "application/json"},
    )
    assert huge.status_code == 413


async def test_pings_need_a_known_device_token(http: httpx.AsyncClient) -> None:
    """Without a token, or with an unknown one, the answer is 401 with a challenge."""
    body = {"pings": Trace(seed=6).pings(1)}
    missing = await http.post("/v1/pings", json=body)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    unknown = await http.post("/v1/pings", json=body, headers=auth("lmd_not-a-token"))
    assert unknown.status_code == 401
    assert unknown.json()["reason"] == "unknown or revoked device token"


async def test_a_driver_cannot_write_as_another(
    http: httpx.AsyncClient,
    tenant: Tenant,
    persist_worker: WorkerHandle,
    db: psycopg.AsyncConnection,
) -> None:
    """Pings are filed under the token's driver, whatever driver the request names."""
    writer, other = tenant.drivers
    body = {"driver_id": other.id, "pings": Trace(seed=7).pings(3)}
    response = await http.post(
        f"/v1/pings?driver_id={other.id}", json=body, headers=auth(writer.token)
    )
    assert response.status_code == 200
    assert await wait_for_positions(db, writer.id, 3) == 3
    assert await wait_for_positions(db, other.id, 1, deadline_s=0.5) == 0


async def test_an_api_key_cannot_send_pings(http: httpx.AsyncClient, tenant: Tenant) -> None:
    """Device tokens and API keys are separate: a dispatcher key is no device token."""
    response = await http.post(
        "/v1/pings", json={"pings": Trace(seed=8).pings(1)}, headers=auth(tenant.api_key)
    )
    assert response.status_code == 401
