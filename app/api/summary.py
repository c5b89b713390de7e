"""``GET /v1/analytics/weekly-summary`` and ``POST /v1/analytics/weekly-summary/send``: the
organisation's weekly summary, previewed or emailed now (admins and dispatchers).

Both take ``week``, the Monday of a week of the organisation's days (by default the last
complete week in its time zone). The preview answers the figures and the email as it would be
sent; sending puts one email per recipient (``summary_emails`` of
``/v1/settings/organisation``) in the notification outbox, beside the scheduled summary of
Monday morning (:mod:`workers.summary`), which it does not replace.
"""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response

from app.auth import DISPATCHERS
from app.errors import BadParameter, Conflict, NotFound
from app.http import answer, encode, query_date, resources_of
from app.idempotency import Answer, run_create
from schemas.analytics import WeeklySummaryPreview, WeeklySummarySent
from schemas.ids import OrgId
from schemas.organisation import Organisation
from store import tenants
from workers import summary
from workers.messages import zone_of

OLDEST_WEEK_DAYS = 366
"""How far back a week may start."""


def _analytics_url(request: Request) -> str:
    """The analytics page, for the email's link."""
    base = resources_of(request).settings.public_url or str(request.base_url)
    return f"{base.rstrip('/')}/analytics"


async def _org(conn: AsyncConnection[Any], org_id: OrgId) -> Organisation:
    org = await tenants.organisation(conn, org_id)
    if org is None:
        raise NotFound("this organisation no longer exists")
    return org


def _week(request: Request, org: Organisation, now: datetime) -> date:
    """The ``week`` asked for, else the last complete one; 400 naming ``week`` for a day that
    is no Monday, or a week not over yet or too old."""
    latest = summary.last_complete_week(now, zone_of(org.time_zone))
    week = query_date(request, "week")
    if week is None:
        return latest
    if week.weekday() != 0:
        raise BadParameter("week", f"expected a Monday, got {week} (a {week:%A})")
    if week > latest:
        raise BadParameter("week", f"expected a week that is over, on or before {latest}")
    if week < latest - timedelta(days=OLDEST_WEEK_DAYS):
        raise BadParameter("week", f"expected a week from the last year, got {week}")
    return week


async def preview(request: Request) -> Response:
    """``GET /v1/analytics/weekly-summary``: the week's figures and the email, as it would go."""
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, DISPATCHERS)
    now = datetime.now(UTC)
    async with resources.pool.connection() as conn:
        org = await _org(conn, principal.org_id)
        week = _week(request, org, now)
        composed = await summary.compose(conn, org, week, now)
    mail = summary.render(composed, _analytics_url(request))
    return answer(
        WeeklySummaryPreview(
            summary=composed,
            recipients=list(org.summary_emails),
            subject=mail.subject or "",
            text=mail.text,
            html=mail.html or "",
        )
    )


async def send(request: Request) -> Response:
    """``POST /v1/analytics/weekly-summary/send``: email the week's summary to the recipients
    now; 409 when there are none, or when this deployment cannot send email. With an
    ``Idempotency-Key`` (:mod:`app.idempotency`), a retried request queues nothing again and
    replays the first answer."""
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, DISPATCHERS)
    if not resources.settings.email_configured:
        raise Conflict(None, "no SMTP relay configured: set LASTMILE_SMTP_HOST and _FROM")
    now = datetime.now(UTC)

    async def command(conn: AsyncConnection[Any]) -> Answer:
        org = await _org(conn, principal.org_id)
        week = _week(request, org, now)
        if not org.summary_emails:
            raise Conflict("summary_emails", "no recipients: set them in /v1/settings/organisation")
        composed = await summary.compose(conn, org, week, now)
        mail = summary.render(composed, _analytics_url(request))
        # A key of its own: sending now never stands in for the scheduled summary, nor is
        # refused for a week already sent.
        key = f"{summary.schedule_key(org.id, week)}:now:{secrets.token_hex(8)}"
        queued = await summary.queue(conn, org, mail, key, now)
        sent = WeeklySummarySent(
            week_start=week, recipients=list(org.summary_emails), queued=queued
        )
        return Answer(202, encode(sent))

    # The request says what it asks in its query (the week): that stands for the body when
    # the key's fingerprint tells one request from another.
    return await run_create(request, principal, request.url.query.encode(), command)
