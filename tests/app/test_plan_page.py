"""Planning a day on /plan in headless Chromium: a dispatcher signs in, adds a shift, imports a
CSV (the row report shown), plans, compares two plans, reviews one and dispatches it with one
click; the drivers' sockets receive their routes."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import msgspec
import psycopg
import pytest
import websockets
from playwright.async_api import expect

from app.passwords import hash_password
from app.settings import Settings
from store import users
from tests.browser import UNREACHABLE_TILES, WAIT_MS, Pages
from tests.conftest import LiveServer, Tenant
from tests.days import DEPOT, at, create, key

PASSWORD = "a good password"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Tiles from a closed port: the review map draws without the internet."""
    return msgspec.structs.replace(settings, tile_url=UNREACHABLE_TILES)


def csv_of(day: str) -> str:
    """Six good orders in two clusters, and one row whose latitude is no number."""
    rows = ["ref,customer_name,address,lat,lon,day,window_start,window_end,service_s,parcels"]
    for i in range(6):
        lon = DEPOT[1] + (0.03 if i < 3 else -0.03) + i * 0.001
        rows.append(f"c{i},Customer {i},{i} Main St,{DEPOT[0] + 0.002 * i},{lon},{day},"
                    f"08:00,18:00,300,1")  # fmt: skip
    rows.append(f"bad,Nobody,0 Nowhere,north,13.4,{day},08:00,18:00,300,1")
    return "\n".join(rows) + "\n"


@pytest.mark.browser
async def test_a_dispatcher_plans_reviews_and_dispatches_the_day_in_one_click(
    server: LiveServer,
    http: httpx.AsyncClient,
    db: psycopg.AsyncConnection,
    tenant: Tenant,
    planner: None,
    pages: Pages,
    tmp_path: Path,
) -> None:
    day = (datetime.now(UTC) + timedelta(days=1)).date()
    depot = await create(
        http, tenant, "/v1/depots", {"name": "Hub", "lat": DEPOT[0], "lon": DEPOT[1]}
    )
    vans = [
        await create(http, tenant, "/v1/vehicles", {"name": f"Van {n}", "capacity": {"parcels": 4}})
        for n in range(2)
    ]
    first, second = tenant.drivers
    await create(http, tenant, "/v1/shifts", {
        "driver_id": first.id, "vehicle_id": vans[0], "day": day.isoformat(),
        "start_place": {"depot_id": depot},
        "working_window": {"start": at(day, 7), "end": at(day, 19)},
    })  # fmt: skip
    email = f"planner-{tenant.org_id}@example.com"
    await users.create(
        db, tenant.org_id, email=email, name="Pat", role="dispatcher",
        password_hash=await hash_password(PASSWORD),
    )  # fmt: skip
    page = await pages.open(f"{server.url}/plan?day={day}")
    await page.locator("#email-input").fill(email)
    await page.locator("#password-input").fill(PASSWORD)
    await page.locator("#sign-in-form button").click()
    await expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=WAIT_MS)
    await expect(page.locator("#shifts tr")).to_have_count(1)

    # The second driver's shift, entered on the page (times in the organisation's zone, UTC).
    await page.locator("#s-driver").select_option(str(second.id))
    await page.locator("#s-vehicle").select_option(str(vans[1]))
    await page.locator("#s-from").fill("07:00")
    await page.locator("#s-to").fill("19:00")
    await page.locator("#shift-form button").click()
    await expect(page.locator("#shifts tr")).to_have_count(2, timeout=WAIT_MS)

    # The orders, from a CSV: six created, the bad row reported with its line and field.
    upload = tmp_path / "orders.csv"
    upload.write_text(csv_of(day.isoformat()))
    await page.locator("#import-file").set_input_files(upload)
    await page.locator("#import-form button").click()
    await expect(page.locator("#import-summary")).to_contain_text(
        "7 rows: 6 created, 0 already there, 1 rejected", timeout=WAIT_MS
    )
    rejected = page.locator("#import-rejected li[data-line='8']")
    await expect(rejected).to_contain_text("line 8, lat:")
    await expect(page.locator("#orders tr")).to_have_count(6)

    # Two plans, compared side by side; the second reviewed.
    await page.locator("#p-limit").fill("1")
    for n in range(2):
        await page.locator("#plan-form button[type=submit]").click()
        await expect(page.locator("#plan-progress")).to_have_attribute(
            "data-status", "done", timeout=WAIT_MS
        )
        await expect(page.locator("#plans tr")).to_have_count(n + 1)
    for box in await page.locator("#plans input[type=checkbox]").all():
        await box.check()
    await expect(page.locator("#compare-table tr[data-figure='Orders served'] td")).to_have_text(
        ["Orders served", "6", "6"]
    )
    await expect(page.locator("#review-routes tr")).to_have_count(2)
    await expect(page.locator("#review-unassigned")).to_contain_text("Every order has a route")
    await expect(page.locator("path.plan-route")).to_have_count(2)

    async with contextlib.AsyncExitStack() as stack:
        phones = [
            await stack.enter_async_context(
                websockets.connect(f"{server.ws_url}/v1/driver/ws?token={driver.token}")
            )
            for driver in tenant.drivers
        ]
        await page.locator("#dispatch-all").click()
        await expect(page.locator("#notice")).to_contain_text(
            "Dispatched 2 routes", timeout=WAIT_MS
        )
        for phone, driver in zip(phones, tenant.drivers, strict=True):
            async with asyncio.timeout(WAIT_MS / 1000):
                while True:
                    message = json.loads(await phone.recv())
                    if message.get("route"):
                        break
            assert message["route"]["driver_id"] == driver.id
            assert message["route"]["stops"]
    statuses = {
        o["status"]
        for o in (await http.get(f"/v1/orders?day={day}", headers=key(tenant))).json()["orders"]
    }
    assert statuses == {"dispatched"}
