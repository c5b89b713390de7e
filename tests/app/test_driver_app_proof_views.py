"""A stop's proof where people read it: the dispatcher's stop popup (photos, signature, scans,
notes, time, the capture position on the map, and a flag for a capture far from the address),
and the customer's tracking page (the time, the driver's note, and the photo where the
organisation shares it)."""

from __future__ import annotations

import io
import math
from typing import Any

import httpx
import msgspec
import psycopg
import pytest
from PIL import Image
from playwright.async_api import expect

from app.auth import issue_api_key
from app.settings import Settings
from tests.browser import UNREACHABLE_TILES, WAIT_MS, Pages
from tests.conftest import Driver, LiveServer, Tenant
from tests.days import Day, device, key, plan_and_dispatch

LIMIT_M = 150.0


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Tiles from a closed port; proofs farther than 150 m from the address are flagged."""
    return msgspec.structs.replace(
        settings, tile_url=UNREACHABLE_TILES, proof_max_distance_m=LIMIT_M
    )


def png(color: str, size: tuple[int, int] = (64, 48)) -> bytes:
    """A small PNG of one colour."""
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


def north_of(stop: dict[str, Any], metres: float) -> tuple[float, float]:
    """A point ``metres`` due north of the stop."""
    return stop["lat"] + metres / 111_195.0, stop["lon"]


async def deliver_with_proof(
    http: httpx.AsyncClient,
    driver: Driver,
    stop: dict[str, Any],
    where: tuple[float, float],
    parts: dict[str, str],
) -> dict[str, Any]:
    """Arrive at ``stop`` and close it with a photo, a signature and ``parts``, captured at
    ``where``."""
    arrived = await http.post(f"/v1/driver/stops/{stop['id']}/arrive", headers=device(driver.token))
    assert arrived.status_code == 200, arrived.text
    files = [
        ("photo", ("door.png", png("navy"), "image/png")),
        ("signature", ("signature.png", png("white", (120, 40)), "image/png")),
    ]
    data = {"outcome": "delivered", "lat": str(where[0]), "lon": str(where[1]), **parts}
    sent = await http.post(
        f"/v1/driver/stops/{stop['id']}/proof",
        data=data,
        files=files,
        headers={**device(driver.token), "Idempotency-Key": f"proof-{stop['id']}"},
    )
    assert sent.status_code == 201, sent.text
    proof: dict[str, Any] = sent.json()
    return proof


@pytest.mark.browser
async def test_the_dispatcher_sees_a_stops_proof_and_a_far_capture_is_flagged(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    today: Day,
    planner: None,
    pages: Pages,
) -> None:
    """Clicking a delivered stop shows its photo, signature, recipient and notes as text, the
    scans, the time in the organisation's zone and how far from the address it was captured;
    the capture 40 m away is not flagged, the one 900 m away is, and its position is drawn."""
    await plan_and_dispatch(http, tenant, today)
    driver = tenant.drivers[0]
    route = (await http.get("/v1/driver/route", headers=device(driver.token))).json()
    started = await http.post("/v1/driver/route/start", headers=device(driver.token))
    assert started.status_code == 200, started.text
    near, far = sorted(route["stops"], key=lambda stop: stop["seq"])[:2]
    hostile = "<img src=x onerror=alert(1)>"
    await deliver_with_proof(
        http,
        driver,
        near,
        north_of(near, 40),
        {"recipient_name": hostile, "notes": "Behind the <b>bins</b>", "scan": "PKG-1"},
    )
    proof = await deliver_with_proof(http, driver, far, north_of(far, 900), {})

    page = await pages.open(f"{server.url}/dispatch#key={tenant.api_key}")
    await expect(page.locator("#connection")).to_have_attribute(
        "data-state", "live", timeout=WAIT_MS
    )
    await page.locator(f"path.stop[data-stop-id='{near['id']}']").click()
    section = page.locator(f"section.proof[data-stop-id='{near['id']}']")
    await expect(section.locator(".proof-recipient")).to_have_text(hostile, timeout=WAIT_MS)
    await expect(section.locator(".proof-notes")).to_have_text("Behind the <b>bins</b>")
    await expect(section.locator(".proof-scans")).to_have_text("Scanned: PKG-1")
    await expect(section).not_to_have_class("proof proof-far")
    distance = int(await section.get_attribute("data-distance-m") or "-1")
    assert math.isclose(distance, 40, abs_tol=2)
    await expect(section.locator(".proof-where")).to_have_text(
        f"Captured {distance} m from the address"
    )
    images = section.locator("img.proof-image")
    await expect(images).to_have_count(2)  # the photo and the signature
    for n in range(2):
        await expect(images.nth(n)).to_have_js_property("complete", True)
        assert await images.nth(n).evaluate("i => i.naturalWidth") > 0  # served and decoded
    assert await page.locator(".proof img[src='x']").count() == 0  # typed text stayed text

    # The popup with its images may reach past the viewport: its close button and the next
    # stop are clicked as events, wherever they are drawn.
    await page.locator(".leaflet-popup-close-button").dispatch_event("click")
    await expect(page.locator("path.proof-position")).to_have_count(0)  # gone with its popup
    await page.locator(f"path.stop[data-stop-id='{far['id']}']").dispatch_event("click")
    section = page.locator(f"section.proof[data-stop-id='{far['id']}']")
    await expect(section).to_have_class("proof proof-far", timeout=WAIT_MS)
    await expect(section.locator(".proof-where")).to_contain_text(f"more than {LIMIT_M:g} m")
    await expect(page.locator("path.proof-position")).to_have_count(1)
    assert proof["lat"] == pytest.approx(north_of(far, 900)[0])


@pytest.mark.browser
async def test_the_customer_sees_the_delivery_note_and_the_photo_only_where_shared(
    server: LiveServer,
    http: httpx.AsyncClient,
    db: psycopg.AsyncConnection,
    tenant: Tenant,
    today: Day,
    planner: None,
    pages: Pages,
) -> None:
    """A delivered order's page shows the time and the driver's note as text; the proof photo
    appears only once an admin shares proof photos (a dispatcher may not turn it on)."""
    await plan_and_dispatch(http, tenant, today)
    driver = tenant.drivers[0]
    route = (await http.get("/v1/driver/route", headers=device(driver.token))).json()
    assert (await http.post("/v1/driver/route/start", headers=device(driver.token))).is_success
    stop = min(route["stops"], key=lambda s: s["seq"])
    issued = await http.post(f"/v1/orders/{stop['order_id']}/tracking", headers=key(tenant))
    assert issued.status_code == 201, issued.text
    note = "In the <b>shed</b>, code 1234"
    await deliver_with_proof(http, driver, stop, north_of(stop, 5), {"notes": note})

    page = await pages.open(server.url + issued.json()["url"])
    await expect(page.locator("#status")).to_have_attribute(
        "data-status", "delivered", timeout=WAIT_MS
    )
    await expect(page.locator("#status-detail")).to_contain_text("Delivered at")
    await expect(page.locator("#delivery-note")).to_have_text(f"Driver's note: {note}")
    await expect(page.locator("#delivery-photo")).to_be_hidden()
    assert await page.locator("#status b").count() == 0

    wanted = {"photo": True}
    refused = await http.put("/v1/settings/customer-proof", json=wanted, headers=key(tenant))
    assert refused.status_code == 403
    admin = await issue_api_key(db, tenant.org_id, role="admin", name="admin")
    shared = await http.put(
        "/v1/settings/customer-proof", json=wanted, headers={"Authorization": f"Bearer {admin}"}
    )
    assert shared.json() == {"photo": True}
    assert (await http.get("/v1/settings/customer-proof", headers=key(tenant))).json() == wanted

    await page.reload()
    photo = page.locator("#delivery-photo")
    await expect(photo).to_be_visible(timeout=WAIT_MS)
    await expect(photo).to_have_js_property("complete", True)
    assert await photo.evaluate("i => i.naturalWidth") == 64  # the navy PNG, served
    await expect(page.locator("#delivery-note")).to_have_text(f"Driver's note: {note}")
