"""What Twilio posts to us, signed as Twilio signs it: STOP and START change what the notify
worker sends, status callbacks move outbox rows, replies become instructions or another day,
and a request without the right signature is refused."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import msgspec
import psycopg
import pytest
from redis.asyncio import Redis

from adapters.sms import TwilioSmsSender, twilio_signature
from app.process.server import sender_channels
from app.resources import stream_names
from app.settings import Settings
from realtime.events import emit
from schemas.delivery import OrderIn
from schemas.eta import Approaching, EnRoute
from schemas.events import DeliveryUpdate
from schemas.ids import OrderId, RouteId, StopId
from store import customer_answers as answers
from store import notifications as outbox
from store.orders import create_order, get_order
from tests.conftest import LiveServer, Tenant, make_tenant
from tests.days import running_worker
from tests.helpers import eventually

TOKEN = "twilio-auth-token-of-the-test"
PUBLIC = "https://deliveries.example"
PHONE = "+4915550100"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A Twilio auth token, and the public URL Twilio calls us at."""
    return msgspec.structs.replace(settings, twilio_auth_token=TOKEN, public_url=PUBLIC)


async def twilio_post(
    http: httpx.AsyncClient,
    path: str,
    form: dict[str, str],
    *,
    token: str = TOKEN,
    signed_form: dict[str, str] | None = None,
) -> httpx.Response:
    """POST ``form`` as Twilio does, signed with ``token`` over the public URL (and over
    ``signed_form`` instead when given, to tamper)."""
    signature = twilio_signature(PUBLIC + path, signed_form or form, token)
    return await http.post(
        path,
        content=urlencode(form),
        headers={
            "content-type": "application/x-www-form-urlencoded",
            "x-twilio-signature": signature,
        },
    )


def text(body: str, sender: str = PHONE) -> dict[str, str]:
    """The form of an incoming text from ``sender``."""
    return {
        "MessageSid": f"SM{abs(hash(body)):032x}"[:34],
        "AccountSid": "AC" + "0" * 32,
        "From": sender,
        "To": "+15005550006",
        "Body": body,
        "NumMedia": "0",
    }


async def order(db: psycopg.AsyncConnection, tenant: Tenant, ref: str, phone: str) -> OrderId:
    # The phone as a shop might type it: the spaces must not hide it from the opt-out.
    spaced = f"{phone[:3]} {phone[3:6]} {phone[6:]}"
    made = OrderIn(
        external_ref=ref,
        address="1 Main St",
        lat=52.5,
        lon=13.4,
        day=datetime.now(UTC).date() + timedelta(days=1),
        phone=spaced,
    )
    return (await create_order(db, tenant.org_id, made)).id


def en_route(
    tenant: Tenant, order_id: OrderId, stop: int, *, approaching: bool = False
) -> DeliveryUpdate:
    """The ETA worker's word that the driver is on the way to (or near) ``order_id``."""
    now = datetime.now(UTC)
    common: dict[str, Any] = {
        "driver_id": tenant.drivers[0].id,
        "route_id": RouteId(1),
        "route_version": 1,
        "at_epoch_s": int(now.timestamp()),
        "stop_id": StopId(stop),
        "order_id": order_id,
    }
    detail = Approaching(**common, distance_m=300) if approaching else EnRoute(**common)
    return DeliveryUpdate(org_id=tenant.org_id, at=now, detail=detail)


async def sms_to(db: psycopg.AsyncConnection, tenant: Tenant, order_id: OrderId) -> list[str]:
    rows = await outbox.list_for_order(db, tenant.org_id, order_id)
    return [r.kind for r in rows if r.channel == "sms"]


async def test_stop_silences_the_number_and_start_lets_it_hear_again(
    settings: Settings,
    server: LiveServer,
    http: httpx.AsyncClient,
    redis: Redis,
    db: psycopg.AsyncConnection,
    tenant: Tenant,
) -> None:
    """After STOP the notify worker texts that number nothing (another number still hears);
    after START it does again. Opt-outs are per organisation."""
    names = stream_names(settings)
    first = await order(db, tenant, "s-1", PHONE)
    second = await order(db, tenant, "s-2", PHONE)
    marker = await order(db, tenant, "s-3", "+4915550199")
    other_org = await make_tenant(db, drivers=1)

    async with running_worker(settings, "notify"):
        await emit(redis, names, en_route(tenant, first, 1))
        assert await eventually(lambda: sms_to(db, tenant, first), "the first text") == ["en_route"]
        stop = await twilio_post(http, "/v1/sms/inbound", text("Stop"))
        assert stop.status_code == 200, stop.text
        assert stop.headers["content-type"].startswith("text/xml")
        assert "<Message>" not in stop.text  # Twilio confirms STOP itself
        assert await answers.is_opted_out(db, tenant.org_id, PHONE)
        assert not await answers.is_opted_out(db, other_org.org_id, PHONE)

        await emit(redis, names, en_route(tenant, second, 2), en_route(tenant, marker, 3))
        await eventually(lambda: sms_to(db, tenant, marker), "the other number's text")
        assert await sms_to(db, tenant, second) == []

        start = await twilio_post(http, "/v1/sms/inbound", text("START"))
        assert start.status_code == 200, start.text
        assert not await answers.is_opted_out(db, tenant.org_id, PHONE)
        await emit(redis, names, en_route(tenant, second, 2, approaching=True))
        assert await eventually(lambda: sms_to(db, tenant, second), "a text after START") == [
            "approaching"
        ]


@pytest.mark.parametrize(
    "tamper",
    ["wrong token", "changed body", "other url", "no signature"],
)
async def test_a_request_without_twilios_signature_is_refused(
    server: LiveServer,
    http: httpx.AsyncClient,
    db: psycopg.AsyncConnection,
    tenant: Tenant,
    tamper: str,
) -> None:
    """A wrong token, a body other than the signed one, a signature over another URL or none
    at all is 403, and nothing changes."""
    await order(db, tenant, "t-1", PHONE)
    form = text("STOP")
    headers = {"content-type": "application/x-www-form-urlencoded"}
    if tamper == "wrong token":
        response = await twilio_post(http, "/v1/sms/inbound", form, token="guessed")
    elif tamper == "changed body":
        response = await twilio_post(
            http, "/v1/sms/inbound", form, signed_form={**form, "From": "+4915550111"}
        )
    elif tamper == "other url":
        signature = twilio_signature(PUBLIC + "/v1/sms/status", form, TOKEN)
        response = await http.post(
            "/v1/sms/inbound",
            content=urlencode(form),
            headers={**headers, "x-twilio-signature": signature},
        )
    else:
        response = await http.post("/v1/sms/inbound", content=urlencode(form), headers=headers)
    assert response.status_code == 403, response.text
    assert response.json()["error"] == "forbidden"
    assert not await answers.is_opted_out(db, tenant.org_id, PHONE)


async def set_sent(db: psycopg.AsyncConnection, row_id: int, sid: str) -> None:
    """What the sender does once Twilio accepted the message: ``sent`` with Twilio's sid."""
    await db.execute(
        "UPDATE outbox SET state = 'sent', provider_id = %s WHERE id = %s", (sid, row_id)
    )


async def states(db: psycopg.AsyncConnection, tenant: Tenant, orders: Sequence[OrderId]) -> Any:
    found = []
    for order_id in orders:
        found += [
            (r.state, r.last_error)
            for r in await outbox.list_for_order(db, tenant.org_id, order_id)
        ]
    return found


async def test_status_callbacks_move_the_outbox_row_and_never_back(
    settings: Settings,
    server: LiveServer,
    http: httpx.AsyncClient,
    redis: Redis,
    db: psycopg.AsyncConnection,
    tenant: Tenant,
) -> None:
    """``delivered`` makes the sent row delivered, a late ``sent`` leaves it so, and
    ``undelivered`` makes another row failed with Twilio's error code; an unknown sid is 200."""
    names = stream_names(settings)
    reached = await order(db, tenant, "c-1", "+4915550201")
    lost = await order(db, tenant, "c-2", "+4915550202")
    async with running_worker(settings, "notify"):
        await emit(redis, names, en_route(tenant, reached, 1), en_route(tenant, lost, 2))
        await eventually(lambda: sms_to(db, tenant, lost), "both texts")
    [one] = await outbox.list_for_order(db, tenant.org_id, reached)
    [two] = await outbox.list_for_order(db, tenant.org_id, lost)
    await set_sent(db, one.id, "SM" + "1" * 32)
    await set_sent(db, two.id, "SM" + "2" * 32)

    def report(sid: str, status: str, **more: str) -> dict[str, str]:
        return {"MessageSid": sid, "MessageStatus": status, "AccountSid": "AC" + "0" * 32, **more}

    for form in (
        report("SM" + "1" * 32, "delivered"),
        report("SM" + "1" * 32, "sent"),
        report("SM" + "2" * 32, "undelivered", ErrorCode="30003"),
        report("SM" + "9" * 32, "delivered"),
    ):
        response = await twilio_post(http, "/v1/sms/status", form)
        assert response.status_code == 200, response.text
    assert await states(db, tenant, [reached, lost]) == [
        ("delivered", None),
        ("failed", "Twilio reported undelivered (error 30003)"),
    ]
    missing = await twilio_post(http, "/v1/sms/status", {"MessageStatus": "sent"})
    assert (missing.status_code, missing.json()["field"]) == (400, "MessageSid")
    nul = await twilio_post(http, "/v1/sms/status", report("SM\x001", "delivered"))
    assert (nul.status_code, nul.json()["field"]) == (400, "MessageSid")


async def test_replies_become_instructions_or_another_day(
    settings: Settings,
    server: LiveServer,
    http: httpx.AsyncClient,
    redis: Redis,
    db: psycopg.AsyncConnection,
    tenant: Tenant,
) -> None:
    """GATE, SAFE and a free note fill the texted order's instructions one by one; DAY moves
    the order; a number we never texted is told so; the replies are TwiML."""
    names = stream_names(settings)
    order_id = await order(db, tenant, "r-1", PHONE)
    async with running_worker(settings, "notify"):
        await emit(redis, names, en_route(tenant, order_id, 1))
        await eventually(lambda: sms_to(db, tenant, order_id), "the text")
    for body in ("gate 4711", "SAFE no", "Ring twice <b>please</b> & wait"):
        reply = await twilio_post(http, "/v1/sms/inbound", text(body))
        assert reply.status_code == 200, reply.text
        assert "<Message>Thank you" in reply.text
    stored = await answers.instructions_of(db, tenant.org_id, order_id)
    assert stored is not None
    assert (stored.gate_code, stored.safe_place_allowed, stored.note, stored.source) == (
        "4711",
        False,
        "Ring twice <b>please</b> & wait",
        "sms",
    )
    unclear = await twilio_post(http, "/v1/sms/inbound", text("DAY someday"))
    assert "YYYY-MM-DD" in unclear.text
    later = datetime.now(UTC).date() + timedelta(days=3)
    moved = await twilio_post(http, "/v1/sms/inbound", text(f"DAY {later.isoformat()}"))
    assert f"moved to {later.isoformat()}" in moved.text
    found = await get_order(db, tenant.org_id, order_id)
    assert found is not None
    assert (found.day, found.status) == (later, "pending")
    stranger = await twilio_post(http, "/v1/sms/inbound", text("GATE 1", sender="+4915550999"))
    assert "no open delivery" in stranger.text


async def test_the_sender_asks_twilio_for_status_callbacks_at_the_public_url(
    settings: Settings,
) -> None:
    """With a public URL the sender's Twilio adapter names our status route; without, none."""
    twilio = msgspec.structs.replace(
        settings, twilio_account_sid="AC" + "0" * 32, twilio_from="+15005550006"
    )
    for public, expected in ((PUBLIC + "/", PUBLIC + "/v1/sms/status"), (None, None)):
        channels = sender_channels(msgspec.structs.replace(twilio, public_url=public))
        assert isinstance(channels.sms, TwilioSmsSender)
        try:
            assert channels.sms.config.status_callback_url == expected
        finally:
            await channels.sms.aclose()
