"""The notify worker's choice of template and its fallbacks, as pure tests."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.ids import OrderId, OrgId
from schemas.notifications import Notification, Template
from store.notification_rules import OrgFacts
from workers import messages
from workers.notify import render_message, template_for

ORG = OrgId(1)
NOW = datetime(2026, 12, 6, 14, 0, tzinfo=UTC)


def message(language: str = "en", channel: str = "sms") -> Notification:
    return Notification(
        org_id=ORG,
        order_id=OrderId(7),
        event_id="1-0",
        kind="en_route",
        recipient_kind="customer",
        channel=channel,  # type: ignore[arg-type]
        address="+15550001",
        template=f"en_route.{channel}",
        language=language,
        idempotency_key=f"1-0:customer:{channel}",
        created_at=NOW,
    )


def org(*templates: Template) -> OrgFacts:
    return OrgFacts(
        ORG, "Acme", "UTC", None, {(t.kind, t.channel, t.language): t for t in templates}
    )


def own(language: str, text: str) -> Template:
    return Template(kind="en_route", channel="sms", language=language, text=text, custom=True)


def test_the_organisations_template_in_the_language_or_its_base_is_chosen() -> None:
    """A message in de-AT uses the organisation's de template; without one, the default."""
    mine = own("de", "Hallo {{ order.ref }}")
    chosen, builtin = template_for(org(mine), message("de-AT"))
    assert chosen == mine
    assert builtin == messages.default("en_route", "sms", "de")
    assert template_for(org(mine), message("en"))[0] == messages.default("en_route", "sms", "en")


def test_a_template_failing_on_a_real_order_falls_back_to_the_default() -> None:
    """A stored template that passed its check but overflows on a real order's long address
    is replaced by the built-in default for that message."""
    long_address = messages.Facts(org_name="Acme", order_ref="A-1", address="x" * 500, at=NOW)
    wordy = own(
        "en", "{{ order.address }} {{ order.address }} {{ order.address }} {{ order.address }}"
    )
    rendered = render_message(message(), long_address, org(wordy), "UTC")
    assert rendered is not None
    assert rendered.text == "Acme: Your delivery A-1 is on its way."


def test_no_text_is_stored_when_even_the_default_fails() -> None:
    """When even the default cannot render (here: a tracking link longer than an SMS), no text
    is stored, and the sender's plain default goes out instead of nothing."""
    overlong = messages.Facts(
        org_name="Acme",
        order_ref="A-1",
        address="x",
        tracking_url="https://t.example/t/" + "x" * 2000,
        at=NOW,
    )
    assert render_message(message(), overlong, org(), "UTC") is None
