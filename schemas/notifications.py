"""Notifications: what the notify worker decides to send, and the rules it decides by.

A :class:`Notification` is one message to one recipient on one channel, as the notify worker
writes it to the ``outbox`` table; the sender drains that table. Its ``idempotency_key`` is
derived from the events stream entry, the recipient, the channel (and, for dispatchers, the
address), so deciding the same entry twice yields the same key and the outbox stores it once;
receivers can drop duplicates by it.

:class:`NotificationRules` are what the pure decide step reads: an organisation's
:class:`RulesDoc` (what ``/v1/notification-rules`` reads and writes, in minutes, stored per
organisation) with its time zone, in seconds. The defaults need no setup: the customer hears by
SMS (or by email when the order has no phone) when the driver is en route, approaching, has
delivered, could not deliver, is running late, and when the arrival window moves a lot;
dispatchers hear by email of ``out_of_sequence`` dwells, late deliveries and failed ones, once
the organisation has named their addresses.

:class:`TemplateIn` is one template (event kind × channel × language) an organisation stores
over the built-in default; :mod:`workers.messages` renders and validates them.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Annotated, Final, Literal, get_args

import msgspec
from msgspec import Meta

from schemas.delivery import Email
from schemas.delivery import Language as Language  # re-exported for the API's reference
from schemas.ids import OrderId, OrgId

RecipientKind = Literal["customer", "dispatcher", "integration"]
Channel = Literal["sms", "email", "webhook"]
CHANNELS: Final[tuple[Channel, ...]] = get_args(Channel)
"""Every channel, in a fixed order (reports list them all, zero where nothing was sent)."""
CustomerChannel = Literal["sms", "email"]
CustomerKind = Literal[
    "en_route", "approaching", "delivered", "failed", "running_late", "eta_changed"
]
"""What a customer can be told of: the delivery events by their ``type`` tag, ``delivered``
(:class:`~schemas.events.StopDelivered`) and ``failed`` (:class:`~schemas.events.StopFailed`)."""
AlertKind = Literal["out_of_sequence", "running_late", "failed"]
"""What dispatchers are alerted of by email."""
NotificationKind = Literal[
    "en_route",
    "approaching",
    "delivered",
    "failed",
    "running_late",
    "eta_changed",
    "out_of_sequence",
    "weekly_summary",
]
"""The ``kind`` of an outbox row: a customer kind, an alert kind for dispatchers, or the
organisation's weekly summary (:mod:`workers.summary`: by email, about no order)."""
TemplateKind = Literal[
    "en_route",
    "approaching",
    "delivered",
    "failed",
    "running_late",
    "eta_changed",
    "alert_out_of_sequence",
    "alert_running_late",
    "alert_failed",
]
"""What a template is for: a customer kind, or ``alert_`` and an alert kind (dispatchers')."""
OutboxState = Literal["pending", "sending", "sent", "delivered", "failed", "dead"]

CUSTOMER_KINDS: tuple[CustomerKind, ...] = get_args(CustomerKind)
ALERT_KINDS: tuple[AlertKind, ...] = get_args(AlertKind)
TEMPLATE_KINDS: tuple[TemplateKind, ...] = get_args(TemplateKind)
CUSTOMER_CHANNELS: tuple[CustomerChannel, ...] = get_args(CustomerChannel)


def template_kind(kind: NotificationKind, recipient: RecipientKind) -> TemplateKind:
    """The template a message of ``kind`` to ``recipient`` is written with."""
    if recipient == "dispatcher":
        return f"alert_{kind}"  # type: ignore[return-value]
    return kind  # type: ignore[return-value]


def template_channels(kind: TemplateKind) -> tuple[CustomerChannel, ...]:
    """The channels there are templates of ``kind`` for: alerts go by email only."""
    return ("email",) if kind.startswith("alert_") else CUSTOMER_CHANNELS


def idempotency_key(
    event_id: str, recipient: RecipientKind, channel: Channel, address: str | None = None
) -> str:
    """The stable key of one message: the events entry, its recipient and channel, and the
    address where one recipient kind has several (dispatchers)."""
    key = f"{event_id}:{recipient}:{channel}"
    return key if address is None else f"{key}:{address}"


class Notification(msgspec.Struct, frozen=True, kw_only=True):
    """One message due, as the outbox stores it."""

    org_id: OrgId
    order_id: OrderId | None
    """None for a message about no one order (the weekly summary)."""
    event_id: str
    """The events stream entry id the message was decided from (the weekly summary's: its
    organisation and week)."""
    kind: NotificationKind
    recipient_kind: RecipientKind
    channel: Channel
    address: str
    """A phone number, an email address or a webhook endpoint's id."""
    template: str
    """The template it is written with, ``{template kind}.{channel}``."""
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


Minutes = Annotated[float, Meta(ge=0, le=24 * 60)]
QuietHoursText = Annotated[
    str, Meta(pattern=r"^(\d\d:\d\d-\d\d:\d\d)?$", description="HH:MM-HH:MM, empty for none")
]
MAX_DISPATCHER_EMAILS: Final = 20
NEXT_STEP_CHARS: Final = 500
DEFAULT_FAILED_NEXT_STEP: Final = "We will contact you to arrange another delivery."


class RulesDoc(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An organisation's notification rules as ``/v1/notification-rules`` shows and takes them.

    A field left out of a ``PUT`` takes the deployment's default (``LASTMILE_NOTIFY_*``), the
    same as for an organisation that never set its rules.
    """

    customer_events: list[CustomerKind] = msgspec.field(
        default_factory=lambda: list(CUSTOMER_KINDS)
    )
    """Which events notify the order's customer."""
    customer_channels: Annotated[list[CustomerChannel], Meta(min_length=1, max_length=2)] = (
        msgspec.field(default_factory=lambda: list(CUSTOMER_CHANNELS))
    )
    """In order of preference: the first the order has a contact for is used."""
    dispatcher_events: list[AlertKind] = msgspec.field(default_factory=lambda: list(ALERT_KINDS))
    """Which alerts reach the dispatcher addresses, by email."""
    dispatcher_emails: Annotated[list[Email], Meta(max_length=MAX_DISPATCHER_EMAILS)] = (
        msgspec.field(default_factory=list)
    )
    """Where dispatcher alerts go; none: no alerts by email."""
    language: Language | None = None
    """The customers' language and locale (dates, times) when an order names none; none: the
    organisation's locale (``/v1/settings/organisation``)."""
    failed_next_step: Annotated[str, Meta(min_length=1, max_length=NEXT_STEP_CHARS)] = (
        DEFAULT_FAILED_NEXT_STEP
    )
    """What happens after a delivery that could not be made, as the customer is told."""
    eta_change_min: Minutes = 15.0
    """A moved window reaches the customer only when an edge moved more than this."""
    eta_interval_min: Minutes = 30.0
    """…and at most once in this long."""
    quiet_hours: QuietHoursText = ""
    """``HH:MM-HH:MM`` in the organisation's time zone: customer messages due then are dropped
    (``22:00-07:00`` spans midnight); empty for none."""
    max_event_age_min: Annotated[float, Meta(gt=0, le=24 * 60)] = 30.0
    """An event older than this when it is decided (a backlog drained after an outage)
    notifies nobody."""


class NotificationRules(msgspec.Struct, frozen=True, kw_only=True):
    """An organisation's rules as decide reads them; the defaults work with no setup."""

    customer_kinds: frozenset[CustomerKind] = frozenset(CUSTOMER_KINDS)
    """Which events notify the order's customer."""
    customer_channels: tuple[CustomerChannel, ...] = CUSTOMER_CHANNELS
    """In order of preference: the first the order has a contact for is used."""
    dispatcher_kinds: frozenset[AlertKind] = frozenset(ALERT_KINDS)
    dispatcher_emails: tuple[str, ...] = ()
    """Where dispatcher alerts go; empty: nowhere."""
    language: str | None = None
    """The language of messages whose order names none; none: :attr:`locale`."""
    locale: str = "en"
    """The organisation's locale."""
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
    failed_next_step: str = DEFAULT_FAILED_NEXT_STEP

    @classmethod
    def of(cls, doc: RulesDoc, timezone: str, locale: str = "en") -> NotificationRules:
        """An organisation's stored (or default) document, with its time zone and locale."""
        return cls(
            customer_kinds=frozenset(doc.customer_events),
            customer_channels=tuple(dict.fromkeys(doc.customer_channels)),
            dispatcher_kinds=frozenset(doc.dispatcher_events),
            dispatcher_emails=tuple(dict.fromkeys(doc.dispatcher_emails)),
            language=doc.language,
            locale=locale,
            timezone=timezone,
            quiet_hours=parse_quiet_hours(doc.quiet_hours),
            max_event_age_s=doc.max_event_age_min * 60.0,
            eta_min_move_s=doc.eta_change_min * 60.0,
            eta_min_interval_s=doc.eta_interval_min * 60.0,
            failed_next_step=doc.failed_next_step,
        )

    @property
    def reader_language(self) -> str:
        """The language of a message whose order names none."""
        return self.language or self.locale

    def doc(self) -> RulesDoc:
        """These rules as the API shows them (the time zone is the organisation's own)."""
        hours = self.quiet_hours
        return RulesDoc(
            customer_events=[k for k in CUSTOMER_KINDS if k in self.customer_kinds],
            customer_channels=list(self.customer_channels),
            dispatcher_events=[k for k in ALERT_KINDS if k in self.dispatcher_kinds],
            dispatcher_emails=list(self.dispatcher_emails),
            language=self.language,
            failed_next_step=self.failed_next_step,
            eta_change_min=self.eta_min_move_s / 60.0,
            eta_interval_min=self.eta_min_interval_s / 60.0,
            quiet_hours="" if hours is None else f"{hours.start:%H:%M}-{hours.end:%H:%M}",
            max_event_age_min=self.max_event_age_s / 60.0,
        )


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


# --- templates -----------------------------------------------------------------------------

SUBJECT_CHARS: Final = 500
TEXT_CHARS: Final = 5000
HTML_CHARS: Final = 50_000
"""The most a template's source may hold, per part."""


class TemplateIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A template's parts, Jinja2 source: ``text`` for both channels, ``subject`` and ``html``
    for email only (an SMS template has neither)."""

    text: Annotated[str, Meta(min_length=1, max_length=TEXT_CHARS)]
    subject: Annotated[str, Meta(min_length=1, max_length=SUBJECT_CHARS)] | None = None
    html: Annotated[str, Meta(min_length=1, max_length=HTML_CHARS)] | None = None


class Template(msgspec.Struct, frozen=True, kw_only=True):
    """A template of one kind, channel and language, stored or built in (``custom`` false)."""

    kind: TemplateKind
    channel: CustomerChannel
    language: str
    text: str
    subject: str | None = None
    html: str | None = None
    custom: bool = False
    """True for the organisation's own, false for the built-in default."""


class TemplateList(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /v1/notification-templates``: every template in force, the organisation's own
    over the built-in defaults."""

    templates: list[Template]


class PreviewIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What to preview: a template kind and channel for an order of the organisation, in a
    language (default: the rules'); ``template`` renders given source instead of the stored
    one."""

    order_id: Annotated[int, Meta(ge=1, le=2**63 - 1)]
    kind: TemplateKind
    channel: CustomerChannel
    language: Language | None = None
    template: TemplateIn | None = None


class Rendered(msgspec.Struct, frozen=True, kw_only=True):
    """A rendered message: ``text`` always, ``subject`` and ``html`` for email."""

    text: str
    subject: str | None = None
    html: str | None = None
