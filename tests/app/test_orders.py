"""The orders API: create, read, list, change while pending, cancel; validation, roles,
tenancy."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg

from schemas.ids import OrderId
from store import orders
from tests.conftest import Tenant, make_tenant

DAY = "2026-12-01"


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def order_body(ref: str = "SO-1", **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "external_ref": ref,
        "customer_name": "Dana Weiss",
        "phone": "+49 30 1234567",
        "email": "dana@example.org",
        "address": "Torstrasse 1, 10119 Berlin",
        "lat": 52.529,
        "lon": 13.401,
        "day": DAY,
        "time_windows": [
            {"start": f"{DAY}T09:00:00Z", "end": f"{DAY}T11:00:00Z"},
            {"start": f"{DAY}T15:00:00Z", "end": f"{DAY}T17:00:00Z"},
        ],
        "service_s": 180,
        "size": {"weight_kg": 4, "parcels": 2},
        "priority": 2,
        "required_skills": ["cooling"],
        "parcels": [{"barcode": "JJD0001"}, {"barcode": "JJD0002"}],
        "notes": "ring twice",
    }
    return body | changes


async def create(http: httpx.AsyncClient, key: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await http.post("/v1/orders", json=body, headers=auth(key))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_an_order_is_created_and_read_back_whole(
    http: httpx.AsyncClient, tenant: Tenant
) -> None:
    """Every field sent comes back as sent, with id, status pending and timestamps."""
    body = order_body()
    created = await create(http, tenant.api_key, body)
    assert {k: created[k] for k in body if k != "time_windows"} == {
        k: v for k, v in body.items() if k != "time_windows"
    }
    assert created["time_windows"] == [
        {"start": "2026-12-01T09:00:00Z", "end": "2026-12-01T11:00:00Z"},
        {"start": "2026-12-01T15:00:00Z", "end": "2026-12-01T17:00:00Z"},
    ]
    assert (created["status"], created["cancelled_at"]) == ("pending", None)
    read = await http.get(f"/v1/orders/{created['id']}", headers=auth(tenant.api_key))
    assert read.json() == created


async def test_each_kind_of_bad_field_is_named(http: httpx.AsyncClient, tenant: Tenant) -> None:
    """Bad coordinates, windows, contacts, amounts and lists each get 400 naming the field."""
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"lat": 95.5}, "lat", "expected a number <= 90.0, got 95.5"),
        ({"lon": -181}, "lon", "expected a number >= -180.0, got -181"),
        ({"email": "dana.example.org"}, "email",
         "expected an email address containing @, got 'dana.example.org'"),
        ({"phone": "030/1234"}, "phone",
         "expected digits, spaces, +, - and parentheses, got '030/1234'"),
        ({"time_windows": [{"start": f"{DAY}T11:00:00Z", "end": f"{DAY}T09:00:00Z"}]},
         "time_windows[0].end", "expected a time after start 2026-12-01T11:00:00Z,"
         " got 2026-12-01T09:00:00Z"),
        ({"time_windows": [{"start": f"{DAY}T09:00:00", "end": f"{DAY}T10:00:00Z"}]},
         "time_windows[0].start",
         "expected a time with a zone such as 2026-11-24T10:00:00Z, got '2026-12-01T09:00:00'"),
        ({"time_windows": [{"start": "2026-12-03T09:00:00Z", "end": "2026-12-03T10:00:00Z"}]},
         "time_windows[0].start", "expected a time within 12 hours of the day 2026-12-01 (UTC),"
         " between 2026-11-30T12:00:00Z and 2026-12-02T12:00:00Z, got 2026-12-03T09:00:00Z"),
        ({"time_windows": [{"start": f"{DAY}T09:00:00Z"}]}, "time_windows[0].end",
         "time_windows[0].end is required"),
        ({"size": {"weight_kg": 1.5}}, "size.weight_kg", "expected an integer, got 1.5"),
        ({"size": {"pallets": 1}}, "size.pallets",
         "unknown dimension; expected one of weight_kg, volume_l, parcels"),
        ({"priority": 3}, "priority", "expected an integer <= 2, got 3"),
        ({"service_s": -5}, "service_s", "expected an integer >= 0, got -5"),
        ({"day": "01.12.2026"}, "day", "expected a date such as 2026-11-24, got '01.12.2026'"),
        ({"required_skills": ["Cool Box"]}, "required_skills[0]",
         "expected lowercase letters, digits, _ and -, got 'Cool Box'"),
        ({"parcels": [{"barcode": "A"}, {"barcode": "A"}]}, "parcels[1].barcode",
         "expected each barcode once, got 'A' again"),
        ({"external_ref": " SO-1"}, "external_ref",
         "expected no leading or trailing spaces, got ' SO-1'"),
        ({"service_time": 60}, "service_time",
         "unknown field (check its spelling and unit suffix)"),
    ]  # fmt: skip
    for changes, field, reason in cases:
        response = await http.post(
            "/v1/orders", json=order_body(**changes), headers=auth(tenant.api_key)
        )
        assert response.status_code == 400, (changes, response.text)
        assert response.json() == {"error": "invalid_field", "field": field, "reason": reason}
    missing = order_body()
    del missing["address"]
    response = await http.post("/v1/orders", json=missing, headers=auth(tenant.api_key))
    assert (response.status_code, response.json()["field"]) == (400, "address")


async def test_a_taken_ref_is_a_conflict(http: httpx.AsyncClient, tenant: Tenant) -> None:
    """Creating an order whose external_ref exists answers 409 naming external_ref."""
    await create(http, tenant.api_key, order_body("DUP"))
    again = await http.post("/v1/orders", json=order_body("DUP"), headers=auth(tenant.api_key))
    assert again.status_code == 409
    assert again.json() == {
        "error": "conflict",
        "field": "external_ref",
        "reason": "another order of this organisation has external_ref 'DUP'",
    }


async def test_integration_keys_create_and_cancel_orders(
    http: httpx.AsyncClient, db: psycopg.AsyncConnection
) -> None:
    """An integration key may create, read and cancel orders of its organisation."""
    shop = await make_tenant(db, drivers=0, role="integration")
    created = await create(http, shop.api_key, order_body("SHOP-1"))
    cancelled = await http.post(
        f"/v1/orders/{created['id']}/cancel",
        json={"reason": "paid back"},
        headers=auth(shop.api_key),
    )
    assert cancelled.status_code == 200
    assert (cancelled.json()["status"], cancelled.json()["cancel_reason"]) == (
        "cancelled",
        "paid back",
    )


async def test_orders_of_another_organisation_are_404(
    http: httpx.AsyncClient, tenant: Tenant, db: psycopg.AsyncConnection
) -> None:
    """Another organisation can neither read, change, cancel nor list this organisation's order."""
    created = await create(http, tenant.api_key, order_body())
    stranger = auth((await make_tenant(db, drivers=0, role="integration")).api_key)
    path = f"/v1/orders/{created['id']}"
    assert (await http.get(path, headers=stranger)).status_code == 404
    assert (await http.patch(path, json={"notes": "x"}, headers=stranger)).status_code == 404
    assert (await http.post(f"{path}/cancel", headers=stranger)).status_code == 404
    assert (await http.get("/v1/orders", headers=stranger)).json() == {
        "orders": [],
        "next_after": None,
    }


async def test_patch_changes_a_pending_order_only(
    http: httpx.AsyncClient, tenant: Tenant, db: psycopg.AsyncConnection
) -> None:
    """A patch replaces the fields it names on a pending order; a planned order is 409."""
    created = await create(http, tenant.api_key, order_body())
    path = f"/v1/orders/{created['id']}"
    patched = await http.patch(
        path,
        json={"notes": None, "parcels": [{"barcode": "NEW-1"}], "size": {"volume_l": 9}},
        headers=auth(tenant.api_key),
    )
    assert patched.status_code == 200
    body = patched.json()
    assert (body["notes"], body["parcels"], body["size"]) == (
        None,
        [{"barcode": "NEW-1"}],
        {"volume_l": 9},
    )
    assert (body["customer_name"], body["external_ref"]) == ("Dana Weiss", "SO-1")
    bad = await http.patch(path, json={"lat": 100}, headers=auth(tenant.api_key))
    assert (bad.status_code, bad.json()["field"]) == (400, "lat")
    ref = await http.patch(path, json={"external_ref": "X"}, headers=auth(tenant.api_key))
    assert (ref.status_code, ref.json()["field"]) == (400, "external_ref")
    await orders.set_status(db, tenant.org_id, [OrderId(created["id"])], "planned")
    late = await http.patch(path, json={"notes": "x"}, headers=auth(tenant.api_key))
    assert late.status_code == 409
    assert late.json()["reason"] == "expected a pending order to change, got status planned"


async def test_cancel_is_idempotent_and_refused_after_delivery(
    http: httpx.AsyncClient, tenant: Tenant, db: psycopg.AsyncConnection
) -> None:
    """Cancelling twice answers the same order; a delivered order is 409 with a reason."""
    headers = auth(tenant.api_key)
    pending = await create(http, tenant.api_key, order_body("P-1"))
    first = await http.post(f"/v1/orders/{pending['id']}/cancel", headers=headers)
    second = await http.post(f"/v1/orders/{pending['id']}/cancel", headers=headers)
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json() == second.json()
    assert first.json()["status"] == "cancelled"
    delivered = await create(http, tenant.api_key, order_body("P-2"))
    await orders.set_status(db, tenant.org_id, [OrderId(delivered["id"])], "delivered")
    refused = await http.post(f"/v1/orders/{delivered['id']}/cancel", headers=headers)
    assert refused.status_code == 409
    assert refused.json() == {
        "error": "conflict",
        "field": "status",
        "reason": "expected an order that is not yet delivered, got status delivered",
    }
    missing = await http.post(f"/v1/orders/{delivered['id'] + 10_000}/cancel", headers=headers)
    assert missing.status_code == 404


async def test_a_customer_opts_out_at_creation_or_later_at_any_status(
    http: httpx.AsyncClient, tenant: Tenant, db: psycopg.AsyncConnection
) -> None:
    """The flag is set when the order is created and changed later, even once the order is
    dispatched; a bad body names the field, another organisation's order is 404, a driver's
    token is refused."""
    headers = auth(tenant.api_key)
    created = await create(http, tenant.api_key, order_body(notifications_opt_out=True))
    assert created["notifications_opt_out"] is True
    other = await create(http, tenant.api_key, order_body("SO-2"))
    assert other["notifications_opt_out"] is False
    await orders.set_status(db, tenant.org_id, [OrderId(other["id"])], "dispatched")
    path = f"/v1/orders/{other['id']}/opt-out"
    changed = await http.put(path, json={"opted_out": True}, headers=headers)
    assert (changed.status_code, changed.json()["notifications_opt_out"]) == (200, True)
    assert changed.json()["status"] == "dispatched"
    read = await http.get(f"/v1/orders/{other['id']}", headers=headers)
    assert read.json()["notifications_opt_out"] is True
    back = await http.put(path, json={"opted_out": False}, headers=headers)
    assert back.json()["notifications_opt_out"] is False

    bad = await http.put(path, json={"opted_out": "maybe"}, headers=headers)
    assert (bad.status_code, bad.json()["field"]) == (400, "opted_out")
    empty = await http.put(path, json={}, headers=headers)
    assert (empty.status_code, empty.json()["field"]) == (400, "opted_out")
    stranger = auth((await make_tenant(db, drivers=0, role="integration")).api_key)
    assert (await http.put(path, json={"opted_out": True}, headers=stranger)).status_code == 404
    driver = await http.put(path, json={"opted_out": True}, headers=auth(tenant.drivers[0].token))
    assert driver.status_code == 401  # a device token is no API key
    unknown = await http.put(
        f"/v1/orders/{other['id'] + 10_000}/opt-out", json={"opted_out": True}, headers=headers
    )
    assert unknown.status_code == 404


async def test_listing_filters_and_pages(http: httpx.AsyncClient, tenant: Tenant) -> None:
    """Orders list by day and status, a page at a time, following next_after."""
    headers = auth(tenant.api_key)
    made = [await create(http, tenant.api_key, order_body(f"L-{n}")) for n in range(5)]
    other_day = order_body("L-x", day="2026-12-02", time_windows=[])
    await create(http, tenant.api_key, other_day)
    await http.post(f"/v1/orders/{made[4]['id']}/cancel", headers=headers)
    first = await http.get(
        "/v1/orders", params={"day": DAY, "status": "pending", "limit": 3}, headers=headers
    )
    assert [o["external_ref"] for o in first.json()["orders"]] == ["L-0", "L-1", "L-2"]
    assert first.json()["next_after"] == made[2]["id"]
    rest = await http.get(
        "/v1/orders",
        params={"day": DAY, "status": "pending", "limit": 3, "after": made[2]["id"]},
        headers=headers,
    )
    assert [o["external_ref"] for o in rest.json()["orders"]] == ["L-3"]
    assert rest.json()["next_after"] is None
    for params, field in (
        ({"status": "lost"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"day": "x"}, "day"),
    ):
        bad = await http.get("/v1/orders", params=params, headers=headers)
        assert (bad.status_code, bad.json()["field"]) == (400, field)


async def test_json_answers_are_never_cached_nor_sniffed(
    http: httpx.AsyncClient, tenant: Tenant
) -> None:
    """An order (names, phones, addresses), a list and an error answer ``no-store`` and
    ``nosniff``; a page keeps its own cache policy."""
    created = await create(http, tenant.api_key, order_body())
    answers = [
        await http.get(f"/v1/orders/{created['id']}", headers=auth(tenant.api_key)),
        await http.get("/v1/orders", headers=auth(tenant.api_key)),
        await http.get("/v1/orders/999999", headers=auth(tenant.api_key)),
        await http.get("/v1/orders"),
    ]
    assert [a.status_code for a in answers] == [200, 200, 404, 401]
    for one in answers:
        assert (one.headers["cache-control"], one.headers["x-content-type-options"]) == (
            "no-store",
            "nosniff",
        )
    page = await http.get("/dispatch")
    assert page.headers["cache-control"] == "no-cache"
