"""Webhooks to integrations: endpoints, the event types they subscribe to, deliveries, attempts.

An organisation registers endpoints (:class:`WebhookIn`); each receives, signed with the
Standard Webhooks scheme, every event on the events stream whose type it subscribes to. The
type of an event is its ``type`` tag (``stop_delivered``, ``route_started``, …), or for the ETA
worker's ``delivery`` events the detail's (``en_route``, ``approaching``, ``arrived``,
``departed``, ``running_late``, ``eta_changed``, ``out_of_sequence``): see
:func:`event_type`. :data:`EVENT_TYPES` is derived from the event unions, so a new event type
is subscribable as soon as it is on the stream; ``*`` subscribes to every type, new ones
included.

The body each endpoint receives is the Standard Webhooks envelope ``{"type", "timestamp",
"data"}`` with the event (as on the stream) in ``data``; ``webhook-id`` is the same on every
attempt and replay of one delivery (:func:`webhook_id`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal, get_args

import msgspec
from msgspec import Meta

from schemas.delivery import AwareTime
from schemas.eta import DeliveryEvent
from schemas.events import DeliveryUpdate, Event
from schemas.ids import OrgId

ALL_TYPES: Final = "*"
MAX_URL_CHARS: Final = 2048
MAX_DESCRIPTION_CHARS: Final = 500


def _tags(union: object) -> tuple[str, ...]:
    return tuple(str(member.__struct_config__.tag) for member in get_args(union))


EVENT_TYPES: Final[tuple[str, ...]] = tuple(
    tag
    for tag in (*_tags(Event), *_tags(DeliveryEvent))
    if tag != DeliveryUpdate.__struct_config__.tag
)
"""Every event type an endpoint can subscribe to."""


def event_type(event: Event) -> str:
    """The type an endpoint subscribes to for ``event``: the detail's for a ``delivery``."""
    if isinstance(event, DeliveryUpdate):
        return str(event.detail.__struct_config__.tag)
    return str(event.__struct_config__.tag)


def subscribed(event_types: list[str], kind: str) -> bool:
    """True when an endpoint subscribed to ``event_types`` wants events of type ``kind``."""
    return ALL_TYPES in event_types or kind in event_types


def webhook_id(event_id: str, endpoint_id: int) -> str:
    """The ``webhook-id`` of one event's delivery to one endpoint: stable across retries and
    replays, distinct per endpoint."""
    return f"msg_{event_id}_{endpoint_id}"


Url = Annotated[str, Meta(min_length=1, max_length=MAX_URL_CHARS)]
Description = Annotated[str, Meta(max_length=MAX_DESCRIPTION_CHARS)]
EventTypes = Annotated[list[Annotated[str, Meta(max_length=64)]], Meta(min_length=1, max_length=64)]


class WebhookIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A new endpoint: where to POST, and which event types (``["*"]``: all)."""

    url: Url
    """``https://…`` (or ``http://``); its host must resolve to public addresses."""
    event_types: EventTypes = msgspec.field(default_factory=lambda: [ALL_TYPES])
    description: Description = ""
    enabled: bool = True


class WebhookPatch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Fields to change; enabling a disabled endpoint clears its run of failures."""

    url: Url | msgspec.UnsetType = msgspec.UNSET
    event_types: EventTypes | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET


class Webhook(msgspec.Struct, frozen=True, kw_only=True):
    """A stored endpoint, without its secret."""

    id: int
    org_id: OrgId
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    consecutive_failures: int
    """Failed attempts since the last success; the endpoint is disabled at a configured run."""
    disabled_at: datetime | None = None
    disabled_reason: str | None = None
    secret_rotated_at: datetime
    created_at: datetime
    updated_at: datetime


class WebhookCreated(Webhook, frozen=True, kw_only=True):
    """A new endpoint with its signing secret, shown in this answer only."""

    secret: str
    """``whsec_…``: give it to the receiver's Standard Webhooks library to verify signatures."""


MAX_KEEP_OLD_S: Final = 7 * 86_400


class RotateIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How long the old secret goes on signing beside the new one."""

    keep_old_s: Annotated[int, Meta(ge=0, le=MAX_KEEP_OLD_S)] = 86_400
    """Seconds (default a day, at most a week); 0 stops the old secret at once (a leak)."""


class WebhookSecret(msgspec.Struct, frozen=True, kw_only=True):
    """A rotated signing secret, shown in this answer only. Until ``previous_secret_until``
    every delivery carries a signature by the old secret too, so a receiver can switch to the
    new one at any time in between."""

    id: int
    secret: str
    secret_rotated_at: datetime
    previous_secret_until: datetime | None = None


DeliveryState = Literal["pending", "sending", "delivered", "dead"]
AttemptOutcome = Literal["delivered", "retry", "failed", "gone", "refused"]


class DeliveryAttempt(msgspec.Struct, frozen=True, kw_only=True):
    """One attempt of a delivery, as the delivery log shows it."""

    attempt: int
    started_at: datetime
    finished_at: datetime
    outcome: AttemptOutcome
    status_code: int | None = None
    latency_ms: int
    address: str | None = None
    """The IP address connected to."""
    error: str | None = None
    """What went wrong, or the start of the receiver's answer to a refused delivery."""


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """One event's delivery to one endpoint, with its attempts (oldest first)."""

    id: int
    endpoint_id: int
    event_id: str
    """The events stream entry."""
    event_type: str
    event_at: datetime
    webhook_id: str
    state: DeliveryState
    next_attempt_at: datetime | None = None
    """When it is tried next (pending deliveries only)."""
    last_status_code: int | None = None
    last_error: str | None = None
    created_at: datetime
    updated_at: datetime
    attempts: list[DeliveryAttempt] = []


class DeliveryPage(msgspec.Struct, frozen=True, kw_only=True):
    """A page of an endpoint's delivery log, newest first."""

    deliveries: list[Delivery]
    next_before: int | None = None
    """Pass as ``before`` for the next (older) page; null on the last page."""


class ReplayRange(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Deliveries of events from ``from`` (inclusive) to ``to`` (exclusive) to send again."""

    from_: AwareTime = msgspec.field(name="from")
    to: AwareTime


class Replayed(msgspec.Struct, frozen=True, kw_only=True):
    """How many deliveries were queued again (each keeps its ``webhook-id``)."""

    replayed: int


class WebhookList(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /v1/webhooks``: the organisation's endpoints, by id."""

    webhooks: list[Webhook]
