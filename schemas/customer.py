"""What a customer tells us back: delivery instructions, a request for another day, a rating.

Customers write these from the tracking page (authenticated by the link's token) or by
replying to a text message. Everything they type is untrusted: each text field has a length
limit here (and a ``CHECK`` in the database), control characters are refused by the API
(:func:`control_character`), and it is stored as text and shown as text (never as markup).

:class:`Instructions` also travel on the driver's route (``RouteStop.instructions``), so the
driver sees the gate code at the door.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Final, Literal

import msgspec
from msgspec import Meta

from schemas.ids import DriverId, OrderId, RouteId

AnswerSource = Literal["page", "sms"]
"""Where the customer answered: the tracking page, or a reply to a text message."""

GATE_CODE_MAX: Final = 40
LEAVE_AT_MAX: Final = 300
NOTE_MAX: Final = 500
COMMENT_MAX: Final = 1000

GateCode = Annotated[str, Meta(max_length=GATE_CODE_MAX, description="a code to open the gate")]
LeaveAt = Annotated[str, Meta(max_length=LEAVE_AT_MAX, description="where to leave the parcel")]
Note = Annotated[str, Meta(max_length=NOTE_MAX, description="anything else for the driver")]
Comment = Annotated[str, Meta(max_length=COMMENT_MAX, description="the customer's words")]
Stars = Annotated[int, Meta(ge=1, le=5, description="1 (bad) to 5 (very good)")]


class InstructionsIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Body of ``POST /v1/track/{token}/instructions``: replaces the order's instructions.

    A field left out or ``null`` is no instruction; ``safe_place_allowed`` is ``true`` (the
    driver may leave the parcel without a signature), ``false`` (never) or ``null`` (not said).
    """

    gate_code: GateCode | None = None
    leave_at: LeaveAt | None = None
    safe_place_allowed: bool | None = None
    note: Note | None = None


class Instructions(msgspec.Struct, frozen=True, kw_only=True):
    """An order's delivery instructions as stored, and as the driver's route carries them."""

    gate_code: str | None = None
    leave_at: str | None = None
    safe_place_allowed: bool | None = None
    note: str | None = None
    source: AnswerSource
    updated_at: datetime


class RescheduleIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Body of ``POST /v1/track/{token}/reschedule``: deliver on ``day`` instead."""

    day: date


class Reschedule(msgspec.Struct, frozen=True, kw_only=True):
    """A customer's request for another day, as granted: the order moved from one day to the
    other, off ``route_id`` when it had been on a route."""

    order_id: OrderId
    from_day: date
    to_day: date
    route_id: RouteId | None = None
    source: AnswerSource
    created_at: datetime


class RatingIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Body of ``POST /v1/track/{token}/rating``: once per delivered order."""

    stars: Stars
    comment: Comment | None = None


class Rating(msgspec.Struct, frozen=True, kw_only=True):
    """A rating as stored, with the driver who delivered (for analytics)."""

    order_id: OrderId
    driver_id: DriverId | None = None
    route_id: RouteId | None = None
    stars: int
    comment: str | None = None
    created_at: datetime


class CustomerAnswers(msgspec.Struct, frozen=True, kw_only=True):
    """All an order's customer said: ``GET /v1/orders/{id}/answers`` and the tracking page's
    ``GET /v1/track/{token}/answers``."""

    order_id: OrderId
    instructions: Instructions | None = None
    reschedules: list[Reschedule] = []
    rating: Rating | None = None
    can_rate: bool = False
    """True when the order is delivered and not yet rated (the page then asks)."""


_ALLOWED_CONTROLS: Final = frozenset("\n\t")


def control_character(text: str, *, multiline: bool) -> str | None:
    """The first control character of ``text`` as ``U+XXXX``, or None.

    Control characters (C0, DEL, C1) and the Unicode line and paragraph separators are never
    needed in an instruction and can disturb whatever shows the text later (a terminal, a log,
    a text message). ``multiline`` allows newline and tab (a comment may have paragraphs).
    """
    for char in text:
        code = ord(char)
        if multiline and char in _ALLOWED_CONTROLS:
            continue
        if code < 0x20 or 0x7F <= code < 0xA0 or code in (0x2028, 0x2029):
            return f"U+{code:04X}"
    return None


# --- replies by text message --------------------------------------------------------------------


class ReplyInstruction(msgspec.Struct, frozen=True, kw_only=True):
    """A reply that sets one instruction: ``field`` is ``gate_code``, ``leave_at``,
    ``safe_place_allowed`` or ``note``."""

    field: Literal["gate_code", "leave_at", "safe_place_allowed", "note"]
    value: str | bool


class ReplyReschedule(msgspec.Struct, frozen=True, kw_only=True):
    """A reply that asks for another day."""

    day: date


class ReplyUnclear(msgspec.Struct, frozen=True, kw_only=True):
    """A reply we cannot act on; ``reason`` is what to tell the customer."""

    reason: str


SmsReply = ReplyInstruction | ReplyReschedule | ReplyUnclear

REPLY_HELP: Final = (
    "Reply GATE <code>, LEAVE <where to leave it>, SAFE YES or SAFE NO, "
    "DAY <YYYY-MM-DD> or TOMORROW, or any note for the driver."
)
_MAX_BY_FIELD: Final = {"gate_code": GATE_CODE_MAX, "leave_at": LEAVE_AT_MAX, "note": NOTE_MAX}


def read_reply(text: str, today: date) -> SmsReply:
    """What a customer's text reply asks, read by its first word (any case).

    ``GATE 4711`` (or ``CODE``) sets the gate code, ``LEAVE behind the bin`` where to leave the
    parcel, ``SAFE YES``/``SAFE NO`` whether a safe place is allowed, ``DAY 2026-12-09`` or
    ``TOMORROW`` asks for another day (``today`` is the organisation's date); anything else is a
    note for the driver. Text too long for its field, or holding control characters, is
    :class:`ReplyUnclear` (never cut short: a half gate code is worse than none).
    """
    words = text.strip().split(maxsplit=1)
    if not words:
        return ReplyUnclear(reason=f"We received an empty message. {REPLY_HELP}")
    head, rest = words[0].upper().rstrip(":"), (words[1].strip() if len(words) > 1 else "")
    if head == "TOMORROW" and not rest:
        return ReplyReschedule(day=date.fromordinal(today.toordinal() + 1))
    if head == "DAY":
        try:
            return ReplyReschedule(day=date.fromisoformat(rest))
        except ValueError:
            return ReplyUnclear(reason=f"Please write the day as YYYY-MM-DD. {REPLY_HELP}")
    if head == "SAFE":
        answer = rest.upper().rstrip(".!")
        if answer in ("YES", "NO"):
            return ReplyInstruction(field="safe_place_allowed", value=answer == "YES")
        return ReplyUnclear(reason=f"Please answer SAFE YES or SAFE NO. {REPLY_HELP}")
    field: Literal["gate_code", "leave_at", "note"] = "note"
    value = text.strip()
    if head in ("GATE", "CODE", "LEAVE") and rest:
        field = "leave_at" if head == "LEAVE" else "gate_code"
        value = rest
    if len(value) > _MAX_BY_FIELD[field]:
        return ReplyUnclear(
            reason=f"That is too long: at most {_MAX_BY_FIELD[field]} characters, please."
        )
    if control_character(value, multiline=field == "note") is not None:
        return ReplyUnclear(reason=f"We could not read that message. {REPLY_HELP}")
    return ReplyInstruction(field=field, value=value)
