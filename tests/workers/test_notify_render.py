"""The notify worker's choice of template and its fallbacks, as pure tests."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from schemas.events import StopDelivered, StopFailed
from schemas.ids import DriverId, OrderId, OrgId, RouteId, StopId
from schemas.notifications import Notification, NotificationRules, Template
from store.notification_rules import OrderFacts, OrgFacts
from workers import messages
from workers.notify import facts_of, render_message, template_for

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
    rendered = render_message(message(), long_address, org(wordy))
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
    assert render_message(message(), overlong, org()) is None


LINK = "https://track.example.com/t/tok"
ORDER = OrderFacts(ORG, OrderId(7), "A-1", "1 Main St", None, None)


def delivered_message(channel: str) -> Notification:
    return msgspec.structs.replace(
        message(channel=channel), kind="delivered", template=f"delivered.{channel}"
    )


def test_the_delivered_message_links_to_the_proof_only_where_the_organisation_shares_it() -> None:
    """A delivery's message carries the proof link (the tracking page) in its text and as an
    HTML button when the organisation shares proof photos, and neither otherwise."""
    delivered = StopDelivered(
        org_id=ORG, at=NOW, route_id=RouteId(5), stop_id=StopId(9), order_id=OrderId(7),
        driver_id=DriverId(2),
    )  # fmt: skip
    sharing = OrgFacts(ORG, "Acme", "UTC", None, share_proof_photo=True)
    shown = facts_of(delivered, ORDER, sharing, NotificationRules(), LINK, "en")
    hidden = facts_of(delivered, ORDER, org(), NotificationRules(), LINK, "en")
    assert shown.proof_url == LINK
    assert hidden.proof_url is None
    email = render_message(delivered_message("email"), shown, sharing)
    assert email is not None
    assert email.html is not None
    assert f"Proof of delivery: {LINK}" in email.text
    assert f'href="{LINK}"' in email.html
    plain = render_message(delivered_message("email"), hidden, org())
    assert plain is not None
    assert "Proof" not in plain.text
    assert "href" not in (plain.html or "")
    sms = render_message(delivered_message("sms"), shown, sharing)
    assert sms is not None
    assert sms.text.endswith(f"Proof of delivery: {LINK}")


def test_only_a_delivery_carries_the_proof_link() -> None:
    """A failed stop's message has no proof link, even where the organisation shares proofs."""
    failed = StopFailed(
        org_id=ORG, at=NOW, route_id=RouteId(5), stop_id=StopId(9), order_id=OrderId(7),
        driver_id=DriverId(2), reason="nobody home",
    )  # fmt: skip
    sharing = OrgFacts(ORG, "Acme", "UTC", None, share_proof_photo=True)
    assert facts_of(failed, ORDER, sharing, NotificationRules(), LINK, "en").proof_url is None
