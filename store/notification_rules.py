"""Notification rules and templates per organisation, and the text of each message.

Rules are one JSON document per organisation (:class:`~schemas.notifications.RulesDoc`); an
organisation without one uses the deployment's defaults, which the caller passes in. Templates
are the organisation's own per kind, channel and language, over the built-in defaults (the
caller's too: :mod:`workers.messages`).

For the notify worker, :func:`load_orgs` reads in two queries what rendering a batch's
messages needs of each organisation (its name, time zone, rules and templates; the orders'
:class:`OrderFacts` come with their contacts, from
:func:`store.notifications.load_for_decide`); :func:`links_of` finds the tracking link an order's
messages already carry, so they all carry the same one; :func:`store_bodies` writes each new
message's text onto its outbox row in the transaction that decided it. The sender reads it
back with :func:`bodies_of`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from schemas.ids import OrderId, OrgId
from schemas.notifications import (
    CustomerChannel,
    Rendered,
    RulesDoc,
    Template,
    TemplateKind,
)
from store.rows import fetch_all, fetch_one
from store.tracking import create_links

_RULES: Final = msgspec.json.Decoder(RulesDoc)
_ENCODER: Final = msgspec.json.Encoder()

TemplateKey = tuple[TemplateKind, CustomerChannel, str]
"""A template's kind, channel and language."""


def _rules(raw: Any) -> RulesDoc | None:
    """A stored document; None when it no longer decodes (the defaults apply)."""
    try:
        if isinstance(raw, bytes | str):
            return _RULES.decode(raw)
        # psycopg has already parsed the jsonb: convert it rather than encode it to decode it.
        return msgspec.convert(raw, RulesDoc)
    except msgspec.ValidationError:
        return None


async def get_rules(conn: AsyncConnection[Any], org_id: OrgId) -> RulesDoc | None:
    """The organisation's stored rules; None when it never set any."""
    row = await fetch_one(
        conn, dict_row, "SELECT rules FROM notification_rules WHERE org_id = %s", (org_id,)
    )
    return None if row is None else _rules(row["rules"])


async def put_rules(conn: AsyncConnection[Any], org_id: OrgId, rules: RulesDoc) -> None:
    """Store the organisation's rules, replacing any."""
    await conn.execute(
        "INSERT INTO notification_rules (org_id, rules) VALUES (%s, %s::jsonb)"
        " ON CONFLICT (org_id) DO UPDATE SET rules = excluded.rules, updated_at = now()",
        (org_id, _ENCODER.encode(rules).decode()),
    )


def _template(row: dict[str, Any]) -> Template:
    return Template(
        kind=row["kind"],
        channel=row["channel"],
        language=row["language"],
        subject=row["subject"],
        text=row["body_text"],
        html=row["body_html"],
        custom=True,
    )


_TEMPLATE_COLUMNS: Final = "org_id, kind, channel, language, subject, body_text, body_html"


async def list_templates(conn: AsyncConnection[Any], org_id: OrgId) -> list[Template]:
    """The organisation's own templates, by kind, channel and language."""
    return [
        _template(row)
        for row in await fetch_all(
            conn,
            dict_row,
            f"SELECT {_TEMPLATE_COLUMNS} FROM notification_templates WHERE org_id = %s"
            " ORDER BY kind, channel, language",
            (org_id,),
        )
    ]


async def get_template(
    conn: AsyncConnection[Any], org_id: OrgId, key: TemplateKey
) -> Template | None:
    """The organisation's own template of ``key``; None when it uses the default."""
    row = await fetch_one(
        conn,
        dict_row,
        f"SELECT {_TEMPLATE_COLUMNS} FROM notification_templates"
        " WHERE org_id = %s AND kind = %s AND channel = %s AND language = %s",
        (org_id, *key),
    )
    return None if row is None else _template(row)


async def put_template(conn: AsyncConnection[Any], org_id: OrgId, template: Template) -> None:
    """Store the organisation's template of its kind, channel and language, replacing any."""
    await conn.execute(
        "INSERT INTO notification_templates"
        " (org_id, kind, channel, language, subject, body_text, body_html)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (org_id, kind, channel, language) DO UPDATE SET subject = excluded.subject,"
        " body_text = excluded.body_text, body_html = excluded.body_html, updated_at = now()",
        (
            org_id,
            template.kind,
            template.channel,
            template.language,
            template.subject,
            template.text,
            template.html,
        ),
    )


async def delete_template(conn: AsyncConnection[Any], org_id: OrgId, key: TemplateKey) -> bool:
    """Drop the organisation's template of ``key`` (the default applies again); False when it
    had none."""
    cursor = await conn.execute(
        "DELETE FROM notification_templates"
        " WHERE org_id = %s AND kind = %s AND channel = %s AND language = %s",
        (org_id, *key),
    )
    return cursor.rowcount == 1


# --- what rendering needs ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrgFacts:
    """An organisation as its messages need it."""

    org_id: OrgId
    name: str
    timezone: str
    rules: RulesDoc | None
    """None: the deployment's defaults."""
    templates: dict[TemplateKey, Template] = field(default_factory=dict)
    share_proof_photo: bool = False
    """Its customers may see the proof photo (``orgs.share_proof_photo``): the delivered
    message then links to the proof on the tracking page."""
    locale: str = "en"
    """The organisation's locale: messages' language where neither the order nor the rules
    name one."""


@dataclass(frozen=True, slots=True)
class OrderFacts:
    """An order as its messages tell of it."""

    org_id: OrgId
    order_id: OrderId
    ref: str
    address: str
    customer_name: str | None
    language: str | None
    """The customer's language, when the order names one."""


async def load_orgs(conn: AsyncConnection[Any], org_ids: Iterable[OrgId]) -> dict[OrgId, OrgFacts]:
    """Each organisation's name, time zone, rules and own templates; two queries."""
    ids = sorted(set(org_ids))
    if not ids:
        return {}
    orgs: dict[OrgId, OrgFacts] = {}
    for row in await fetch_all(
        conn,
        dict_row,
        "SELECT g.id, g.name, g.timezone, g.share_proof_photo, g.locale, r.rules FROM orgs g"
        " LEFT JOIN notification_rules r ON r.org_id = g.id WHERE g.id = ANY(%s::bigint[])",
        (ids,),
    ):
        org_id = OrgId(row["id"])
        rules = None if row["rules"] is None else _rules(row["rules"])
        orgs[org_id] = OrgFacts(
            org_id,
            row["name"],
            row["timezone"],
            rules,
            share_proof_photo=row["share_proof_photo"],
            locale=row["locale"],
        )
    for row in await fetch_all(
        conn,
        dict_row,
        f"SELECT {_TEMPLATE_COLUMNS} FROM notification_templates WHERE org_id = ANY(%s::bigint[])",
        (ids,),
    ):
        found = orgs.get(OrgId(row["org_id"]))
        if found is not None:
            template = _template(row)
            found.templates[(template.kind, template.channel, template.language)] = template
    return orgs


async def load_orders(
    conn: AsyncConnection[Any], orders: Iterable[tuple[OrgId, OrderId]]
) -> dict[OrderId, OrderFacts]:
    """Each order's reference, address, customer name and language; one query (for one
    order's preview: the notify worker has them from
    :func:`store.notifications.load_for_decide`)."""
    pairs = sorted(set(orders))
    if not pairs:
        return {}
    return {
        OrderId(row["order_id"]): OrderFacts(**row)
        for row in await fetch_all(
            conn,
            dict_row,
            "SELECT o.org_id, o.id AS order_id, o.external_ref AS ref, o.address,"
            " o.customer_name, o.language"
            " FROM unnest(%s::bigint[], %s::bigint[]) AS w (org_id, order_id)"
            " JOIN orders o ON o.org_id = w.org_id AND o.id = w.order_id",
            ([org for org, _ in pairs], [order for _, order in pairs]),
        )
    }


def hash_link_token(token: str) -> bytes:
    """What is stored of a tracking token: its SHA-256, as ``app.auth.hash_token`` stores
    every token."""
    return hashlib.sha256(token.encode()).digest()


async def links_of(
    conn: AsyncConnection[Any], orders: Iterable[tuple[OrgId, OrderId]]
) -> dict[OrderId, str]:
    """The tracking link token each order's messages already carry, where that link still
    exists and has not reached its outer limit; one query."""
    pairs = sorted(set(orders))
    if not pairs:
        return {}
    rows = await fetch_all(
        conn,
        dict_row,
        "SELECT DISTINCT ON (b.order_id) b.order_id, b.link_token"
        " FROM unnest(%s::bigint[], %s::bigint[]) AS w (org_id, order_id)"
        " JOIN outbox b ON b.org_id = w.org_id AND b.order_id = w.order_id"
        " JOIN tracking_tokens t ON t.token_hash = sha256(convert_to(b.link_token, 'UTF8'))"
        "   AND t.org_id = b.org_id AND t.order_id = b.order_id"
        " WHERE b.link_token IS NOT NULL AND t.expires_at > now()"
        " ORDER BY b.order_id, b.created_at DESC",
        ([org for org, _ in pairs], [order for _, order in pairs]),
    )
    return {OrderId(row["order_id"]): row["link_token"] for row in rows}


async def new_links(
    conn: AsyncConnection[Any], tokens: Mapping[tuple[OrgId, OrderId], str]
) -> dict[OrderId, str]:
    """Store a tracking link token for each order, in one statement; the tokens of the orders
    that exist."""
    made = await create_links(
        conn, [(org, order, hash_link_token(token)) for (org, order), token in tokens.items()]
    )
    return {order: token for (_, order), token in tokens.items() if order in made}


@dataclass(frozen=True, slots=True)
class Body:
    """A decided message's text, for its outbox row (by idempotency key)."""

    idempotency_key: str
    message: Rendered
    link_token: str | None = None


async def store_bodies(conn: AsyncConnection[Any], bodies: Sequence[Body]) -> int:
    """Write each message's text onto its outbox row, unless the row has one (a redelivered
    entry keeps the text first decided); the number of rows written."""
    if not bodies:
        return 0
    cursor = await conn.execute(
        "UPDATE outbox b SET subject = w.subject, body_text = w.body_text,"
        " body_html = w.body_html, link_token = w.link_token"
        " FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[])"
        "   AS w (idempotency_key, subject, body_text, body_html, link_token)"
        " WHERE b.idempotency_key = w.idempotency_key AND b.body_text IS NULL",
        (
            [b.idempotency_key for b in bodies],
            [b.message.subject for b in bodies],
            [b.message.text for b in bodies],
            [b.message.html for b in bodies],
            [b.link_token for b in bodies],
        ),
    )
    return cursor.rowcount


async def bodies_of(conn: AsyncConnection[Any], outbox_ids: Sequence[int]) -> dict[int, Rendered]:
    """The text stored on these outbox rows, for those that have one; one query."""
    if not outbox_ids:
        return {}
    return {
        row["id"]: Rendered(text=row["body_text"], subject=row["subject"], html=row["body_html"])
        for row in await fetch_all(
            conn,
            dict_row,
            "SELECT id, subject, body_text, body_html FROM outbox"
            " WHERE id = ANY(%s::bigint[]) AND body_text IS NOT NULL",
            (list(outbox_ids),),
        )
    }
