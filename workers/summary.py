"""The weekly summary: an organisation's last complete week in figures, by email.

:func:`compose` reads a week (Monday to Sunday, the organisation's days in its time zone) and
the week before through :mod:`store.reports`: four grouped queries over the fortnight by day
(stops, ETA errors, routes, messages), one per week for the failure reasons, and the patterns
of the week (:func:`workers.patterns.find_patterns`). :func:`render` writes it as an email's
subject, text and HTML with the Jinja2 templates beside this module: the HTML is autoescaped
(addresses are customers' text, drivers' names people's), dates and numbers are in the
organisation's locale and time zone (Babel); the words are English.

:func:`queue` puts one email per recipient in the notification outbox (``weekly_summary``, about
no order), so the email sender delivers it with its retries through the deployment's SMTP
relay. :func:`run_summaries` is the schedule, beside the rollups worker like the learner: every
``check_every_s`` it queues the summaries due (:func:`queue_due`): an organisation with
recipients whose last complete week, as of ``send_hour`` on Monday in its time zone, has no row
in ``weekly_summaries``. That row is written in the transaction that queues the emails, so the
summary goes once per organisation and week however many processes run the schedule, and a
week missed while nothing ran goes out late rather than never.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

import psycopg
import structlog
from babel import Locale
from babel.dates import format_datetime, format_interval
from babel.numbers import format_decimal, format_percent
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from prometheus_client import Counter

from schemas.analytics import (
    ChannelMessages,
    Pattern,
    ReasonCount,
    WeekFigures,
    WeeklySummary,
)
from schemas.ids import OrgId
from schemas.notifications import CHANNELS, Notification, Rendered
from schemas.organisation import Organisation
from store import reports, tenants
from store import summaries as store
from store.notification_rules import Body, store_bodies
from store.notifications import insert_many
from workers.messages import locale_of, zone_of
from workers.patterns import find_patterns
from workers.schedule import every

log = structlog.get_logger(__name__)

QUEUED = Counter("lastmile_weekly_summaries_total", "Weekly summaries queued on schedule")

KIND: Final = "weekly_summary"
TEMPLATES: Final = Path(__file__).with_name("templates")
MAX_PATTERNS: Final = 5
TOP_REASONS: Final = 3
_KINDS: Final = {
    "late_zone": "Late day after day",
    "failing_address": "First attempts keep failing",
    "failing_zone": "A zone of failed first attempts",
    "slow_service": "Slow at the door",
    "fast_service": "Quick at the door",
}
_CHANNEL_NAMES: Final = {"sms": "SMS", "email": "Email", "webhook": "Webhook"}


def last_complete_week(now: datetime, zone: ZoneInfo, send_hour: int = 0) -> date:
    """The Monday of the last week (Monday to Sunday in ``zone``) that had ended ``send_hour``
    hours before ``now``, wall-clock: with 7, on Monday at 06:59 the week before last."""
    local = now.astimezone(zone) - timedelta(hours=send_hour)
    return local.date() - timedelta(days=local.weekday() + 7)


# --- the figures ---------------------------------------------------------------------------------


def _week(
    start: date,
    days: list[reports.DeliveryTotals],
    etas: list[reports.EtaTotals],
    routes: list[reports.RouteTotals],
    messages: list[reports.NotificationTotals],
    reasons: list[reports.DeliveryTotals],
) -> WeekFigures:
    """One week's figures from its days' totals (keyed by day) and its failure reasons."""
    end = start + timedelta(days=6)

    def inside(key: str) -> bool:
        return start.isoformat() <= key <= end.isoformat()  # ISO days sort as they run

    days = [d for d in days if inside(d.key)]
    eta = [e for e in etas if inside(e.key) and e.horizon_min == 30]
    routes = [r for r in routes if inside(r.key)]
    arrivals = sum(e.arrivals for e in eta)
    planned_m, driven_m = sum(r.planned_m for r in routes), sum(r.driven_m for r in routes)
    sent: dict[str, int] = {}
    failed: dict[str, int] = {}
    for m in messages:
        if inside(m.key):
            sent[m.channel] = sent.get(m.channel, 0) + m.sent
            failed[m.channel] = failed.get(m.channel, 0) + m.failed
    return WeekFigures(
        week_start=start,
        week_end=end,
        stops=sum(d.stops for d in days),
        delivered=sum(d.delivered for d in days),
        failed=sum(d.failed for d in days),
        on_time_rate=reports.ratio(sum(d.on_time for d in days), sum(d.with_window for d in days)),
        first_attempt_success_rate=reports.ratio(
            sum(d.first_delivered for d in days), sum(d.first_attempts for d in days)
        ),
        failures_by_reason=[
            ReasonCount(code=r.key, failed=r.stops)
            for r in sorted(reasons, key=lambda r: (-r.stops, r.key))
        ],
        planned_km=round(planned_m / 1000, 2),
        driven_km=round(driven_m / 1000, 2),
        route_efficiency=reports.ratio(planned_m, driven_m),
        stops_per_hour=reports.ratio(
            sum(r.stops for r in routes) * 3600, sum(r.actual_s for r in routes), 2
        ),
        eta_30min_arrivals=arrivals,
        eta_30min_mae_s=reports.ratio(sum(e.mae_s * e.arrivals for e in eta), arrivals, 1),
        eta_30min_inside_rate=reports.ratio(sum(e.inside_rate * e.arrivals for e in eta), arrivals),
        notifications=[
            ChannelMessages(channel=c, sent=sent.get(c, 0), failed=failed.get(c, 0))
            for c in CHANNELS
        ],
    )


def _top(patterns: list[Pattern]) -> list[Pattern]:
    """The first of each kind, then the second of each, and so on: a few of every kind rather
    than all of the first."""
    rank: dict[str, int] = {}
    ranked = []
    for n, p in enumerate(patterns):
        rank[p.kind] = rank.get(p.kind, -1) + 1
        ranked.append((rank[p.kind], n, p))
    return [p for _, _, p in sorted(ranked, key=lambda r: (r[0], r[1]))][:MAX_PATTERNS]


async def compose(
    conn: psycopg.AsyncConnection[Any], org: Organisation, week_start: date, now: datetime
) -> WeeklySummary:
    """The organisation's week starting on the Monday ``week_start``, beside the week before,
    with the week's top patterns; ``now`` is when it was composed."""
    before = week_start - timedelta(days=7)
    end = week_start + timedelta(days=6)
    days = await reports.delivery_totals(conn, org.id, before, end, "day")
    etas = await reports.eta_totals(conn, org.id, before, end, "day")
    routes = await reports.route_totals(conn, org.id, before, end, "day")
    messages = await reports.notification_totals(conn, org.id, before, end, "day")
    weeks = []
    for start in (week_start, before):
        reasons = await reports.delivery_totals(
            conn, org.id, start, start + timedelta(days=6), "reason"
        )
        weeks.append(_week(start, days, etas, routes, messages, reasons))
    patterns = await find_patterns(conn, org.id, week_start, end)
    return WeeklySummary(
        org_name=org.name,
        time_zone=org.time_zone,
        locale=org.locale,
        composed_at=now,
        week=weeks[0],
        previous=weeks[1],
        patterns=_top(patterns),
        more_patterns=max(0, len(patterns) - MAX_PATTERNS),
    )


# --- the email -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """One figure as the email shows it: this week, the week before, and the change."""

    label: str
    now: str
    before: str
    change: str


@cache
def _templates() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


Unit = Literal["count", "decimal", "share", "minutes"]
"""How a figure is written: ``count`` whole, ``decimal`` to a tenth, ``share`` a percentage
(its change in points), ``minutes`` from seconds."""
_FIGURES: Final[tuple[tuple[str, Callable[[WeekFigures], float | None], Unit], ...]] = (
    ("Deliveries", lambda w: w.delivered, "count"),
    ("Failed", lambda w: w.failed, "count"),
    ("On time", lambda w: w.on_time_rate, "share"),
    ("First-attempt success", lambda w: w.first_attempt_success_rate, "share"),
    ("Planned km", lambda w: w.planned_km, "decimal"),
    ("Driven km", lambda w: w.driven_km, "decimal"),
    ("Route efficiency (planned ÷ driven)", lambda w: w.route_efficiency, "share"),
    ("Stops per hour", lambda w: w.stops_per_hour, "decimal"),
    ("ETA error 30 min before arrival", lambda w: w.eta_30min_mae_s, "minutes"),
    ("Inside the window 30 min before", lambda w: w.eta_30min_inside_rate, "share"),
)


@dataclass(frozen=True)
class _Writer:
    """Figures as the organisation's locale writes them (Babel): ``–`` for none."""

    locale: Locale

    def shown(self, value: float | None, unit: Unit) -> str:
        if value is None:
            return "–"
        if unit == "share":
            return str(format_percent(value, "#,##0.0%", locale=self.locale))
        if unit == "minutes":
            return f"{format_decimal(value / 60, '#,##0.#', locale=self.locale)} min"
        pattern = "#,##0" if unit == "count" else "#,##0.#"
        return str(format_decimal(value, pattern, locale=self.locale))

    def change(self, now: float | None, before: float | None, unit: Unit) -> str:
        """``now`` less ``before``, signed; empty when either is missing."""
        if now is None or before is None:
            return ""
        if unit == "count":
            return str(format_decimal(now - before, "+#,##0;-#,##0", locale=self.locale))
        scale, suffix = {"share": (100, " pts"), "minutes": (1 / 60, " min")}.get(unit, (1, ""))
        signed = format_decimal((now - before) * scale, "+#,##0.0;-#,##0.0", locale=self.locale)
        return f"{signed}{suffix}"

    def line(self, label: str, now: float | None, before: float | None, unit: Unit) -> Line:
        return Line(
            label, self.shown(now, unit), self.shown(before, unit), self.change(now, before, unit)
        )


def _lines(summary: WeeklySummary, writer: _Writer) -> list[Line]:
    """The figures of the week beside the week before's; a channel's messages only where it
    had some in either week."""
    week, previous = summary.week, summary.previous
    lines = [writer.line(label, of(week), of(previous), unit) for label, of, unit in _FIGURES]
    for n, channel in enumerate(CHANNELS):
        now, before = week.notifications[n], previous.notifications[n]
        if now.sent or now.failed or before.sent or before.failed:
            name = _CHANNEL_NAMES.get(channel, channel)
            lines.append(writer.line(f"{name} messages sent", now.sent, before.sent, "count"))
            lines.append(writer.line(f"{name} messages failed", now.failed, before.failed, "count"))
    return lines


def render(summary: WeeklySummary, analytics_url: str | None = None) -> Rendered:
    """The summary as an email: subject, text and HTML, in the organisation's locale and time
    zone; a link to ``analytics_url`` when given."""
    locale = locale_of(summary.locale)
    week, previous = summary.week, summary.previous
    before = {r.code: r.failed for r in previous.failures_by_reason}
    reasons = [
        (
            r.code,
            str(format_decimal(r.failed, locale=locale)),
            str(format_decimal(before.get(r.code, 0), locale=locale)),
        )
        for r in week.failures_by_reason[:TOP_REASONS]
    ]
    context = {
        "org_name": summary.org_name,
        "week": format_interval(week.week_start, week.week_end, "yMMMd", locale=locale),
        "previous": format_interval(previous.week_start, previous.week_end, "yMMMd", locale=locale),
        "lines": _lines(summary, _Writer(locale)),
        "reasons": reasons,
        "patterns": [
            {"kind": _KINDS.get(p.kind, p.kind), "label": p.label, "summary": p.summary}
            for p in summary.patterns
        ],
        "more_patterns": summary.more_patterns,
        "composed_at": format_datetime(
            summary.composed_at, "medium", tzinfo=zone_of(summary.time_zone), locale=locale
        ),
        "time_zone": summary.time_zone,
        "analytics_url": analytics_url,
    }
    templates = _templates()
    return Rendered(
        subject=" ".join(f"{summary.org_name}: the week of {context['week']}".split()),
        text=templates.get_template("weekly_summary.txt").render(context).strip() + "\n",
        html=templates.get_template("weekly_summary.html").render(context),
    )


# --- sending -------------------------------------------------------------------------------------


async def queue(
    conn: psycopg.AsyncConnection[Any],
    org: Organisation,
    mail: Rendered,
    key: str,
    now: datetime,
) -> int:
    """One ``weekly_summary`` email per recipient of ``org`` into the outbox, each with the
    idempotency key ``{key}:{address}`` (a key stored already is skipped), and its text; the
    number of new rows. Call it in a transaction: the sender sees the rows at the commit."""
    notes = [
        Notification(
            org_id=org.id,
            order_id=None,
            event_id=key,
            kind=KIND,
            recipient_kind="dispatcher",
            channel="email",
            address=address,
            template=f"{KIND}.email",
            language=org.locale,
            idempotency_key=f"{key}:{address}",
            created_at=now,
        )
        for address in org.summary_emails
    ]
    new = await insert_many(conn, notes)
    await store_bodies(conn, [Body(n.idempotency_key, mail) for n in notes])
    return new


def schedule_key(org_id: OrgId, week_start: date) -> str:
    """The key of the scheduled summary of a week (its emails' keys add the address)."""
    return f"{KIND}:{org_id}:{week_start.isoformat()}"


@dataclass(frozen=True)
class Queued:
    """A scheduled summary that was queued."""

    org_id: OrgId
    week_start: date
    emails: int


async def queue_due(
    conn: psycopg.AsyncConnection[Any],
    now: datetime,
    *,
    send_hour: int,
    analytics_url: str | None = None,
) -> list[Queued]:
    """Queue every summary due at ``now`` (see the module's docstring), each in a transaction
    of its own that first claims its week; what this call queued."""
    subscribed = await store.with_recipients(conn)
    weeks = [
        (s.org_id, last_complete_week(now, zone_of(s.time_zone), send_hour)) for s in subscribed
    ]
    done = await store.queued_weeks(conn, weeks)
    queued = []
    for org_id, week_start in weeks:
        if (org_id, week_start) in done:
            continue
        async with conn.transaction():
            org = await tenants.organisation(conn, org_id)
            if org is None or not org.summary_emails:
                continue  # changed since listed
            if not await store.claim_week(conn, org_id, week_start, len(org.summary_emails)):
                continue  # another process queued it meanwhile
            summary = await compose(conn, org, week_start, now)
            mail = render(summary, analytics_url)
            emails = await queue(conn, org, mail, schedule_key(org_id, week_start), now)
        QUEUED.inc()
        queued.append(Queued(org_id, week_start, emails))
    return queued


async def run_summaries(
    database_url: str,
    stop: asyncio.Event,
    *,
    send_hour: int,
    analytics_url: str | None = None,
    check_every_s: float = 600.0,
) -> None:
    """Queue the summaries due every ``check_every_s`` until ``stop``."""

    async def queue_now(conn: psycopg.AsyncConnection) -> None:
        now = datetime.now(UTC)
        for q in await queue_due(conn, now, send_hour=send_hour, analytics_url=analytics_url):
            log.info(
                "weekly summary queued",
                org_id=q.org_id,
                week_start=str(q.week_start),
                emails=q.emails,
            )

    await every(check_every_s, stop, database_url, "weekly summaries", queue_now)
