"""Outbox rows for tests that start after the notify worker: a customer's message, as decided."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.ids import OrderId, OrgId
from schemas.notifications import (
    Channel,
    Notification,
    NotificationKind,
    idempotency_key,
)


def customer_message(
    org_id: OrgId,
    order_id: OrderId,
    event_id: str,
    address: str,
    *,
    kind: NotificationKind = "en_route",
    channel: Channel = "email",
    created_at: datetime | None = None,
) -> Notification:
    """The message the notify worker would decide for the order's customer from entry
    ``event_id``: in English, with the default template and idempotency key of its kind and
    channel, created now unless ``created_at`` says when."""
    return Notification(
        org_id=org_id,
        order_id=order_id,
        event_id=event_id,
        kind=kind,
        recipient_kind="customer",
        channel=channel,
        address=address,
        template=f"{kind}.{channel}",
        language="en",
        idempotency_key=idempotency_key(event_id, "customer", channel),
        created_at=created_at or datetime.now(UTC),
    )
