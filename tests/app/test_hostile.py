"""Hostile input never breaks a process or a tenant: each of these once answered 500 (or
dropped the socket) and is now a 4xx naming the field and the reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest
import websockets

from schemas.limits import NO_NUL, TOO_DEEP
from tests.conftest import LiveServer, Tenant, make_tenant
from tests.days import Day, key, plan_and_dispatch

DAY = "2026-12-01"
DEEP = b"[" * 1000 + b"]" * 1000
"""JSON nested 1,000 levels deep: a 2 KB body."""
FLEET = ("depots", "carriers", "vehicles", "drivers", "shifts")
JSON_BODIES = (
    ("PUT", "/v1/settings/dimensions"),
    *(("POST", f"/v1/{kind}") for kind in FLEET),
    *(("PATCH", f"/v1/{kind}/1") for kind in FLEET),
    ("POST", "/v1/drivers/1/devices"),
    ("POST", "/v1/orders"),
    ("POST", "/v1/orders/import"),
    ("PATCH", "/v1/orders/1"),
    ("POST", "/v1/orders/1/cancel"),
    ("POST", "/v1/plans"),
    ("POST", "/v1/plans/1/dispatch"),
    ("POST", "/v1/routes/insert"),
    ("POST", "/v1/stops/1/move"),
)
"""Every route of an API key that reads a JSON body."""


@pytest.fixture
async def admin(db: psycopg.AsyncConnection) -> Tenant:
    """An organisation whose key may call every API-key route."""
    return await make_tenant(db, role="admin")


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def refusal(response: httpx.Response) -> tuple[int, str | None, str]:
    body: dict[str, Any] = response.json()
    return response.status_code, body["field"], body["reason"]


def order(**changes: Any) -> dict[str, Any]:
    body = {"external_ref": "SO-1", "address": "Torstrasse 1", "lat": 52.5, "lon": 13.4, "day": DAY}
    return body | changes


async def test_deep_nesting_is_a_malformed_body_on_every_json_route(
    http: httpx.AsyncClient, admin: Tenant
) -> None:
    """JSON nested 1,000 levels (bare or in a field) and MessagePack nested 1,000 levels answer
    400 malformed_body at ``$`` on every route that reads a body."""
    device = auth(admin.drivers[0].token)
    json_type = {"content-type": "application/json"}
    for method, path in JSON_BODIES:
        inside = b'{"name":' + DEEP + b"}"  # deep inside the shape the route expects
        if path == "/v1/orders/import":
            inside = b"[" + inside + b"]"
        for body in (DEEP, inside):
            response = await http.request(
                method, path, content=body, headers=auth(admin.api_key) | json_type
            )
            assert refusal(response) == (400, "$", TOO_DEEP), (method, path, response.text)
            assert response.json()["error"] == "malformed_body"
    for path in ("/v1/pings", "/v1/driver/stops/1/fail"):
        response = await http.post(path, content=DEEP, headers=device | json_type)
        assert refusal(response) == (400, "$", TOO_DEEP), (path, response.text)
    packed = b"\x81\xa5pings" + b"\x91" * 1000 + b"\x90"
    response = await http.post(
        "/v1/pings", content=packed, headers=device | {"content-type": "application/msgpack"}
    )
    assert refusal(response) == (400, "$", TOO_DEEP)
    owntracks = await http.post(
        "/owntracks", content=b'{"_type":' + DEEP + b"}", auth=("anna", admin.drivers[0].token)
    )
    osmand = await http.post("/osmand", content=b'{"device_id":' + DEEP + b"}", headers=json_type)
    assert refusal(owntracks) == refusal(osmand) == (400, "$", TOO_DEEP)


async def test_a_nul_character_in_any_text_is_refused_naming_its_field(
    http: httpx.AsyncClient, tenant: Tenant
) -> None:
    """NUL (which PostgreSQL cannot store in text) in a body's text, an imported row or a query
    parameter is a 400 or a rejected row naming the field, never a database error."""
    headers = auth(tenant.api_key)
    carrier = await http.post(
        "/v1/carriers", json={"name": "D\x00HL", "kind": "own"}, headers=headers
    )
    notes = await http.post("/v1/orders", json=order(notes="ring\x00"), headers=headers)
    barcode = await http.post("/v1/orders", json=order(parcels=[{"barcode": "A"}]), headers=headers)
    patched = await http.patch(
        f"/v1/orders/{barcode.json()['id']}", json={"address": "\x00"}, headers=headers
    )
    assert refusal(carrier) == (400, "name", NO_NUL)
    assert refusal(notes) == (400, "notes", NO_NUL)
    assert refusal(patched) == (400, "address", NO_NUL)
    imported = await http.post(
        "/v1/orders/import", json=[order(external_ref="J\x00")], headers=headers
    )
    csv = await http.post(
        "/v1/orders/import",
        content=b"ref,address,lat,lon,day\nC-1,Tor\x00strasse 1,52.5,13.4,2026-12-01\n",
        headers=headers | {"content-type": "text/csv"},
    )
    assert imported.json()["rejected"] == [{"line": 0, "field": "external_ref", "reason": NO_NUL}]
    assert csv.json()["rejected"] == [{"line": 2, "field": "address", "reason": NO_NUL}]
    listed = await http.get("/v1/orders", params={"status": "\x00"}, headers=headers)
    assert (listed.status_code, listed.json()["field"]) == (400, "status")


async def test_ids_beyond_a_bigint_are_refused_naming_the_field(
    http: httpx.AsyncClient, tenant: Tenant
) -> None:
    """An id of 2**63 or more, 0 or below answers 400 naming the field, not a database error."""
    headers = auth(tenant.api_key)
    cases = [
        ({"carrier_id": 2**63}, "carrier_id", "expected an integer <= 9223372036854775807"),
        ({"carrier_id": 2**64 + 1}, "carrier_id", "expected an integer <= 9223372036854775807"),
        ({"default_vehicle_id": 0}, "default_vehicle_id", "expected an integer >= 1"),
        ({"carrier_id": -(2**63) - 1}, "carrier_id", "expected an integer >= 1"),
    ]
    for changes, field, reason in cases:
        response = await http.post("/v1/drivers", json={"name": "Anna"} | changes, headers=headers)
        status, named, said = refusal(response)
        assert (status, named) == (400, field), response.text
        assert said.startswith(reason), said
    plan = await http.post("/v1/plans", json={"day": DAY, "order_ids": [2**63]}, headers=headers)
    assert refusal(plan)[:2] == (400, "order_ids[0]")


async def test_huge_numbers_in_a_json_import_reject_their_rows(
    http: httpx.AsyncClient, tenant: Tenant
) -> None:
    """``1e309`` and a 30-digit number in an imported order reject that row naming the field."""
    body = (
        b'[{"external_ref":"A","address":"x","lat":1e309,"lon":13.4,"day":"2026-12-01"},'
        b'{"external_ref":"B","address":"x","lat":52.5,"lon":13.4,"day":"2026-12-01",'
        b'"service_s":123456789012345678901234567890}]'
    )
    response = await http.post(
        "/v1/orders/import",
        content=body,
        headers=auth(tenant.api_key) | {"content-type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["rejected"] == [
        {"line": 0, "field": "lat", "reason": "expected a number of magnitude at most 1.8e308"},
        {
            "line": 1,
            "field": "service_s",
            "reason": "expected an integer <= 86400, got 123456789012345678901234567890",
        },
    ]


async def test_days_in_year_1_or_9999_are_refused(http: httpx.AsyncClient, tenant: Tenant) -> None:
    """Orders, CSV rows, shifts and a track's ``to`` at the ends of the calendar answer 400 (or
    a rejected row) naming the day, instead of overflowing when shifted by a zone or slack."""
    headers = auth(tenant.api_key)
    expected = "expected a day from 2000-01-01 to 2999-12-31, got "
    for day in ("0001-01-01", "9999-12-31"):
        window = {"start": f"{day}T09:00:00Z", "end": f"{day}T10:00:00Z"}
        created = await http.post(
            "/v1/orders", json=order(day=day, time_windows=[window]), headers=headers
        )
        assert refusal(created) == (400, "day", expected + day)
        csv = await http.post(
            "/v1/orders/import",
            content=f"ref,address,lat,lon,day,window_start,window_end\nC,x,1,1,{day},09:00,10:00\n".encode(),
            headers=headers | {"content-type": "text/csv"},
        )
        assert csv.json()["rejected"] == [{"line": 2, "field": "day", "reason": expected + day}]
        vehicle = await http.post("/v1/vehicles", json={"name": f"Van {day}"}, headers=headers)
        shift = await http.post(
            "/v1/shifts",
            json={
                "driver_id": tenant.drivers[0].id,
                "vehicle_id": vehicle.json()["id"],
                "day": day,
                "start_place": {"lat": 52.5, "lon": 13.4},
                "working_window": window,
            },
            headers=headers,
        )
        assert refusal(shift) == (400, "day", expected + day)
    track = await http.get(
        f"/v1/drivers/{tenant.drivers[0].id}/positions",
        params={"to": "0001-01-01T00:00:00Z"},
        headers=headers,
    )
    assert refusal(track)[:2] == (400, "to")


async def test_a_vehicle_that_does_not_exist_is_named(
    http: httpx.AsyncClient, tenant: Tenant
) -> None:
    """A ``default_vehicle_id`` no organisation has answers 400 naming it, on create and patch."""
    headers = auth(tenant.api_key)
    created = await http.post(
        "/v1/drivers", json={"name": "Anna", "default_vehicle_id": 999_999}, headers=headers
    )
    patched = await http.patch(
        f"/v1/drivers/{tenant.drivers[0].id}", json={"default_vehicle_id": 999_999}, headers=headers
    )
    reason = "expected the id of a vehicle of this organisation, got 999999"
    assert refusal(created) == refusal(patched) == (400, "default_vehicle_id", reason)


async def test_digits_of_other_scripts_in_ids_and_numbers_are_bad_parameters(
    http: httpx.AsyncClient, tenant: Tenant
) -> None:
    """``²`` (a digit to ``str.isdigit``, not to ``int``) in a path id or a numeric query
    parameter answers 400 naming the parameter."""
    headers = auth(tenant.api_key)
    driver = tenant.drivers[0].id
    cases = [
        ("/v1/orders/²", {}, "order_id"),
        ("/v1/drivers/²/positions", {}, "driver_id"),
        ("/v1/orders", {"limit": "²"}, "limit"),
        ("/v1/orders", {"after": "٣"}, "after"),
        ("/v1/shifts", {"driver_id": "²"}, "driver_id"),
        (f"/v1/drivers/{driver}/positions", {"limit": "²"}, "limit"),
    ]
    for path, params, name in cases:
        response = await http.get(path, params=params, headers=headers)
        assert refusal(response)[:2] == (400, name), (path, response.text)


async def test_a_frame_nested_2000_levels_gets_an_error_and_the_socket_stays(
    server: LiveServer, tenant: Tenant
) -> None:
    """The driver socket answers a frame nested 2,000 levels with an error message, then still
    acknowledges the next valid ping."""
    url = f"{server.ws_url}/v1/driver/ws?token={tenant.drivers[0].token}"
    ping = {
        "type": "ping",
        "id": 2,
        "time": datetime.now(UTC).isoformat(),
        "lat": 52.5,
        "lon": 13.4,
    }
    async with websockets.connect(url) as socket:
        await socket.send('{"type":"pings","id":1,"pings":' + "[" * 2000 + "]" * 2000 + "}")
        assert json.loads(await socket.recv()) == {
            "type": "error",
            "id": None,
            "reason": TOO_DEEP,
            "field": "$",
        }
        await socket.send(json.dumps(ping))
        assert json.loads(await socket.recv()) == {
            "type": "ack",
            "id": 2,
            "accepted": 1,
            "rejected": [],
        }


async def test_ids_of_another_organisation_are_unknown_ids(
    http: httpx.AsyncClient, tenant: Tenant, db: psycopg.AsyncConnection
) -> None:
    """A plan naming another organisation's order, and a shift filter naming its driver,
    answer 422 unknown_ids listing them, not an empty success."""
    other = await make_tenant(db)
    theirs = await http.post("/v1/orders", json=order(), headers=auth(other.api_key))
    mine = await http.post("/v1/orders", json=order(), headers=auth(tenant.api_key))
    plan = await http.post(
        "/v1/plans",
        json={"day": DAY, "order_ids": [mine.json()["id"], theirs.json()["id"]]},
        headers=auth(tenant.api_key),
    )
    reason = f"unknown in this organisation: {theirs.json()['id']}"
    assert refusal(plan) == (422, "order_ids", reason)
    assert plan.json()["error"] == "unknown_ids"
    shifts = await http.get(
        "/v1/shifts", params={"driver_id": other.drivers[0].id}, headers=auth(tenant.api_key)
    )
    assert refusal(shifts) == (
        422,
        "driver_id",
        f"unknown in this organisation: {other.drivers[0].id}",
    )


async def test_negative_unassigned_penalties_are_refused_at_the_edge(
    http: httpx.AsyncClient, tenant: Tenant
) -> None:
    """``unassigned_penalty`` below zero (or beyond a finite bound) answers 400 naming it, by the
    rule the solver applies, instead of queueing a plan that can only fail."""
    headers = auth(tenant.api_key)
    negative = await http.post(
        "/v1/plans", json={"day": DAY, "unassigned_penalty": [-1e308, -1, 0]}, headers=headers
    )
    huge = await http.post(
        "/v1/plans", json={"day": DAY, "unassigned_penalty": [1e300, 1, 0]}, headers=headers
    )
    assert refusal(negative) == (
        400,
        "unassigned_penalty[0]",
        "expected a number >= 0.0, got -1e+308",
    )
    assert refusal(huge) == (
        400,
        "unassigned_penalty[0]",
        "expected a number <= 1000000000.0, got 1e+300",
    )


async def test_a_move_to_a_position_past_the_route_is_refused(
    http: httpx.AsyncClient, tenant: Tenant, today: Day, planner: None
) -> None:
    """Moving a stop to a position past the end of the other route (or to a route of no one)
    answers 4xx naming the field, not the solver's error as a 500."""
    await plan_and_dispatch(http, tenant, today)
    routes = (await http.get("/v1/routes", headers=key(tenant))).json()["routes"]
    source, target = routes[0], routes[1]
    stop = source["stops"][-1]["id"]
    last = len(target["stops"])
    for position in (last + 1, 10**30):
        moved = await http.post(
            f"/v1/stops/{stop}/move",
            json={"route_id": target["id"], "position": position},
            headers=key(tenant),
        )
        assert refusal(moved) == (
            400,
            "position",
            f"expected a position from 0 to {last}, got {position}",
        )
    nowhere = await http.post(
        f"/v1/stops/{stop}/move", json={"route_id": 999_999}, headers=key(tenant)
    )
    assert refusal(nowhere) == (422, "route_id", "unknown in this organisation: 999999")
