"""Notify worker: domain events → messages due, in the ``outbox``; detection apart from delivery.

Its group ``notify`` reads the shared events stream. For each entry, the pure :func:`decide`
takes the event, its order, the organisation's rules and what the order was already sent, and
returns the messages due: the customer's (SMS or email) and the dispatchers' alerts (email).
:meth:`NotifyConsumer.handle` loads what decide and the messages need for the whole batch (the
orders and what they were sent; each organisation's rules, templates, name and time zone; the
orders' references and addresses; their tracking links), decides entry by entry (a message
decided earlier in the batch counts as sent for the later ones), **renders** each message with
its organisation's template, and stores every message with its text in one transaction
(``ON CONFLICT DO NOTHING``). Only then does it return, and the runner acknowledges the
entries. A redelivered entry decides the same messages, with the same idempotency keys, and
stores nothing new (the text first rendered stays). Sending is the sender's job: nothing here
talks to the outside world.

Why render here and not when sending: what the customer reads must be what was true when the
message was decided (the window of that event, the failure reason given then, the template in
force then), not whatever holds when a retry finally gets through hours later.

Restraint, in :func:`decide`: nothing for a cancelled order; nothing for an event older than
``max_event_age_s``; for the customer, nothing when opted out or in quiet hours (dropped, not
deferred: see :class:`~schemas.notifications.QuietHours`); at most one message per order,
event kind, recipient and channel; ``eta_changed`` only when a window edge moved more than
``eta_min_move_s`` from the window the customer was last told of, and at most every
``eta_min_interval_s``.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import msgspec
import psycopg
import structlog
from prometheus_client import Counter

from realtime.events import event_of
from realtime.streams import StreamNames
from schemas.eta import (
    Approaching,
    ArrivalWindow,
    EnRoute,
    EtaChanged,
    OutOfSequence,
    RunningLate,
)
from schemas.events import DeliveryUpdate, Event, StopDelivered, StopFailed
from schemas.ids import OrderId, OrgId
from schemas.notifications import (
    ALERT_KINDS,
    CUSTOMER_KINDS,
    CustomerChannel,
    Notification,
    NotificationKind,
    NotificationRules,
    OrderContact,
    Rendered,
    Sent,
    Template,
    idempotency_key,
    template_kind,
)
from store.notification_rules import (
    Body,
    OrderFacts,
    OrgFacts,
    TemplateKey,
    links_of,
    load_orgs,
    new_links,
    store_bodies,
)
from store.notifications import insert_many, load_for_decide
from workers import messages
from workers.connection import OwnConnection
from workers.runner import Entry

log = structlog.get_logger(__name__)

GROUP = "notify"

STORED = Counter("lastmile_notify_stored_total", "Messages decided and newly stored in the outbox")


def kind_of(event: Event) -> tuple[NotificationKind, OrderId, ArrivalWindow | None] | None:
    """What ``event`` could tell people of: its kind, order and window; None if nothing."""
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
        if isinstance(d, OutOfSequence):
            return "out_of_sequence", d.order_id, None
    return None  # arrived, departed, route events, cancellations


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
    """The messages ``event`` (entry ``event_id``) makes due: its order's customer's and the
    dispatchers' alerts, by ``rules``, given what the order was ``already_sent``."""
    what = kind_of(event)
    if what is None or order is None:
        return []
    kind, order_id, window = what
    if order.order_id != order_id or order.org_id != event.org_id:
        return []
    if order.status == "cancelled" or (now - event.at).total_seconds() > rules.max_event_age_s:
        return []
    return [
        *_for_customer(kind, window, event_id, order, rules, already_sent, now),
        *_for_dispatchers(kind, event_id, order, rules, already_sent, now),
    ]


def _for_customer(
    kind: NotificationKind,
    window: ArrivalWindow | None,
    event_id: str,
    order: OrderContact,
    rules: NotificationRules,
    already_sent: Sequence[Sent],
    now: datetime,
) -> list[Notification]:
    if kind not in CUSTOMER_KINDS or kind not in rules.customer_kinds or order.opted_out:
        return []
    if rules.quiet_hours is not None:
        local = now.astimezone(messages.zone_of(rules.timezone)).time()
        if rules.quiet_hours.contains(local):
            return []
    contacts = {"sms": order.phone, "email": order.email}
    channel = next((c for c in rules.customer_channels if contacts[c]), None)
    address = None if channel is None else contacts[channel]
    if channel is None or address is None:
        return []
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
            language=rules.reader_language,
            idempotency_key=idempotency_key(event_id, "customer", channel),
            created_at=now,
            window_lower_epoch_s=None if window is None else window.lower_epoch_s,
            window_upper_epoch_s=None if window is None else window.upper_epoch_s,
        )
    ]


def _for_dispatchers(
    kind: NotificationKind,
    event_id: str,
    order: OrderContact,
    rules: NotificationRules,
    already_sent: Sequence[Sent],
    now: datetime,
) -> list[Notification]:
    """One alert email per dispatcher address, once per order and kind (quiet hours and a
    customer's opt-out are the customer's, not the dispatchers')."""
    if kind not in ALERT_KINDS or kind not in rules.dispatcher_kinds:
        return []
    if any(s.recipient_kind == "dispatcher" and s.kind == kind for s in already_sent):
        return []
    return [
        Notification(
            org_id=order.org_id,
            order_id=order.order_id,
            event_id=event_id,
            kind=kind,
            recipient_kind="dispatcher",
            channel="email",
            address=address,
            template=f"{template_kind(kind, 'dispatcher')}.email",
            language=rules.reader_language,
            idempotency_key=idempotency_key(event_id, "dispatcher", "email", address),
            created_at=now,
        )
        for address in rules.dispatcher_emails
    ]


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


def _stamp(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def facts_of(
    event: Event,
    order: OrderFacts,
    org: OrgFacts,
    rules: NotificationRules,
    link: str | None,
    language: str,
) -> messages.Facts:
    """What a message about ``event`` in ``language`` can tell (see
    :func:`workers.messages.context`)."""
    window = None
    what = kind_of(event)
    if what is not None:
        window = what[2]
    detail = event.detail if isinstance(event, DeliveryUpdate) else None
    return messages.Facts(
        org_name=org.name,
        order_ref=order.ref,
        address=order.address,
        customer_name=order.customer_name,
        window_lower=None if window is None else _stamp(window.lower_epoch_s),
        window_likely=None if window is None else _stamp(window.likely_epoch_s),
        window_upper=None if window is None else _stamp(window.upper_epoch_s),
        tracking_url=link,
        proof_url=link if isinstance(event, StopDelivered) and org.share_proof_photo else None,
        reason=event.reason if isinstance(event, StopFailed) else None,
        next_step=messages.next_step(rules.failed_next_step, language),
        late_min=round(window.late_s / 60) if window is not None and window.late_s else None,
        at=event.at,
        driver_id=getattr(event, "driver_id", None) or getattr(detail, "driver_id", None),
        stop_id=getattr(event, "stop_id", None) or getattr(detail, "stop_id", None),
        route_id=getattr(event, "route_id", None) or getattr(detail, "route_id", None),
        expected_order_id=detail.expected_order_id if isinstance(detail, OutOfSequence) else None,
        dwell_min=round(detail.dwell_s / 60) if isinstance(detail, OutOfSequence) else None,
    )


def in_language(n: Notification, orders: dict[OrderId, OrderFacts]) -> Notification:
    """A customer's message in the order's own language, where it names one (decide gave it
    the organisation's)."""
    order = None if n.order_id is None else orders.get(n.order_id)
    if n.recipient_kind != "customer" or order is None or not order.language:
        return n
    return msgspec.structs.replace(n, language=order.language)


def template_for(org: OrgFacts, n: Notification) -> tuple[Template, Template]:
    """The organisation's template for ``n`` (its language, else its base language), and the
    built-in default to fall back on."""
    kind = template_kind(n.kind, n.recipient_kind)
    channel: CustomerChannel = "email" if n.channel == "email" else "sms"
    builtin = messages.default(kind, channel, n.language)
    for language in (n.language, n.language.split("-")[0]):
        key: TemplateKey = (kind, channel, language)
        own = org.templates.get(key)
        if own is not None:
            return own, builtin
    return builtin, builtin


def render_message(n: Notification, facts: messages.Facts, org: OrgFacts) -> Rendered | None:
    """``n``'s text with its organisation's template, in its time zone; the built-in default
    when that one fails on these facts (it was checked against samples when it was saved, but a
    real order can still push it over a limit); None when even the default fails, and the
    sender sends its plain default: a message is never lost to a template."""
    template, builtin = template_for(org, n)
    reader = messages.Reader(timezone=org.timezone, language=n.language)
    for candidate in (template, builtin) if template is not builtin else (builtin,):
        try:
            return messages.render(candidate, facts, reader)
        except messages.TemplateRefused as exc:
            log.warning(
                "template failed on a message",
                org_id=org.org_id,
                template=n.template,
                custom=candidate.custom,
                part=exc.part,
                reason=exc.reason,
            )
    return None


@dataclass
class NotifyConsumer(OwnConnection):
    """Decides the messages of event batches, renders and stores them; one connection,
    reopened after a failure. ``rules`` are the deployment's defaults, for organisations that
    set none; ``public_url`` is where tracking links point (``{public_url}/t/{token}``)."""

    names: StreamNames
    database_url: str
    rules: NotificationRules = field(default_factory=NotificationRules)
    public_url: str = "http://127.0.0.1:8000"
    group: str = GROUP
    _conn: psycopg.AsyncConnection | None = field(default=None, repr=False)

    def streams(self) -> Sequence[str]:
        return [self.names.events]

    def decode(self, fields: dict[bytes, bytes]) -> Event:
        return event_of(fields)

    def rules_of(self, org: OrgFacts | None, timezone: str) -> NotificationRules:
        """An organisation's rules: its own document, else the defaults, in its time zone and
        locale."""
        doc = self.rules.doc() if org is None or org.rules is None else org.rules
        return NotificationRules.of(doc, timezone, self.rules.locale if org is None else org.locale)

    async def handle(self, entries: Sequence[Entry[Event]]) -> None:
        wanted: list[tuple[OrgId, OrderId]] = []
        for entry in entries:
            what = kind_of(entry.value)
            if what is not None:
                wanted.append((entry.value.org_id, what[1]))
        if not wanted:
            return
        async with self.connected() as conn, conn.transaction():
            contacts, orders, sent = await load_for_decide(conn, wanted)
            orgs = await load_orgs(conn, {c.org_id for c in contacts.values()})
            now = datetime.now(UTC)
            due: list[tuple[Entry[Event], NotificationRules, Notification]] = []
            for entry in entries:
                what = kind_of(entry.value)
                order = None if what is None else contacts.get(what[1])
                if order is None:
                    continue
                org = orgs.get(order.org_id)
                zone = self.rules.timezone if org is None else org.timezone
                rules = self.rules_of(org, zone)
                history = sent.setdefault(order.order_id, [])
                made = decide(entry.value, entry.id, order, rules, history, now)
                history.extend(as_sent(n) for n in made)
                due.extend((entry, rules, n) for n in made)
            due = [(entry, rules, in_language(n, orders)) for entry, rules, n in due]
            bodies = await self._render(conn, due, orgs, orders)
            new = await insert_many(conn, [n for _, _, n in due])
            await store_bodies(conn, bodies)
        STORED.inc(new)
        if new:
            log.debug("notifications stored", new=new, decided=len(due))

    async def _render(
        self,
        conn: psycopg.AsyncConnection,
        due: Sequence[tuple[Entry[Event], NotificationRules, Notification]],
        orgs: dict[OrgId, OrgFacts],
        orders: dict[OrderId, OrderFacts],
    ) -> list[Body]:
        """Each message's text; customers' carry the order's tracking link (the one its
        earlier messages carry, else a new one)."""
        if not due:
            return []
        customers = {
            (n.org_id, n.order_id)
            for _, _, n in due
            if n.recipient_kind == "customer" and n.order_id is not None
        }
        tokens = await links_of(conn, customers)
        wanted = {pair: secrets.token_urlsafe(18) for pair in customers if pair[1] not in tokens}
        tokens |= await new_links(conn, wanted)
        base = self.public_url.rstrip("/")
        bodies: list[Body] = []
        for entry, rules, n in due:
            if n.order_id is None:
                continue  # decide makes none: every event it reads is about an order
            org, order = orgs.get(n.org_id), orders.get(n.order_id)
            if org is None or order is None:
                continue  # deleted since decided: the sender renders the default
            kept = tokens.get(n.order_id) if n.recipient_kind == "customer" else None
            link = None if kept is None else f"{base}/t/{kept}"
            facts = facts_of(entry.value, order, org, rules, link, n.language)
            message = render_message(n, facts, org)
            if message is not None:
                bodies.append(Body(n.idempotency_key, message, kept))
        return bodies
