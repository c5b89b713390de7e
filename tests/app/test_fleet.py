"""The fleet API: depots, carriers, vehicles, drivers and devices, shifts, dimensions;
with roles, tenancy and field-level validation."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg

from tests.conftest import Tenant, make_tenant
from tests.helpers import Trace

DAY = "2026-12-01"


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def shift_body(driver_id: int, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "driver_id": driver_id,
        "day": DAY,
        "start_place": {"lat": 52.5, "lon": 13.4},
        "working_window": {"start": f"{DAY}T08:00:00Z", "end": f"{DAY}T16:00:00Z"},
    }
    return body | changes


async def post(http: httpx.AsyncClient, path: str, key: str, body: Any) -> dict[str, Any]:
    response = await http.post(path, json=body, headers=auth(key))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_depot_create_read_list_patch(http: httpx.AsyncClient, tenant: Tenant) -> None:
    """A depot is created, read back, listed and patched; the patch changes only its fields."""
    created = await post(
        http, "/v1/depots", tenant.api_key, {"name": "North", "lat": 52.55, "lon": 13.38}
    )
    assert {k: created[k] for k in ("name", "lat", "lon", "address", "active")} == {
        "name": "North",
        "lat": 52.55,
        "lon": 13.38,
        "address": None,
        "active": True,
    }
    path = f"/v1/depots/{created['id']}"
    assert (await http.get(path, headers=auth(tenant.api_key))).json() == created
    patched = await http.patch(
        path, json={"address": "Nordring 1", "active": False}, headers=auth(tenant.api_key)
    )
    assert patched.status_code == 200
    assert (patched.json()["address"], patched.json()["active"], patched.json()["name"]) == (
        "Nordring 1",
        False,
        "North",
    )
    listed = await http.get("/v1/depots?active=false", headers=auth(tenant.api_key))
    assert [d["id"] for d in listed.json()["depots"]] == [created["id"]]
    active = await http.get("/v1/depots?active=true", headers=auth(tenant.api_key))
    assert active.json()["depots"] == []


async def test_another_organisation_gets_404_and_an_empty_list(
    http: httpx.AsyncClient, tenant: Tenant, db: psycopg.AsyncConnection
) -> None:
    """Another organisation's key sees none of this organisation's fleet and cannot patch it."""
    depot = await post(http, "/v1/depots", tenant.api_key, {"name": "D", "lat": 1, "lon": 2})
    stranger = await make_tenant(db, drivers=0)
    headers = auth(stranger.api_key)
    assert (await http.get(f"/v1/depots/{depot['id']}", headers=headers)).status_code == 404
    patch = await http.patch(f"/v1/depots/{depot['id']}", json={"name": "X"}, headers=headers)
    assert patch.status_code == 404
    assert (await http.get("/v1/depots", headers=headers)).json() == {"depots": []}
    driver = tenant.drivers[0].id
    assert (await http.get(f"/v1/drivers/{driver}", headers=headers)).status_code == 404
    assert (await http.get("/v1/drivers", headers=headers)).json() == {"drivers": []}


async def test_roles_integration_reads_but_cannot_change_the_fleet(
    http: httpx.AsyncClient, tenant: Tenant, db: psycopg.AsyncConnection
) -> None:
    """An integration key may list depots but creating one is 403; a device token is 401."""
    integration = await make_tenant(db, drivers=1, role="integration")
    headers = auth(integration.api_key)
    assert (await http.get("/v1/depots", headers=headers)).status_code == 200
    refused = await http.post("/v1/depots", json={"name": "D", "lat": 1, "lon": 2}, headers=headers)
    assert refused.status_code == 403
    assert refused.json()["error"] == "forbidden"
    device = auth(integration.drivers[0].token)
    assert (await http.get("/v1/depots", headers=device)).status_code == 401


async def test_vehicle_capacity_must_name_the_organisations_dimensions(
    http: httpx.AsyncClient, tenant: Tenant
) -> None:
    """A capacity in an unknown dimension is a 400 naming it; known ones are stored as sent."""
    bad = await http.post(
        "/v1/vehicles",
        json={"name": "Van", "capacity": {"weight_kg": 800, "pallets": 2}},
        headers=auth(tenant.api_key),
    )
    assert bad.status_code == 400
    assert bad.json() == {
        "error": "invalid_field",
        "field": "capacity.pallets",
        "reason": "unknown dimension; expected one of weight_kg, volume_l, parcels",
    }
    van = await post(
        http,
        "/v1/vehicles",
        tenant.api_key,
        {
            "name": "Van",
            "type": "truck",
            "capacity": {"weight_kg": 800, "parcels": 120},
            "skills": ["tail_lift"],
            "fixed_cost": 50,
            "cost_per_km": 0.35,
            "cost_per_hour": 22.5,
        },
    )
    assert van["capacity"] == {"weight_kg": 800, "parcels": 120}
    assert (van["type"], van["skills"], van["cost_per_hour"]) == ("truck", ["tail_lift"], 22.5)


async def test_bad_fleet_fields_are_named(http: httpx.AsyncClient, tenant: Tenant) -> None:
    """Each kind of bad field gets 400 with the field and a reason quoting what came."""
    headers = auth(tenant.api_key)
    cases: list[tuple[str, dict[str, Any], str, str]] = [
        ("/v1/depots", {"name": "D", "lat": 91, "lon": 2}, "lat",
         "expected a number <= 90.0, got 91"),
        ("/v1/depots", {"name": "", "lat": 1, "lon": 2}, "name",
         "expected at least 1 character, got 0"),
        ("/v1/depots", {"lat": 1, "lon": 2}, "name", "name is required"),
        ("/v1/depots", {"name": "D", "lat": 1, "lon": 2, "colour": "red"}, "colour",
         "unknown field (check its spelling and unit suffix)"),
        ("/v1/carriers", {"name": "C", "kind": "friend"}, "kind",
         "expected one of own, partner, got 'friend'"),
        ("/v1/carriers", {"name": "C", "kind": "own", "contact_email": "nobody"}, "contact_email",
         "expected an email address containing @, got 'nobody'"),
        ("/v1/drivers", {"name": "D", "phone": "call me"}, "phone",
         "expected digits, spaces, +, - and parentheses, got 'call me'"),
        ("/v1/vehicles", {"name": "V", "capacity": {"weight_kg": -1}}, "capacity.weight_kg",
         "expected an integer >= 0, got -1"),
        ("/v1/vehicles", {"name": "V", "cost_per_km": "cheap"}, "cost_per_km",
         "expected a number, got 'cheap'"),
        ("/v1/vehicles", {"name": "V", "type": "boat"}, "type",
         "expected one of van, cargo_bike, truck, car, bicycle, motorbike, on_foot, got 'boat'"),
    ]  # fmt: skip
    for path, body, field, reason in cases:
        response = await http.post(path, json=body, headers=headers)
        assert response.status_code == 400, (path, body, response.text)
        assert (response.json()["field"], response.json()["reason"]) == (field, reason)
    for garbage in (b"{", b'{"name": 5, "lat": '):
        garbled = await http.post("/v1/depots", content=garbage, headers=headers)
        assert (garbled.status_code, garbled.json()["error"]) == (400, "malformed_body")
    form = await http.post("/v1/depots", data={"name": "D"}, headers=headers)
    assert (form.status_code, form.json()["field"]) == (415, "Content-Type")
    bad_id = await http.get("/v1/depots/abc", headers=headers)
    assert (bad_id.status_code, bad_id.json()["field"]) == (400, "depot_id")


async def test_driver_api_and_a_new_device_token_that_works(
    http: httpx.AsyncClient, tenant: Tenant, db: psycopg.AsyncConnection
) -> None:
    """A driver is created with a carrier and vehicle; its new device token can send pings."""
    carrier = await post(http, "/v1/carriers", tenant.api_key, {"name": "Swift", "kind": "partner"})
    van = await post(http, "/v1/vehicles", tenant.api_key, {"name": "Van"})
    driver = await post(
        http,
        "/v1/drivers",
        tenant.api_key,
        {
            "name": "Cleo",
            "phone": "+49 (30) 123-456",
            "external_ref": "D-7",
            "carrier_id": carrier["id"],
            "default_vehicle_id": van["id"],
        },
    )
    assert (driver["carrier_id"], driver["default_vehicle_id"]) == (carrier["id"], van["id"])
    listed = await http.get("/v1/drivers", headers=auth(tenant.api_key))
    assert [d["name"] for d in listed.json()["drivers"]] == ["driver 0", "driver 1", "Cleo"]
    device = await http.post(
        f"/v1/drivers/{driver['id']}/devices", json={"name": "tablet"}, headers=auth(tenant.api_key)
    )
    assert device.status_code == 201
    token = device.json()["token"]
    assert token.startswith("lmd_")
    assert device.json()["token_prefix"] == token[:10]
    pings = await http.post(
        "/v1/pings", json={"pings": Trace(seed=3).pings(1)}, headers=auth(token)
    )
    assert pings.json()["accepted"] == 1
    stranger = await make_tenant(db, drivers=0)
    foreign = await http.post(f"/v1/drivers/{driver['id']}/devices", headers=auth(stranger.api_key))
    assert foreign.status_code == 404


async def test_a_driver_cannot_name_another_organisations_carrier(
    http: httpx.AsyncClient, tenant: Tenant, db: psycopg.AsyncConnection
) -> None:
    """A carrier id of another organisation reads like an unknown id: 400 naming carrier_id."""
    stranger = await make_tenant(db, drivers=0)
    theirs = await post(http, "/v1/carriers", stranger.api_key, {"name": "T", "kind": "own"})
    response = await http.patch(
        f"/v1/drivers/{tenant.drivers[0].id}",
        json={"carrier_id": theirs["id"]},
        headers=auth(tenant.api_key),
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_field",
        "field": "carrier_id",
        "reason": f"expected the id of a carrier of this organisation, got {theirs['id']}",
    }


async def test_shift_defaults_checks_and_cancel(http: httpx.AsyncClient, tenant: Tenant) -> None:
    """A shift takes the driver's default vehicle, checks its window and breaks, and cancels."""
    headers = auth(tenant.api_key)
    driver = tenant.drivers[0].id
    no_vehicle = await http.post("/v1/shifts", json=shift_body(driver), headers=headers)
    assert (no_vehicle.status_code, no_vehicle.json()["field"]) == (400, "vehicle_id")
    van = await post(http, "/v1/vehicles", tenant.api_key, {"name": "Van"})
    await http.patch(
        f"/v1/drivers/{driver}", json={"default_vehicle_id": van["id"]}, headers=headers
    )
    depot = await post(http, "/v1/depots", tenant.api_key, {"name": "D", "lat": 52, "lon": 13})
    bad_cases: list[tuple[dict[str, Any], str]] = [
        ({"working_window": {"start": f"{DAY}T16:00:00Z", "end": f"{DAY}T08:00:00Z"}},
         "working_window.end"),
        ({"working_window": {"start": "2026-12-05T08:00:00Z", "end": "2026-12-05T09:00:00Z"}},
         "working_window.start"),
        ({"start_place": {"depot_id": depot["id"], "lat": 1.0}}, "start_place"),
        ({"breaks": [{"earliest_start": f"{DAY}T07:00:00Z", "latest_start": f"{DAY}T07:30:00Z",
                      "duration_s": 600}]}, "breaks[0]"),
        ({"breaks": [{"earliest_start": f"{DAY}T12:00:00Z", "latest_start": f"{DAY}T11:00:00Z",
                      "duration_s": 600}]}, "breaks[0].latest_start"),
        ({"start_place": {"depot_id": depot["id"] + 1000}}, "start_place.depot_id"),
    ]  # fmt: skip
    for changes, field in bad_cases:
        response = await http.post(
            "/v1/shifts", json=shift_body(driver, **changes), headers=headers
        )
        assert (response.status_code, response.json()["field"]) == (400, field), response.text
    shift = await post(
        http,
        "/v1/shifts",
        tenant.api_key,
        shift_body(
            driver,
            start_place={"depot_id": depot["id"]},
            breaks=[
                {
                    "earliest_start": f"{DAY}T11:00:00Z",
                    "latest_start": f"{DAY}T13:00:00Z",
                    "duration_s": 1800,
                }
            ],
        ),
    )
    assert (shift["vehicle_id"], shift["status"], shift["end_place"]) == (
        van["id"],
        "scheduled",
        None,
    )
    assert shift["start_place"] == {"depot_id": depot["id"], "lat": None, "lon": None}
    on_day = await http.get(f"/v1/shifts?day={DAY}&driver_id={driver}", headers=headers)
    assert [s["id"] for s in on_day.json()["shifts"]] == [shift["id"]]
    other_day = await http.get("/v1/shifts?day=2026-12-02", headers=headers)
    assert other_day.json()["shifts"] == []
    cancel = f"/v1/shifts/{shift['id']}/cancel"
    first, second = (
        await http.post(cancel, headers=headers),
        await http.post(cancel, headers=headers),
    )
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json() == second.json()
    assert first.json()["status"] == "cancelled"
    late = await http.patch(
        f"/v1/shifts/{shift['id']}", json={"max_duration_s": 3600}, headers=headers
    )
    assert late.status_code == 409
    assert late.json()["reason"] == "expected a scheduled shift, got status cancelled"


async def test_dimensions_are_read_by_all_and_changed_by_admins(
    http: httpx.AsyncClient, db: psycopg.AsyncConnection
) -> None:
    """Any key reads the dimensions; only an admin changes them, and not to drop one in use."""
    admin = await make_tenant(db, drivers=0, role="admin")
    dispatcher = await make_tenant(db, drivers=0)
    default = await http.get("/v1/settings/dimensions", headers=auth(dispatcher.api_key))
    assert default.json() == {"dimensions": ["weight_kg", "volume_l", "parcels"]}
    refused = await http.put(
        "/v1/settings/dimensions",
        json={"dimensions": ["weight_kg"]},
        headers=auth(dispatcher.api_key),
    )
    assert refused.status_code == 403
    await post(http, "/v1/vehicles", admin.api_key, {"name": "Van", "capacity": {"volume_l": 3000}})
    in_use = await http.put(
        "/v1/settings/dimensions", json={"dimensions": ["weight_kg"]}, headers=auth(admin.api_key)
    )
    assert (in_use.status_code, in_use.json()["field"]) == (409, "dimensions")
    twice = await http.put(
        "/v1/settings/dimensions",
        json={"dimensions": ["volume_l", "volume_l"]},
        headers=auth(admin.api_key),
    )
    assert (twice.status_code, twice.json()["field"]) == (400, "dimensions[1]")
    no_unit = await http.put(
        "/v1/settings/dimensions", json={"dimensions": ["Volume"]}, headers=auth(admin.api_key)
    )
    assert (no_unit.status_code, no_unit.json()["field"]) == (400, "dimensions[0]")
    changed = await http.put(
        "/v1/settings/dimensions",
        json={"dimensions": ["volume_l", "pallets", "cooled_l"]},
        headers=auth(admin.api_key),
    )
    assert changed.json() == {"dimensions": ["volume_l", "pallets", "cooled_l"]}
    pallets = await post(
        http, "/v1/vehicles", admin.api_key, {"name": "Truck", "capacity": {"pallets": 12}}
    )
    assert pallets["capacity"] == {"pallets": 12}
