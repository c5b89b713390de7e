"""The dispatcher's live map and the customer's tracking page, driven in the system Chromium.

The server under test never reaches the internet: map tiles point at a closed local port, so
these tests also show that the pages draw everything without a map background.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import msgspec
import psycopg
import pytest
from playwright.async_api import WebSocketRoute, expect
from redis.asyncio import Redis

import app
from app.passwords import hash_password
from app.settings import Settings
from app.web.pages import content_policy
from realtime.events import emit
from realtime.streams import StreamNames
from schemas.eta import ArrivalWindow, RunningLate
from schemas.events import DeliveryUpdate
from store import users
from tests.browser import BROWSER_ZONE, UNREACHABLE_TILES, WAIT_MS, Pages
from tests.conftest import Driver, LiveServer, Tenant, make_tenant
from tests.days import Day, device, key, moved_window, plan_and_dispatch

ORG_ZONE = "Asia/Kolkata"
"""An organisation zone for the zone test: UTC+05:30 all year, far from the browser's."""
WEB = Path(app.__file__).parent / "web"
WAIT_S = WAIT_MS / 1000


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """This module's settings: map tiles from a port nobody listens on (tests run offline)."""
    return msgspec.structs.replace(settings, tile_url=UNREACHABLE_TILES)


async def ping(
    http: httpx.AsyncClient, driver: Driver, lat: float, lon: float, at: datetime
) -> None:
    """One fix of ``driver`` through the native ingest API."""
    body = {"pings": [{"time": at.isoformat(), "lat": lat, "lon": lon, "accuracy_m": 5.0}]}
    sent = await http.post("/v1/pings", json=body, headers=device(driver.token))
    assert sent.json() == {"accepted": 1, "rejected": []}, sent.text


async def started_route(http: httpx.AsyncClient, driver: Driver) -> dict[str, Any]:
    """The driver's dispatched route, started."""
    route: dict[str, Any] = (
        await http.get("/v1/driver/route", headers=device(driver.token))
    ).json()
    started = await http.post("/v1/driver/route/start", headers=device(driver.token))
    assert started.status_code == 200, started.text
    return route


async def tracking_url(http: httpx.AsyncClient, tenant: Tenant, order_id: int) -> str:
    """The path of a new tracking page for ``order_id``."""
    issued = await http.post(f"/v1/orders/{order_id}/tracking", headers=key(tenant))
    assert issued.status_code == 201, issued.text
    url: str = issued.json()["url"]
    return url


def clock(iso: str, zone: str = "UTC") -> str:
    """An instant as the pages show it: 24-hour time in ``zone`` (the organisation's)."""
    return datetime.fromisoformat(iso).astimezone(ZoneInfo(zone)).strftime("%H:%M")


def late_window(stop: dict[str, Any], late_s: int) -> ArrivalWindow:
    """A window for ``stop`` whose upper bound ends ``late_s`` after the customer's window."""
    end_s = int(datetime.fromisoformat(stop["windows"][-1]["end"]).timestamp())
    return ArrivalWindow(
        stop_id=stop["id"],
        order_id=stop["order_id"],
        likely_epoch_s=end_s + late_s - 900,
        lower_epoch_s=end_s + late_s - 1500,
        upper_epoch_s=end_s + late_s,
        computed_epoch_s=int(datetime.now(UTC).timestamp()),
        late_s=late_s,
    )


async def running_late(
    redis: Redis, server: LiveServer, tenant: Tenant, route: dict[str, Any], stop: dict[str, Any]
) -> None:
    """Emit what the ETA worker emits when ``stop`` will be reached 10 minutes after its window
    (likely; 25 at the window's late end)."""
    late = late_window(stop, 1500)
    detail = RunningLate(
        driver_id=route["driver_id"],
        route_id=route["id"],
        route_version=route["version"],
        stop_id=stop["id"],
        order_id=stop["order_id"],
        at_epoch_s=late.computed_epoch_s,
        window=late,
        customer_end_epoch_s=late.upper_epoch_s - 1500,
    )
    names = StreamNames(prefix=server.settings.redis_prefix, shards=server.settings.ping_shards)
    await emit(
        redis, names, DeliveryUpdate(org_id=tenant.org_id, at=datetime.now(UTC), detail=detail)
    )


async def window_moved(
    redis: Redis,
    server: LiveServer,
    tenant: Tenant,
    route: dict[str, Any],
    stop: dict[str, Any],
    late_s: int,
) -> None:
    """Emit an ``eta_changed`` moving ``stop``'s window to end ``late_s`` after the customer's
    (its likely arrival 15 minutes earlier than that end)."""
    names = StreamNames(prefix=server.settings.redis_prefix, shards=server.settings.ping_shards)
    await emit(redis, names, moved_window(tenant.org_id, route, stop, late_window(stop, late_s)))


async def test_pages_and_their_assets_are_served_without_any_credential(
    http: httpx.AsyncClient,
) -> None:
    """Both pages answer HTML with the tile setting; Leaflet and all our modules are served here."""
    for path in ("/dispatch", "/t/x"):
        page = await http.get(path)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert f'data-tile-url="{UNREACHABLE_TILES}"' in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "/static/leaflet/leaflet.js" in page.text
    assert 'data-token="x"' in (await http.get("/t/x")).text
    ours = sorted(
        f"/static/{path.relative_to(WEB)}"
        for path in WEB.rglob("*.*")
        if path.suffix in (".js", ".css")
    )
    assert "/static/dispatch/fleet.js" in ours  # the modules dispatch/main.js imports
    for asset in (
        "/static/leaflet/leaflet.js",
        "/static/leaflet/leaflet.css",
        "/static/leaflet/images/layers.png",
        *ours,
    ):
        response = await http.get(asset)
        assert response.status_code == 200, asset
        if asset.endswith(".js"):
            # Browsers refuse to run a module served under any other type.
            assert response.headers["content-type"].split(";")[0] in (
                "text/javascript",
                "application/javascript",
            )
    assert (await http.get("/static/nothing.js")).status_code == 404


def test_the_content_policy_admits_exactly_the_configured_tile_server() -> None:
    """Images may come from the tile server's origin, a {s} subdomain as a wildcard, or none."""
    osm = content_policy("https://tile.openstreetmap.org/{z}/{x}/{y}.png")
    assert "img-src 'self' data: https://tile.openstreetmap.org;" in osm
    subdomains = content_policy("https://{s}.tiles.example.com/{z}/{x}/{y}.png")
    assert "img-src 'self' data: https://*.tiles.example.com;" in subdomains
    assert "img-src 'self' data:;" in content_policy("off")
    assert "img-src 'self' data:;" in content_policy("/tiles/{z}/{x}/{y}.png")


@pytest.mark.browser
async def test_the_dispatcher_page_asks_for_a_key_until_one_is_accepted(
    server: LiveServer, tenant: Tenant, pages: Pages
) -> None:
    """A refused key brings back the key form with a reason; a pasted good key opens the map."""
    page = await pages.open(f"{server.url}/dispatch#key=lmk_not_a_key")
    await expect(page.locator("#key-error")).to_contain_text("not accepted", timeout=WAIT_MS)
    assert await page.evaluate("sessionStorage.length") == 0
    await page.locator("#key-input").fill(tenant.api_key)
    await page.locator("#key-form button").click()
    await expect(page.locator("#connection")).to_have_attribute(
        "data-state", "live", timeout=WAIT_MS
    )
    await expect(page.locator("#key-gate")).to_be_hidden()


@pytest.mark.browser
async def test_a_dispatcher_signs_in_with_a_password_and_signs_out(
    server: LiveServer, http: httpx.AsyncClient, db: psycopg.AsyncConnection, tenant: Tenant,
    pages: Pages,
) -> None:  # fmt: skip
    """Without a key the page asks to sign in; a wrong password says so; the right one opens
    the map (its socket by a ticket asked for with the cookie and the CSRF token), a reload stays
    signed in, the phone sign-in page issues a code with the session, and signing out ends the
    session on the server."""
    email = f"dispatch-{tenant.org_id}@example.com"
    await users.create(
        db, tenant.org_id, email=email, name="Dana", role="dispatcher",
        password_hash=await hash_password("a good password"),
    )  # fmt: skip
    page = await pages.open(f"{server.url}/dispatch")
    await expect(page.locator("#sign-in-form")).to_be_visible(timeout=WAIT_MS)
    await page.locator("#email-input").fill(email)
    await page.locator("#password-input").fill("not the password")
    await page.locator("#sign-in-form button").click()
    await expect(page.locator("#sign-in-error")).to_contain_text("Wrong email or password")
    await page.locator("#password-input").fill("a good password")
    await page.locator("#sign-in-form button").click()
    await expect(page.locator("#connection")).to_have_attribute(
        "data-state", "live", timeout=WAIT_MS
    )
    assert await page.evaluate("sessionStorage.length") == 0
    assert await page.evaluate("document.cookie") == ""  # HttpOnly: no script reads it
    await page.reload()
    await expect(page.locator("#connection")).to_have_attribute(
        "data-state", "live", timeout=WAIT_MS
    )
    cookies = await page.context.cookies()
    token = next(c["value"] for c in cookies if c["name"] == "lastmile_session")
    desk = await page.context.new_page()
    await desk.goto(f"{server.url}/driver/qr")
    await desk.select_option("#driver-select", label="driver 1", timeout=WAIT_MS)
    await desk.click("#qr-form button[type=submit]")
    await expect(desk.locator("#qr-image")).to_be_visible(timeout=WAIT_MS)
    await desk.close()
    await expect(page.locator("#forget-key")).to_have_text("Sign out")
    await page.locator("#forget-key").click()
    await expect(page.locator("#sign-in-form")).to_be_visible(timeout=WAIT_MS)
    refused = await http.get("/v1/orders", headers={"cookie": f"lastmile_session={token}"})
    assert refused.status_code == 401


@pytest.mark.browser
async def test_the_dispatcher_map_draws_the_day_and_moves_a_driver_on_a_ping(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    today: Day,
    planner: None,
    pages: Pages,
) -> None:
    """After the snapshot every route and stop is drawn; a ping moves that driver's marker; the
    depot is drawn, a driver on the road is joined to their next stop, and a long customer name
    never hides the next stop's ETA."""
    for order_id in today.orders.values():
        long_name = {"customer_name": "Bartholomew Maximilian Featherstonehaugh-Worthington III"}
        changed = await http.patch(f"/v1/orders/{order_id}", json=long_name, headers=key(tenant))
        assert changed.status_code == 200, changed.text
    await plan_and_dispatch(http, tenant, today)
    routes = (await http.get("/v1/routes", headers=key(tenant))).json()["routes"]
    assert len(routes) == 2
    driver = tenant.drivers[0]
    await ping(http, driver, 52.5, 13.37, datetime.now(UTC) - timedelta(seconds=30))

    page = await pages.open(f"{server.url}/dispatch#key={tenant.api_key}")
    await expect(page.locator("#connection")).to_have_attribute(
        "data-state", "live", timeout=WAIT_MS
    )
    assert "key=" not in page.url  # the key left the address bar
    lines = page.locator("path.route-line")
    await expect(lines).to_have_count(2)
    drawn_routes = await lines.evaluate_all("paths => paths.map(p => Number(p.dataset.routeId))")
    assert sorted(drawn_routes) == sorted(r["id"] for r in routes)
    stops = page.locator("path.stop")
    drawn_stops = await stops.evaluate_all("paths => paths.map(p => Number(p.dataset.stopId))")
    assert sorted(drawn_stops) == sorted(s["id"] for r in routes for s in r["stops"])
    await expect(page.locator("path.stop.stop-pending")).to_have_count(len(drawn_stops))

    marker = page.locator(f".driver-marker[data-driver-id='{driver.id}']")
    listed = page.locator(f"li.driver[data-driver-id='{driver.id}']")
    await expect(marker).to_have_attribute("data-lat", "52.5")
    await expect(listed).to_contain_text("driver 0")  # names come from GET /v1/drivers
    before = await marker.bounding_box()

    await ping(http, driver, 52.53, 13.42, datetime.now(UTC))
    await expect(marker).to_have_attribute("data-lat", "52.53", timeout=WAIT_MS)
    await expect(marker).to_have_attribute("data-lon", "13.42")
    await expect(listed).to_have_attribute("data-lat", "52.53")
    after = await marker.bounding_box()
    assert before is not None
    assert after is not None
    # North-east on the map: right and up on the screen.
    assert after["x"] > before["x"]
    assert after["y"] < before["y"]

    # The depot is drawn; a started route's driver is joined to their next stop.
    await expect(page.locator(".depot-marker")).to_have_count(1)
    await expect(page.locator("path.route-lead")).to_have_count(0)  # not started yet
    route = await started_route(http, driver)
    await ping(http, driver, 52.531, 13.421, datetime.now(UTC))
    lead = page.locator(f"path.route-lead[data-driver-id='{driver.id}']")
    await expect(lead).to_have_attribute(
        "data-stop-id", str(min(route["stops"], key=lambda s: s["seq"])["id"]), timeout=WAIT_MS
    )
    # The next stop's ETA is never cut off by a long name: it ends inside the list item.
    eta_box = await listed.locator(".driver-next .eta").bounding_box()
    item_box = await listed.bounding_box()
    assert eta_box is not None
    assert item_box is not None
    assert eta_box["x"] + eta_box["width"] <= item_box["x"] + item_box["width"]


@pytest.mark.browser
async def test_the_customer_sees_the_arrival_window_move_without_reloading(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    today: Day,
    planner: None,
    eta_worker: None,
    pages: Pages,
) -> None:
    """A driver far away and then much nearer moves the window the open page shows."""
    await plan_and_dispatch(http, tenant, today)
    driver = tenant.drivers[0]
    route = await started_route(http, driver)
    stop = route["stops"][0]
    url = await tracking_url(http, tenant, stop["order_id"])

    page = await pages.open(server.url + url)
    await expect(page.locator("#order-ref")).to_have_text(stop["order_ref"], timeout=WAIT_MS)
    await expect(page.locator("#live")).to_have_attribute("data-state", "live", timeout=WAIT_MS)
    now = datetime.now(UTC)
    # About 22 km north of the stop: an hour's drive.
    await ping(http, driver, stop["lat"] + 0.2, stop["lon"], now - timedelta(seconds=60))
    live = page.locator("#eta[data-kind='live']")
    await expect(live).to_be_visible(timeout=WAIT_MS)
    shown = page.locator("#eta-window")
    far = await shown.text_content()
    far_latest = await live.get_attribute("data-latest")
    assert far is not None
    assert far_latest is not None
    # The page shows the organisation's time (UTC), not the browser's own zone.
    assert clock(far_latest) in far

    # 550 m from the stop a minute later: the window moves by far more than the threshold.
    await ping(http, driver, stop["lat"] + 0.005, stop["lon"], now)
    await expect(shown).not_to_have_text(far, timeout=WAIT_MS)
    near_latest = await live.get_attribute("data-latest")
    assert near_latest is not None
    assert datetime.fromisoformat(near_latest) < datetime.fromisoformat(far_latest)
    await expect(shown).to_contain_text(clock(near_latest))
    assert page.url == server.url + url  # no reload, no navigation


@pytest.mark.browser
async def test_the_customer_page_ends_on_delivered_and_refuses_unknown_links(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    today: Day,
    planner: None,
    pages: Pages,
) -> None:
    """Delivering the stop turns the open page into its end state; a bad link says so."""
    await plan_and_dispatch(http, tenant, today)
    driver = tenant.drivers[0]
    route = await started_route(http, driver)
    stop = route["stops"][1]
    page = await pages.open(server.url + await tracking_url(http, tenant, stop["order_id"]))
    status = page.locator("#status")
    await expect(status).to_have_attribute("data-status", "out_for_delivery", timeout=WAIT_MS)
    await expect(page.locator("#status-detail")).to_contain_text("1 stop before yours")

    delivered = await http.post(
        f"/v1/driver/stops/{stop['id']}/deliver", headers=device(driver.token)
    )
    assert delivered.status_code == 200, delivered.text
    await expect(status).to_have_attribute("data-status", "delivered", timeout=WAIT_MS)
    await expect(page.locator("#status-title")).to_have_text("Delivered")
    await expect(page.locator("#eta")).to_be_hidden()
    await expect(page.locator("#live")).to_have_attribute("data-state", "ended")
    await page.wait_for_function("() => window.lastmileTrack.listening === false")

    unknown = await pages.open(f"{server.url}/t/{'x' * 24}")
    await expect(unknown.locator("#status")).to_have_attribute("data-status", "unknown")
    await expect(unknown.locator("#status-title")).to_have_text(
        "This link is unknown or has expired"
    )


@pytest.mark.browser
async def test_the_dispatcher_sees_late_and_failed_stops_as_alerts(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    today: Day,
    planner: None,
    redis: Redis,
    pages: Pages,
) -> None:
    """A running_late event marks its stop late; a failed stop turns red; both are alerts; a
    window whose late end alone passes the customer's marks the stop at risk, not late."""
    await plan_and_dispatch(http, tenant, today)
    driver = tenant.drivers[0]
    route = await started_route(http, driver)
    late, failed = route["stops"][0], route["stops"][1]
    page = await pages.open(f"{server.url}/dispatch#key={tenant.api_key}")
    await expect(page.locator("#connection")).to_have_attribute(
        "data-state", "live", timeout=WAIT_MS
    )
    late_stop = page.locator(f"path.stop[data-stop-id='{late['id']}']")
    await expect(late_stop).to_have_attribute("data-late", "false")

    await running_late(redis, server, tenant, route, late)
    await expect(late_stop).to_have_attribute("data-late", "true", timeout=WAIT_MS)
    await expect(page.locator("#stat-late")).to_have_text("1")
    listed = page.locator(f"li.driver[data-driver-id='{driver.id}']")
    await expect(listed).to_have_attribute("data-late", "1")
    await expect(page.locator(".alert[data-kind='running_late']")).to_contain_text("25 min")

    reason = {"reason": "nobody home"}
    sent = await http.post(
        f"/v1/driver/stops/{failed['id']}/fail", json=reason, headers=device(driver.token)
    )
    assert sent.status_code == 200, sent.text
    failed_stop = page.locator(f"path.stop[data-stop-id='{failed['id']}']")
    await expect(failed_stop).to_have_attribute("data-status", "failed", timeout=WAIT_MS)
    await expect(page.locator(".alert[data-kind='stop_failed']")).to_contain_text("nobody home")
    await expect(page.locator(".alert")).to_have_count(2)

    # The window moves (`windows` messages): likely on time, but its late end is still past
    # the customer's window: at risk, no longer late; then inside it: neither.
    await window_moved(redis, server, tenant, route, late, late_s=300)
    await expect(late_stop).to_have_attribute("data-late", "false", timeout=WAIT_MS)
    await expect(late_stop).to_have_attribute("data-risk", "true")
    await expect(page.locator("#stat-late")).to_have_text("0")
    await expect(page.locator("#stat-risk")).to_have_text("+1 at risk")
    await expect(listed.locator(".badge-risk")).to_have_text("1 at risk")
    await window_moved(redis, server, tenant, route, late, late_s=0)
    await expect(late_stop).to_have_attribute("data-risk", "false", timeout=WAIT_MS)
    await expect(page.locator("#stat-risk")).to_have_text("")

    # Likely half an hour before the customer's window opens: the stop says the driver waits.
    opens = datetime.fromisoformat(late["windows"][0]["start"])
    start_s = int(opens.timestamp())
    early = ArrivalWindow(
        stop_id=late["id"], order_id=late["order_id"], likely_epoch_s=start_s - 1800,
        lower_epoch_s=start_s - 2400, upper_epoch_s=start_s - 600,
        computed_epoch_s=int(datetime.now(UTC).timestamp()), late_s=0,
    )  # fmt: skip
    names = StreamNames(prefix=server.settings.redis_prefix, shards=server.settings.ping_shards)
    await emit(redis, names, moved_window(tenant.org_id, route, late, early))
    await page.wait_for_function(
        "([id, likely]) => window.lastmileDispatch.stops()"
        ".some(s => s.id === id && s.likelyEpochS === likely)",
        arg=[late["id"], start_s - 1800],
        timeout=WAIT_MS,
    )
    await late_stop.hover()
    await expect(page.locator(".leaflet-tooltip .tip-early")).to_have_text(
        f"Early: the driver will wait until {clock(late['windows'][0]['start'])}, when the window"
        " opens",
        timeout=WAIT_MS,
    )


@pytest.mark.browser
async def test_the_dispatcher_shows_the_chosen_day_and_its_times_in_the_organisations_zone(
    server: LiveServer,
    http: httpx.AsyncClient,
    db: psycopg.AsyncConnection,
    tenant: Tenant,
    today: Day,
    planner: None,
    pages: Pages,
) -> None:
    """With the browser in Los Angeles, ?day= picks the day and times read as Kolkata's clock."""
    await plan_and_dispatch(http, tenant, today)
    routes = (await http.get("/v1/routes", headers=key(tenant))).json()["routes"]
    await db.execute("UPDATE orgs SET timezone = %s WHERE id = %s", (ORG_ZONE, tenant.org_id))
    day = today.day.isoformat()
    # ?day= holds the map on the fixture's (UTC) day, whatever the date in Kolkata is now.
    page = await pages.open(f"{server.url}/dispatch?day={day}#key={tenant.api_key}")
    await expect(page.locator("#connection")).to_have_attribute(
        "data-state", "live", timeout=WAIT_MS
    )
    assert urlsplit(page.url).query == f"day={day}"  # the day stays, the key left
    await expect(page.locator("#day")).to_have_attribute("datetime", day)
    await expect(page.locator("#day")).to_contain_text(str(today.day.day))
    await expect(page.locator("#zone")).to_have_text("Asia/Kolkata")
    await expect(page.locator("#day-input")).to_have_value(day)
    await expect(page.locator("path.route-line")).to_have_count(len(routes))

    for route in routes:
        first = min(route["stops"], key=lambda stop: stop["seq"])
        shown = clock(first["planned_arrival"], ORG_ZONE)
        assert shown != clock(first["planned_arrival"], BROWSER_ZONE)
        next_stop = page.locator(f"li.driver[data-driver-id='{route['driver_id']}'] .driver-next")
        await expect(next_stop).to_contain_text(f"planned {shown}")
    await page.locator(f"path.stop[data-stop-id='{first['id']}']").hover()
    await expect(page.locator(".leaflet-tooltip")).to_contain_text(f"Planned {shown}")


@pytest.mark.browser
async def test_the_dispatcher_shows_why_the_server_refused_a_malformed_day(
    server: LiveServer, tenant: Tenant, pages: Pages
) -> None:
    """A ?day= that is not a date puts the server's 4400 reason on screen and keeps the key."""
    page = await pages.open(f"{server.url}/dispatch?day=tomorrow#key={tenant.api_key}")
    problem = page.locator("#feed-problem")
    await expect(problem).to_contain_text(
        "day: expected a date YYYY-MM-DD, got 'tomorrow'", timeout=WAIT_MS
    )
    await expect(page.locator("#connection")).to_have_attribute("data-state", "refused")
    await expect(page.locator("#key-gate")).to_be_hidden()  # the key was fine


@pytest.mark.browser
async def test_the_dispatcher_reconnects_and_replays_what_it_missed(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    today: Day,
    planner: None,
    redis: Redis,
    pages: Pages,
) -> None:
    """After a drop the page resumes with ?since= and shows the event emitted while it was away."""
    await plan_and_dispatch(http, tenant, today)
    route = await started_route(http, tenant.drivers[0])
    before, meanwhile = route["stops"][0], route["stops"][1]
    attempts: asyncio.Queue[WebSocketRoute] = asyncio.Queue()
    resume = asyncio.Event()
    connections = 0

    async def relay(socket: WebSocketRoute) -> None:
        # Every attempt reaches the real server; a reconnect only once the test says so, which
        # keeps the page away for as long as the test needs, whatever its backoff delay.
        nonlocal connections
        connections += 1
        attempts.put_nowait(socket)
        if connections > 1:
            await resume.wait()
        socket.connect_to_server()

    page = await pages.new_page()
    await page.route_web_socket(lambda url: "/v1/live/ws" in url, relay)
    await page.goto(f"{server.url}/dispatch#key={tenant.api_key}")
    first = await asyncio.wait_for(attempts.get(), WAIT_S)
    assert "since" not in parse_qs(urlsplit(first.url).query)
    connection = page.locator("#connection")
    await expect(connection).to_have_attribute("data-state", "live", timeout=WAIT_MS)
    await running_late(redis, server, tenant, route, before)
    before_stop = page.locator(f"path.stop[data-stop-id='{before['id']}']")
    await expect(before_stop).to_have_attribute("data-late", "true", timeout=WAIT_MS)
    seen = await page.evaluate("window.lastmileDispatch.lastEventId")
    assert seen

    await first.close(code=1000, reason="dropped by the test")
    second = await asyncio.wait_for(attempts.get(), WAIT_S)
    assert parse_qs(urlsplit(second.url).query)["since"] == [seen]
    await expect(connection).to_have_attribute("data-state", "reconnecting")
    # Not in the snapshot (no ETA worker stores windows here): only the replay can bring it.
    await running_late(redis, server, tenant, route, meanwhile)
    meanwhile_stop = page.locator(f"path.stop[data-stop-id='{meanwhile['id']}']")
    await expect(meanwhile_stop).to_have_attribute("data-late", "false")
    resume.set()

    await expect(connection).to_have_attribute("data-state", "live", timeout=WAIT_MS)
    await expect(meanwhile_stop).to_have_attribute("data-late", "true", timeout=WAIT_MS)
    await expect(page.locator(".alert[data-kind='running_late']")).to_have_count(2)
    assert attempts.empty()  # one reconnect, not a retry loop


async def test_the_site_has_an_icon(http: httpx.AsyncClient) -> None:
    """``/favicon.ico``, which every browser asks for, is the app's icon, not a 404."""
    icon = await http.get("/favicon.ico")
    assert (icon.status_code, icon.headers["content-type"]) == (200, "image/png")
    assert icon.content.startswith(b"\x89PNG")


@pytest.mark.browser
async def test_the_driver_list_draws_only_what_is_in_view_and_filters_and_searches(
    server: LiveServer, http: httpx.AsyncClient, db: psycopg.AsyncConnection, pages: Pages
) -> None:
    """Sixty drivers on the road: the list draws a screenful of rows, the last one once
    scrolled to; the search finds a driver by name; the state filter keeps only matches."""
    fleet = await make_tenant(db, drivers=60)
    now = datetime.now(UTC)
    for n, driver in enumerate(fleet.drivers):
        await ping(http, driver, 52.5 + n * 0.001, 13.4, now)
    page = await pages.open(f"{server.url}/dispatch#key={fleet.api_key}")
    await expect(page.locator("#driver-count")).to_have_text("60", timeout=WAIT_MS)
    drawn = await page.locator("li.driver").count()
    assert 0 < drawn < 60
    names = sorted(f"driver {n}" for n in range(60))
    await page.locator("#drivers").evaluate("list => { list.scrollTop = list.scrollHeight; }")
    await expect(page.locator("li.driver").last).to_contain_text(names[-1])

    await page.locator("#driver-search").fill("driver 42")
    await expect(page.locator("#driver-count")).to_have_text("1 of 60")
    await expect(page.locator("li.driver")).to_have_count(1)
    await expect(page.locator("li.driver")).to_contain_text("driver 42")
    await page.locator("#driver-search").fill("")
    await page.locator("#driver-filter").select_option("started")
    await expect(page.locator("#drivers")).to_contain_text("No driver matches.")
    await page.locator("#driver-filter").select_option("none")
    await expect(page.locator("#driver-count")).to_have_text("60")
