"""The organisation's settings through the live API: what an admin changes reaches orders,
messages and the live feed."""

from __future__ import annotations

import json
from datetime import date

import httpx
import psycopg
import pytest
import websockets

from app.auth import issue_api_key
from tests.conftest import LiveServer, Tenant

SETTINGS = "/v1/settings/organisation"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
async def admin(db: psycopg.AsyncConnection, tenant: Tenant) -> dict[str, str]:
    """An admin key of ``tenant``'s organisation."""
    return bearer(await issue_api_key(db, tenant.org_id, role="admin", name="admin"))


def order(ref: str, **more: object) -> dict[str, object]:
    return {"external_ref": ref, "address": "1 Main St", "lat": 52.5, "lon": 13.4,
            "day": date.today().isoformat()} | more  # fmt: skip


async def test_an_admin_changes_some_settings_and_readers_read_them(
    http: httpx.AsyncClient, tenant: Tenant, admin: dict[str, str]
) -> None:
    """The defaults; a patch of two fields leaves the others; a dispatcher reads, may not
    write."""
    first = await http.get(SETTINGS, headers=bearer(tenant.api_key))
    assert first.status_code == 200
    assert first.json() | {"name": ""} == {
        "id": tenant.org_id, "name": "", "time_zone": "UTC", "locale": "en",
        "default_service_s": 0, "auto_resequence": False, "summary_emails": [],
    }  # fmt: skip
    changed = await http.patch(
        SETTINGS, json={"time_zone": "Europe/Berlin", "locale": "de-AT"}, headers=admin
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["time_zone"] == "Europe/Berlin"
    assert changed.json()["locale"] == "de-AT"
    assert changed.json()["name"] == first.json()["name"]
    assert (await http.get(SETTINGS, headers=bearer(tenant.api_key))).json() == changed.json()
    full = await http.patch(
        SETTINGS,
        json={"name": "Acme", "time_zone": "Europe/Berlin", "locale": "en",
              "default_service_s": 180, "auto_resequence": True},
        headers=admin,
    )  # fmt: skip
    assert full.json()["auto_resequence"] is True, full.text
    assert (await http.get(SETTINGS, headers=admin)).json()["auto_resequence"] is True
    refused = await http.patch(SETTINGS, json={"locale": "fr"}, headers=bearer(tenant.api_key))
    assert refused.status_code == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"time_zone": ""}, "time_zone"),
        ({"locale": "zz"}, "locale"),
        ({"locale": "not a locale"}, "locale"),
        ({"default_service_s": -1}, "default_service_s"),
        ({"default_service_s": 86_401}, "default_service_s"),
        ({"name": ""}, "name"),
        ({"timezone": "UTC"}, "timezone"),
        ({"summary_emails": ["ops@acme.example", "not an address"]}, "summary_emails[1]"),
        ({"summary_emails": ["ops@localhost"]}, "summary_emails[0]"),
        ({"summary_emails": "ops@acme.example"}, "summary_emails"),
        ({"summary_emails": [f"o{n}@acme.example" for n in range(21)]}, "summary_emails"),
    ],
)
async def test_a_bad_setting_is_a_400_naming_it(
    http: httpx.AsyncClient, admin: dict[str, str], body: dict[str, object], field: str
) -> None:
    answer = await http.patch(SETTINGS, json=body, headers=admin)
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == field


async def test_the_weekly_summary_recipients_are_kept_once_each_and_cleared_with_none(
    http: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    """An address given twice (in any case) is kept once, as first given; ``[]`` turns the
    summary off."""
    emails = ["Ops@Acme.example", "lead@acme.example", "ops@acme.example"]
    changed = await http.patch(SETTINGS, json={"summary_emails": emails}, headers=admin)
    assert changed.status_code == 200, changed.text
    assert changed.json()["summary_emails"] == ["Ops@Acme.example", "lead@acme.example"]
    cleared = await http.patch(SETTINGS, json={"summary_emails": []}, headers=admin)
    assert cleared.json()["summary_emails"] == []


async def test_the_default_service_time_goes_to_orders_that_name_none(
    http: httpx.AsyncClient, tenant: Tenant, admin: dict[str, str]
) -> None:
    """Created, imported: the default when the order names no service time, never over one
    given (0 included); orders stored before the change keep theirs."""
    before = await http.post("/v1/orders", json=order("D-0"), headers=admin)
    assert before.json()["service_s"] == 0
    await http.patch(SETTINGS, json={"default_service_s": 240}, headers=admin)
    made = await http.post("/v1/orders", json=order("D-1"), headers=admin)
    given = await http.post("/v1/orders", json=order("D-2", service_s=0), headers=admin)
    assert made.json()["service_s"] == 240
    assert given.json()["service_s"] == 0
    csv = "ref,address,lat,lon,day\nD-3,2 Main St,52.5,13.4," + date.today().isoformat()
    imported = await http.post(
        "/v1/orders/import", content=csv, headers=admin | {"content-type": "text/csv"}
    )
    assert imported.status_code == 200, imported.text
    listed = (await http.get("/v1/orders", headers=admin)).json()["orders"]
    assert {o["external_ref"]: o["service_s"] for o in listed} == {
        "D-0": 0, "D-1": 240, "D-2": 0, "D-3": 240,
    }  # fmt: skip


async def test_the_locale_speaks_where_neither_the_order_nor_the_rules_name_a_language(
    http: httpx.AsyncClient, tenant: Tenant, admin: dict[str, str]
) -> None:
    """A preview of an order without a language follows the organisation's locale; rules that
    name a language win over it."""
    created = await http.post("/v1/orders", json=order("L-1"), headers=admin)
    body = {"order_id": created.json()["id"], "kind": "delivered", "channel": "sms"}
    preview = "/v1/notification-templates/preview"
    english = await http.post(preview, json=body, headers=admin)
    assert "was delivered" in english.json()["text"]
    await http.patch(SETTINGS, json={"locale": "de"}, headers=admin)
    german = await http.post(preview, json=body, headers=admin)
    assert "zugestellt" in german.json()["text"]
    assert (await http.get("/v1/notification-rules", headers=admin)).json()["language"] is None
    pinned = await http.put("/v1/notification-rules", json={"language": "en"}, headers=admin)
    assert pinned.status_code == 200, pinned.text
    assert "was delivered" in (await http.post(preview, json=body, headers=admin)).json()["text"]


async def test_the_live_feed_shows_the_new_time_zone(
    server: LiveServer, http: httpx.AsyncClient, tenant: Tenant, admin: dict[str, str]
) -> None:
    await http.patch(SETTINGS, json={"time_zone": "America/Chicago"}, headers=admin)
    ticket = await http.post("/v1/socket-tickets", headers=bearer(tenant.api_key))
    async with websockets.connect(
        f"{server.ws_url}/v1/live/ws?ticket={ticket.json()['ticket']}"
    ) as socket:
        snapshot = json.loads(await socket.recv())
    assert snapshot["time_zone"] == "America/Chicago"
