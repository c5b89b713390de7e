"""Notification rules and templates of the caller's organisation, and previews of messages.

* ``GET /v1/notification-rules`` (readers): the rules in force, the organisation's own or the
  deployment's defaults (``LASTMILE_NOTIFY_*``); ``PUT`` (admins) replaces them, a field left
  out taking the deployment's default.
* ``GET /v1/notification-templates`` (readers): every template in force, per kind, channel
  and language: the organisation's own over the built-in defaults.
* ``GET``, ``PUT`` (admins) and ``DELETE`` (admins)
  ``/v1/notification-templates/{kind}/{channel}/{language}``: one template; a ``PUT`` is
  rendered against sample orders first and refused unless every sample renders; a
  ``DELETE`` falls back to the built-in default.
* ``POST /v1/notification-templates/preview`` (readers): a template (stored, or given in the
  body) rendered for one of the organisation's orders.

Writing is for admins: rules and templates speak to every customer in the organisation's name,
like its other settings (``PUT /v1/settings/dimensions``). A body that is no JSON is a 400; a
value the rules or a template cannot take is a 422 naming the field and why.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from app.auth import ADMINS, READERS
from app.errors import BadParameter, InvalidField, NotFound, Unprocessable
from app.http import answer, decode, loose_json, request_body, resources_of
from app.settings import Settings
from schemas.auth import ApiPrincipal, Role
from schemas.ids import OrderId
from schemas.notifications import (
    CUSTOMER_CHANNELS,
    TEMPLATE_KINDS,
    CustomerChannel,
    NotificationRules,
    PreviewIn,
    RulesDoc,
    Template,
    TemplateIn,
    TemplateKind,
    TemplateList,
    parse_quiet_hours,
    template_channels,
)
from store import notification_rules as store
from store.tracking import order_track
from workers import messages

_LANGUAGE: Final = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})?")
PREVIEW_TOKEN: Final = "preview-link-token"  # noqa: S105 - a placeholder, not a secret
"""The token a preview's tracking link shows: a real message carries a real one."""


def default_rules(settings: Settings) -> NotificationRules:
    """The deployment's rules, for organisations that set none (``LASTMILE_NOTIFY_*``)."""
    return NotificationRules(
        max_event_age_s=settings.notify_max_age_s,
        eta_min_move_s=settings.notify_eta_move_s,
        eta_min_interval_s=settings.notify_eta_interval_s,
        quiet_hours=parse_quiet_hours(settings.notify_quiet_hours),
    )


async def _principal(request: Request, roles: tuple[Role, ...]) -> ApiPrincipal:
    return await resources_of(request).auth.require_api_key(request, roles)


def _decode_values(request: Request, body: bytes, cls: type[Any]) -> Any:
    """``body`` as a ``cls``: 400 when it is no JSON, 422 naming the field otherwise."""
    try:
        return decode(body, request.headers.get("content-type"), cls)
    except InvalidField as exc:
        raise Unprocessable(exc.field, exc.reason) from None


# --- rules ---------------------------------------------------------------------------------------


async def rules(request: Request) -> Response:
    """``GET`` (readers) and ``PUT`` (admins) ``/v1/notification-rules``."""
    resources = resources_of(request)
    defaults = default_rules(resources.settings).doc()
    if request.method == "GET":
        principal = await _principal(request, READERS)
        async with resources.pool.connection() as conn:
            stored = await store.get_rules(conn, principal.org_id)
        return answer(stored or defaults)
    principal = await _principal(request, ADMINS)
    body = await request_body(request)
    given: RulesDoc = _decode_values(request, body, RulesDoc)
    sent = loose_json(body)
    keys = set(sent) if isinstance(sent, dict) else set()
    doc = RulesDoc(
        **{
            name: getattr(given if name in keys else defaults, name)
            for name in RulesDoc.__struct_fields__
        }
    )
    _check_rules(doc)
    async with resources.pool.connection() as conn:
        await store.put_rules(conn, principal.org_id, doc)
    return answer(doc)


def _check_rules(doc: RulesDoc) -> None:
    """What the schema cannot say: 422 naming the field."""
    try:
        parse_quiet_hours(doc.quiet_hours)
    except ValueError as exc:
        raise Unprocessable("quiet_hours", str(exc)) from None
    if doc.language is not None and not messages.known_language(doc.language):
        raise Unprocessable("language", f"expected a language Babel knows, got {doc.language!r}")
    for name in ("customer_events", "customer_channels", "dispatcher_events", "dispatcher_emails"):
        values: list[str] = getattr(doc, name)
        for n, value in enumerate(values):
            if value in values[:n]:
                raise Unprocessable(
                    f"{name}[{n}]", f"expected each value once, got {value!r} again"
                )


# --- templates -----------------------------------------------------------------------------------


def _key(request: Request) -> tuple[TemplateKind, CustomerChannel, str]:
    """The kind, channel and language of the path; 400 naming a bad one, 422 for a channel
    its kind has no templates for."""
    kind = request.path_params["kind"]
    channel = request.path_params["channel"]
    language = request.path_params["language"]
    if kind not in TEMPLATE_KINDS:
        raise BadParameter("kind", f"expected one of {', '.join(TEMPLATE_KINDS)}, got {kind!r}")
    if channel not in CUSTOMER_CHANNELS:
        raise BadParameter("channel", f"expected sms or email, got {channel!r}")
    if not _LANGUAGE.fullmatch(language) or not messages.known_language(language):
        raise BadParameter(
            "language", f"expected a language tag such as en or de, got {language!r}"
        )
    if channel not in template_channels(kind):
        raise Unprocessable("channel", f"{kind} messages go by email only, not by {channel}")
    return kind, channel, language


def _in_force(
    own: Template | None, kind: TemplateKind, channel: CustomerChannel, language: str
) -> Template:
    if own is not None:
        return own
    builtin = messages.default(kind, channel, language)
    return msgspec.structs.replace(builtin, language=language)


async def templates(request: Request) -> Response:
    """``GET /v1/notification-templates`` (readers): every template in force."""
    principal = await _principal(request, READERS)
    async with resources_of(request).pool.connection() as conn:
        own = await store.list_templates(conn, principal.org_id)
    mine = {(t.kind, t.channel, t.language): t for t in own}
    builtin = {key: t for key, t in messages.DEFAULTS.items() if key not in mine}
    listed = sorted(
        [*mine.values(), *builtin.values()],
        key=lambda t: (TEMPLATE_KINDS.index(t.kind), t.channel, t.language),
    )
    return answer(TemplateList(templates=listed))


async def template(request: Request) -> Response:
    """``GET`` (readers), ``PUT`` and ``DELETE`` (admins) of one template."""
    key = _key(request)
    pool = resources_of(request).pool
    if request.method == "GET":
        principal = await _principal(request, READERS)
        async with pool.connection() as conn:
            own = await store.get_template(conn, principal.org_id, key)
        return answer(_in_force(own, *key))
    principal = await _principal(request, ADMINS)
    if request.method == "DELETE":
        async with pool.connection() as conn:
            await store.delete_template(conn, principal.org_id, key)
        return answer(_in_force(None, *key))
    given: TemplateIn = _decode_values(request, await request_body(request), TemplateIn)
    _check_template(key, given)
    kind, channel, language = key
    stored = Template(
        kind=kind,
        channel=channel,
        language=language,
        text=given.text,
        subject=given.subject,
        html=given.html,
        custom=True,
    )
    async with pool.connection() as conn:
        await store.put_template(conn, principal.org_id, stored)
    return answer(stored)


def _check_template(
    key: tuple[TemplateKind, CustomerChannel, str], given: TemplateIn, prefix: str = ""
) -> None:
    try:
        messages.check(*key, given)
    except messages.TemplateRefused as exc:
        raise Unprocessable(prefix + exc.part, exc.reason) from None


# --- preview -------------------------------------------------------------------------------------


async def preview(request: Request) -> Response:
    """``POST /v1/notification-templates/preview`` (readers): a message for a real order."""
    resources = resources_of(request)
    principal = await _principal(request, READERS)
    wanted: PreviewIn = _decode_values(request, await request_body(request), PreviewIn)
    org_id, order_id = principal.org_id, OrderId(wanted.order_id)
    async with resources.pool.connection() as conn:
        orgs = await store.load_orgs(conn, [org_id])
        orders = await store.load_orders(conn, [(org_id, order_id)])
        track = await order_track(conn, org_id, order_id)
        org, order = orgs.get(org_id), orders.get(order_id)
        if org is None or order is None or track is None:
            raise NotFound(f"no order {order_id} in this organisation", field="order_id")
        rules = NotificationRules.of(
            org.rules or default_rules(resources.settings).doc(), org.timezone, org.locale
        )
        language = wanted.language or order.language or rules.reader_language
        if not messages.known_language(language):
            raise Unprocessable("language", f"expected a language Babel knows, got {language!r}")
        if wanted.channel not in template_channels(wanted.kind):
            raise Unprocessable("channel", f"{wanted.kind} messages go by email only")
    key = (wanted.kind, wanted.channel, language)
    own = org.templates.get(key)  # load_orgs read every template of the organisation
    if wanted.template is not None:
        _check_template(key, wanted.template, prefix="template.")
        chosen: Template | TemplateIn = msgspec.structs.replace(
            _in_force(None, *key),
            text=wanted.template.text,
            subject=wanted.template.subject,
            html=wanted.template.html,
        )
    else:
        chosen = _in_force(own, *key)
    arrival = track.planned_arrival or datetime.now(UTC) + timedelta(hours=1)
    base = (resources.settings.public_url or "").rstrip("/")
    facts = messages.Facts(
        org_name=org.name,
        order_ref=order.ref,
        address=order.address,
        customer_name=order.customer_name,
        window_lower=arrival - timedelta(minutes=15),
        window_likely=arrival,
        window_upper=arrival + timedelta(minutes=15),
        tracking_url=f"{base}/t/{PREVIEW_TOKEN}",
        reason=track.failure_reason or "nobody was home",
        next_step=messages.next_step(rules.failed_next_step, language),
        late_min=20,
        at=datetime.now(UTC),
        driver_id=track.driver_id,
        stop_id=track.stop_id,
        route_id=track.route_id,
        dwell_min=3,
    )
    try:
        rendered = messages.render(
            chosen, facts, messages.Reader(timezone=org.timezone, language=language)
        )
    except messages.TemplateRefused as exc:
        raise Unprocessable("template." + exc.part, exc.reason) from None
    return answer(rendered)
