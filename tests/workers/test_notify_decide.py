"""The notify worker's decide step, as pure tests: one per customer event kind and rule."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import msgspec
import pytest

from app.api.notification_rules import default_rules
from app.settings import Settings, SettingsError
from schemas.eta import (
    Approaching,
    ArrivalDetected,
    ArrivalWindow,
    EnRoute,
    EtaChanged,
    OutOfSequence,
    RunningLate,
)
from schemas.events import DeliveryUpdate, Event, OrderCancelled, StopDelivered, StopFailed
from schemas.ids import DriverId, OrderId, OrgId, RouteId, StopId
from schemas.notifications import (
    NotificationRules,
    OrderContact,
    QuietHours,
    RulesDoc,
    Sent,
    parse_quiet_hours,
)
from workers.notify import decide

ORG, ORDER, STOP = OrgId(1), OrderId(7), StopId(3)
NOW = datetime(2026, 12, 6, 14, 0, tzinfo=UTC)
T = int(NOW.timestamp())
RULES = NotificationRules()
ORDER_ROW = OrderContact(
    org_id=ORG, order_id=ORDER, status="dispatched", phone="+15550001", email="a@example.com"
)
COMMON: dict[str, Any] = {
    "driver_id": DriverId(2),
    "route_id": RouteId(5),
    "route_version": 1,
    "stop_id": STOP,
    "order_id": ORDER,
    "at_epoch_s": T,
}


def window(lower: int, upper: int) -> ArrivalWindow:
    return ArrivalWindow(
        stop_id=STOP,
        order_id=ORDER,
        likely_epoch_s=(lower + upper) // 2,
        lower_epoch_s=lower,
        upper_epoch_s=upper,
        computed_epoch_s=T,
    )


def update(detail: object, at: datetime = NOW) -> DeliveryUpdate:
    return DeliveryUpdate(org_id=ORG, at=at, detail=detail)  # type: ignore[arg-type]


def eta(lower: int, upper: int, at: datetime = NOW) -> DeliveryUpdate:
    return update(
        EtaChanged(**COMMON, previous=window(T, T + 600), window=window(lower, upper)),
        at,
    )


def kinds(event: Event, **kw: object) -> list[str]:
    args: dict[str, object] = {
        "order": ORDER_ROW,
        "rules": RULES,
        "already_sent": [],
        "now": NOW,
    } | kw
    made = decide(event, "1-0", **args)  # type: ignore[arg-type]
    return [f"{n.kind}.{n.channel}" for n in made]


def sent(kind: str, ago_s: float, lower: float | None = None, upper: float | None = None) -> Sent:
    return Sent(
        kind=kind,  # type: ignore[arg-type]
        channel="sms",
        recipient_kind="customer",
        created_at=NOW - timedelta(seconds=ago_s),
        window_lower_epoch_s=lower,
        window_upper_epoch_s=upper,
    )


EN_ROUTE = update(EnRoute(**COMMON, window=window(T + 600, T + 1200)))


def test_en_route_texts_the_customer() -> None:
    """En route becomes one SMS to the order's phone, keyed by entry, recipient and channel."""
    [n] = decide(EN_ROUTE, "1-0", ORDER_ROW, RULES, [], NOW)
    assert (n.kind, n.channel, n.address, n.template) == (
        "en_route",
        "sms",
        "+15550001",
        "en_route.sms",
    )
    assert n.idempotency_key == "1-0:customer:sms"
    assert n.window_lower_epoch_s == T + 600


def test_approaching_texts_the_customer() -> None:
    """Approaching notifies the customer."""
    event = update(Approaching(**COMMON, distance_m=500.0))
    assert kinds(event) == ["approaching.sms"]


def test_delivered_texts_the_customer() -> None:
    """A delivered stop notifies its customer."""
    event = StopDelivered(
        org_id=ORG, at=NOW, route_id=RouteId(5), stop_id=STOP, order_id=ORDER, driver_id=DriverId(2)
    )
    assert kinds(event) == ["delivered.sms"]


def test_failed_texts_the_customer() -> None:
    """A stop that could not be delivered notifies its customer."""
    event = StopFailed(
        org_id=ORG,
        at=NOW,
        route_id=RouteId(5),
        stop_id=STOP,
        order_id=ORDER,
        driver_id=DriverId(2),
        reason="nobody home",
    )
    assert kinds(event) == ["failed.sms"]


def test_running_late_texts_the_customer() -> None:
    """Running late notifies the customer."""
    event = update(RunningLate(**COMMON, window=window(T, T + 600), customer_end_epoch_s=T - 60))
    assert kinds(event) == ["running_late.sms"]


def test_email_when_the_order_has_no_phone() -> None:
    """An order without a phone is told by email; one without either contact is told nothing."""
    no_phone = OrderContact(org_id=ORG, order_id=ORDER, status="dispatched", email="a@example.com")
    assert kinds(EN_ROUTE, order=no_phone) == ["en_route.email"]
    nothing = OrderContact(org_id=ORG, order_id=ORDER, status="dispatched")
    assert kinds(EN_ROUTE, order=nothing) == []


def test_out_of_sequence_never_reaches_the_customer() -> None:
    """An out-of-sequence dwell is for dispatchers only."""
    event = update(
        OutOfSequence(
            **COMMON,
            expected_stop_id=StopId(2),
            expected_order_id=OrderId(6),
            stay_start_epoch_s=T - 60,
            dwell_s=60,
        )
    )
    assert kinds(event) == []


def test_arrivals_and_cancellations_notify_nobody() -> None:
    """Detected arrivals and order cancellations are not customer messages."""
    arrived = update(ArrivalDetected(**COMMON, arrived_epoch_s=T))
    cancelled = OrderCancelled(org_id=ORG, at=NOW, order_id=ORDER)
    assert kinds(arrived) == []
    assert kinds(cancelled) == []


def test_once_per_order_kind_and_channel() -> None:
    """A second en route for an order already told of it is dropped."""
    assert kinds(EN_ROUTE, already_sent=[sent("en_route", 600)]) == []
    assert kinds(EN_ROUTE, already_sent=[sent("approaching", 600)]) == ["en_route.sms"]


def test_eta_changed_that_moved_too_little_is_dropped() -> None:
    """A window that moved no more than the configured amount from the last told is dropped."""
    told = [sent("en_route", 3600, T, T + 600)]
    assert kinds(eta(T + 600, T + 1200), already_sent=told) == []
    assert kinds(eta(T + 1200, T + 1800), already_sent=told) == ["eta_changed.sms"]


def test_eta_changed_too_soon_after_the_last_is_dropped() -> None:
    """A large move within the interval after the last eta_changed message is dropped."""
    told = [sent("eta_changed", 600, T, T + 600)]
    assert kinds(eta(T + 3600, T + 4200), already_sent=told) == []
    told_long_ago = [sent("eta_changed", 3600, T, T + 600)]
    assert kinds(eta(T + 3600, T + 4200), already_sent=told_long_ago) == ["eta_changed.sms"]


def test_quiet_hours_drop_messages() -> None:
    """A message due in quiet hours, in the organisation's time zone, is dropped."""
    # 14:00 UTC is 15:00 in Berlin.
    hours = QuietHours(start=time(15), end=time(8))
    quiet = NotificationRules(timezone="Europe/Berlin", quiet_hours=hours)
    assert kinds(EN_ROUTE, rules=quiet) == []
    loud = NotificationRules(timezone="UTC", quiet_hours=hours)
    assert kinds(EN_ROUTE, rules=loud) == ["en_route.sms"]


def test_quiet_hours_parse_across_midnight() -> None:
    """``22:00-07:00`` spans midnight; an empty text means none."""
    hours = parse_quiet_hours("22:00-07:00")
    assert hours is not None
    assert hours.contains(time(23, 30))
    assert hours.contains(time(6, 59))
    assert not hours.contains(time(7, 0))
    assert parse_quiet_hours("") is None


def test_opted_out_customer_gets_nothing() -> None:
    """A customer who opted out is told nothing."""
    out = OrderContact(
        org_id=ORG, order_id=ORDER, status="dispatched", phone="+15550001", opted_out=True
    )
    assert kinds(EN_ROUTE, order=out) == []


def test_stale_event_notifies_nobody() -> None:
    """An event older than the configured age (a drained backlog) is dropped."""
    old = update(EnRoute(**COMMON), at=NOW - timedelta(hours=3))
    assert kinds(old) == []


def test_cancelled_order_gets_nothing() -> None:
    """Nothing is sent for a cancelled order."""
    cancelled = OrderContact(org_id=ORG, order_id=ORDER, status="cancelled", phone="+15550001")
    assert kinds(EN_ROUTE, order=cancelled) == []


def test_an_order_of_another_organisation_gets_nothing() -> None:
    """An event never reaches an order of another organisation."""
    other = OrderContact(org_id=OrgId(99), order_id=ORDER, status="dispatched", phone="+1")
    assert kinds(EN_ROUTE, order=other) == []


def test_quiet_hours_setting_is_checked_where_it_is_read() -> None:
    """A quiet-hours variable that is no time range fails naming the variable."""
    with pytest.raises(SettingsError, match="LASTMILE_NOTIFY_QUIET_HOURS"):
        Settings.from_env({"LASTMILE_NOTIFY_QUIET_HOURS": "25:00-07:00"})
    settings = Settings.from_env({"LASTMILE_NOTIFY_QUIET_HOURS": "22:00-07:00"})
    assert default_rules(settings).quiet_hours == QuietHours(start=time(22), end=time(7))


# --- per-organisation rules and dispatcher alerts ----------------------------------------------

DISPATCH = NotificationRules(dispatcher_emails=("ops@example.com", "lead@example.com"))
OUT_OF_SEQUENCE = update(
    OutOfSequence(
        **COMMON,
        expected_stop_id=StopId(2),
        expected_order_id=OrderId(6),
        stay_start_epoch_s=T - 60,
        dwell_s=60,
    )
)
FAILED = StopFailed(
    org_id=ORG,
    at=NOW,
    route_id=RouteId(5),
    stop_id=STOP,
    order_id=ORDER,
    driver_id=DriverId(2),
    reason="nobody home",
)


def alerted(sent: Sent) -> Sent:
    return msgspec.structs.replace(sent, recipient_kind="dispatcher", channel="email")


def test_out_of_sequence_alerts_every_dispatcher_address_by_email() -> None:
    """An out-of-sequence dwell is one alert email per dispatcher address, each keyed by it."""
    made = decide(OUT_OF_SEQUENCE, "1-0", ORDER_ROW, DISPATCH, [], NOW)
    assert [(n.recipient_kind, n.channel, n.address, n.template) for n in made] == [
        ("dispatcher", "email", "ops@example.com", "alert_out_of_sequence.email"),
        ("dispatcher", "email", "lead@example.com", "alert_out_of_sequence.email"),
    ]
    assert made[0].idempotency_key == "1-0:dispatcher:email:ops@example.com"


def test_no_dispatcher_address_means_no_alert() -> None:
    """With no dispatcher address in the rules (the default), alerts reach nobody."""
    assert kinds(OUT_OF_SEQUENCE) == []


def test_a_failed_delivery_tells_the_customer_and_alerts_the_dispatchers() -> None:
    """A failed stop is the customer's SMS and each dispatcher's email."""
    made = decide(FAILED, "1-0", ORDER_ROW, DISPATCH, [], NOW)
    assert [(n.kind, n.recipient_kind, n.address) for n in made] == [
        ("failed", "customer", "+15550001"),
        ("failed", "dispatcher", "ops@example.com"),
        ("failed", "dispatcher", "lead@example.com"),
    ]


def test_running_late_alerts_once_per_order() -> None:
    """A running-late alert goes once per order; a later one for the same order is dropped."""
    late = update(RunningLate(**COMMON, window=window(T, T + 600), customer_end_epoch_s=T - 60))
    rules = msgspec.structs.replace(DISPATCH, dispatcher_emails=("ops@example.com",))
    assert kinds(late, rules=rules) == ["running_late.sms", "running_late.email"]
    before = [alerted(sent("running_late", 600))]
    assert kinds(late, rules=rules, already_sent=before) == ["running_late.sms"]


def test_alerts_ignore_quiet_hours_and_the_customers_opt_out() -> None:
    """Quiet hours and an opt-out silence the customer, not the dispatchers."""
    quiet = msgspec.structs.replace(
        DISPATCH,
        dispatcher_emails=("ops@example.com",),
        quiet_hours=QuietHours(start=time(0), end=time(23, 59)),
    )
    assert kinds(FAILED, rules=quiet) == ["failed.email"]
    out = msgspec.structs.replace(ORDER_ROW, opted_out=True)
    assert kinds(FAILED, rules=quiet, order=out) == ["failed.email"]


def test_stale_events_and_cancelled_orders_alert_nobody() -> None:
    """The stale-event and cancelled-order rules hold for dispatchers too."""
    old = msgspec.structs.replace(FAILED, at=NOW - timedelta(hours=3))
    assert kinds(old, rules=DISPATCH) == []
    cancelled = msgspec.structs.replace(ORDER_ROW, status="cancelled")
    assert kinds(FAILED, rules=DISPATCH, order=cancelled) == []


def test_an_organisation_can_turn_customer_events_and_alerts_off() -> None:
    """Events left out of the organisation's rules notify nobody."""
    doc = RulesDoc(
        customer_events=["delivered"],
        dispatcher_events=["failed"],
        dispatcher_emails=["ops@example.com"],
    )
    rules = NotificationRules.of(doc, "UTC")
    assert kinds(EN_ROUTE, rules=rules) == []
    assert kinds(OUT_OF_SEQUENCE, rules=rules) == []
    assert kinds(FAILED, rules=rules) == ["failed.email"]


def test_the_organisations_channel_preference_is_followed() -> None:
    """Email first in the rules: a customer with both contacts is told by email."""
    rules = NotificationRules.of(RulesDoc(customer_channels=["email", "sms"]), "UTC")
    assert kinds(EN_ROUTE, rules=rules) == ["en_route.email"]
    sms_only = NotificationRules.of(RulesDoc(customer_channels=["sms"]), "UTC")
    no_phone = msgspec.structs.replace(ORDER_ROW, phone=None)
    assert kinds(EN_ROUTE, rules=sms_only, order=no_phone) == []


def test_the_organisations_restraint_in_minutes_is_what_decide_applies() -> None:
    """An organisation's ETA threshold, interval, quiet hours and event age (minutes, as the
    API takes them) are what decide applies."""
    doc = RulesDoc(
        eta_change_min=60, eta_interval_min=5, quiet_hours="14:00-15:00", max_event_age_min=1
    )
    rules = NotificationRules.of(doc, "UTC")
    assert (rules.eta_min_move_s, rules.eta_min_interval_s, rules.max_event_age_s) == (
        3600.0,
        300.0,
        60.0,
    )
    assert kinds(EN_ROUTE, rules=rules) == []  # 14:00 UTC is quiet
    loud = NotificationRules.of(msgspec.structs.replace(doc, quiet_hours=""), "UTC")
    told = [sent("en_route", 3600, T, T + 600)]
    assert kinds(eta(T + 1800, T + 2400), rules=loud, already_sent=told) == []
    assert kinds(eta(T + 4200, T + 4800), rules=loud, already_sent=told) == ["eta_changed.sms"]
    late = update(EnRoute(**COMMON), at=NOW - timedelta(seconds=90))
    assert kinds(late, rules=loud) == []
    assert rules.doc() == doc
