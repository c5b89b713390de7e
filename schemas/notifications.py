"""Notifications: what the notify worker decides to send, and the rules it decides by.

A :class:`Notification` is one message to one recipient on one channel, as the notify worker
writes it to the ``outbox`` table; a sender (a later worker) drains that table. Its
``idempotency_key`` is derived from the events stream entry, the recipient and the channel, so
deciding the same entry twice yields the same key and the outbox stores it once; receivers can
drop duplicates by it.

:class:`NotificationRules` are an organisation's rules. Their defaults need no setup: the
customer hears by SMS (or by email when the order has no phone) when the driver is en route,
approaching, has delivered, could not deliver, is running late, and when the arrival window
moves a lot; never of an ``out_of_sequence`` dwell (an alert for dispatchers).
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from schemas.ids import OrderId, OrgId

RecipientKind = Literal["customer", "dispatcher", "integration"]
Channel = Literal["sms", "email", "webhook"]
NotificationKind = Literal[
    "en_route", "approaching", "delivered", "failed", "running_late", "eta_changed"
]
"""What a customer can be told of: the delivery events by their ``type`` tag, ``delivered``
(:class:`~schemas.events.StopDelivered`) and ``failed`` (:class:`~schemas.events.StopFailed`)."""
OutboxState = Literal["pending", "sending", "sent", "delivered", "failed", "dead"]

CUSTOMER_KINDS: tuple[NotificationKind, ...] = (
    "en_route",
    "approaching",
    "delivered",
    "failed",
    "running_late",
    "eta_changed",
)


def idempotency_key(event_id: str, recipient: RecipientKind, channel: Channel) -> str:
    """The stable key of one message: the events entry, its recipient and channel."""
    return f"{event_id}:{recipient}:{channel}"


class Notification(msgspec.Struct, frozen=True, kw_only=True):
    """One message due, as the outbox stores it."""

    org_id: OrgId
    order_id: OrderId
    event_id: str
    """The events stream entry id the message was decided from."""
    kind: NotificationKind
    recipient_kind: RecipientKind
    channel: Channel
    address: str
    """A phone number, an email address or a webhook endpoint's id."""
    template: str
    """The template key, ``{kind}.{channel}`` (templates are a later slice)."""
    language: str
    idempotency_key: str
    created_at: datetime
    window_lower_epoch_s: float | None = None
    """The arrival window the message tells of, if any (what a later ``eta_changed`` is
    compared with)."""
    window_upper_epoch_s: float | None = None


class QuietHours(msgspec.Struct, frozen=True, kw_only=True):
    """Local times (the organisation's time zone) between which no customer is messaged.

    ``start`` after ``end`` spans midnight (22:00–07:00). A message due then is dropped, not
    deferred: by morning "approaching" or a new window is wrong, and a delivery is on the
    tracking page anyway.
    """

    start: time
    end: time

    def contains(self, local: time) -> bool:
        """True when ``local`` falls in the quiet hours."""
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


def parse_quiet_hours(text: str | None) -> QuietHours | None:
    """``"22:00-07:00"`` as :class:`QuietHours`; None or ``""`` for none; ValueError otherwise."""
    if not text:
        return None
    try:
        start, end = text.split("-")
        return QuietHours(
            start=time.fromisoformat(start.strip()), end=time.fromisoformat(end.strip())
        )
    except ValueError:
        raise ValueError(f"expected quiet hours as HH:MM-HH:MM, got {text!r}") from None


class NotificationRules(msgspec.Struct, frozen=True, kw_only=True):
    """An organisation's notification rules; the defaults work with no setup."""

    customer_kinds: frozenset[NotificationKind] = frozenset(CUSTOMER_KINDS)
    """Which events notify the order's customer."""
    customer_channels: tuple[Literal["sms", "email"], ...] = ("sms", "email")
    """In order of preference: the first the order has a contact for is used."""
    language: str = "en"
    timezone: str = "UTC"
    """The organisation's time zone, for quiet hours."""
    quiet_hours: QuietHours | None = None
    max_event_age_s: Annotated[float, Meta(gt=0)] = 1800.0
    """An event older than this (a backlog drained after an outage) notifies nobody."""
    eta_min_move_s: Annotated[float, Meta(ge=0)] = 900.0
    """``eta_changed`` reaches the customer only when a window edge moved more than this from
    the window the customer was last told of."""
    eta_min_interval_s: Annotated[float, Meta(ge=0)] = 1800.0
    """…and at most once in this long."""


class OrderContact(msgspec.Struct, frozen=True, kw_only=True):
    """What decide needs of an order."""

    org_id: OrgId
    order_id: OrderId
    status: str
    phone: str | None = None
    email: str | None = None
    opted_out: bool = False


class Sent(msgspec.Struct, frozen=True, kw_only=True):
    """A message already in the outbox for an order."""

    kind: NotificationKind
    channel: Channel
    recipient_kind: RecipientKind
    created_at: datetime
    window_lower_epoch_s: float | None = None
    window_upper_epoch_s: float | None = None
