"""The demo mail sink and its page: what the sender sends arrives there and is shown, to its
organisation only, safely."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import httpx
import msgspec
import psycopg
import pytest
from playwright.async_api import expect

from app.cli.serve import _demo_mail
from app.process.mail_sink import prefer_email, read_mails, sink_port, start_mail_sink
from app.process.server import sender_channels
from app.settings import Settings
from schemas.delivery import OrderIn
from schemas.ids import OrderId
from schemas.notifications import NotificationRules
from store import notifications as outbox
from store.notification_rules import get_rules, put_rules
from store.orders import create_order
from tests.browser import Pages
from tests.conftest import LiveServer, Tenant, make_tenant
from tests.workers.outbox_rows import customer_message
from workers.sender import Sender, SenderConfig

WAIT_MS = 10_000


@pytest.fixture
async def sink(tmp_path: Path) -> AsyncIterator[asyncio.Server]:
    """The demo mail sink on a free loopback port, keeping mail under the test's folder."""
    server = await start_mail_sink(tmp_path / "demo-mail")
    yield server
    server.close()
    await server.wait_closed()


@pytest.fixture
def settings(settings: Settings, sink: asyncio.Server, tmp_path: Path) -> Settings:
    """The test's settings as ``serve --demo`` makes them: SMTP at the sink, its page on."""
    return msgspec.structs.replace(
        settings,
        smtp_host="127.0.0.1",
        smtp_port=sink_port(sink),
        smtp_tls="none",
        smtp_from="Demo fleet <deliveries@example.com>",
        demo_mail_dir=tmp_path / "demo-mail",
    )


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def _queued(db: psycopg.AsyncConnection, tenant: Tenant, ref: str, email: str) -> str:
    """An order of ``tenant`` with one email due in the outbox; the message's idempotency key."""
    order = OrderIn(
        external_ref=ref, address="1 Main St", lat=52.5, lon=13.4, day=date.today(), email=email
    )
    order_id: OrderId = (await create_order(db, tenant.org_id, order)).id
    event_id = f"{int(datetime.now(UTC).timestamp() * 1000)}-{order_id}"
    message = customer_message(tenant.org_id, order_id, event_id, email)
    await outbox.insert_many(db, [message])
    return message.idempotency_key


async def test_the_senders_mail_reaches_the_sink_and_its_organisation_reads_only_its_own(
    http: httpx.AsyncClient, db: psycopg.AsyncConnection, tenant: Tenant, settings: Settings
) -> None:
    """Mail the real sender sends through the sink's SMTP port is listed by /v1/demo/mail with
    subject, recipient, text and HTML, to the organisation whose outbox sent it and no other."""
    other = await make_tenant(db, drivers=0)
    await _queued(db, tenant, "mail-1", "dana@example.com")
    await _queued(db, other, "mail-2", "olga@example.com")
    sender = Sender(settings.database_url or "", sender_channels(settings), SenderConfig())
    try:
        while await sender.run_once():
            pass
    finally:
        await sender.close()

    mine = (await http.get("/v1/demo/mail", headers=auth(tenant.api_key))).json()
    assert [m["to"] for m in mine["mails"]] == ["dana@example.com"]
    mail = mine["mails"][0]
    assert mail["sender"] == "Demo fleet <deliveries@example.com>"
    # The wording is the templates' business; that each part arrived whole is the sink's.
    assert mail["subject"]
    assert mail["text"]
    assert "</html>" in mail["html"]
    theirs = (await http.get("/v1/demo/mail", headers=auth(other.api_key))).json()
    assert [m["to"] for m in theirs["mails"]] == ["olga@example.com"]
    bad = await http.get("/v1/demo/mail?limit=0", headers=auth(tenant.api_key))
    assert (bad.status_code, bad.json()["field"]) == (400, "limit")


async def send_mail(server: asyncio.Server, n: int) -> None:
    """Send mail number ``n`` (subject ``mail n``) to the sink over SMTP."""
    message = EmailMessage()
    message["From"] = "a@example.com"
    message["To"] = "b@example.com"
    message["Subject"] = f"mail {n}"
    message.set_content(f"body {n}")
    await aiosmtplib.send(message, hostname="127.0.0.1", port=sink_port(server))


async def test_the_sink_keeps_only_the_newest_mails(tmp_path: Path) -> None:
    """Past its limit the sink removes the oldest mails; the newest come first when read."""
    folder = tmp_path / "small"
    server = await start_mail_sink(folder, keep=3)
    try:
        for n in range(5):
            await send_mail(server, n)
    finally:
        server.close()
        await server.wait_closed()
    assert [m.subject for m in read_mails(folder, 10)] == ["mail 4", "mail 3", "mail 2"]


async def test_mails_sent_at_once_are_all_kept(tmp_path: Path) -> None:
    """Many senders at the same moment (the simulated day sends in bursts): every mail is kept
    once, and the limit still holds while they arrive together."""
    folder = tmp_path / "burst"
    server = await start_mail_sink(folder, keep=25)
    try:
        await asyncio.gather(*(send_mail(server, n) for n in range(20)))
        kept = sorted(m.subject for m in read_mails(folder, 100))
        assert kept == sorted(f"mail {n}" for n in range(20))
        await asyncio.gather(*(send_mail(server, n) for n in range(20, 40)))
    finally:
        server.close()
        await server.wait_closed()
    assert len(read_mails(folder, 100)) == 25


async def test_the_mail_page_shows_hostile_mail_as_text_and_html_only_sandboxed(
    server: LiveServer,
    db: psycopg.AsyncConnection,
    tenant: Tenant,
    sink: asyncio.Server,
    pages: Pages,
) -> None:
    """A mail whose subject and recipient carry markup is listed as text, its HTML is rendered
    only inside a frame with an empty sandbox (its script never runs), and its source is shown
    as text."""
    key = await _queued(db, tenant, "mail-hostile", "eve@example.com")
    hostile = '<img src=x onerror="window.pwned=1">Your parcel'
    message = EmailMessage()
    message["From"] = "Demo fleet <deliveries@example.com>"
    message["To"] = "eve@example.com"
    message["Subject"] = hostile
    message["X-Lastmile-Idempotency-Key"] = key
    message.set_content("plain <b>text</b>")
    message.add_alternative(
        "<html><body><p id='inside'>Hello</p><script>parent.pwned=1;document.title='x'</script>"
        "</body></html>",
        subtype="html",
    )
    await aiosmtplib.send(message, hostname="127.0.0.1", port=sink_port(sink))

    page = await pages.open(f"{server.url}/demo/mail#key={tenant.api_key}")
    subject = page.locator("#mails .subject").first
    await expect(subject).to_have_text(hostile, timeout=WAIT_MS)
    await expect(page.locator("#subject")).to_have_text(hostile)
    frame = page.locator("iframe#html")
    assert await frame.get_attribute("sandbox") == ""
    await expect(page.frame_locator("iframe#html").locator("#inside")).to_have_text("Hello")
    assert await page.evaluate("window.pwned") is None
    assert await page.locator("#mails img").count() == 0
    await page.locator("#tab-source").click()
    await expect(page.locator("#text")).to_contain_text("<script>parent.pwned=1")
    await page.locator("#tab-text").click()
    await expect(page.locator("#text")).to_have_text("plain <b>text</b>\n")
    assert "key=" not in page.url


async def test_serve_demo_points_the_sender_at_a_sink_it_started(
    settings: Settings, tmp_path: Path
) -> None:
    """With no relay configured, serve --demo's mail step starts a sink under the data folder
    and returns settings whose SMTP relay is that sink, without TLS or a login."""
    plain = msgspec.structs.replace(
        settings, smtp_host=None, smtp_username="u", smtp_password="p", demo_mail_dir=None
    )
    server, demo = await _demo_mail(plain)
    try:
        assert (demo.smtp_host, demo.smtp_port, demo.smtp_tls) == (
            "127.0.0.1",
            sink_port(server),
            "none",
        )
        assert (demo.smtp_username, demo.smtp_password) == (None, None)
        assert demo.demo_mail_dir == plain.data_dir / "demo-mail"
        message = EmailMessage()
        message["From"] = "a@example.com"
        message["To"] = "b@example.com"
        message["Subject"] = "through the demo sink"
        message.set_content("hello")
        await aiosmtplib.send(message, hostname="127.0.0.1", port=demo.smtp_port)
        assert [m.subject for m in read_mails(demo.demo_mail_dir, 5)] == ["through the demo sink"]
    finally:
        server.close()
        await server.wait_closed()


async def test_a_demo_organisation_prefers_email_unless_it_chose_otherwise(
    db: psycopg.AsyncConnection, tenant: Tenant
) -> None:
    """prefer_email stores rules with email first for an organisation without rules, keeping
    the other defaults, and leaves an organisation's own rules alone."""
    defaults = NotificationRules(eta_min_move_s=600.0)
    assert await prefer_email(db, tenant.org_id, defaults)
    stored = await get_rules(db, tenant.org_id)
    assert stored is not None
    assert (stored.customer_channels, stored.eta_change_min) == (["email", "sms"], 10.0)
    other = await make_tenant(db, drivers=0)
    own = msgspec.structs.replace(defaults.doc(), customer_channels=["sms"])
    await put_rules(db, other.org_id, own)
    assert not await prefer_email(db, other.org_id, defaults)
    assert await get_rules(db, other.org_id) == own
