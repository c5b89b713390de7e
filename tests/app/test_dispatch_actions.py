"""The dispatcher acts on the running day from the map, in headless Chromium: cancel an order,
move a stop, insert an urgent order and re-sequence a route, each previewed, confirmed, and
seen at once by the driver's socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import msgspec
import pytest
import websockets
from playwright.async_api import Locator, Page, expect

from app.settings import Settings
from tests.browser import UNREACHABLE_TILES, WAIT_MS, Pages
from tests.conftest import LiveServer, Tenant
from tests.days import DEPOT, Day, key, order, plan_and_dispatch

Route = dict[str, Any]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Tiles from a closed port: the map draws without the internet."""
    return msgspec.structs.replace(settings, tile_url=UNREACHABLE_TILES)


class Phone:
    """A driver's socket, keeping the latest route it was sent."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.route: Route | None = None

    async def until(self, wanted: Callable[[Route], bool], what: str) -> Route:
        """The first route pushed (or already held) for which ``wanted`` is true."""
        async with asyncio.timeout(WAIT_MS / 1000):
            while self.route is None or not wanted(self.route):
                message = json.loads(await self.socket.recv())
                if message.get("route") is not None:
                    self.route = message["route"]
        assert self.route is not None, what
        return self.route


@contextlib.asynccontextmanager
async def phones(server: LiveServer, tenant: Tenant) -> AsyncIterator[dict[int, Phone]]:
    async with contextlib.AsyncExitStack() as stack:
        found: dict[int, Phone] = {}
        for driver in tenant.drivers:
            socket = await stack.enter_async_context(
                websockets.connect(f"{server.ws_url}/v1/driver/ws?token={driver.token}")
            )
            found[driver.id] = Phone(socket)
        yield found


def order_ids(route: Route) -> list[int]:
    return [s["order_id"] for s in route["stops"] if s["status"] != "removed"]


async def settled(page: Page, http: httpx.AsyncClient, tenant: Tenant, day: Day) -> None:
    """Wait until the map holds every route at the version the API has (the popups it draws
    then stay put while the test clicks in them)."""
    listed = await http.get(f"/v1/routes?day={day.day}", headers=key(tenant))
    versions = {r["id"]: r["version"] for r in listed.json()["routes"]}
    await page.wait_for_function(
        "wanted => window.lastmileDispatch.routes().every(r => r.version === wanted[r.id])"
        " && window.lastmileDispatch.routes().length === Object.keys(wanted).length",
        arg=versions,
        timeout=WAIT_MS,
    )


async def open_stop(page: Page, stop_id: int) -> Locator:
    """Open a stop's popup (a click as an event, wherever the stop is drawn); its content."""
    close = page.locator(".leaflet-popup-close-button")
    if await close.count():
        await close.dispatch_event("click")
    await page.locator(f"path.stop[data-stop-id='{stop_id}']").dispatch_event("click")
    detail = page.locator(f".stop-detail[data-stop-id='{stop_id}']")
    await expect(detail).to_be_visible()
    return detail


async def confirm(page: Page, change: str, order_id: int) -> None:
    """The preview shows ``change`` for the order; confirm it and wait for the dialog to close."""
    dialog = page.locator("#action-dialog")
    row = dialog.locator(f"tr[data-order-id='{order_id}'][data-change='{change}']").first
    shown = dialog.locator("tr[data-change], #action-error:not(:empty)").first
    await expect(shown).to_be_visible(timeout=WAIT_MS)
    assert await row.count() == 1, await dialog.inner_text()
    await dialog.locator("#action-confirm").click()
    await expect(dialog).to_be_hidden(timeout=WAIT_MS)


@pytest.mark.browser
async def test_the_dispatcher_cancels_moves_inserts_and_resequences_from_the_map(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    today: Day,
    planner: None,
    pages: Pages,
) -> None:
    await plan_and_dispatch(http, tenant, today)
    listed = await http.get(f"/v1/routes?day={today.day}", headers=key(tenant))
    first, second = sorted(listed.json()["routes"], key=lambda r: -len(r["stops"]))
    async with phones(server, tenant) as phone:
        page = await pages.open(f"{server.url}/dispatch#key={tenant.api_key}")
        await expect(page.locator("#connection")).to_have_attribute(
            "data-state", "live", timeout=WAIT_MS
        )
        await expect(page.locator("path.route-line")).to_have_count(2, timeout=WAIT_MS)

        # Cancel: the stop leaves the first driver's route.
        gone = first["stops"][0]
        detail = await open_stop(page, gone["id"])
        await detail.locator("[data-action='cancel-order']").click()
        await confirm(page, "leaves", gone["order_id"])
        cancelled = await http.get(f"/v1/orders/{gone['order_id']}", headers=key(tenant))
        assert cancelled.json()["status"] == "cancelled"
        await phone[first["driver_id"]].until(
            lambda r: gone["order_id"] not in order_ids(r), "the cancelled stop off the route"
        )

        # Move: a stop of the second driver goes to the first.
        await settled(page, http, tenant, today)
        moving = second["stops"][-1]
        detail = await open_stop(page, moving["id"])
        await detail.locator("select.move-target").select_option(str(first["id"]))
        await detail.locator("[data-action='move-stop']").click()
        await confirm(page, "joins", moving["order_id"])
        await phone[first["driver_id"]].until(
            lambda r: moving["order_id"] in order_ids(r), "the moved stop on the first route"
        )
        await phone[second["driver_id"]].until(
            lambda r: moving["order_id"] not in order_ids(r), "the moved stop off the second"
        )

        # Insert: an urgent order near the depot, picked from the day's pending orders (wanted
        # in the day's window around now: a fixed daytime window has passed in the evening).
        urgent = await order(
            http, tenant, today.day, "urgent", DEPOT[0], DEPOT[1] + 0.01, today.window
        )
        await page.locator("#urgent-button").click()
        await page.locator(
            f".urgent-list li[data-order-id='{urgent}'] [data-action='insert-order']"
        ).click()
        await confirm(page, "joins", urgent)
        taken = await http.get(f"/v1/orders/{urgent}", headers=key(tenant))
        assert taken.json()["status"] == "dispatched"

        # Re-sequence the second route: the driver gets a new version.
        await settled(page, http, tenant, today)
        version = (await http.get(f"/v1/routes/{second['id']}", headers=key(tenant))).json()[
            "version"
        ]
        stop = next(s for s in second["stops"] if s["id"] != moving["id"])
        detail = await open_stop(page, stop["id"])
        await detail.locator("[data-action='resequence']").click()
        dialog = page.locator("#action-dialog")
        await expect(dialog.locator(f"tr[data-order-id='{stop['order_id']}']")).to_be_visible(
            timeout=WAIT_MS
        )
        await dialog.locator("#action-confirm").click()
        await expect(dialog).to_be_hidden(timeout=WAIT_MS)
        await phone[second["driver_id"]].until(
            lambda r: r["version"] > version, "the re-sequenced route"
        )


async def drag(page: Page, source: Locator, target: Locator) -> None:
    """Press on ``source``, move in steps onto ``target`` and let go there."""
    start, end = await source.bounding_box(), await target.bounding_box()
    assert start is not None
    assert end is not None
    await page.mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
    await page.mouse.down()
    await page.mouse.move(end["x"] + end["width"] / 2, end["y"] + end["height"] / 2, steps=12)
    await page.mouse.up()


@pytest.mark.browser
async def test_a_stop_dragged_onto_another_driver_is_moved_there_after_its_preview(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    today: Day,
    planner: None,
    pages: Pages,
) -> None:
    """Dropped on the driver's row in the list, a stop is offered to their route (the preview
    first); dropped on its own route nothing is asked; a press without a move is a click."""
    await plan_and_dispatch(http, tenant, today)
    listed = await http.get(f"/v1/routes?day={today.day}", headers=key(tenant))
    first, second = sorted(listed.json()["routes"], key=lambda r: -len(r["stops"]))
    async with phones(server, tenant) as phone:
        page = await pages.open(f"{server.url}/dispatch#key={tenant.api_key}")
        await expect(page.locator("path.route-line")).to_have_count(2, timeout=WAIT_MS)
        await settled(page, http, tenant, today)
        dialog = page.locator("#action-dialog")
        moving = first["stops"][-1]  # to the shorter route, which has room
        stop = page.locator(f"path.stop[data-stop-id='{moving['id']}']")

        # Onto its own driver: nothing to ask.
        await drag(page, stop, page.locator(f"li.driver[data-driver-id='{first['driver_id']}']"))
        await expect(dialog).to_be_hidden()

        # Onto the other driver: the move's preview, then the driver has it.
        await drag(page, stop, page.locator(f"li.driver[data-driver-id='{second['driver_id']}']"))
        await expect(dialog).to_be_visible(timeout=WAIT_MS)
        await confirm(page, "joins", moving["order_id"])
        await phone[second["driver_id"]].until(
            lambda r: moving["order_id"] in order_ids(r), "the dragged stop on the second route"
        )
        moved = await http.get(f"/v1/routes/{second['id']}", headers=key(tenant))
        assert moving["order_id"] in order_ids(moved.json())

        # A press that does not move opens the stop's popup, as a click does.
        await settled(page, http, tenant, today)
        staying = second["stops"][0]
        await page.locator(f"path.stop[data-stop-id='{staying['id']}']").click()
        await expect(page.locator(f".stop-detail[data-stop-id='{staying['id']}']")).to_be_visible()
        await expect(dialog).to_be_hidden()
