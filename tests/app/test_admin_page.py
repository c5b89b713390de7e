"""The settings page (/admin) in headless Chromium: an admin changes the organisation, adds and
deactivates a user, creates and revokes an API key; a dispatcher sees only what they may do."""

from __future__ import annotations

import httpx
import psycopg
import pytest
from playwright.async_api import expect

from app.passwords import hash_password
from schemas.ids import OrgId
from schemas.users import UserRole
from store import users
from tests.browser import WAIT_MS, Pages
from tests.conftest import LiveServer, Tenant, make_tenant
from tests.helpers import eventually

PASSWORD = "a good password"


async def person(db: psycopg.AsyncConnection, org_id: OrgId, role: UserRole) -> str:
    email = f"{role}-{org_id}@example.com"
    await users.create(
        db, org_id, email=email, name=f"<b>{role}</b>", role=role,
        password_hash=await hash_password(PASSWORD),
    )  # fmt: skip
    return email


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.mark.browser
async def test_an_admin_runs_the_organisation_from_the_settings_page(
    server: LiveServer, http: httpx.AsyncClient, db: psycopg.AsyncConnection, pages: Pages
) -> None:
    tenant: Tenant = await make_tenant(db, drivers=1, role="admin")
    email = await person(db, tenant.org_id, "admin")
    page = await pages.open(f"{server.url}/admin")
    await page.locator("#email-input").fill(email)
    await page.locator("#password-input").fill(PASSWORD)
    await page.locator("#sign-in-form button").click()
    await expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=WAIT_MS)
    await expect(page.locator("#who")).to_have_text("<b>admin</b> · admin")  # text, not markup

    await page.locator("#org-zone").select_option("Europe/Berlin")
    await page.locator("#org-service").fill("3")
    await page.locator("#org-auto").check()
    await page.locator("#org-summary").fill("not an address")
    await page.locator("#org-form button[type=submit]").click()
    await expect(page.locator("#org-error")).to_contain_text("summary_emails", timeout=WAIT_MS)
    await page.locator("#org-summary").fill("ops@example.com\nboss@example.com")
    await page.locator("#org-form button[type=submit]").click()
    await expect(page.locator("#notice")).to_contain_text("saved", timeout=WAIT_MS)
    org = (await http.get("/v1/settings/organisation", headers=bearer(tenant.api_key))).json()
    assert (org["time_zone"], org["default_service_s"]) == ("Europe/Berlin", 180)
    assert org["auto_resequence"] is True
    assert org["summary_emails"] == ["ops@example.com", "boss@example.com"]
    await expect(page.locator("#org-summary")).to_have_value("ops@example.com\nboss@example.com")

    new = f"new-{tenant.org_id}@example.com"
    await page.locator("#user-email").fill(new)
    await page.locator("#user-name").fill("New One")
    await page.locator("#user-password").fill("another good one")
    await page.locator("#user-form button").click()
    row = page.locator("#users tr", has_text=new)
    await expect(row).to_contain_text("active", timeout=WAIT_MS)
    await row.get_by_role("button", name="Deactivate").click()
    await expect(row).to_contain_text("deactivated", timeout=WAIT_MS)
    refused = await http.post("/v1/session", json={"email": new, "password": "another good one"})
    assert refused.status_code == 401

    await page.locator("#key-name").fill("shop")
    await page.locator("#key-form button").click()
    secret = page.locator("#new-secret-value")
    await expect(secret).to_contain_text("lmk_", timeout=WAIT_MS)
    key = await secret.inner_text()
    assert (await http.get("/v1/orders", headers=bearer(key))).status_code == 200
    await page.locator("#keys tr", has_text="shop").get_by_role("button", name="Revoke").click()
    await expect(page.locator("#keys tr", has_text="shop")).to_contain_text("revoked")

    async def key_refused() -> bool:
        return (await http.get("/v1/orders", headers=bearer(key))).status_code == 401

    await eventually(key_refused, "the revoked key refused")
    await expect(page.locator("#device-driver option")).to_have_count(1)
    await expect(page.locator("#devices tr")).to_have_count(1)  # the test tenant's device


@pytest.mark.browser
async def test_a_dispatcher_reads_the_settings_but_manages_no_people_or_keys(
    server: LiveServer, db: psycopg.AsyncConnection, pages: Pages
) -> None:
    tenant = await make_tenant(db, drivers=1)
    email = await person(db, tenant.org_id, "dispatcher")
    page = await pages.open(f"{server.url}/admin")
    await page.locator("#email-input").fill(email)
    await page.locator("#password-input").fill(PASSWORD)
    await page.locator("#sign-in-form button").click()
    await expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=WAIT_MS)
    await expect(page.locator("#org-zone")).to_be_disabled()
    await expect(page.locator("#users-title")).to_be_hidden()
    await expect(page.locator("#keys-title")).to_be_hidden()
    await expect(page.locator("#devices tr")).to_have_count(1)
    await page.locator("#sign-out").click()
    await expect(page.locator("#gate")).to_be_visible()
