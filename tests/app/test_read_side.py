"""The live snapshot and track endpoints, scoped to the caller's organisation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import psycopg

from tests.conftest import Tenant, WorkerHandle, make_tenant
from tests.helpers import Trace, wait_for_positions


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_live_snapshot_keeps_the_newest_fix_by_device_time(
    http: httpx.AsyncClient, tenant: Tenant
) -> None:
    """A late-arriving older batch does not replace a driver's newer live position."""
    driver = tenant.drivers[0]
    trace = Trace(seed=11)
    newer = trace.pings(1, offset=100)
    older = trace.pings(1, offset=10)
    await http.post("/v1/pings", json={"pings": newer}, headers=auth(driver.token))
    await http.post("/v1/pings", json={"pings": older}, headers=auth(driver.token))
    response = await http.get("/v1/drivers/live", headers=auth(tenant.api_key))
    assert response.status_code == 200
    drivers = response.json()["drivers"]
    assert [d["driver_id"] for d in drivers] == [driver.id]
    assert drivers[0]["lat"] == newer[0]["lat"]
    assert datetime.fromisoformat(drivers[0]["time"]) == datetime.fromisoformat(newer[0]["time"])


async def test_another_organisation_sees_nothing(
    http: httpx.AsyncClient,
    tenant: Tenant,
    db: psycopg.AsyncConnection,
    persist_worker: WorkerHandle,
) -> None:
    """Another organisation's key gets an empty snapshot and 404 for this org's driver."""
    driver = tenant.drivers[0]
    await http.post(
        "/v1/pings", json={"pings": Trace(seed=12).pings(5)}, headers=auth(driver.token)
    )
    assert await wait_for_positions(db, driver.id, 5) == 5
    stranger = await make_tenant(db, drivers=0)
    live = await http.get("/v1/drivers/live", headers=auth(stranger.api_key))
    assert live.json()["drivers"] == []
    track = await http.get(f"/v1/drivers/{driver.id}/positions", headers=auth(stranger.api_key))
    assert track.status_code == 404
    own = await http.get(f"/v1/drivers/{driver.id}/positions", headers=auth(tenant.api_key))
    assert len(own.json()["positions"]) == 5


async def test_track_as_json_and_geojson_within_a_window(
    http: httpx.AsyncClient,
    tenant: Tenant,
    db: psycopg.AsyncConnection,
    persist_worker: WorkerHandle,
) -> None:
    """The track honours from/to and limit, and GeoJSON gives a LineString of lon/lat pairs."""
    driver = tenant.drivers[1]
    trace = Trace(seed=13)
    pings = trace.pings(20)
    await http.post("/v1/pings", json={"pings": pings}, headers=auth(driver.token))
    assert await wait_for_positions(db, driver.id, 20) == 20
    start = trace.start + timedelta(seconds=5)
    end = trace.start + timedelta(seconds=15)
    params = {"from": start.isoformat(), "to": end.isoformat()}
    window = await http.get(
        f"/v1/drivers/{driver.id}/positions", params=params, headers=auth(tenant.api_key)
    )
    body = window.json()
    assert [p["seq"] for p in body["positions"]] == list(range(5, 15))
    assert body["truncated"] is False
    limited = await http.get(
        f"/v1/drivers/{driver.id}/positions",
        params={**params, "limit": 3},
        headers=auth(tenant.api_key),
    )
    assert limited.json()["truncated"] is True
    geo = await http.get(
        f"/v1/drivers/{driver.id}/positions",
        params={**params, "format": "geojson"},
        headers=auth(tenant.api_key),
    )
    assert geo.headers["content-type"] == "application/geo+json"
    feature = geo.json()["features"][0]
    assert feature["geometry"]["type"] == "LineString"
    assert feature["geometry"]["coordinates"][0] == [pings[5]["lon"], pings[5]["lat"]]


async def test_bad_track_parameters_name_the_parameter(
    http: httpx.AsyncClient, tenant: Tenant
) -> None:
    """Unreadable times, limits and formats get 400 naming the parameter."""
    url = f"/v1/drivers/{tenant.drivers[0].id}/positions"
    headers = auth(tenant.api_key)
    for params, field in (
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-11-24T10:00:00"}, "to"),
        ({"limit": "0"}, "limit"),
        ({"format": "kml"}, "format"),
        (
            {
                "from": datetime(2026, 1, 2, tzinfo=UTC).isoformat(),
                "to": datetime(2026, 1, 1, tzinfo=UTC).isoformat(),
            },
            "from",
        ),
    ):
        response = await http.get(url, params=params, headers=headers)
        assert response.status_code == 400, params
        assert response.json()["field"] == field
    bad_id = await http.get("/v1/drivers/abc/positions", headers=headers)
    assert bad_id.status_code == 400


async def test_reading_needs_an_api_key_not_a_device_token(
    http: httpx.AsyncClient, tenant: Tenant
) -> None:
    """A device token cannot read the fleet's positions."""
    response = await http.get("/v1/drivers/live", headers=auth(tenant.drivers[0].token))
    assert response.status_code == 401
