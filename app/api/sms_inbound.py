"""What Twilio posts to us: delivery reports of our text messages, and the customers' texts.

* ``POST /v1/sms/status``: a status callback (the sender asks Twilio for one on every message
  when ``LASTMILE_PUBLIC_URL`` is set). ``delivered``, ``failed`` and ``undelivered`` move the
  outbox row that Twilio's message id names (:func:`store.customer_answers.apply_sms_status`);
  the answer is an empty 200, also for a message id we do not know (yet), since Twilio would
  only retry it.
* ``POST /v1/sms/inbound``: a customer's text. STOP (STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT)
  opts the number out for every organisation that texted it, START (UNSTOP, YES) opts it back
  in; anything else answers the customer's latest open order that was texted
  (:func:`schemas.customer.read_reply`: ``GATE 4711``, ``LEAVE behind the bin``, ``SAFE NO``,
  ``DAY 2026-12-09``, ``TOMORROW``, or a note), and we reply in TwiML with what we understood.

Both are form posts that must carry a valid ``X-Twilio-Signature``: HMAC-SHA1 with the Twilio
auth token over the URL Twilio called and the sorted form fields
(:func:`adapters.sms.valid_twilio_signature`). That URL is ``LASTMILE_PUBLIC_URL`` with the
request's path and query (else the URL the request arrived at, which behind a proxy is not the
one Twilio signed). A missing or wrong signature, or no auth token configured, is 403.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, TypeVar
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from starlette.requests import Request
from starlette.responses import Response

from adapters.sms import CallbackError, parse_inbound, parse_status_callback, valid_twilio_signature
from app.api.customer_answers import give_instructions, reschedule, today_of
from app.errors import ApiError, Forbidden, InvalidField
from app.http import read_body, resources_of
from app.resources import Resources
from realtime.errors import UnsupportedMediaType
from schemas.customer import (
    InstructionsIn,
    ReplyInstruction,
    ReplyReschedule,
    ReplyUnclear,
    read_reply,
)
from schemas.ids import OrderId, OrgId
from schemas.limits import NO_NUL
from store import customer_answers as store

FORM: Final = "application/x-www-form-urlencoded"
MAX_FORM_BYTES: Final = 64 * 1024
"""Twilio's forms are a few hundred bytes (a text is at most 1,600 characters)."""
TWIML: Final = "text/xml"

T = TypeVar("T")


def signed_url(request: Request, public_url: str | None) -> str:
    """The URL Twilio called, as it signed it."""
    if not public_url:
        return str(request.url)
    query = request.url.query
    return public_url.rstrip("/") + request.url.path + (f"?{query}" if query else "")


async def signed_form(request: Request, parse: Callable[[dict[str, str]], T]) -> T:
    """The request's form read by ``parse``, once its ``X-Twilio-Signature`` checked out; 403
    otherwise, and 400 naming a field ``parse`` missed (:class:`~adapters.sms.CallbackError`)."""
    resources = resources_of(request)
    token = resources.settings.twilio_auth_token
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type != FORM:
        raise UnsupportedMediaType("Content-Type", f"expected {FORM}, got {content_type!r}")
    body = await read_body(request, MAX_FORM_BYTES)
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        raise InvalidField("body", "expected a URL-encoded form, got something else") from None
    signature = request.headers.get("x-twilio-signature")
    if not token:
        raise Forbidden("no Twilio auth token is configured, so no Twilio request can be verified")
    url = signed_url(request, resources.settings.public_url)
    if signature is None or not valid_twilio_signature(url, pairs, signature, token):
        raise Forbidden("expected a valid X-Twilio-Signature for this URL and form")
    for name, value in pairs:
        if "\x00" in name or "\x00" in value:
            raise InvalidField(name.replace("\x00", "") or "body", NO_NUL)  # PostgreSQL: no NUL
    try:
        return parse(dict(pairs))
    except CallbackError as exc:
        raise InvalidField(exc.field, str(exc)) from None


async def status_callback(request: Request) -> Response:
    """``POST /v1/sms/status``: a delivery report; empty 200."""
    report = await signed_form(request, parse_status_callback)
    async with resources_of(request).pool.connection() as conn:
        await store.apply_sms_status(conn, report.message_sid, report.status, report.error_code)
    return Response(status_code=200)


def twiml(message: str | None = None) -> Response:
    """A TwiML answer: reply ``message`` to the sender, or nothing."""
    inner = "" if message is None else f"<Message>{escape(message)}</Message>"
    xml = f'<?xml version="1.0" encoding="UTF-8"?><Response>{inner}</Response>'
    return Response(xml, status_code=200, media_type=TWIML)


async def inbound(request: Request) -> Response:
    """``POST /v1/sms/inbound``: a customer's text; TwiML."""
    sms = await signed_form(request, parse_inbound)
    resources = resources_of(request)
    async with resources.pool.connection() as conn:
        if sms.keyword is not None:
            orgs = await store.orgs_texting(conn, sms.from_number)
            if sms.keyword == "opt_out":
                await store.opt_out(conn, orgs, sms.from_number)
            else:
                await store.opt_in(conn, orgs, sms.from_number)
            # Twilio answers STOP and START itself (its compliance replies): we add nothing.
            return twiml()
        found = await store.latest_open_order_texted(conn, sms.from_number)
    if found is None:
        return twiml("We have no open delivery for this number.")
    org_id, order_id = found
    return twiml(await _answer(resources, org_id, order_id, sms.body))


async def _answer(resources: Resources, org_id: OrgId, order_id: OrderId, text: str) -> str:
    """Act on a reply; what to text back."""
    reply = read_reply(text, await today_of(resources, org_id))
    try:
        match reply:
            case ReplyUnclear(reason=reason):
                return reason
            case ReplyReschedule(day=day):
                moved = await reschedule(resources, org_id, order_id, day, "sms")
                return f"Your delivery is moved to {moved.to_day.isoformat()}."
            case ReplyInstruction(field=field, value=value):
                async with resources.pool.connection() as conn:
                    current = await store.instructions_of(conn, org_id, order_id)
                # The reply sets one instruction and keeps the others the customer gave.
                names = () if current is None else InstructionsIn.__struct_fields__
                kept = {name: getattr(current, name) for name in names}
                given = InstructionsIn(**(kept | {field: value}))
                await give_instructions(resources, org_id, order_id, given, "sms")
                return "Thank you: your driver will see this."
    except ApiError as exc:
        return f"Sorry, we could not do that: {exc.reason}"
