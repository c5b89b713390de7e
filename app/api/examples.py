"""Examples for the API reference: one delivery day in Berlin, as the wire Structs.

Every example is built from the Struct the API decodes or encodes, so a renamed field breaks
here, at import, and ``tests/app/test_openapi.py`` decodes each one again as its documented
type, so a value outside a field's range cannot be shown either.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Final

from msgspec.structs import replace

from schemas.analytics import (
    ChannelMessages,
    DeliveryReport,
    DeliveryRow,
    EtaAccuracy,
    LearnedCell,
    LearnedHour,
    LearnedModel,
    Pattern,
    PatternReport,
    ReasonCount,
    RouteReport,
    RouteRow,
    WeekFigures,
    WeeklySummary,
    WeeklySummaryPreview,
    WeeklySummarySent,
)
from schemas.auth import (
    ApiKeyCreated,
    ApiKeyIn,
    ApiKeys,
    Credential,
    Devices,
    KeyRotateIn,
    SocketTicket,
)
from schemas.customer import (
    CustomerAnswers,
    Instructions,
    InstructionsIn,
    Rating,
    RatingIn,
    Reschedule,
    RescheduleIn,
)
from schemas.customer_proof import CustomerProof
from schemas.delivery import (
    Break,
    CancelIn,
    Carrier,
    CarrierIn,
    CarrierPatch,
    Depot,
    DepotIn,
    DepotPatch,
    DeviceCreated,
    DeviceIn,
    Dimensions,
    Driver,
    DriverIn,
    DriverPatch,
    ImportedRow,
    ImportProblem,
    ImportResult,
    Order,
    OrderIn,
    OrderPatch,
    Parcel,
    Place,
    Shift,
    ShiftIn,
    ShiftPatch,
    TimeWindow,
    Vehicle,
    VehicleIn,
    VehiclePatch,
)
from schemas.driver_profile import DriverProfile
from schemas.driver_qr import DeviceSignIn
from schemas.ids import (
    ApiKeyId,
    CarrierId,
    DepotId,
    DeviceId,
    DriverId,
    OrderId,
    OrgId,
    PlanId,
    RouteId,
    ShiftId,
    StopId,
    UserId,
    VehicleId,
)
from schemas.notification_views import (
    AttemptView,
    DemoMail,
    DemoMailbox,
    NotificationPage,
    NotificationView,
    OrderNotifications,
)
from schemas.notifications import PreviewIn, Rendered, RulesDoc, Template, TemplateIn, TemplateList
from schemas.organisation import Organisation, OrganisationPatch
from schemas.ping import IngestResult, LivePosition, Ping, PingBatchIn, Rejection
from schemas.plan import (
    DispatchRequest,
    DispatchResult,
    PlanList,
    PlannedRoute,
    PlannedVisit,
    PlanOutcome,
    PlanProgress,
    PlanRequest,
    PlanSummary,
    PlanView,
)
from schemas.proofs import (
    AuditCheck,
    DriverActionIn,
    FailStopIn,
    Override,
    OverrideIn,
    Proof,
    ProofImage,
    ProofList,
    ProofRequirements,
    Reattempt,
    ReattemptIn,
)
from schemas.route import (
    ActionPreview,
    FailStop,
    InsertOrder,
    MoveStop,
    RouteChange,
    RouteStop,
    RouteView,
    StopChange,
    Window,
)
from schemas.track import ArrivalEstimate, DriverSpot, TrackingLink, TrackView
from schemas.users import PasswordIn, Session, SignIn, User, UserIn, UserPatch, Users
from schemas.webhooks import (
    Delivery,
    DeliveryAttempt,
    DeliveryPage,
    Replayed,
    ReplayRange,
    RotateIn,
    Webhook,
    WebhookCreated,
    WebhookIn,
    WebhookPatch,
    WebhookSecret,
)

DAY: Final = date(2026, 11, 24)


def at(hour: int, minute: int = 0, second: int = 0) -> datetime:
    """An instant of the example day, in UTC."""
    return datetime(2026, 11, 24, hour, minute, second, tzinfo=UTC)


CREATED: Final = at(6, 30)

PING: Final = Ping(
    time=at(9, 14, 5),
    lat=52.5208,
    lon=13.4094,
    speed_mps=8.3,
    heading_deg=90.0,
    accuracy_m=5.0,
    battery_pct=0.81,
    seq=1,
)
PING_BATCH: Final = PingBatchIn(
    pings=[PING, Ping(time=at(9, 14, 6), lat=52.5209, lon=13.4096, speed_mps=8.1, seq=2)]
)
INGEST_RESULT: Final = IngestResult(
    accepted=1,
    rejected=[
        Rejection(index=1, field="lat", reason="expected lat in [-90.0, 90.0], got 91.2"),
    ],
)
ALL_REJECTED: Final = IngestResult(
    accepted=0,
    rejected=[Rejection(index=0, field="time", reason="time is required")],
)
LIVE: Final = LivePosition(
    driver_id=DriverId(7),
    time=at(9, 14, 5),
    lat=52.5208,
    lon=13.4094,
    speed_mps=8.3,
    heading_deg=90.0,
    accuracy_m=5.0,
    battery_pct=81.0,
    received_at=at(9, 14, 6),
)

DEPOT_IN: Final = DepotIn(
    name="Berlin Mitte",
    address="Invalidenstraße 50, 10115 Berlin",
    lat=52.5296,
    lon=13.3719,
    external_ref="DEPOT-1",
)
DEPOT: Final = Depot(
    **{f: getattr(DEPOT_IN, f) for f in DepotIn.__struct_fields__},
    id=DepotId(1),
    created_at=CREATED,
    updated_at=CREATED,
)
DEPOT_PATCH: Final = DepotPatch(address="Invalidenstraße 52, 10115 Berlin")

CARRIER_IN: Final = CarrierIn(
    name="Spree Kurier",
    kind="partner",
    contact_name="Jana Weber",
    contact_phone="+49 30 1234567",
    contact_email="dispo@spree-kurier.example",
)
CARRIER: Final = Carrier(
    **{f: getattr(CARRIER_IN, f) for f in CarrierIn.__struct_fields__},
    id=CarrierId(2),
    created_at=CREATED,
    updated_at=CREATED,
)
CARRIER_PATCH: Final = CarrierPatch(active=False)

VEHICLE_IN: Final = VehicleIn(
    name="Van 3",
    type="van",
    capacity={"weight_kg": 800, "parcels": 120},
    skills=["cooling"],
    fixed_cost=40.0,
    cost_per_km=0.35,
    cost_per_hour=18.0,
)
VEHICLE: Final = Vehicle(
    **{f: getattr(VEHICLE_IN, f) for f in VehicleIn.__struct_fields__},
    id=VehicleId(3),
    created_at=CREATED,
    updated_at=CREATED,
)
VEHICLE_PATCH: Final = VehiclePatch(capacity={"weight_kg": 750, "parcels": 120})

DRIVER_IN: Final = DriverIn(
    name="Mehmet Yilmaz", phone="+49 151 2345678", default_vehicle_id=VEHICLE.id
)
DRIVER: Final = Driver(
    **{f: getattr(DRIVER_IN, f) for f in DriverIn.__struct_fields__},
    id=DriverId(7),
    created_at=CREATED,
    updated_at=CREATED,
)
DRIVER_PATCH: Final = DriverPatch(phone="+49 151 7654321")
DEVICE_IN: Final = DeviceIn(name="work phone")
DEVICE_CREATED: Final = DeviceCreated(
    device_id=DeviceId(11),
    driver_id=DRIVER.id,
    name="work phone",
    token="lmd_Qk9ZcW5nLXRva2VuLXNob3duLW9uY2UtaW4tdGhpcw",  # noqa: S106 - an example
    token_prefix="lmd_Qk9ZcW",  # noqa: S106 - an example
)
DEVICE_CREDENTIAL: Final = Credential(
    id=11,
    name="work phone",
    role="device",
    token_prefix="lmd_Qk9ZcW",  # noqa: S106 - an example
    created_at=CREATED,
)
DEVICES: Final = Devices(devices=[DEVICE_CREDENTIAL])
REVOKED_DEVICE: Final = replace(DEVICE_CREDENTIAL, revoked_at=CREATED)
SOCKET_TICKET: Final = SocketTicket(ticket="c2luZ2xlLXVzZS10aWNrZXQtZXhhbXBsZQ", expires_in_s=30)
KEY_ROTATE_IN: Final = KeyRotateIn(grace_s=3600)
API_KEY_IN: Final = ApiKeyIn(name="shop integration", role="integration")
API_KEY_CREATED: Final = ApiKeyCreated(
    id=ApiKeyId(4),
    name="shop integration",
    role="integration",
    token="lmk_U2hvcC1pbnRlZ3JhdGlvbi1rZXktc2hvd24tb25jZQ",  # noqa: S106 - an example
    token_prefix="lmk_U2hvcC",  # noqa: S106 - an example
)
API_KEY: Final = Credential(
    id=4,
    name="shop integration",
    role="integration",
    token_prefix="lmk_U2hvcC",  # noqa: S106 - an example
    created_at=CREATED,
)
API_KEYS: Final = ApiKeys(api_keys=[API_KEY])
DRIVER_ACTION: Final = DriverActionIn(at=at(10, 42, 5))
PLAN_LIST: Final = PlanList(
    plans=[
        PlanSummary(
            id=PlanId(9), day=DAY, status="done", created_at=at(6), finished_at=at(6, 0, 30),
            time_limit_s=30.0, routes=2, served=41, unassigned=1, distance_m=84_200,
            duration_s=52_800, objective=1_204_511.0, engine="pyvrp",
        )
    ]
)  # fmt: skip
ACTION_PREVIEW: Final = ActionPreview(
    routes=[
        RouteChange(
            route_id=RouteId(12),
            driver_id=DRIVER.id,
            version=4,
            stops=[
                StopChange(
                    order_id=OrderId(42),
                    order_ref="SO-1001",
                    windows=[Window(start=at(10), end=at(12))],
                    before=at(10, 40),
                    after=at(11, 5),
                ),
                StopChange(
                    order_id=OrderId(43), order_ref="SO-1002", before=None, after=at(11, 30)
                ),
            ],
            distance_m_after=18_400,
        )
    ],
    added_travel_s=420,
)
ORGANISATION: Final = Organisation(
    id=OrgId(1), name="Acme Deliveries", time_zone="Europe/Berlin", locale="de",
    default_service_s=180, summary_emails=["ops@acme.example"],
)  # fmt: skip
ORGANISATION_PATCH: Final = OrganisationPatch(
    time_zone="Europe/Berlin", default_service_s=180, auto_resequence=True
)
USER: Final = User(
    id=UserId(3),
    email="dana@example.com",
    name="Dana Dispatcher",
    role="dispatcher",
    created_at=CREATED,
    last_sign_in_at=CREATED,
)
USERS: Final = Users(users=[USER])
USER_IN: Final = UserIn(
    email="dana@example.com",
    name="Dana Dispatcher",
    role="dispatcher",
    password="correct horse battery",  # noqa: S106 - an example
)
USER_PATCH: Final = UserPatch(active=False)
PASSWORD_IN: Final = PasswordIn(password="a new passphrase")  # noqa: S106 - an example
OWN_PASSWORD_IN: Final = PasswordIn(
    password="a new passphrase",  # noqa: S106 - an example
    current_password="correct horse battery",  # noqa: S106 - an example
)
SIGN_IN: Final = SignIn(
    email="dana@example.com",
    password="correct horse battery",  # noqa: S106 - an example
)
SESSION: Final = Session(
    user=USER,
    org_id=OrgId(1),
    expires_at=CREATED,
    csrf_token="Q1NSRi10b2tlbi1kZXJpdmVkLWZyb20tdGhlLXNlc3Npb24",  # noqa: S106 - an example
)
REVOKED_API_KEY: Final = replace(API_KEY, revoked_at=CREATED)
CUSTOMER_PROOF: Final = CustomerProof(photo=True)
DRIVER_PROFILE: Final = DriverProfile(
    driver_id=DRIVER.id, name=DRIVER.name, time_zone="Europe/Berlin"
)
DEVICE_SIGN_IN: Final = DeviceSignIn(
    device_id=DeviceId(11),
    driver_id=DRIVER.id,
    name="work phone",
    token_prefix="lmd_Qk9ZcW",  # noqa: S106 - an example
    url="https://depot.example/driver#token=lmd_Qk9ZcW5nLXRva2VuLXNob3duLW9uY2UtaW4tdGhpcw",
    svg='<svg xmlns="http://www.w3.org/2000/svg" width="328" height="328" class="segno">'
    "<title>Driver sign-in</title><path …/></svg>",
)

SHIFT_IN: Final = ShiftIn(
    driver_id=DRIVER.id,
    vehicle_id=VEHICLE.id,
    day=DAY,
    start_place=Place(depot_id=DEPOT.id),
    working_window=TimeWindow(start=at(7), end=at(16)),
    breaks=[Break(earliest_start=at(11), latest_start=at(13), duration_s=1800)],
    max_duration_s=32_400,
)
SHIFT: Final = Shift(
    **{f: getattr(SHIFT_IN, f) for f in ShiftIn.__struct_fields__},
    id=ShiftId(5),
    status="scheduled",
    created_at=CREATED,
    updated_at=CREATED,
)
SHIFT_PATCH: Final = ShiftPatch(working_window=TimeWindow(start=at(8), end=at(17)))
CANCELLED_SHIFT: Final = replace(SHIFT, status="cancelled", updated_at=at(7, 10))

DIMENSIONS: Final = Dimensions(dimensions=["weight_kg", "volume_l", "parcels"])

ORDER_IN: Final = OrderIn(
    external_ref="A-1001",
    customer_name="Ada Lovelace",
    phone="+49 30 9876543",
    email="ada@example.org",
    address="Torstraße 1, 10119 Berlin",
    lat=52.5292,
    lon=13.4013,
    day=DAY,
    time_windows=[TimeWindow(start=at(9), end=at(12))],
    service_s=180,
    size={"weight_kg": 4, "parcels": 1},
    priority=1,
    parcels=[Parcel(barcode="JJD000390007123456")],
    notes="Ring twice; courtyard entrance.",
)
ORDER: Final = Order(
    **{f: getattr(ORDER_IN, f) for f in OrderIn.__struct_fields__},
    id=OrderId(42),
    status="pending",
    created_at=CREATED,
    updated_at=CREATED,
)
ORDER_PATCH: Final = OrderPatch(time_windows=[TimeWindow(start=at(13), end=at(16))])
CANCEL_IN: Final = CancelIn(reason="customer moved the delivery to next week")
CANCELLED_ORDER: Final = replace(
    ORDER,
    status="cancelled",
    cancel_reason=CANCEL_IN.reason,
    cancelled_at=at(7, 10),
    updated_at=at(7, 10),
)
IMPORT_CSV: Final = (
    "ref,address,lat,lon,day,window_start,window_end,weight_kg\n"
    "A-1001,Torstraße 1,52.5292,13.4013,2026-11-24,09:00,12:00,4\n"
    "A-1002,Alexanderplatz 3,52.5219,13.4132,2026-11-24,13:00,16:00,2\n"
)
IMPORT_RESULT: Final = ImportResult(
    rows=3,
    created=[ImportedRow(line=2, external_ref="A-1002", order_id=OrderId(43))],
    duplicates=[ImportedRow(line=1, external_ref="A-1001", order_id=OrderId(42))],
    rejected=[
        ImportProblem(line=4, field="lat", reason="expected a number <= 90.0, got 152.5"),
    ],
)

PLAN_REQUEST: Final = PlanRequest(day=DAY, time_limit_s=30.0)
PLAN_QUEUED: Final = PlanView(
    id=PlanId(9), day=DAY, status="queued", progress=PlanProgress(), created_at=at(6, 45)
)
PLAN_CANCELLED: Final = PlanView(
    id=PlanId(9),
    day=DAY,
    status="cancelled",
    progress=PlanProgress(),
    created_at=at(6, 45),
    finished_at=at(6, 46),
    cancel_requested_at=at(6, 46),
)
PLAN_CANCELLING: Final = PlanView(
    id=PlanId(9),
    day=DAY,
    status="running",
    progress=PlanProgress(objective=5388.5, solutions_found=12, elapsed_s=41.5),
    created_at=at(6, 45),
    started_at=at(6, 45, 1),
    cancel_requested_at=at(6, 45, 43),
)
PLAN_DONE: Final = PlanView(
    id=PlanId(9),
    day=DAY,
    status="done",
    progress=PlanProgress(objective=5210.0, solutions_found=37, elapsed_s=30.0),
    created_at=at(6, 45),
    started_at=at(6, 45, 1),
    finished_at=at(6, 45, 31),
    outcome=PlanOutcome(
        dimensions=["weight_kg", "volume_l", "parcels"],
        routes=[
            PlannedRoute(
                shift_id=SHIFT.id,
                driver_id=DRIVER.id,
                vehicle_id=VEHICLE.id,
                start=at(8, 40),
                end=at(10, 5),
                distance_m=6400,
                duration_s=5100,
                load=[4, 0, 1],
                cost=52.3,
                visits=[
                    PlannedVisit(
                        order_id=ORDER.id,
                        order_ref="A-1001",
                        arrival=at(9, 5),
                        service_start=at(9, 5),
                        departure=at(9, 8),
                        load_after=[0, 0, 0],
                        distance_from_previous_m=3200,
                    )
                ],
            )
        ],
        unassigned=[],
        objective=5210.0,
        wall_time_s=30.0,
        solutions_found=37,
        search_status="success",
        search="PyVRP 0.14.1 iterated local search",
        engine="pyvrp",
        engine_reason=(
            "PyVRP: capacities, single time windows, shifts, maximum durations, skills and "
            "priorities are all in its model, and its search is the stronger one"
        ),
        processes=2,
    ),
)
DISPATCH_REQUEST: Final = DispatchRequest(shift_ids=[SHIFT.id])
DISPATCH_RESULT: Final = DispatchResult(route_ids=[RouteId(12)], skipped_order_ids=[])

STOP: Final = RouteStop(
    id=StopId(31),
    seq=1,
    status="pending",
    order_id=ORDER.id,
    order_ref="A-1001",
    customer_name="Ada Lovelace",
    phone="+49 30 9876543",
    address="Torstraße 1, 10119 Berlin",
    lat=52.5292,
    lon=13.4013,
    windows=[Window(start=at(9), end=at(12))],
    service_s=180,
    barcodes=["JJD000390007123456"],
    notes="Ring twice; courtyard entrance.",
    planned_arrival=at(9, 5),
    planned_departure=at(9, 8),
)
ROUTE: Final = RouteView(
    id=RouteId(12),
    plan_id=PLAN_DONE.id,
    driver_id=DRIVER.id,
    vehicle_id=VEHICLE.id,
    shift_id=SHIFT.id,
    day=DAY.isoformat(),
    status="dispatched",
    version=1,
    planned_start=at(8, 40),
    planned_end=at(10, 5),
    distance_m=6400,
    stops=[STOP],
)
FAIL_STOP: Final = FailStop(reason="nobody home; card left")
INSERT_ORDER: Final = InsertOrder(order_id=OrderId(43))
MOVE_STOP: Final = MoveStop(route_id=RouteId(13))

TRACKING_LINK: Final = TrackingLink(
    order_id=ORDER.id,
    token="dHJhY2stdGhpcy1vcmRlcg",  # noqa: S106 - an example
    url="https://lastmile.example/t/dHJhY2stdGhpcy1vcmRlcg",
    api="/v1/track/dHJhY2stdGhpcy1vcmRlcg",
)
TRACK_VIEW: Final = TrackView(
    order_ref="A-1001",
    status="en_route",
    time_zone="Europe/Berlin",
    address="Torstraße 1, 10119 Berlin",
    lat=52.5292,
    lon=13.4013,
    requested=[Window(start=at(9), end=at(12))],
    planned_arrival=at(9, 5),
    estimate=ArrivalEstimate(
        likely=at(9, 21), earliest=at(9, 15), latest=at(9, 30), as_of=at(9, 14, 6)
    ),
    stops_before=0,
    driver=DriverSpot(lat=52.5208, lon=13.4094, heading_deg=90.0, time=at(9, 14, 5)),
)

NOTIFICATION: Final = NotificationView(
    id=501,
    order_id=ORDER.id,
    kind="en_route",
    recipient_kind="customer",
    channel="email",
    recipient="dana@example.com",
    language="en",
    state="sent",
    attempts=[
        AttemptView(
            attempt=1,
            started_at=at(9, 2, 1),
            finished_at=at(9, 2, 1),
            outcome="sent",
            status_code=250,
            latency_ms=84,
            provider_id="<1764-0-customer-email@lastmile>",
        )
    ],
    next_attempt_at=None,
    provider_id="<1764-0-customer-email@lastmile>",
    created_at=at(9, 2),
    updated_at=at(9, 2, 1),
)
ORDER_NOTIFICATIONS: Final = OrderNotifications(order_id=ORDER.id, notifications=[NOTIFICATION])
NOTIFICATION_PAGE: Final = NotificationPage(
    recipient="dana@example.com", notifications=[NOTIFICATION], next_after=None
)
DEMO_MAILBOX: Final = DemoMailbox(
    time_zone="Europe/Berlin",
    mails=[
        DemoMail(
            id="1795510921.M120442P4242Q7.demo",
            received_at=at(9, 2, 1),
            sent_at=at(9, 2, 1),
            sender="Demo fleet <deliveries@example.com>",
            to="dana@example.com",
            subject="Your delivery is on its way",
            text="Your delivery is on its way. Expected between 09:15 and 09:45.",
            html="<html><body><p>Your delivery is on its way.</p></body></html>",
        )
    ],
)

# --- webhooks ---------------------------------------------------------------------------------

NOTIFICATION_RULES: Final = RulesDoc(
    dispatcher_emails=["dispatch@acme.example"], language="de", quiet_hours="21:00-07:30"
)
NOTIFICATION_TEMPLATE_IN: Final = TemplateIn(
    text="{{ org.name }}: {{ order.ref }} is on its way{% if window %}, between"
    " {{ window.earliest|time }} and {{ window.latest|time }}{% endif %}."
    "{% if tracking_url %} Follow it: {{ tracking_url }}{% endif %}"
)
NOTIFICATION_TEMPLATE: Final = Template(
    kind="en_route", channel="sms", language="en", text=NOTIFICATION_TEMPLATE_IN.text, custom=True
)
NOTIFICATION_TEMPLATE_DEFAULT: Final = Template(
    kind="en_route",
    channel="sms",
    language="en",
    text="{{ org.name }}: Your delivery {{ order.ref }} is on its way{% if window %}, expected"
    " {{ window.earliest|time }}–{{ window.latest|time }}{% endif %}.{% if tracking_url %}"
    " Track it: {{ tracking_url }}{% endif %}",
)
NOTIFICATION_TEMPLATES: Final = TemplateList(
    templates=[NOTIFICATION_TEMPLATE, NOTIFICATION_TEMPLATE_DEFAULT]
)
NOTIFICATION_PREVIEW_IN: Final = PreviewIn(
    order_id=ORDER.id, kind="en_route", channel="email", language="de"
)
NOTIFICATION_PREVIEW: Final = Rendered(
    subject="Ihre Lieferung von Acme ist unterwegs",
    text="Ihre Lieferung A-1001 ist unterwegs, erwartet 14:05–14:35 Uhr."
    " Verfolgen: https://track.acme.example/t/preview-link-token\n\nAcme",
    html='<!doctype html><html><body style="font-family:sans-serif"><p>Ihre Lieferung A-1001'
    " ist unterwegs, erwartet 14:05–14:35 Uhr.</p><p><a"
    ' href="https://track.acme.example/t/preview-link-token">Lieferung verfolgen</a></p>'
    "<p>Acme</p></body></html>",
)

WEBHOOK_IN: Final = WebhookIn(
    url="https://shop.example.com/hooks/lastmile",
    event_types=["stop_delivered", "stop_failed", "en_route"],
    description="Shop order status",
)
WEBHOOK: Final = Webhook(
    id=4,
    org_id=OrgId(1),
    url=WEBHOOK_IN.url,
    description=WEBHOOK_IN.description,
    event_types=WEBHOOK_IN.event_types,
    enabled=True,
    consecutive_failures=0,
    secret_rotated_at=at(7),
    created_at=at(7),
    updated_at=at(7),
)
WEBHOOK_SECRET_TEXT: Final = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # noqa: S105 - an example
WEBHOOK_CREATED: Final = WebhookCreated(
    **{f: getattr(WEBHOOK, f) for f in WEBHOOK.__struct_fields__}, secret=WEBHOOK_SECRET_TEXT
)
WEBHOOK_PATCH: Final = WebhookPatch(event_types=["*"])
WEBHOOK_ROTATE: Final = RotateIn(keep_old_s=3600)
WEBHOOK_ROTATED: Final = WebhookSecret(
    id=WEBHOOK.id,
    secret=WEBHOOK_SECRET_TEXT,
    secret_rotated_at=at(12),
    previous_secret_until=at(13),
)
WEBHOOK_DELIVERY: Final = Delivery(
    id=311,
    endpoint_id=WEBHOOK.id,
    event_id="1795519920000-0",
    event_type="stop_delivered",
    event_at=at(9, 12),
    webhook_id="msg_1795519920000-0_4",
    state="delivered",
    created_at=at(9, 12),
    updated_at=at(9, 12, 41),
    attempts=[
        DeliveryAttempt(
            attempt=1,
            started_at=at(9, 12),
            finished_at=at(9, 12, 10),
            outcome="retry",
            status_code=503,
            latency_ms=120,
            address="203.0.113.7",
            error="Service Unavailable",
        ),
        DeliveryAttempt(
            attempt=2,
            started_at=at(9, 12, 15),
            finished_at=at(9, 12, 15),
            outcome="delivered",
            status_code=204,
            latency_ms=38,
            address="203.0.113.7",
        ),
    ],
)
WEBHOOK_DELIVERIES: Final = DeliveryPage(deliveries=[WEBHOOK_DELIVERY], next_before=311)
WEBHOOK_REPLAY: Final = ReplayRange(from_=at(9), to=at(12))
WEBHOOK_REPLAYED: Final = Replayed(replayed=17)

INSTRUCTIONS_IN: Final = InstructionsIn(
    gate_code="4711", leave_at="Behind the blue gate, by the bins", safe_place_allowed=True
)
INSTRUCTIONS: Final = Instructions(
    gate_code="4711",
    leave_at="Behind the blue gate, by the bins",
    safe_place_allowed=True,
    source="page",
    updated_at=at(8, 12),
)
RESCHEDULE_IN: Final = RescheduleIn(day=date(2026, 11, 26))
RESCHEDULE: Final = Reschedule(
    order_id=ORDER.id,
    from_day=DAY,
    to_day=date(2026, 11, 26),
    route_id=ROUTE.id,
    source="page",
    created_at=at(8, 15),
)
RATING_IN: Final = RatingIn(stars=5, comment="Friendly driver, parcel right where I asked.")
RATING: Final = Rating(
    order_id=ORDER.id,
    driver_id=DRIVER.id,
    route_id=ROUTE.id,
    stars=5,
    comment="Friendly driver, parcel right where I asked.",
    created_at=at(18, 40),
)
CUSTOMER_ANSWERS: Final = CustomerAnswers(
    order_id=ORDER.id, instructions=INSTRUCTIONS, reschedules=[], rating=RATING, can_rate=False
)

# --- proof of delivery -----------------------------------------------------------------------

_SHA: Final = "9f2b5c0d1e3a4b6c8d7e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e"
_THUMB: Final = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9"
PROOF_REQUIREMENTS: Final = ProofRequirements(photo=True, signature=True, all_parcels=True)
PROOF_OVERRIDE_IN: Final = OverrideIn(
    reason="customer confirmed by phone; signature pad broken", waive=["signature"]
)
PROOF_OVERRIDE: Final = Override(
    stop_id=StopId(501), waived=["signature"], reason=PROOF_OVERRIDE_IN.reason, at=at(9, 40)
)
PROOF: Final = Proof(
    id=17,
    stop_id=StopId(501),
    order_id=OrderId(301),
    route_id=RouteId(41),
    driver_id=DriverId(7),
    day=DAY,
    outcome="delivered",
    attempt=1,
    captured_at=at(9, 42, 12),
    device_time=at(9, 42, 11),
    lat=52.5251,
    lon=13.3694,
    accuracy_m=8.0,
    recipient_name="Dana Schulz",
    notes="Handed over at the door.",
    scans=["PKG-301-1"],
    photos=[
        ProofImage(
            sha256=_SHA,
            url=f"/v1/blobs/{_SHA}?type=image%2Fjpeg&expires=1795510921&sig=3f1c",
            thumbnail_url=f"/v1/blobs/{_THUMB}?type=image%2Fjpeg&expires=1795510921&sig=8a2e",
            width=2048,
            height=1536,
            taken_at=at(9, 42, 5),
            exif_lat=52.5251,
            exif_lon=13.3694,
        )
    ],
    signature_url=f"/v1/blobs/{_THUMB}?type=image%2Fpng&expires=1795510921&sig=77d0",
)
PROOF_LIST: Final = ProofList(proofs=[PROOF], truncated=False)
FAIL_STOP_CODED: Final = FailStopIn(code="not_home", reason="rang twice; card left")
REATTEMPT_IN: Final = ReattemptIn(day=date(2026, 11, 25))
REATTEMPT: Final = Reattempt(order_id=OrderId(301), day=date(2026, 11, 25), attempt=2)
AUDIT_CHECK: Final = AuditCheck(org_id=OrgId(1), ok=True, entries=1204)

# --- analytics -------------------------------------------------------------------------------

DELIVERY_REPORT: Final = DeliveryReport(
    from_day=date(2026, 11, 18),
    to_day=DAY,
    by="driver",
    rows=[
        DeliveryRow(
            key="7",
            label="Ada",
            stops=212,
            delivered=205,
            failed=7,
            first_attempts=209,
            first_attempt_success_rate=0.9713,
            with_window=198,
            on_time=181,
            early=4,
            late=13,
            on_time_rate=0.9141,
            mean_lateness_s=644.2,
            mean_wait_s=21.5,
            mean_service_s=174.0,
            arrival_mae_s=402.7,
            ratings=31,
            rating_mean=4.71,
            eta=[EtaAccuracy(horizon_min=30, arrivals=190, mae_s=233.4, inside_rate=0.8158)],
            notifications=[
                ChannelMessages(channel="sms", sent=598, failed=4),
                ChannelMessages(channel="email", sent=61, failed=0),
                ChannelMessages(channel="webhook", sent=0, failed=0),
            ],
        )
    ],
)
ROUTE_REPORT: Final = RouteReport(
    from_day=date(2026, 11, 18),
    to_day=DAY,
    by="day",
    rows=[
        RouteRow(
            key="2026-11-24",
            label="2026-11-24",
            routes=9,
            stops=238,
            delivered=231,
            planned_km=412.6,
            driven_km=447.9,
            route_efficiency=0.9212,
            stops_per_hour=6.1,
            planned_h=37.5,
            actual_h=39.0,
            idle_h=1.4,
            fuel_l=38.1,
            electricity_kwh=42.0,
            co2_kg=118.2,
            gps_jumps=3,
        )
    ],
)
LEARNED_MODEL: Final = LearnedModel(
    id=12,
    learned_at=datetime(2026, 11, 24, 2, 0, tzinfo=UTC),
    day_from=date(2026, 10, 28),
    day_to=date(2026, 11, 24),
    routes=412,
    city_speed_kmh=24.3,
    observed_circuity=1.27,
    route_pace_sd=0.14,
    speed_samples=18_220,
    cells=[
        LearnedCell(cell="881f1d4887fffff", lat=52.5186, lon=13.4081, speed_kmh=17.9, samples=311)
    ],
    hours=[LearnedHour(hour_of_week=8, speed_kmh=19.4)],
    cell_hours=2_204,
    service_overall_s=142.0,
    service_by_size={"1": 118.0, "2": 151.0, "3-5": 209.0, "6+": 340.0},
    service_addresses=1_840,
    service_customers=2_106,
    service_samples=9_874,
)
PATTERN_REPORT: Final = PatternReport(
    from_day=date(2026, 11, 18),
    to_day=DAY,
    patterns=[
        Pattern(
            kind="late_zone",
            key="881f1d4887fffff",
            label="881f1d4887fffff",
            zone="881f1d4887fffff",
            summary="late on 5 of 6 days: 14 of 52 stops with a window, 18 min late on average",
            days=5,
            stops=52,
            late=14,
            mean_lateness_s=1084.0,
        ),
        Pattern(
            kind="failing_address",
            key="12 linden st",
            label="12 Linden St",
            zone="881f1d4887fffff",
            summary="3 of 3 first attempts failed on 3 days: not_home 2, access 1",
            days=3,
            failed=3,
            first_attempts=3,
            reasons={"not_home": 2, "access": 1},
        ),
    ],
)

_WEEK: Final = WeekFigures(
    week_start=date(2026, 11, 16),
    week_end=date(2026, 11, 22),
    stops=1_204,
    delivered=1_162,
    failed=42,
    on_time_rate=0.9214,
    first_attempt_success_rate=0.9611,
    failures_by_reason=[
        ReasonCount(code="not_home", failed=29),
        ReasonCount(code="access", failed=9),
    ],
    planned_km=2_310.4,
    driven_km=2_498.2,
    route_efficiency=0.9248,
    stops_per_hour=6.2,
    eta_30min_arrivals=1_101,
    eta_30min_mae_s=241.3,
    eta_30min_inside_rate=0.8127,
    notifications=[
        ChannelMessages(channel="sms", sent=3_390, failed=12),
        ChannelMessages(channel="email", sent=402, failed=1),
        ChannelMessages(channel="webhook", sent=0, failed=0),
    ],
)
WEEKLY_SUMMARY_PREVIEW: Final = WeeklySummaryPreview(
    summary=WeeklySummary(
        org_name="Acme Deliveries",
        time_zone="Europe/Berlin",
        locale="en-GB",
        composed_at=datetime(2026, 11, 23, 6, 0, tzinfo=UTC),
        week=_WEEK,
        previous=replace(
            _WEEK,
            week_start=date(2026, 11, 9),
            week_end=date(2026, 11, 15),
            on_time_rate=0.9033,
            delivered=1_120,
        ),
        patterns=PATTERN_REPORT.patterns,
        more_patterns=0,
    ),
    recipients=["ops@acme.example"],
    subject="Acme Deliveries: the week of 16 – 22 Nov 2026",
    text="Acme Deliveries: the week of 16 – 22 Nov 2026\n(the week before: 9 – 15 Nov 2026)\n\n"
    "Deliveries: 1,162 (week before 1,120; +42)\nOn time: 92.1% (week before 90.3%; +1.8 pts)\n…",
    html="<!doctype html><html><body>…</body></html>",
)
WEEKLY_SUMMARY_SENT: Final = WeeklySummarySent(
    week_start=date(2026, 11, 16), recipients=["ops@acme.example"], queued=1
)
