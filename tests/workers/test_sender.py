"""The outbox sender against real PostgreSQL, a real aiosmtpd server and a Twilio-speaking peer."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from adapters.email import IDEMPOTENCY_HEADER, SmtpConfig, SmtpEmailSender
from adapters.sms import TwilioConfig, TwilioSmsSender
from app.settings import Settings
from schemas.delivery import OrderIn
from schemas.notifications import Channel
from store import notifications as outbox
from store.orders import create_order
from tests.adapters.peers import HttpPeer, SmtpSink, TwilioApi
from tests.conftest import Tenant
from tests.days import running_worker
from tests.helpers import eventually
from tests.workers.outbox_rows import customer_message
from workers.sender import Channels, Sender, SenderConfig

ROOT = Path(__file__).resolve().parents[2]
FROM = "Acme deliveries <deliveries@acme.example>"
FAST = SenderConfig(
    batch=5, max_tries=3, lease_s=60.0, idle_s=0.05, first_retry_s=0.1, retry_span_s=0.5
)


class SlowSink(SmtpSink):
    """An SMTP sink that, after storing a message, holds its answer to ``DATA`` for
    ``answer_delay_s``: the message has arrived, but its sender does not know it yet."""

    answer_delay_s: float = 0.0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        answer = await super().handle_DATA(server, session, envelope)
        await asyncio.sleep(self.answer_delay_s)
        return answer


@pytest.fixture
def sink() -> Iterator[SlowSink]:
    """A running SMTP sink."""
    server = SlowSink()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def twilio() -> AsyncIterator[tuple[HttpPeer, TwilioApi]]:
    """A running peer that speaks Twilio's Messages API."""
    api = TwilioApi(account_sid="AC" + "1" * 32, auth_token="token")
    async with HttpPeer(api) as peer:
        yield peer, api


def _email(sink: SmtpSink) -> SmtpEmailSender:
    return SmtpEmailSender(SmtpConfig(host="127.0.0.1", port=sink.port, sender=FROM, tls="none"))


def _sms(peer: HttpPeer, api: TwilioApi) -> TwilioSmsSender:
    return TwilioSmsSender(
        TwilioConfig(
            account_sid=api.account_sid,
            auth_token=api.auth_token,
            from_number="+15005550006",
            base_url=peer.url,
        )
    )


async def _rows(
    db: psycopg.AsyncConnection, tenant: Tenant, channel: Channel, addresses: list[str]
) -> list[str]:
    """One outbox row per address (each for an order of its own); their idempotency keys."""
    keys = []
    notes = []
    for address in addresses:
        order = OrderIn(
            external_ref=f"s-{secrets.token_hex(4)}",
            address="1 Main St",
            lat=52.5,
            lon=13.4,
            day=date.today(),
            phone=address if channel == "sms" else None,
            email=address if channel != "sms" else None,
        )
        order_id = (await create_order(db, tenant.org_id, order)).id
        event_id = f"{secrets.randbelow(10**12)}-0"
        note = customer_message(tenant.org_id, order_id, event_id, address, channel=channel)
        keys.append(note.idempotency_key)
        notes.append(note)
    assert await outbox.insert_many(db, notes) == len(notes)
    return keys


async def _states(db: psycopg.AsyncConnection, keys: list[str]) -> dict[str, dict[str, Any]]:
    async with db.cursor(row_factory=psycopg.rows.dict_row) as cursor:
        await cursor.execute(
            "SELECT id, idempotency_key, state, attempts, provider_id, last_error FROM outbox"
            " WHERE idempotency_key = ANY(%s)",
            (keys,),
        )
        return {row["idempotency_key"]: row for row in await cursor.fetchall()}


async def _drain(sender: Sender, db: psycopg.AsyncConnection, keys: list[str], *final: str) -> None:
    """Run passes until every row of ``keys`` is in one of the ``final`` states."""

    async def done() -> bool:
        await sender.run_once()
        states = await _states(db, keys)
        return all(row["state"] in final for row in states.values())

    await eventually(done, f"every row {' or '.join(final)}")


def _by_key(sink: SmtpSink, keys: list[str]) -> dict[str, list[str]]:
    """The Message-IDs the sink received, per idempotency key of ``keys``."""
    found: dict[str, list[str]] = {}
    for received in list(sink.received):
        key = str(received.message[IDEMPOTENCY_HEADER])
        if key in keys:
            found.setdefault(key, []).append(str(received.message["Message-ID"]))
    return found


async def test_rows_are_sent_by_email_and_sms_and_each_attempt_is_recorded(
    database_url: str,
    db: psycopg.AsyncConnection,
    tenant: Tenant,
    sink: SlowSink,
    twilio: tuple[HttpPeer, TwilioApi],
) -> None:
    """Due email and SMS rows reach the SMTP server and the Twilio peer, become ``sent`` with
    the provider's id, and each has one recorded attempt."""
    token = secrets.token_hex(3)
    mails = await _rows(db, tenant, "email", [f"a{n}-{token}@example.com" for n in range(3)])
    texts = await _rows(db, tenant, "sms", ["+4915550101", "+4915550102"])
    peer, api = twilio
    sender = Sender(database_url, Channels(email=_email(sink), sms=_sms(peer, api)), FAST)
    try:
        await _drain(sender, db, mails + texts, "sent")
    finally:
        await sender.close()
    assert sorted(_by_key(sink, mails)) == sorted(mails)
    bodies = [r.form for r in peer.requests if r.form.get("To") in {"+4915550101", "+4915550102"}]
    assert sorted(b["To"] for b in bodies) == ["+4915550101", "+4915550102"]
    assert all("on its way" in b["Body"] for b in bodies)
    states = await _states(db, mails + texts)
    for key, row in states.items():
        attempts = await outbox.list_attempts(db, row["id"])
        assert [a.outcome for a in attempts] == ["sent"], key
        assert attempts[0].provider_id == row["provider_id"] is not None
    assert states[texts[0]]["provider_id"].startswith("SM")
    assert states[mails[0]]["provider_id"] == _by_key(sink, mails)[mails[0]][0]


async def test_a_retryable_failure_is_retried_and_later_succeeds(
    database_url: str,
    db: psycopg.AsyncConnection,
    tenant: Tenant,
    twilio: tuple[HttpPeer, TwilioApi],
) -> None:
    """A 500 from the provider puts the row back to ``pending`` with a later
    ``next_attempt_at``; once the provider recovers the next attempt sends it."""
    peer, api = twilio
    api.fail_with = (500, 20500, "Internal Server Error")
    [key] = await _rows(db, tenant, "sms", ["+4915550201"])
    sender = Sender(database_url, Channels(sms=_sms(peer, api)), FAST)
    try:
        await eventually(
            lambda: _claimed_once(sender, db, key), "the first attempt recorded as a retry"
        )
        row = (await _states(db, [key]))[key]
        assert row["state"] == "pending"
        assert "500" in row["last_error"]
        api.fail_with = None
        await _drain(sender, db, [key], "sent")
    finally:
        await sender.close()
    attempts = await outbox.list_attempts(db, (await _states(db, [key]))[key]["id"])
    assert [a.outcome for a in attempts] == ["retry", "sent"]
    assert attempts[0].status_code == 500


async def _claimed_once(sender: Sender, db: psycopg.AsyncConnection, key: str) -> bool:
    await sender.run_once()
    row = (await _states(db, [key]))[key]
    return bool(row["attempts"] >= 1 and row["state"] != "sending")


async def test_a_permanent_failure_marks_failed_and_endless_retries_mark_dead(
    database_url: str,
    db: psycopg.AsyncConnection,
    tenant: Tenant,
    sink: SlowSink,
    twilio: tuple[HttpPeer, TwilioApi],
) -> None:
    """A recipient the relay refuses with 550 is ``failed`` after one attempt; an SMS the
    provider keeps answering 503 to is ``dead`` after ``max_tries`` attempts."""
    peer, api = twilio
    api.fail_with = (503, 20503, "Service Unavailable")
    [refused] = await _rows(db, tenant, "email", [f"x-{secrets.token_hex(3)}@nowhere.example"])
    [stuck] = await _rows(db, tenant, "sms", ["+4915550301"])
    sender = Sender(database_url, Channels(email=_email(sink), sms=_sms(peer, api)), FAST)
    try:
        await _drain(sender, db, [refused], "failed")
        await _drain(sender, db, [stuck], "dead")
    finally:
        await sender.close()
    states = await _states(db, [refused, stuck])
    assert "550" in states[refused]["last_error"]
    assert states[refused]["attempts"] == 1
    assert states[stuck]["attempts"] == FAST.max_tries
    outcomes = [a.outcome for a in await outbox.list_attempts(db, states[stuck]["id"])]
    assert outcomes == ["retry"] * (FAST.max_tries - 1) + ["dead"]


class BrokenEmail:
    """An email adapter with a bug: it raises what no adapter should."""

    async def send(
        self, *, to: str, subject: str, text: str, html: str | None, idempotency_key: str
    ) -> str:
        raise KeyError("a bug")


async def test_an_adapter_bug_is_retried_then_dead_and_never_stops_the_sender(
    database_url: str, db: psycopg.AsyncConnection, tenant: Tenant
) -> None:
    """An adapter that raises an unexpected exception does not crash the sender: the row is
    retried like a provider's failure and ``dead`` after ``max_tries``, the error recorded."""
    [key] = await _rows(db, tenant, "email", [f"b-{secrets.token_hex(3)}@example.com"])
    sender = Sender(database_url, Channels(email=BrokenEmail()), FAST)
    try:
        await _drain(sender, db, [key], "dead")
    finally:
        await sender.close()
    row = (await _states(db, [key]))[key]
    assert "unexpected KeyError" in row["last_error"]
    assert row["attempts"] == FAST.max_tries


async def test_an_unconfigured_channel_stays_pending_with_a_reason(
    database_url: str, db: psycopg.AsyncConnection, tenant: Tenant, sink: SlowSink
) -> None:
    """A sender without an SMS provider leaves SMS rows ``pending``, unattempted, with a
    ``last_error`` naming the settings to set."""
    [key] = await _rows(db, tenant, "sms", ["+4915550401"])
    sender = Sender(database_url, Channels(email=_email(sink)), FAST)
    try:
        await sender.note_unconfigured()
        await sender.run_once()
    finally:
        await sender.close()
    row = (await _states(db, [key]))[key]
    assert (row["state"], row["attempts"]) == ("pending", 0)
    assert "LASTMILE_TWILIO_ACCOUNT_SID" in row["last_error"]


async def test_two_senders_running_together_send_each_row_once(
    database_url: str, db: psycopg.AsyncConnection, tenant: Tenant, sink: SlowSink
) -> None:
    """Two senders draining the same outbox at once never claim the same row: every message
    arrives exactly once."""
    token = secrets.token_hex(3)
    keys = await _rows(db, tenant, "email", [f"c{n}-{token}@example.com" for n in range(24)])
    first = Sender(database_url, Channels(email=_email(sink)), FAST)
    second = Sender(database_url, Channels(email=_email(sink)), FAST)

    async def all_sent() -> bool:
        await asyncio.gather(first.run_once(), second.run_once())
        return all(r["state"] == "sent" for r in (await _states(db, keys)).values())

    try:
        await eventually(all_sent, "every row sent")
    finally:
        await first.close()
        await second.close()
    received = _by_key(sink, keys)
    assert sorted(received) == sorted(keys)
    assert all(len(ids) == 1 for ids in received.values())


KILLED_SENDER = """
import asyncio, sys
from adapters.email import SmtpConfig, SmtpEmailSender
from workers.sender import Channels, Sender, SenderConfig
email = SmtpEmailSender(SmtpConfig(host="127.0.0.1", port=int(sys.argv[2]), sender=sys.argv[3],
                                   tls="none"))
config = SenderConfig(batch=10, lease_s=1.0, idle_s=0.05)
asyncio.run(Sender(sys.argv[1], Channels(email=email), config).run(asyncio.Event()))
"""


async def test_a_killed_sender_loses_nothing_and_duplicates_share_their_message_id(
    database_url: str, db: psycopg.AsyncConnection, tenant: Tenant, sink: SlowSink
) -> None:
    """A sender killed (SIGKILL) after the SMTP server accepted its messages but before it
    recorded them loses none: once their lease runs out another sender sends them again, and
    each message that so arrives twice carries the same Message-ID both times."""
    token = secrets.token_hex(3)
    keys = await _rows(db, tenant, "email", [f"k{n}-{token}@example.com" for n in range(6)])
    sink.answer_delay_s = 60.0  # the killed sender waits here, its messages stored
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        KILLED_SENDER,
        database_url,
        str(sink.port),
        FROM,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:

        async def accepted() -> bool:
            return len(_by_key(sink, keys)) == len(keys)

        await eventually(accepted, "the subprocess's messages at the server", deadline_s=20.0)
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    states = await _states(db, keys)
    assert all(row["state"] == "sending" for row in states.values())
    sink.answer_delay_s = 0.0
    survivor = Sender(database_url, Channels(email=_email(sink)), FAST)
    try:
        await _drain(survivor, db, keys, "sent")
    finally:
        await survivor.close()
    states = await _states(db, keys)
    assert all(row["attempts"] == 2 for row in states.values())
    received = _by_key(sink, keys)
    assert sorted(received) == sorted(keys)
    for ids in received.values():
        assert len(ids) == 2
        assert len(set(ids)) == 1, ids


async def test_the_sender_worker_runs_from_settings_and_hides_its_secrets(
    settings: Settings, db: psycopg.AsyncConnection, tenant: Tenant, sink: SlowSink
) -> None:
    """``worker sender`` (run_worker) builds its SMTP adapter from the LASTMILE_SMTP_*
    settings and sends a due row; the SMTP password and Twilio token never show in the repr."""
    configured = msgspec.structs.replace(
        settings,
        smtp_host="127.0.0.1",
        smtp_port=sink.port,
        smtp_tls="none",
        smtp_from=FROM,
        smtp_password="hunter2-smtp",
        twilio_auth_token="hunter2-twilio",
    )
    assert "hunter2" not in repr(configured)
    [key] = await _rows(db, tenant, "email", [f"w-{secrets.token_hex(3)}@example.com"])

    async def sent() -> bool:
        return bool((await _states(db, [key]))[key]["state"] == "sent")

    async with running_worker(configured, "sender"):
        await eventually(sent, "the row sent by the sender worker")
    assert key in _by_key(sink, [key])
