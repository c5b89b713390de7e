"""The weekly summary on a constructed fortnight of an Auckland organisation whose answers are
known: the figures of each week (its zone, not UTC's, draws the week's boundary), the email as
the aiosmtpd server receives it with both parts and hostile text escaped, and the schedule
queueing it once per week however often it runs."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import psycopg
import pytest

from adapters.email import SmtpConfig, SmtpEmailSender
from schemas.analytics import ChannelMessages, ReasonCount
from schemas.ids import OrgId
from store import tenants
from tests.adapters.peers import SmtpSink
from tests.fortnight import (
    AUCKLAND,
    BEFORE,
    HOSTILE_ADDRESS,
    HOSTILE_CODE,
    HOSTILE_ORG,
    NOW,
    SUNDAY,
    WEEK,
    Fortnight,
    build_fortnight,
    local,
    rows,
)
from tests.helpers import eventually
from workers import summary
from workers.sender import Channels, Sender, SenderConfig

FAST = SenderConfig(batch=20, max_tries=3, idle_s=0.05, first_retry_s=0.1, retry_span_s=0.5)


@pytest.fixture
async def fortnight(db: psycopg.AsyncConnection) -> Fortnight:
    return await build_fortnight(db)


def test_the_organisations_zone_draws_the_weeks_boundary() -> None:
    """At 20:00 UTC on Sunday the 29th it is Monday the 30th in Auckland: there the week of the
    23rd is over, in UTC only the week of the 16th; before the send hour, the week before."""
    assert summary.last_complete_week(NOW, AUCKLAND) == WEEK
    assert summary.last_complete_week(NOW, ZoneInfo("UTC")) == BEFORE
    assert summary.last_complete_week(NOW, AUCKLAND, send_hour=9) == WEEK
    assert summary.last_complete_week(NOW, AUCKLAND, send_hour=10) == BEFORE


async def test_a_fortnight_composes_to_its_known_figures(
    db: psycopg.AsyncConnection, fortnight: Fortnight
) -> None:
    """Each week has its stops, rates, reasons, kilometres, stops per hour, ETA accuracy at 30
    minutes and messages; the days and messages beside the fortnight are in neither week."""
    org = await tenants.organisation(db, fortnight.org_id)
    assert org is not None
    made = await summary.compose(db, org, WEEK, NOW)
    week, before = made.week, made.previous
    assert (week.week_start, week.week_end) == (WEEK, SUNDAY)
    assert (week.stops, week.delivered, week.failed) == (6, 4, 2)
    assert (week.on_time_rate, week.first_attempt_success_rate) == (0.75, 0.6667)
    assert week.failures_by_reason == [
        ReasonCount(code=HOSTILE_CODE, failed=1),
        ReasonCount(code="not_home", failed=1),
    ]
    assert (week.planned_km, week.driven_km, week.route_efficiency) == (50.0, 60.0, 0.8333)
    assert week.stops_per_hour == 1.2
    assert (week.eta_30min_arrivals, week.eta_30min_mae_s, week.eta_30min_inside_rate) == (
        2,
        240.0,
        0.5,
    )
    assert week.notifications == [
        ChannelMessages(channel="sms", sent=1, failed=0),
        ChannelMessages(channel="email", sent=0, failed=1),
        ChannelMessages(channel="webhook", sent=0, failed=0),
    ]
    assert (before.week_start, before.stops, before.delivered, before.failed) == (BEFORE, 3, 2, 1)
    assert (before.on_time_rate, before.route_efficiency, before.stops_per_hour) == (
        1.0,
        0.8571,
        1.0,
    )
    assert (before.eta_30min_arrivals, before.eta_30min_mae_s) == (1, 60.0)
    assert before.failures_by_reason == [ReasonCount(code="not_home", failed=1)]
    assert before.notifications[0] == ChannelMessages(channel="sms", sent=1, failed=0)
    assert [(p.kind, p.label) for p in made.patterns] == [("failing_address", HOSTILE_ADDRESS)]


async def test_the_email_is_in_the_organisations_locale_with_customer_text_escaped(
    db: psycopg.AsyncConnection, fortnight: Fortnight
) -> None:
    """German dates and numbers; the hostile address, failure code and organisation name are
    text in the HTML and as typed in the text part; the subject is one line."""
    org = await tenants.organisation(db, fortnight.org_id)
    assert org is not None
    mail = summary.render(await summary.compose(db, org, WEEK, NOW), "https://x.example/analytics")
    assert mail.subject == f"{HOSTILE_ORG}: the week of 23.–29. Nov. 2026"
    assert "On time: 75,0% (week before 100,0%; -25,0 pts)" in mail.text
    assert "Driven km: 60 (week before 35; +25,0)" in mail.text
    assert HOSTILE_ADDRESS in mail.text
    assert mail.html is not None
    for raw in ("<script>", "<i>gate", "<Sons>"):
        assert raw not in mail.html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in mail.html
    assert "&lt;i&gt;gate&lt;/i&gt;" in mail.html
    assert "Acme &amp; &lt;Sons&gt;" in mail.html
    assert "30.11.2026" in mail.text  # composed on Monday, Auckland time


async def _summary_keys(db: psycopg.AsyncConnection, org: OrgId) -> list[str]:
    return [
        row[0]
        for row in await rows(
            db,
            "SELECT idempotency_key FROM outbox WHERE org_id = %s AND kind = 'weekly_summary'"
            " ORDER BY id",
            (org,),
        )
    ]


async def test_the_scheduled_email_reaches_the_smtp_server_with_both_parts(
    database_url: str, db: psycopg.AsyncConnection, fortnight: Fortnight, sink: SmtpSink
) -> None:
    """Queued on schedule and drained by the email sender: each recipient receives one
    ``multipart/alternative`` mail, its text and its HTML."""
    queued = await summary.queue_due(db, NOW, send_hour=7)
    assert (fortnight.org_id, WEEK, 2) in {(q.org_id, q.week_start, q.emails) for q in queued}
    keys = await _summary_keys(db, fortnight.org_id)
    assert len(keys) == 2
    email = SmtpEmailSender(
        SmtpConfig(host="127.0.0.1", port=sink.port, sender="lastmile <a@acme.example>", tls="none")
    )
    sender = Sender(database_url, Channels(email=email), FAST)

    async def received() -> bool:
        await sender.run_once()
        return {r.rcpt_tos[0] for r in sink.received} >= set(fortnight.emails)

    try:
        await eventually(received, "both recipients' mails")
    finally:
        await sender.close()
    mails = [r.message for r in sink.received if r.rcpt_tos[0] in fortnight.emails]
    assert len(mails) == 2
    mail: EmailMessage = mails[0]
    assert mail.get_content_type() == "multipart/alternative"
    assert str(mail["Subject"]) == f"{HOSTILE_ORG}: the week of 23.–29. Nov. 2026"
    text, html = (mail.get_body((kind,)) for kind in ("plain", "html"))
    assert text is not None
    assert html is not None
    assert "Deliveries: 4 (week before 2; +2)" in text.get_content()
    assert HOSTILE_ADDRESS in text.get_content()
    assert "&lt;script&gt;" in html.get_content()
    assert "<script>" not in html.get_content()


async def test_the_schedule_queues_once_per_week_however_often_it_runs(
    database_url: str, db: psycopg.AsyncConnection, fortnight: Fortnight
) -> None:
    """Two processes due at once queue one summary; running again that week (or on the next
    Monday before the send hour) queues nothing; the next Monday at the hour, the next week."""
    async with (
        await psycopg.AsyncConnection.connect(database_url, autocommit=True) as one,
        await psycopg.AsyncConnection.connect(database_url, autocommit=True) as two,
    ):
        await asyncio.gather(
            summary.queue_due(one, NOW, send_hour=7), summary.queue_due(two, NOW, send_hour=7)
        )
    mine = fortnight.org_id
    assert await _summary_keys(db, mine) == [
        f"weekly_summary:{mine}:{WEEK}:{address}" for address in fortnight.emails
    ]
    for later in (NOW + timedelta(hours=2), local(SUNDAY + timedelta(days=8), 6, 59)):
        again = await summary.queue_due(db, later, send_hour=7)
        assert mine not in {q.org_id for q in again}
    next_week = await summary.queue_due(db, local(SUNDAY + timedelta(days=8), 7), send_hour=7)
    assert [(q.week_start, q.emails) for q in next_week if q.org_id == mine] == [
        (WEEK + timedelta(days=7), 2)
    ]
    assert len(await _summary_keys(db, mine)) == 4
    weeks = await rows(
        db, "SELECT week_start FROM weekly_summaries WHERE org_id = %s ORDER BY 1", (mine,)
    )
    assert weeks == [(WEEK,), (WEEK + timedelta(days=7),)]
