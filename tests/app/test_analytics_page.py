"""The /analytics page in headless Chromium, from seeded days: its charts render, the messages
sent are counted per channel, the zone map draws a cell per zone (and the learned speeds on the
other layer), a customer-typed address stays text, and the CSV export downloads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import h3
import msgspec
import psycopg
import pytest
from playwright.async_api import expect

from app.settings import Settings
from schemas.notifications import Channel
from solver.learning import SpeedTable
from store.notifications import insert_many
from tests.browser import UNREACHABLE_TILES, WAIT_MS, Pages
from tests.conftest import LiveServer, make_tenant
from tests.facts import CALM_ZONE, Fact, one, seed
from tests.workers.outbox_rows import customer_message

HOSTILE = '<img src=x onerror="document.title=1">'
OTHER_ZONE = "881f1d4887fffff"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Tiles from a closed port: the zone map draws without the internet."""
    return msgspec.structs.replace(settings, tile_url=UNREACHABLE_TILES)


@pytest.mark.browser
async def test_the_analytics_page_charts_a_seeded_week(
    server: LiveServer, db: psycopg.AsyncConnection, pages: Pages
) -> None:
    """Five seeded days (UTC, the organisation's zone) draw the trend, driver and ETA charts,
    the messages of today's stop per channel, two zone cells, the patterns with the hostile
    address as text, three learned cells on the speed layer, and a CSV export."""
    tenant = await make_tenant(db, drivers=2, role="dispatcher")
    ada, bo = (d.id for d in tenant.drivers)
    today = datetime.now(UTC).date()
    facts: list[Fact] = []
    for n in range(5):
        day = today - timedelta(days=n)
        facts += [Fact(day=day, driver=ada)] * 3 + [Fact(day=day, driver=bo, service_s=200)] * 3
        facts.append(Fact(day=day, driver=bo, zone=OTHER_ZONE, punctuality="late"))
    facts += [
        Fact(day=today - timedelta(days=n), driver=ada, address=HOSTILE, outcome="failed",
             failure_code="not_home", punctuality=None)
        for n in range(2)
    ]  # fmt: skip
    await seed(db, tenant.org_id, facts)
    cells = [CALM_ZONE, OTHER_ZONE, h3.latlng_to_cell(52.53, 13.42, 8)]
    table = SpeedTable(
        res=8,
        city_mps=8.0,
        by_cell={c: 6.0 + n for n, c in enumerate(cells)},
        cell_samples=dict.fromkeys(cells, 10),
    )
    await db.execute(
        "INSERT INTO learned_models (org_id, day_from, day_to, routes, speeds)"
        " VALUES (%s, %s, %s, 5, %s)",
        (tenant.org_id, today - timedelta(days=4), today, msgspec.json.encode(table).decode()),
    )

    order = await one(
        db, "SELECT order_id FROM stop_facts WHERE org_id = %s AND day = %s LIMIT 1",
        (tenant.org_id, today),
    )  # fmt: skip
    outcomes: tuple[tuple[Channel, str], ...] = (("sms", "sent"), ("email", "failed"))
    for n, (channel, state) in enumerate(outcomes):
        note = customer_message(tenant.org_id, order, f"page-{order}-{n}", "x", channel=channel)
        await insert_many(db, [note])
        await db.execute(
            "UPDATE outbox SET state = %s WHERE idempotency_key = %s",
            (state, note.idempotency_key),
        )

    page = await pages.new_page(accept_downloads=True)
    await page.goto(f"{server.url}/analytics#key={tenant.api_key}")
    await expect(page.locator("body[data-loaded=true]")).to_have_count(1, timeout=WAIT_MS)
    assert await page.locator("#load-error").text_content() == ""
    for chart in ("#trend-chart", "#drivers-chart", "#eta-chart"):
        await expect(page.locator(f"{chart} .main-svg").first).to_be_visible()
    await expect(page.locator("#trend-chart .xtick")).to_have_count(5)
    await expect(page.locator("path.zone-cell")).to_have_count(2)
    await expect(page.locator("#drivers-table tbody tr")).to_have_count(2)
    messages = page.locator("#messages-table tbody tr")
    await expect(messages).to_have_count(2)
    await expect(messages.nth(0).locator("td")).to_have_text(["SMS", "1", "0", "0%"])
    await expect(messages.nth(1).locator("td")).to_have_text(["Email", "0", "1", "100%"])
    patterns = page.locator("#patterns li")
    await expect(patterns.filter(has_text=HOSTILE)).to_have_count(1)
    await expect(page.locator("#patterns img")).to_have_count(0)
    await expect(patterns.filter(has_text="Late day after day")).to_have_count(1)
    await page.locator('input[name="layer"][value="speed"]').check()
    await expect(page.locator("path.speed-cell")).to_have_count(3)
    await expect(page.locator("path.zone-cell")).to_have_count(0)

    async with page.expect_download() as waiting:
        await page.locator('[data-export="deliveries"][data-by="driver"]').click()
    download = await waiting.value
    path = await download.path()
    text = path.read_text(encoding="utf-8")
    assert text.startswith("key,label,stops,")
    assert len(text.strip().splitlines()) == 3  # the header and two drivers
    assert await page.title() == "Analytics · lastmile"
