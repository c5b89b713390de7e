"""The driver app at ``/driver``, driven in the system Chromium with a fake camera and a fake
position: sign-in, the route, stop outcomes with a photo and a signature, and the offline
outbox that replays everything once, in order, when the network is back."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import psycopg
import pytest
import zxingcpp
from PIL import Image
from playwright.async_api import (
    BrowserContext,
    FilePayload,
    Locator,
    Page,
    Route,
    expect,
)
from redis.asyncio import Redis

from app.auth import issue_api_key
from app.settings import Settings
from app.web.pages import content_policy
from realtime.streams import StreamNames
from tests.browser import UNREACHABLE_TILES, WAIT_MS, Pages, launched
from tests.conftest import Driver, LiveServer, Tenant, make_tenant
from tests.days import Day, device, events_of, key, plan_and_dispatch
from tests.helpers import eventually

FAKE_MEDIA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
HERE = (52.5205, 13.4095)
"""Where the fake position puts the phone."""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """This module's settings: map tiles from a port nobody listens on (tests run offline)."""
    return msgspec.structs.replace(settings, tile_url=UNREACHABLE_TILES)


@pytest.fixture
async def phone(chromium: Path) -> AsyncIterator[Pages]:
    """Chromium with a fake camera that needs no permission prompt (a page error fails the test)."""
    async with launched(chromium, *FAKE_MEDIA) as opened:
        yield opened


async def phone_page(phone: Pages) -> tuple[BrowserContext, Page]:
    """A phone-sized page allowed to read its (fake) position and camera."""
    page = await phone.new_page(
        viewport={"width": 412, "height": 900},
        is_mobile=True,
        has_touch=True,
        geolocation={"latitude": HERE[0], "longitude": HERE[1], "accuracy": 8},
        permissions=["geolocation", "camera"],
    )
    return page.context, page


async def driver_route(http: httpx.AsyncClient, driver: Driver) -> dict[str, Any]:
    """The driver's route as the server holds it."""
    response = await http.get("/v1/driver/route", headers=device(driver.token))
    assert response.status_code == 200, response.text
    route: dict[str, Any] = response.json()
    return route


async def first_stop(http: httpx.AsyncClient, driver: Driver) -> dict[str, Any]:
    """The first stop (lowest ``seq``) of the driver's route."""
    stop: dict[str, Any] = min((await driver_route(http, driver))["stops"], key=lambda s: s["seq"])
    return stop


async def give_parcels(http: httpx.AsyncClient, tenant: Tenant, today: Day, count: int) -> None:
    """Give every order of the day ``count`` parcels, coded ``PKG-<ref>-<n>``."""
    for ref, order_id in today.orders.items():
        parcels = [{"barcode": f"PKG-{ref}-{n}"} for n in range(1, count + 1)]
        patched = await http.patch(
            f"/v1/orders/{order_id}", json={"parcels": parcels}, headers=key(tenant)
        )
        assert patched.status_code == 200, patched.text


async def completing_first_stop(
    http: httpx.AsyncClient,
    server: LiveServer,
    driver: Driver,
    phone: Pages,
) -> tuple[dict[str, Any], Page, Locator]:
    """Sign the driver in on a phone, start the route and open the first stop's dialog; the
    stop as the server holds it, the page and the stop's list item."""
    first = await first_stop(http, driver)
    _, page = await phone_page(phone)
    await signed_in(page, server, driver)
    await page.click("#start")
    stop = page.locator(f"#stops li[data-stop-id='{first['id']}']")
    await stop.get_by_role("button", name="Complete…").click()
    return first, page, stop


async def driver_is_at(http: httpx.AsyncClient, tenant: Tenant, driver: Driver, lat: float) -> bool:
    """Whether the server's live position of ``driver`` is at latitude ``lat``."""
    live = (await http.get("/v1/drivers/live", headers=key(tenant))).json()
    return any(p["driver_id"] == driver.id and abs(p["lat"] - lat) < 1e-6 for p in live["drivers"])


async def signed_in(page: Page, server: LiveServer, driver: Driver) -> None:
    """Open the app and sign in by pasting the device token."""
    await page.goto(f"{server.url}/driver")
    await expect(page.locator("#signin")).to_be_visible()
    await page.fill("#token-input", driver.token)
    await page.click("#signin-form button[type=submit]")
    await expect(page.locator("#connection")).to_have_attribute(
        "data-state", "live", timeout=WAIT_MS
    )


async def sign_and_photograph(page: Page, *, photos: int = 1, signature: bool = True) -> None:
    """In the open stop dialog: ``photos`` photos from the (fake) camera and a signature."""
    if photos:
        await photograph(page, photos)
    if signature:
        await sign(page)


async def photograph(page: Page, photos: int) -> None:
    """Take ``photos`` photos with the (fake) camera in the open stop dialog."""
    await page.click("#camera-open")
    await expect(page.locator("#camera")).to_be_visible()
    video = page.locator("#camera-video")

    async def playing() -> bool:
        width: int = await video.evaluate("v => v.videoWidth")
        return width > 0

    await eventually(playing, "the fake camera played")
    for n in range(photos):
        await page.click("#camera-shoot")
        await expect(page.locator("#photos canvas")).to_have_count(n + 1)
    await page.click("#camera-close")


async def sign(page: Page) -> None:
    """Draw a signature on the pad of the open stop dialog."""
    pad = page.locator("#signature")
    box = await pad.bounding_box()
    assert box is not None
    await page.mouse.move(box["x"] + 20, box["y"] + box["height"] / 2)
    await page.mouse.down()
    for step in range(1, 10):
        await page.mouse.move(box["x"] + 20 + step * 25, box["y"] + 20 + (step % 3) * 15)
    await page.mouse.up()


async def delivered_events(redis: Redis, settings: Settings, tenant: Tenant) -> list[str]:
    names = StreamNames(prefix=settings.redis_prefix, shards=settings.ping_shards)
    return [
        kind for kind in await events_of(redis, names, tenant.org_id) if kind == "StopDelivered"
    ]


async def test_the_page_the_worker_and_the_manifest_are_served_for_an_installable_app(
    http: httpx.AsyncClient,
) -> None:
    """``/driver`` is a strict HTML shell, its worker may control it, and the manifest is valid."""
    page = await http.get("/driver")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == content_policy(UNREACHABLE_TILES)
    assert '<link rel="manifest" href="/static/driver/manifest.json">' in page.text
    assert "<script>" not in page.text  # no inline script
    worker = await http.get("/driver/sw.js")
    assert worker.status_code == 200
    assert worker.headers["content-type"].startswith("text/javascript")
    assert worker.headers["service-worker-allowed"] == "/driver"
    manifest = (await http.get("/static/driver/manifest.json")).json()
    assert manifest["start_url"] == "/driver"
    assert manifest["display"] == "standalone"
    for icon in manifest["icons"]:
        assert (await http.get(icon["src"])).status_code == 200


@pytest.mark.browser
async def test_a_driver_signs_in_starts_arrives_photographs_signs_and_completes_a_stop(
    server: LiveServer,
    http: httpx.AsyncClient,
    redis: Redis,
    tenant: Tenant,
    today: Day,
    planner: None,
    phone: Pages,
) -> None:
    """The whole stop on a phone: the route shows next stop first, the phone's position reaches
    the server while the route runs, and the server ends with the stop delivered once."""
    await plan_and_dispatch(http, tenant, today)
    driver = tenant.drivers[0]
    route = await driver_route(http, driver)
    first = min(route["stops"], key=lambda stop: stop["seq"])
    _, page = await phone_page(phone)
    await signed_in(page, server, driver)

    stops = page.locator("#stops li.stop")
    await expect(stops).to_have_count(len(route["stops"]))
    await expect(stops.first).to_have_class("stop next")
    await expect(stops.first).to_contain_text(first["address"])
    # Times in the organisation's zone (UTC here), not the phone's (BROWSER_ZONE).
    await expect(page.locator("#zone")).to_have_text("UTC")
    await expect(page.locator("#driver-name")).to_have_text("driver 0")
    window = first["windows"][0]
    await expect(stops.first).to_contain_text(
        f"Window {_utc(window['start'])}–{_utc(window['end'])}"
    )
    nav = stops.first.locator("a.nav-link")
    there = f"{first['lat']},{first['lon']}"
    label = f"Customer%20{first['order_ref']}"
    await expect(nav).to_have_attribute("href", f"geo:{there}?q={there}({label})")

    await page.click("#start")
    await eventually(lambda: _route_started(http, driver), "the route started")
    await eventually(
        lambda: driver_is_at(http, tenant, driver, HERE[0]),
        "the phone's position reached the server",
    )

    await stops.first.get_by_role("button", name="Arrived").click()
    await eventually(lambda: _stop_is(http, driver, first["id"], "arrived"), "arrived")
    await stops.first.get_by_role("button", name="Complete…").click()
    await expect(page.locator("#stop-dialog")).to_be_visible()
    await sign_and_photograph(page)
    await page.fill("#recipient", "Ms <b>Neighbour</b>")
    await page.click("#stop-submit")
    await eventually(lambda: _stop_is(http, driver, first["id"], "delivered"), "delivered")
    assert await delivered_events(redis, server.settings, tenant) == ["StopDelivered"]
    await expect(page.locator("#queued")).to_be_hidden()
    [proof] = await proofs_of(http, tenant, first["order_id"])
    assert proof["outcome"] == "delivered"
    assert proof["recipient_name"] == "Ms <b>Neighbour</b>"  # as typed; pages show it as text
    assert len(proof["photos"]) == 1
    assert proof["photos"][0]["width"] > 0
    assert proof["signature_url"] is not None
    assert abs(proof["lat"] - HERE[0]) < 1e-6
    assert proof["device_time"] is not None


@pytest.mark.browser
async def test_offline_outcomes_and_positions_reach_the_server_once_when_the_network_returns(
    server: LiveServer,
    http: httpx.AsyncClient,
    redis: Redis,
    tenant: Tenant,
    today: Day,
    planner: None,
    phone: Pages,
) -> None:
    """With the network cut the driver arrives, photographs, signs and completes; the list
    shows it at once as waiting. Back online, the outbox replays it in order, and a completion
    whose answer was lost on the way back is not applied twice: one delivery on the server."""
    await plan_and_dispatch(http, tenant, today)
    driver = tenant.drivers[0]
    first = await first_stop(http, driver)
    context, page = await phone_page(phone)
    await signed_in(page, server, driver)
    await page.click("#start")
    await eventually(lambda: _route_started(http, driver), "the route started")

    await context.set_offline(True)
    await expect(page.locator("#connection")).to_have_attribute("data-state", "offline")
    away = (HERE[0] + 0.01, HERE[1] + 0.01)
    await context.set_geolocation({"latitude": away[0], "longitude": away[1], "accuracy": 8})
    stop = page.locator(f"#stops li[data-stop-id='{first['id']}']")
    await stop.get_by_role("button", name="Arrived").click()
    await expect(stop).to_have_attribute("data-status", "arrived")
    await stop.get_by_role("button", name="Complete…").click()
    await sign_and_photograph(page)
    await page.fill("#note", "Left with the neighbour")
    await page.click("#stop-submit")
    await expect(stop).to_have_attribute("data-status", "delivered")
    await expect(stop).to_contain_text("waiting to send")
    await expect(page.locator("#queued")).to_be_visible()
    assert await _stop_is(http, driver, first["id"], "pending")  # nothing reached the server

    lost: list[str] = []

    async def lose_the_first_answer(intercepted: Route) -> None:
        """Forward the completion to the server, but drop its answer the first time."""
        if lost:
            await intercepted.continue_()
            return
        await intercepted.fetch()  # the server completes the stop
        lost.append(intercepted.request.headers["idempotency-key"])
        await intercepted.abort("connectionreset")

    await page.route("**/v1/driver/stops/*/proof", lose_the_first_answer)
    await context.set_offline(False)
    await eventually(lambda: _stop_is(http, driver, first["id"], "delivered"), "delivered")
    await expect(page.locator("#queued")).to_be_hidden(timeout=WAIT_MS)
    assert len(lost) == 1
    assert await delivered_events(redis, server.settings, tenant) == ["StopDelivered"]
    [proof] = await proofs_of(http, tenant, first["order_id"])
    assert proof["notes"] == "Left with the neighbour"
    assert len(proof["photos"]) == 1
    assert proof["signature_url"] is not None
    assert abs(proof["lat"] - away[0]) < 1e-6  # where the phone was, offline
    await eventually(
        lambda: driver_is_at(http, tenant, driver, away[0]),
        "the position taken offline reached the server",
    )
    await expect(stop).not_to_contain_text("waiting to send")


@pytest.mark.browser
async def test_a_driver_signs_in_by_scanning_the_qr_code_the_dispatcher_shows(
    server: LiveServer,
    http: httpx.AsyncClient,
    db: psycopg.AsyncConnection,
    tenant: Tenant,
    phone: Pages,
) -> None:
    """The QR code decodes to the app's URL with a new device token in the fragment; opening
    it signs the phone in and takes the token out of the address bar; replays show no secret,
    an integration key may not ask and another organisation's driver is 404."""
    driver = tenant.drivers[1]
    path = f"/v1/drivers/{driver.id}/devices/qr"
    issued = await http.post(
        path, json={"name": "van 3 phone"}, headers={**key(tenant), "Idempotency-Key": "qr-1"}
    )
    assert issued.status_code == 201, issued.text
    assert issued.headers["cache-control"] == "no-store"
    body = issued.json()
    assert body["url"].startswith(f"{server.url}/driver#token=lmd_")
    _, page = await phone_page(phone)
    await page.set_content(f'<img id="qr" src="data:image/svg+xml;base64,{_b64(body["svg"])}">')
    shot = await page.locator("#qr").screenshot()
    [decoded] = zxingcpp.read_barcodes(Image.open(io.BytesIO(shot)))
    assert decoded.text == body["url"]

    await page.goto(decoded.text)
    await expect(page.locator("#connection")).to_have_attribute(
        "data-state", "live", timeout=WAIT_MS
    )
    assert "token" not in page.url
    await expect(page.locator("#route-title")).to_have_text("No route yet")

    replay = await http.post(
        path, json={"name": "van 3 phone"}, headers={**key(tenant), "Idempotency-Key": "qr-1"}
    )
    assert replay.status_code == 201
    assert (replay.json()["url"], replay.json()["svg"]) == (None, None)
    integration = await issue_api_key(db, tenant.org_id, role="integration", name="shop")
    refused = await http.post(path, headers={"Authorization": f"Bearer {integration}"})
    assert refused.status_code == 403
    other = await make_tenant(db, drivers=0)
    assert (await http.post(path, headers=key(other))).status_code == 404


@pytest.mark.browser
async def test_the_dispatcher_page_shows_a_new_code_that_signs_the_phone_in(
    server: LiveServer,
    tenant: Tenant,
    phone: Pages,
) -> None:
    """On ``/driver/qr`` a dispatcher picks a driver and gets a code, shown with the URL; the
    phone that scans it is signed in as that driver, and the key left the address bar."""
    _, desk = await phone_page(phone)
    await desk.goto(f"{server.url}/driver/qr#key={tenant.api_key}")
    assert "key=" not in desk.url
    await desk.select_option("#driver-select", label="driver 1")
    await desk.click("#qr-form button[type=submit]")
    image = desk.locator("#qr-image")
    await expect(image).to_be_visible(timeout=WAIT_MS)
    await expect(desk.locator("#qr-driver")).to_have_text("driver 1")
    [decoded] = zxingcpp.read_barcodes(Image.open(io.BytesIO(await image.screenshot())))
    await expect(desk.locator("#qr-url")).to_have_text(decoded.text)

    _, page = await phone_page(phone)
    await page.goto(decoded.text)
    await expect(page.locator("#connection")).to_have_attribute(
        "data-state", "live", timeout=WAIT_MS
    )
    await expect(page.locator("#driver-name")).to_have_text("driver 1")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.browser
async def test_a_route_change_from_dispatch_shows_at_once_highlighted(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    today: Day,
    planner: None,
    phone: Pages,
) -> None:
    """A stop dispatch moves onto the driver's route appears without a reload, highlighted,
    with a banner saying the route changed."""
    await plan_and_dispatch(http, tenant, today)
    mine = await driver_route(http, tenant.drivers[0])
    theirs = await driver_route(http, tenant.drivers[1])
    _, page = await phone_page(phone)
    await signed_in(page, server, tenant.drivers[0])
    stops = page.locator("#stops li.stop")
    await expect(stops).to_have_count(len(mine["stops"]))
    await expect(page.locator("#banner")).to_be_hidden()

    moving = theirs["stops"][0]
    moved = await http.post(
        f"/v1/stops/{moving['id']}/move", json={"route_id": mine["id"]}, headers=key(tenant)
    )
    assert moved.status_code == 200, moved.text
    await expect(stops).to_have_count(len(mine["stops"]) + 1, timeout=WAIT_MS)
    await expect(page.locator("#banner")).to_contain_text("Dispatch changed your route")
    changed = page.locator("#stops li.stop.changed")
    await expect(changed.filter(has_text=moving["address"])).to_have_count(1)


@pytest.mark.browser
async def test_instructions_the_customer_leaves_reach_the_stop_at_once_as_text(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    today: Day,
    planner: None,
    phone: Pages,
) -> None:
    """A gate code and a note typed on the tracking page show on the driver's stop without a
    reload, as the customer typed them and never as markup."""
    await plan_and_dispatch(http, tenant, today)
    driver = tenant.drivers[0]
    first = await first_stop(http, driver)
    _, page = await phone_page(phone)
    await signed_in(page, server, driver)
    link = await http.post(f"/v1/orders/{first['order_id']}/tracking", headers=key(tenant))
    token = link.json()["url"].rsplit("/", 1)[-1]
    hostile = '<img src=x onerror="document.title=1">'
    given = {"gate_code": "4711#", "note": hostile, "safe_place_allowed": False}
    left = await http.post(f"/v1/track/{token}/instructions", json=given)
    assert left.status_code == 200, left.text
    stop = page.locator(f"#stops li[data-stop-id='{first['id']}'] .stop-instructions")
    await expect(stop).to_contain_text("Gate code: 4711#", timeout=WAIT_MS)
    await expect(stop).to_contain_text(f"Customer: {hostile}")
    await expect(stop).to_contain_text("Never leave without a signature")
    assert await page.locator("#stops img").count() == 0


@pytest.mark.browser
async def test_scans_tick_off_the_orders_parcels_and_the_server_reconciles_them(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    today: Day,
    planner: None,
    phone: Pages,
) -> None:
    """Typed codes tick off the order's parcels and flag one not on it; the proof carries the
    scans and the ID check, and the server finds the same parcel missing and the same one
    unexpected."""
    await give_parcels(http, tenant, today, 2)
    await plan_and_dispatch(http, tenant, today)
    driver = tenant.drivers[0]
    first, page, _ = await completing_first_stop(http, server, driver, phone)
    one, two = first["barcodes"]
    await expect(page.locator("#scan-summary")).to_have_text("0 of 2 parcels scanned")
    for code in (one, "STRAY-9"):
        await page.fill("#scan-input", code)
        await page.press("#scan-input", "Enter")
    await expect(page.locator("#scan-summary")).to_have_text("1 of 2 parcels scanned")
    await expect(page.locator(f"#scans li.scanned[data-code='{one}']")).to_have_count(1)
    await expect(page.locator(f"#scans li.missing[data-code='{two}']")).to_have_count(1)
    await expect(page.locator("#scans li.unexpected[data-code='STRAY-9']")).to_have_count(1)
    await page.check("#age-verified")
    await page.click("#stop-submit")
    await eventually(lambda: _stop_is(http, driver, first["id"], "delivered"), "delivered")
    [proof] = await proofs_of(http, tenant, first["order_id"])
    assert proof["scans"] == [one, "STRAY-9"]
    assert (proof["missing_parcels"], proof["unexpected_parcels"]) == ([two], ["STRAY-9"])
    assert proof["age_verified"] is True


@pytest.mark.browser
async def test_a_photo_of_a_label_is_read_by_the_server_where_the_phone_cannot_scan(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    today: Day,
    planner: None,
    phone: Pages,
) -> None:
    """Without a barcode reader in the browser, a photo of the parcel's label goes up as a
    label photo and the server's reading of it counts as the scan."""
    await give_parcels(http, tenant, today, 1)
    await plan_and_dispatch(http, tenant, today)
    driver = tenant.drivers[0]
    first, page, _ = await completing_first_stop(http, server, driver, phone)
    [code] = first["barcodes"]
    label = io.BytesIO()
    image = zxingcpp.write_barcode_to_image(zxingcpp.create_barcode(code, zxingcpp.Code128))
    Image.fromarray(image).resize((600, 200)).save(label, format="PNG")
    payload: FilePayload = {
        "name": "label.png",
        "mimeType": "image/png",
        "buffer": label.getvalue(),
    }
    await page.set_input_files("#label-input", files=[payload])
    await expect(page.locator("#labels")).to_have_text("1 label photo(s): read by the server")
    await page.click("#stop-submit")
    await eventually(lambda: _stop_is(http, driver, first["id"], "delivered"), "delivered")
    [proof] = await proofs_of(http, tenant, first["order_id"])
    assert proof["decoded_scans"] == [code]
    assert proof["missing_parcels"] == []


@pytest.mark.browser
async def test_a_proof_missing_what_the_order_requires_comes_back_to_be_completed(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    today: Day,
    planner: None,
    phone: Pages,
) -> None:
    """With photos required, a signed completion without one is refused with the reason; the
    stop stays open, reopening it brings the signature and the note back, and adding a photo
    completes it with one proof."""
    required = {"photo": True, "signature": True}
    put = await http.put("/v1/settings/proof-requirements", json=required, headers=key(tenant))
    assert put.status_code == 200, put.text
    await plan_and_dispatch(http, tenant, today)
    driver = tenant.drivers[0]
    first, page, stop = await completing_first_stop(http, server, driver, phone)
    await sign_and_photograph(page, photos=0)
    await page.fill("#note", "Porch")
    await page.click("#stop-submit")
    await expect(page.locator("#banner")).to_contain_text("was refused", timeout=WAIT_MS)
    await expect(page.locator("#banner")).to_contain_text("photo")
    await expect(stop).to_have_attribute("data-status", "pending")
    assert await proofs_of(http, tenant, first["order_id"]) == []

    await stop.get_by_role("button", name="Complete…").click()
    await expect(page.locator("#stop-error")).to_contain_text("Refused")
    await expect(page.locator("#note")).to_have_value("Porch")
    await sign_and_photograph(page, signature=False)
    await page.click("#stop-submit")
    await eventually(lambda: _stop_is(http, driver, first["id"], "delivered"), "delivered")
    [proof] = await proofs_of(http, tenant, first["order_id"])
    assert len(proof["photos"]) == 1
    assert proof["signature_url"] is not None  # the signature drawn before the refusal
    assert proof["notes"] == "Porch"


@pytest.mark.browser
async def test_a_driver_fails_a_stop_with_a_reason_code_and_a_note(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    today: Day,
    planner: None,
    phone: Pages,
) -> None:
    """*Not delivered* with a reason sends the failure code and the note; "other" without a
    note is held back in the dialog with a message."""
    await plan_and_dispatch(http, tenant, today)
    driver = tenant.drivers[0]
    first, page, _ = await completing_first_stop(http, server, driver, phone)
    await page.check("input[name=outcome][value=fail]")
    await page.select_option("#reason", "other")
    await page.click("#stop-submit")
    await expect(page.locator("#stop-error")).to_have_text("Say in the note what went wrong.")
    await page.select_option("#reason", "not_home")
    await page.fill("#note", "Rang twice, card left")
    await page.click("#stop-submit")
    await eventually(lambda: _stop_is(http, driver, first["id"], "failed"), "failed")
    [proof] = await proofs_of(http, tenant, first["order_id"])
    assert (proof["outcome"], proof["failure_code"]) == ("failed", "not_home")
    assert proof["failure_text"] == "Rang twice, card left"


@pytest.mark.browser
async def test_the_installed_app_opens_offline_with_the_last_route(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    today: Day,
    planner: None,
    phone: Pages,
) -> None:
    """Once its service worker runs, the app reloads with no network from its own copy and
    shows the route it last had."""
    await plan_and_dispatch(http, tenant, today)
    driver = tenant.drivers[0]
    route = await driver_route(http, driver)
    context, page = await phone_page(phone)
    await signed_in(page, server, driver)
    await expect(page.locator("#stops li.stop")).to_have_count(len(route["stops"]))
    scope = await page.evaluate("navigator.serviceWorker.ready.then(r => r.scope)")
    assert scope == f"{server.url}/driver"
    await page.reload()  # now under the worker's control, which copies what the page loads
    assert await page.evaluate("navigator.serviceWorker.controller !== null")
    await expect(page.locator("#stops li.stop")).to_have_count(len(route["stops"]))

    await context.set_offline(True)
    await page.reload()
    await expect(page.locator("#route-title")).to_have_text(f"Route {route['id']} · {route['day']}")
    await expect(page.locator("#stops li.stop")).to_have_count(len(route["stops"]))
    await expect(page.locator("#connection")).to_have_attribute("data-state", "offline")


async def proofs_of(http: httpx.AsyncClient, tenant: Tenant, order_id: int) -> list[Any]:
    """Every proof the server holds for ``order_id``."""
    found = await http.get("/v1/proofs", params={"order_id": order_id}, headers=key(tenant))
    assert found.status_code == 200, found.text
    proofs: list[Any] = found.json()["proofs"]
    return proofs


def _utc(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%H:%M")


async def _route_started(http: httpx.AsyncClient, driver: Driver) -> bool:
    status: str = (await driver_route(http, driver))["status"]
    return status == "started"


async def _stop_is(http: httpx.AsyncClient, driver: Driver, stop_id: int, status: str) -> bool:
    stops: list[dict[str, Any]] = (await driver_route(http, driver))["stops"]
    return any(stop["id"] == stop_id and stop["status"] == status for stop in stops)
