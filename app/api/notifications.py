"""The notifications API: what was sent to whom, per order and per recipient, and how far it got.

``GET /v1/orders/{order_id}/notifications`` lists an order's messages, oldest first, each with
its channel, recipient, kind, state, every attempt and its outcome, and the provider's id and
last error. ``GET /v1/notifications?recipient=&day=&after=&limit=`` lists the messages to one
recipient (a phone number, an email address or a webhook endpoint id, exactly as stored) on one
day of the organisation's time zone (default: today there), a page at a time by id.

Any API key reads (READERS). Another organisation's order is 404, and its messages never appear
in a recipient's list. Recipients are shown unmasked: a key that may read these may read the
order itself, which carries the same phone number and email address.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import Response

from app.api.checks import zone
from app.auth import READERS
from app.errors import BadParameter, NotFound
from app.http import answer, path_id, query_date, query_int, resources_of
from schemas.ids import OrderId
from schemas.notification_views import (
    AttemptView,
    NotificationPage,
    NotificationView,
    OrderNotifications,
)
from schemas.notifications import Rendered
from store import notifications as outbox
from store.delivery import org_settings
from store.notification_rules import bodies_of
from store.notifications import Attempt, OutboxRow
from store.orders import get_order

DEFAULT_PAGE: Final = 100
MAX_PAGE: Final = 1000
MAX_RECIPIENT: Final = 320
"""The longest address we look for (an email address is at most 320 characters)."""
FINAL_STATES: Final = frozenset({"sent", "delivered", "failed", "dead"})


def view(row: OutboxRow, attempts: list[Attempt], body: Rendered | None) -> NotificationView:
    """A stored message, its attempts and its rendered text as people read them."""
    return NotificationView(
        id=row.id,
        order_id=row.order_id,
        kind=row.kind,
        recipient_kind=row.recipient_kind,
        channel=row.channel,
        recipient=row.address,
        language=row.language,
        state=row.state,
        attempts=[
            AttemptView(
                attempt=a.attempt,
                started_at=a.started_at,
                finished_at=a.finished_at,
                outcome=a.outcome,
                status_code=a.status_code,
                latency_ms=a.latency_ms,
                provider_id=a.provider_id,
                error=a.error,
            )
            for a in attempts
        ],
        next_attempt_at=None if row.state in FINAL_STATES else row.next_attempt_at,
        last_error=row.last_error,
        provider_id=row.provider_id,
        subject=None if body is None else body.subject,
        text=None if body is None else body.text,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def of_order(request: Request) -> Response:
    """``GET /v1/orders/{order_id}/notifications``: the order's messages, oldest first."""
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, READERS)
    order_id = OrderId(path_id(request, "order_id"))
    async with resources.pool.connection() as conn:
        if await get_order(conn, principal.org_id, order_id) is None:
            raise NotFound(f"no order {order_id} in this organisation")
        rows = await outbox.list_for_order(conn, principal.org_id, order_id)
        attempts = await outbox.attempts_of(conn, [row.id for row in rows])
        bodies = await bodies_of(conn, [row.id for row in rows])
    return answer(
        OrderNotifications(
            order_id=order_id,
            notifications=[view(row, attempts.get(row.id, []), bodies.get(row.id)) for row in rows],
        )
    )


async def of_recipient(request: Request) -> Response:
    """``GET /v1/notifications?recipient=&day=&after=&limit=``: a recipient's messages of a day."""
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, READERS)
    recipient = (request.query_params.get("recipient") or "").strip()
    if not recipient:
        raise BadParameter(
            "recipient", "expected a phone number, email address or webhook endpoint id, got none"
        )
    if len(recipient) > MAX_RECIPIENT:
        raise BadParameter(
            "recipient", f"expected at most {MAX_RECIPIENT} characters, got {len(recipient)}"
        )
    if "\x00" in recipient:
        raise BadParameter("recipient", "expected text without NUL characters")
    day = query_date(request, "day")
    after = query_int(request, "after", 0, 0, 2**63 - 1)
    limit = query_int(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
    async with resources.pool.connection() as conn:
        org_zone = zone((await org_settings(conn, principal.org_id)).timezone)
        start, end = day_bounds(day or datetime.now(org_zone).date(), org_zone)
        rows = await outbox.list_for_recipient(
            conn, principal.org_id, recipient, start, end, after=after, limit=limit
        )
        attempts = await outbox.attempts_of(conn, [row.id for row in rows])
        bodies = await bodies_of(conn, [row.id for row in rows])
    return answer(
        NotificationPage(
            recipient=recipient,
            notifications=[view(row, attempts.get(row.id, []), bodies.get(row.id)) for row in rows],
            next_after=rows[-1].id if len(rows) == limit else None,
        )
    )


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The instants ``[start, end)`` of ``day`` in ``zone`` (23 or 25 hours on DST days)."""
    start = datetime.combine(day, time(0), zone)
    end = datetime.combine(day + timedelta(days=1), time(0), zone)
    return start.astimezone(UTC), end.astimezone(UTC)
