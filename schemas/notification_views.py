"""Notifications as people read them: an outbox row with its attempts, and pages of them.

What ``GET /v1/orders/{order_id}/notifications`` and ``GET /v1/notifications`` answer, and what
the dispatcher map shows. ``recipient`` is the address as it was sent to (phone, email address,
webhook endpoint id), unmasked: every key that may read these may read the order, which
carries the same phone and email.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from schemas.ids import OrderId
from schemas.notifications import Channel, NotificationKind, OutboxState, RecipientKind


class AttemptView(msgspec.Struct, frozen=True, kw_only=True):
    """One try to hand a message to its provider."""

    attempt: int
    started_at: datetime
    finished_at: datetime
    outcome: str
    """``sent``, ``retry``, ``failed`` or ``dead``."""
    status_code: int | None = None
    """The provider's answer code (HTTP status, SMTP reply code) when there was one."""
    latency_ms: int
    provider_id: str | None = None
    error: str | None = None


class NotificationView(msgspec.Struct, frozen=True, kw_only=True):
    """One message to one recipient on one channel, and how far it got."""

    id: int
    order_id: OrderId | None
    kind: NotificationKind
    recipient_kind: RecipientKind
    channel: Channel
    recipient: str
    language: str
    state: OutboxState
    """``pending`` (not tried yet, or waiting to retry), ``sending``, ``sent`` (the provider
    took it), ``delivered`` (the provider reported delivery), ``failed``, ``dead`` (gave up)."""
    attempts: list[AttemptView]
    next_attempt_at: datetime | None
    """When a pending row is due (null once final)."""
    last_error: str | None = None
    """Why the last try failed, or what to configure for a channel that cannot send."""
    provider_id: str | None = None
    """The provider's id (email ``Message-ID``, Twilio's ``sid``)."""
    subject: str | None = None
    """The email's subject, as rendered when the message was decided."""
    text: str | None = None
    """The message's text (the SMS, or the email's text part), as rendered when decided; null
    for rows stored before messages were rendered at decision time."""
    created_at: datetime
    updated_at: datetime


class OrderNotifications(msgspec.Struct, frozen=True, kw_only=True):
    """An order's messages, oldest first."""

    order_id: OrderId
    notifications: list[NotificationView]


class NotificationPage(msgspec.Struct, frozen=True, kw_only=True):
    """A page of one recipient's messages of a day, by id; ``next_after`` is the ``after`` of
    the next page (null: last)."""

    recipient: str
    notifications: list[NotificationView]
    next_after: int | None


class DemoMail(msgspec.Struct, frozen=True, kw_only=True):
    """A mail the demo sink received: text as sent; ``html`` to be shown only in a sandboxed
    frame or as text, never as markup of the page."""

    id: str
    received_at: datetime
    sent_at: datetime | None = None
    sender: str
    to: str
    subject: str
    text: str | None = None
    html: str | None = None


class DemoMailbox(msgspec.Struct, frozen=True, kw_only=True):
    """The newest mails of the organisation the demo sink received, newest first."""

    time_zone: str
    """The organisation's time zone, for showing the times."""
    mails: list[DemoMail]
