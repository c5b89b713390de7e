"""Notify worker: domain events → messages due, in the ``outbox``; detection apart from delivery.

Its group ``notify`` reads the shared events stream. For each entry, the pure :func:`decide`
takes the event, its order, the organisation's rules and what the order was already sent, and
returns the messages due; :meth:`NotifyConsumer.handle` loads what decide needs for the whole
batch (two queries), decides entry by entry (a message decided earlier in the batch counts as
sent for the later ones), and stores every message in one transaction with
``ON CONFLICT DO NOTHING``. Only then does it return, and the runner acknowledges the entries.
A redelivered entry decides the same messages, with the same idempotency keys, and stores
nothing new. Sending is a sender's job (a later slice): nothing here talks to the outside world.

Restraint, in :func:`decide`: nothing for a cancelled order or a customer who opted out;
nothing for an event older than ``max_event_age_s``; nothing in quiet hours (dropped, not
deferred: see :class:`~schemas.notifications.QuietHours`); at most one message per order,
event kind and channel; ``eta_changed`` only when a window edge moved more than
``eta_min_move_s`` from the window the customer was last told of, and at most every
``eta_min_interval_s``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
import psycopg
import structlog
from prometheus_client import Counter

from realtime.streams import StreamNames
from schemas.codecs import EVENT_DECODER
from schemas.eta import Approaching, ArrivalWindow, EnRoute, EtaChanged, RunningLate
from schemas.events import DeliveryUpdate, Event, StopDelivered, StopFailed
from schemas.ids import OrderId, OrgId
from schemas.notifications import (
    Notification,
    NotificationKind,
    NotificationRules,
    OrderContact,
    Sent,
    idempotency_key,
)
from store.notifications import insert_many, load_for_decide
from workers.connection import OwnConnection
from workers.runner import Entry

log = structlog.get_logger(__name__)

GROUP = "notify"

STORED = Counter("lastmile_notify_stored_total", "Messages decided and newly stored in the outbox")


def kind_of(event: Event) -> tuple[NotificationKind, OrderId, ArrivalWindow | None] | None:
    """What a customer could be told of ``event``: its kind, order and window; None if nothing."""
    if isinstance(event, StopDelivered):
        return "delivered", event.order_id, None
    if isinstance(event, StopFailed):
        return "failed", event.order_id, None
    if isinstance(event, DeliveryUpdate):
        d = event.detail
        if isinstance(d, EnRoute):
            return "en_route", d.order_id, d.window
        if isinstance(d, Approaching):
            return "approaching", d.order_id, d.window
        if isinstance(d, RunningLate):
            return "running_late", d.order_id, d.window
        if isinstance(d, EtaChanged):
            return "eta_changed", d.order_id, d.window
    return None  # arrived, departed, out_of_sequence (dispatchers'), route events


def _eta_due(
    window: ArrivalWindow | None, sent: Sequence[Sent], rules: NotificationRules, now: datetime
) -> bool:
    """Whether a moved window is worth a message: moved enough, not too soon after the last."""
    if window is None:
        return False
    told = [
        (s.created_at, s.window_lower_epoch_s, s.window_upper_epoch_s)
        for s in sent
        if s.window_lower_epoch_s is not None and s.window_upper_epoch_s is not None
    ]
    if told:
        _, lower, upper = max(told, key=lambda t: t[0])
        moved = max(abs(window.lower_epoch_s - lower), abs(window.upper_epoch_s - upper))
        if moved <= rules.eta_min_move_s:
            return False
    changes = [s.created_at for s in sent if s.kind == "eta_changed"]
    return not (changes and (now - max(changes)).total_seconds() < rules.eta_min_interval_s)


def decide(
    event: Event,
    event_id: str,
    order: OrderContact | None,
    rules: NotificationRules,
    already_sent: Sequence[Sent],
    now: datetime,
) -> list[Notification]:
    """The messages ``event`` (entry ``event_id``) makes due for its order's customer."""
    what = kind_of(event)
    if what is None or order is None:
        return []
    kind, order_id, window = what
    if kind not in rules.customer_kinds or order.order_id != order_id:
        return []
    if order.org_id != event.org_id or order.status == "cancelled" or order.opted_out:
        return []
    if (now - event.at).total_seconds() > rules.max_event_age_s:
        return []
    if rules.quiet_hours is not None:
        local = now.astimezone(_zone(rules.timezone)).time()
        if rules.quiet_hours.contains(local):
            return []
    contacts = {"sms": order.phone, "email": order.email}
    channel = next((c for c in rules.customer_channels if contacts[c]), None)
    if channel is None:
        return []
    address = contacts[channel]
    assert address is not None
    mine = [s for s in already_sent if s.recipient_kind == "customer" and s.channel == channel]
    if kind == "eta_changed":
        if not _eta_due(window, mine, rules, now):
            return []
    elif any(s.kind == kind for s in mine):
        return []
    return [
        Notification(
            org_id=order.org_id,
            order_id=order.order_id,
            event_id=event_id,
            kind=kind,
            recipient_kind="customer",
            channel=channel,
            address=address,
            template=f"{kind}.{channel}",
            language=rules.language,
            idempotency_key=idempotency_key(event_id, "customer", channel),
            created_at=now,
            window_lower_epoch_s=None if window is None else window.lower_epoch_s,
            window_upper_epoch_s=None if window is None else window.upper_epoch_s,
        )
    ]


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def as_sent(n: Notification) -> Sent:
    """A decided message as decide sees it afterwards."""
    return Sent(
        kind=n.kind,
        channel=n.channel,
        recipient_kind=n.recipient_kind,
        created_at=n.created_at,
        window_lower_epoch_s=n.window_lower_epoch_s,
        window_upper_epoch_s=n.window_upper_epoch_s,
    )


@dataclass
class NotifyConsumer(OwnConnection):
    """Decides the messages of event batches and stores them; one connection, reopened after
    a failure. ``rules`` are every organisation's (per-organisation rules are a later slice),
    with each organisation's own time zone."""

    names: StreamNames
    database_url: str
    rules: NotificationRules = field(default_factory=NotificationRules)
    group: str = GROUP
    _conn: psycopg.AsyncConnection | None = field(default=None, repr=False)

    def streams(self) -> Sequence[str]:
        return [self.names.events]

    def decode(self, fields: dict[bytes, bytes]) -> Event:
        event: Event = EVENT_DECODER.decode(fields[b"e"])
        return event

    async def handle(self, entries: Sequence[Entry[Event]]) -> None:
        wanted: list[tuple[OrgId, OrderId]] = []
        for entry in entries:
            what = kind_of(entry.value)
            if what is not None:
                wanted.append((entry.value.org_id, what[1]))
        if not wanted:
            return
        conn = await self._connection()
        try:
            async with conn.transaction():
                contacts, zones, sent = await load_for_decide(conn, wanted)
                now = datetime.now(UTC)
                due: list[Notification] = []
                for entry in entries:
                    what = kind_of(entry.value)
                    if what is None:
                        continue
                    order = contacts.get(what[1])
                    if order is None:
                        continue
                    rules = msgspec.structs.replace(
                        self.rules, timezone=zones.get(order.org_id, self.rules.timezone)
                    )
                    history = sent.setdefault(order.order_id, [])
                    made = decide(entry.value, entry.id, order, rules, history, now)
                    history.extend(as_sent(n) for n in made)
                    due.extend(made)
                new = await insert_many(conn, due)
        except (psycopg.OperationalError, psycopg.InterfaceError):
            await self.close()
            raise
        STORED.inc(new)
        if new:
            log.debug("notifications stored", new=new, decided=len(due))
