"""OsmAnd (Traccar Client), OwnTracks and the driver WebSocket, end to end into ``positions``."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import httpx
import msgspec
import psycopg
import pytest
import websockets
from redis.asyncio import Redis

from realtime.streams import StreamNames, shard_of
from schemas.codecs import PING_BATCH_DECODER
from tests.conftest import LiveServer, Tenant, WorkerHandle
from tests.helpers import Trace, stream_entries, wait_for_positions

KNOT_MPS = 1852 / 3600


async def stored(db: psycopg.AsyncConnection, driver_id: int) -> list[tuple[object, ...]]:
    cursor = await db.execute(
        "SELECT lat, lon, speed_mps, source FROM positions WHERE driver_id = %s ORDER BY time",
        (driver_id,),
    )
    return await cursor.fetchall()


async def test_osmand_get_on_the_main_port_and_the_dedicated_listener(
    server: LiveServer, tenant: Tenant, persist_worker: WorkerHandle, db: psycopg.AsyncConnection
) -> None:
    """Traccar Client's GET reaches /osmand and the listener root; speed arrives in knots."""
    driver = tenant.drivers[0]
    now = int(datetime.now(UTC).timestamp())
    async with httpx.AsyncClient(timeout=10) as client:
        first = await client.get(
            f"{server.url}/osmand",
            params={
                "id": driver.token,
                "lat": "52.5",
                "lon": "13.4",
                "timestamp": str(now - 20),
                "speed": "10",
                "bearing": "90",
                "batt": "77",
            },
        )
        second = await client.post(
            f"{server.osmand_url}/",
            params={
                "id": driver.token,
                "lat": "52.6",
                "lon": "13.5",
                "timestamp": str((now - 10) * 1000),
                "speed": "0",
            },
        )
    assert (first.status_code, second.status_code) == (200, 200)
    assert await wait_for_positions(db, driver.id, 2) == 2
    rows = await stored(db, driver.id)
    assert rows[0][:2] == (52.5, 13.4)
    assert rows[0][2] == pytest.approx(10 * KNOT_MPS, rel=1e-6)
    assert rows[1][3] == "osmand"


async def test_osmand_form_post_and_json_body(
    server: LiveServer, tenant: Tenant, persist_worker: WorkerHandle, db: psycopg.AsyncConnection
) -> None:
    """A form-encoded POST and the newer JSON body (ISO time, m/s speed) are both accepted."""
    driver = tenant.drivers[1]
    when = datetime.now(UTC) - timedelta(seconds=30)
    body = {
        "device_id": driver.token,
        "location": {
            "timestamp": when.isoformat().replace("+00:00", "Z"),
            "coords": {
                "latitude": 48.1,
                "longitude": 11.5,
                "speed": 4.0,
                "heading": 10,
                "accuracy": 6,
                "altitude": 500,
            },
            "battery": {"level": 0.5, "is_charging": False},
            "is_moving": True,
        },
    }
    async with httpx.AsyncClient(timeout=10) as client:
        form = await client.post(
            f"{server.osmand_url}/",
            content=f"id={driver.token}&lat=48.0&lon=11.4&timestamp="
            f"{(when - timedelta(seconds=5)).strftime('%Y-%m-%d %H:%M:%S')}".encode(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        posted = await client.post(f"{server.osmand_url}/", json=body)
    assert form.status_code == 200, form.text
    assert posted.status_code == 200, posted.text
    assert await wait_for_positions(db, driver.id, 2) == 2
    rows = await stored(db, driver.id)
    assert rows[1][:3] == (48.1, 11.5, 4.0)


async def test_osmand_rejects_unknown_devices_and_bad_fixes(
    server: LiveServer, tenant: Tenant
) -> None:
    """An unknown id is 401; an out-of-range latitude is 400 naming lat."""
    now = str(int(datetime.now(UTC).timestamp()))
    async with httpx.AsyncClient(timeout=10) as client:
        unknown = await client.get(
            f"{server.osmand_url}/",
            params={"id": "nobody", "lat": "1", "lon": "1", "timestamp": now},
        )
        bad = await client.get(
            f"{server.osmand_url}/",
            params={"id": tenant.drivers[0].token, "lat": "95", "lon": "1", "timestamp": now},
        )
    assert unknown.status_code == 401
    assert bad.status_code == 400
    assert bad.json()["field"] == "lat"


def basic(user: str, password: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_owntracks_location_is_stored_and_answered_with_an_empty_list(
    http: httpx.AsyncClient,
    tenant: Tenant,
    persist_worker: WorkerHandle,
    db: psycopg.AsyncConnection,
) -> None:
    """OwnTracks HTTP mode posts a location with Basic auth and gets ``[]``; km/h become m/s."""
    driver = tenant.drivers[0]
    tst = int(datetime.now(UTC).timestamp()) - 5
    location = {
        "_type": "location",
        "lat": 50.1,
        "lon": 8.6,
        "tst": tst,
        "acc": 12,
        "vel": 36,
        "batt": 64,
        "tid": "dr",
    }
    response = await http.post("/owntracks", json=location, headers=basic("anna", driver.token))
    assert response.status_code == 200
    assert response.json() == []
    other = await http.post(
        "/owntracks", json={"_type": "lwt", "tst": tst}, headers=basic("anna", driver.token)
    )
    assert other.json() == []
    assert await wait_for_positions(db, driver.id, 1) == 1
    rows = await stored(db, driver.id)
    assert rows == [(50.1, 8.6, pytest.approx(10.0), "owntracks")]


async def test_owntracks_needs_basic_auth(http: httpx.AsyncClient, tenant: Tenant) -> None:
    """Without Basic credentials, or with a wrong token, OwnTracks gets 401 and a challenge."""
    location = {"_type": "location", "lat": 50.1, "lon": 8.6, "tst": 1}
    missing = await http.post("/owntracks", json=location)
    wrong = await http.post("/owntracks", json=location, headers=basic("anna", "lmd_wrong"))
    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert missing.headers["www-authenticate"].startswith("Basic")


async def test_driver_socket_acknowledges_every_message(
    server: LiveServer, tenant: Tenant, persist_worker: WorkerHandle, db: psycopg.AsyncConnection
) -> None:
    """Single pings and batches, JSON and MessagePack, each get an ack naming their id."""
    driver = tenant.drivers[0]
    trace = Trace(seed=21)
    url = f"{server.ws_url}/v1/driver/ws?token={driver.token}"
    async with websockets.connect(url) as socket:
        await socket.send(json.dumps({"type": "ping", "id": 1, **trace.pings(1)[0]}))
        assert json.loads(await socket.recv()) == {
            "type": "ack",
            "id": 1,
            "accepted": 1,
            "rejected": [],
        }
        await socket.send(json.dumps({"type": "pings", "id": 2, "pings": trace.pings(3, offset=1)}))
        assert json.loads(await socket.recv())["accepted"] == 3
        bad = trace.pings(2, offset=4)
        bad[0]["lon"] = 200
        await socket.send(msgspec.msgpack.encode({"type": "pings", "id": 3, "pings": bad}))
        reply = await socket.recv()
        assert isinstance(reply, bytes)  # a binary frame, as the request was
        ack = msgspec.msgpack.decode(reply)
        assert ack["id"] == 3
        assert ack["accepted"] == 1
        assert [(r["index"], r["field"]) for r in ack["rejected"]] == [(0, "lon")]
        await socket.send("not json")
        error = json.loads(await socket.recv())
        assert error["type"] == "error"
    assert await wait_for_positions(db, driver.id, 5) == 5


async def test_driver_socket_refuses_unknown_tokens(server: LiveServer) -> None:
    """A socket without a valid device token is closed with 4401 and a reason."""
    async with websockets.connect(f"{server.ws_url}/v1/driver/ws?token=lmd_nope") as socket:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await socket.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


async def test_osmand_fix_without_timestamp_is_stored_server_timed(
    server: LiveServer,
    tenant: Tenant,
    redis: Redis,
    persist_worker: WorkerHandle,
    db: psycopg.AsyncConnection,
) -> None:
    """An OsmAnd GET without timestamp is 200, server-timed on the stream, stored at receipt."""
    driver = tenant.drivers[1]
    before = datetime.now(UTC)
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.get(
            f"{server.osmand_url}/",
            params={"id": driver.token, "lat": "52.5", "lon": "13.4", "speed": "-1", "batt": "-1"},
        )
    assert answer.status_code == 200, answer.text
    names = StreamNames(prefix=server.settings.redis_prefix, shards=server.settings.ping_shards)
    entries = stream_entries(await redis.xrange(names.pings(shard_of(driver.id, names.shards))))
    batches = [PING_BATCH_DECODER.decode(fields[b"b"]) for _, fields in entries]
    [batch] = [b for b in batches if b.driver_id == driver.id]
    assert (batch.source, batch.time_source) == ("osmand", "server")
    assert await wait_for_positions(db, driver.id, 1) == 1
    cursor = await db.execute(
        "SELECT time, received_at, speed_mps, battery_pct FROM positions WHERE driver_id = %s",
        (driver.id,),
    )
    [(time, received_at, speed_mps, battery_pct)] = await cursor.fetchall()
    assert before <= time == received_at <= datetime.now(UTC)
    assert (speed_mps, battery_pct) == (None, None)


async def test_owntracks_empty_body_and_unknown_battery(
    http: httpx.AsyncClient,
    tenant: Tenant,
    persist_worker: WorkerHandle,
    db: psycopg.AsyncConnection,
) -> None:
    """OwnTracks' empty body and a status message get 200 []; a location with batt -1 is stored."""
    driver = tenant.drivers[1]
    headers = basic("anna", driver.token)
    empty = await http.post("/owntracks", content=b"", headers=headers)
    status = await http.post(
        "/owntracks", json={"_type": "status", "android": {"hib": 1}}, headers=headers
    )
    tst = int(datetime.now(UTC).timestamp()) - 5
    location = {"_type": "location", "lat": 50.1, "lon": 8.6, "tst": tst, "batt": -1}
    stored_fix = await http.post("/owntracks", json=location, headers=headers)
    for response in (empty, status, stored_fix):
        assert (response.status_code, response.json()) == (200, [])
    assert await wait_for_positions(db, driver.id, 1) == 1
    cursor = await db.execute(
        "SELECT lat, battery_pct, time = received_at FROM positions WHERE driver_id = %s",
        (driver.id,),
    )
    assert await cursor.fetchall() == [(50.1, None, False)]
