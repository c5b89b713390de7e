"""The table of every operation and socket of the API, for its reference (:mod:`app.openapi`).

One entry per route of :func:`app.main.create_app`: what it takes, what it answers, who may
call it, with an example of each body. ``tests/app/test_openapi.py`` fails when a route has no
entry here, and ``tests/app/test_fuzz.py`` checks the live server's answers against the entries.

The answers that handlers build as plain dicts (``{"depots": [...]}``) and the bodies of the
foreign protocols (OsmAnd, OwnTracks) are described by the small Structs below; they document,
they decode nothing, and the fuzz test is what keeps them true.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import Meta

from app.api import examples as ex
from app.auth import ADMINS, DISPATCHERS, FLEET_WRITERS, ORDER_WRITERS, READERS
from app.errors import ErrorBody
from app.idempotency import HEADER as IDEMPOTENCY_HEADER
from app.openapi import JSON, Answer, Body, Example, Operation, Param, Socket
from schemas.analytics import (
    DeliveryGroup,
    DeliveryReport,
    LearnedModel,
    PatternReport,
    RouteGroup,
    RouteReport,
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
    Role,
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
    ImportResult,
    OptOutIn,
    Order,
    OrderIn,
    OrderPatch,
    OrderStatus,
    Shift,
    ShiftIn,
    ShiftPatch,
    Vehicle,
    VehicleIn,
    VehiclePatch,
)
from schemas.driver_profile import DriverProfile
from schemas.driver_qr import DeviceSignIn
from schemas.driver_ws import ClientMessage, ServerMessage
from schemas.live import LiveMessage
from schemas.notification_views import DemoMailbox, NotificationPage, OrderNotifications
from schemas.notifications import (
    CustomerChannel,
    Language,
    PreviewIn,
    Rendered,
    RulesDoc,
    Template,
    TemplateIn,
    TemplateKind,
    TemplateList,
)
from schemas.organisation import Organisation, OrganisationPatch
from schemas.ping import IngestResult, LivePosition, Ping, PingBatchIn
from schemas.plan import DispatchRequest, DispatchResult, PlanList, PlanRequest, PlanView
from schemas.proofs import (
    AuditCheck,
    DriverActionIn,
    FailStopIn,
    Outcome,
    Override,
    OverrideIn,
    Proof,
    ProofList,
    ProofRequirements,
    Reattempt,
    ReattemptIn,
)
from schemas.route import ActionPreview, InsertOrder, MoveStop, RouteView
from schemas.track import TrackingLink, TrackMessage, TrackView
from schemas.users import PasswordIn, Session, SignIn, User, UserIn, UserPatch, Users
from schemas.webhooks import (
    Delivery,
    DeliveryPage,
    DeliveryState,
    Replayed,
    ReplayRange,
    RotateIn,
    Webhook,
    WebhookCreated,
    WebhookIn,
    WebhookList,
    WebhookPatch,
    WebhookSecret,
)

# Who may call what, as app/auth.py enforces it.
MSGPACK: Final = "application/msgpack"
HTML: Final = "text/html"
GEOJSON: Final = "application/geo+json"

# --- answers the handlers build as dicts -----------------------------------------------------


class Health(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /healthz``: the process serves requests."""

    status: Literal["ok"]


class Readiness(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /readyz``: each backing service and whether it answered."""

    status: Literal["ready", "not ready"]
    checks: dict[str, str]
    """``postgres`` and ``redis``: ``ok`` or ``failed: <error>``."""


class Index(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /`` and ``GET /v1/``: where to go from here."""

    name: str
    version: str
    links: dict[str, str]


class LiveSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /v1/drivers/live``: the latest position of every driver that has sent one."""

    as_of: datetime
    drivers: list[LivePosition]


class Track(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /v1/drivers/{driver_id}/positions``: a driver's pings in a window, oldest first."""

    driver_id: int
    start: datetime
    end: datetime
    truncated: bool
    """True when ``limit`` cut the track: ask again from the last ping's time."""
    positions: list[Ping]


class DepotList(msgspec.Struct, frozen=True, kw_only=True):
    depots: list[Depot]


class CarrierList(msgspec.Struct, frozen=True, kw_only=True):
    carriers: list[Carrier]


class VehicleList(msgspec.Struct, frozen=True, kw_only=True):
    vehicles: list[Vehicle]


class DriverList(msgspec.Struct, frozen=True, kw_only=True):
    drivers: list[Driver]


class ShiftList(msgspec.Struct, frozen=True, kw_only=True):
    shifts: list[Shift]


class OrderPage(msgspec.Struct, frozen=True, kw_only=True):
    """A page of orders by id; ``next_after`` is the ``after`` of the next page (null: last)."""

    orders: list[Order]
    next_after: int | None


class DayRoutes(msgspec.Struct, frozen=True, kw_only=True):
    """Every route of a day, with its stops."""

    day: date
    routes: list[RouteView]


class Inserted(msgspec.Struct, frozen=True, kw_only=True):
    """The route that took the order, and the driving it added."""

    route: RouteView
    added_travel_s: int


# --- what the foreign protocols send ---------------------------------------------------------


class OsmAndFix(msgspec.Struct, frozen=True, kw_only=True):
    """An OsmAnd fix as query or form parameters (Traccar Client). ``speed`` is in **knots**.

    ``location=lat,lon`` may replace ``lat`` and ``lon``; ``timestamp`` is epoch seconds,
    epoch milliseconds, or ISO 8601, and without it the fix is stamped when it arrives (marked
    server-timed); ``heading`` may replace ``bearing``; a negative ``speed``, ``bearing``,
    ``accuracy`` or ``batt`` means unknown; other parameters (``hdop``, ``valid``, ``charge``)
    are accepted and ignored.
    """

    lat: float | None = None
    lon: float | None = None
    location: str | None = None
    timestamp: str | None = None
    speed: float | None = None
    bearing: float | None = None
    altitude: float | None = None
    accuracy: float | None = None
    batt: float | None = None


class OwnTracksLocation(msgspec.Struct, frozen=True, kw_only=True):
    """OwnTracks ``location`` message: ``tst`` is epoch seconds (absent: stamped on arrival),
    ``vel`` km/h, ``cog`` degrees, ``acc`` and ``alt`` metres, ``batt`` percent; a negative
    ``acc``, ``vel``, ``cog`` or ``batt`` means unknown. Other fields of the app are ignored."""

    type: Literal["location"] = msgspec.field(name="_type")
    lat: Annotated[float, Meta(ge=-90.0, le=90.0)]
    lon: Annotated[float, Meta(ge=-180.0, le=180.0)]
    tst: float | None = None
    acc: float | None = None
    alt: float | None = None
    vel: float | None = None
    cog: Annotated[float, Meta(le=360.0)] | None = None
    batt: Annotated[float, Meta(le=100.0)] | None = None


class OwnTracksOther(msgspec.Struct, frozen=True, kw_only=True):
    """Any other OwnTracks message (``transition``, ``waypoint``, ``lwt``, …): acknowledged,
    nothing stored."""

    type: str = msgspec.field(name="_type")


FORM: Final = "application/x-www-form-urlencoded"


class TwilioStatusForm(msgspec.Struct, frozen=True, kw_only=True):
    """Twilio's status callback (the fields we read; Twilio sends more, all signed)."""

    message_sid: str = msgspec.field(name="MessageSid")
    message_status: Literal[
        "queued", "accepted", "sending", "sent", "delivered", "undelivered", "failed"
    ] = msgspec.field(name="MessageStatus")
    error_code: str | None = msgspec.field(default=None, name="ErrorCode")


class TwilioInboundForm(msgspec.Struct, frozen=True, kw_only=True):
    """Twilio's incoming-message webhook (the fields we read)."""

    message_sid: str = msgspec.field(name="MessageSid")
    from_number: str = msgspec.field(name="From")
    to_number: str = msgspec.field(name="To")
    body: str = msgspec.field(name="Body")


TWILIO_SIGNATURE: Final = Param(
    "X-Twilio-Signature",
    str,
    "Base64 HMAC-SHA1 (the Twilio auth token) of the URL Twilio called"
    " (`LASTMILE_PUBLIC_URL` + path) and the sorted form fields; 403 when it does not match.",
    where="header",
    required=True,
)

# --- parameters ------------------------------------------------------------------------------

Id = Annotated[int, Meta(ge=1, le=2**63 - 1, description="a positive integer id")]
TrackingToken = Annotated[
    str, Meta(pattern=r"^[A-Za-z0-9_-]{16,64}$", description="the token of a tracking link")
]
Limit = Annotated[int, Meta(ge=1, le=1000)]
After = Annotated[int, Meta(ge=0, le=2**63 - 1)]
TrackLimit = Annotated[int, Meta(ge=1, le=100_000)]
DeliveryLimit = Annotated[int, Meta(ge=1, le=200)]
Instant = Annotated[datetime, Meta(tz=True)]

IDS: Final = {
    "depot_id": 1,
    "carrier_id": 2,
    "vehicle_id": 3,
    "driver_id": 7,
    "shift_id": 5,
    "order_id": 42,
    "plan_id": 9,
    "route_id": 12,
    "stop_id": 31,
    "webhook_id": 4,
    "delivery_id": 311,
    "proof_id": 17,
    "device_id": 11,
    "key_id": 4,
    "user_id": 3,
}
"""Every id parameter of a path, with the example's id."""
PATH_PARAMS: Final = (
    *(
        Param(name, Id, f"The {name.removesuffix('_id')}'s id.", where="path", example=example)
        for name, example in IDS.items()
    ),
    Param(
        "token",
        TrackingToken,
        "The tracking token: the customer's only credential, for one order.",
        where="path",
        example=ex.TRACKING_LINK.token,
    ),
    Param("kind", TemplateKind, "What a template is for.", where="path", example="en_route"),
    Param("channel", CustomerChannel, "`sms` or `email`.", where="path", example="sms"),
    Param("language", Language, "A language tag.", where="path", example="en"),
)


def query(name: str, kind: Any, description: str) -> Param:
    """A query parameter that may be left out or empty."""
    return Param(name, kind, description, empty_is_absent=True)


DAY: Final = Param(
    "day", date, "A calendar day, `YYYY-MM-DD`.", example=ex.DAY, empty_is_absent=True
)
WEEK: Final = Param(
    "week",
    date,
    "The Monday of a week that is over (within the last year), `YYYY-MM-DD`;"
    " default: the last complete week in the organisation's time zone.",
    example=date(2026, 11, 16),
    empty_is_absent=True,
)
ACTIVE: Final = Param(
    "active", bool, "Only active (`true`) or inactive (`false`) ones.", empty_is_absent=True
)

# --- proof of delivery ----------------------------------------------------------------------

MULTIPART: Final = "multipart/form-data"
IdempotencyKey = Annotated[str, Meta(min_length=1, max_length=255, pattern=r"^[!-~]+$")]
ProofText = Annotated[str, Meta(max_length=200)]
ProofLimit = Annotated[int, Meta(ge=1, le=1000)]
ReportFormat = Literal["json", "csv"]


class ProofUpload(msgspec.Struct, frozen=True, kw_only=True):
    """The parts of a proof capture (``multipart/form-data``); files are parts with a
    filename. See docs/proofs.md."""

    outcome: Outcome
    photo: list[str] = []
    """JPEG, PNG, WebP or HEIC files, up to 8."""
    label_photo: list[str] = []
    """Photos of parcel labels, up to 4: their barcodes count as scans."""
    signature: str | None = None
    """A PNG file."""
    signature_strokes: str | None = None
    """JSON ``{"width", "height", "strokes": [[[x, y], ...], ...]}``, instead of a PNG."""
    recipient_name: Annotated[str, Meta(max_length=200)] | None = None
    notes: Annotated[str, Meta(max_length=2000)] | None = None
    scan: list[Annotated[str, Meta(min_length=1, max_length=100)]] = []
    lat: float | None = None
    lon: float | None = None
    accuracy_m: float | None = None
    device_time: datetime | None = None
    age_verified: bool = False
    failure_code: str | None = None
    failure_text: Annotated[str, Meta(max_length=500)] | None = None


# --- the table's words -----------------------------------------------------------------------


def ok(description: str, kind: Any = None, example: Any = None, *, status: int = 200) -> Answer:
    """A JSON answer (an empty one when ``kind`` is None)."""
    return Answer(status, description, kind, example=None if example is None else Example(example))


def created(description: str, kind: Any, example: Any) -> Answer:
    """A ``201 Created`` JSON answer."""
    return ok(description, kind, example, status=201)


def page(description: str) -> Answer:
    """An HTML page."""
    return Answer(200, description, str, media=HTML)


def json_body(kind: Any, example: Any, *, required: bool = True, note: str = "") -> Body:
    """A JSON body of ``kind``; ``required=False`` when an empty body means ``{}``."""
    return Body({JSON: kind}, note, required, {JSON: Example(example)})


def api(
    method: str, path: str, summary: str, roles: tuple[Role, ...], *answers: Answer, **more: Any
) -> Operation:
    """An operation for API keys of ``roles``."""
    return Operation(method, path, summary, "", answers, credential="api_key", roles=roles, **more)


def device(method: str, path: str, summary: str, *answers: Answer, **more: Any) -> Operation:
    """An operation for a driver's device token."""
    return Operation(method, path, summary, "", answers, credential="device", **more)


def signed_in(method: str, path: str, summary: str, *answers: Answer, **more: Any) -> Operation:
    """An operation for a signed-in user's session (any role), not for API keys."""
    return Operation(method, path, summary, "", answers, credential="session", **more)


def public(method: str, path: str, summary: str, *answers: Answer, **more: Any) -> Operation:
    """An operation anyone may call."""
    return Operation(method, path, summary, "", answers, **more)


def section(tag: str, *operations: Operation) -> tuple[Operation, ...]:
    """``operations`` under the tag ``tag``."""
    return tuple(replace(op, tag=tag) for op in operations)


# The table keeps one operation to a few lines, like the route table in app/main.py; the
# formatter would spread each over a dozen.
# fmt: off


def fleet(
    noun: str,
    types: tuple[type, type, type, type],
    examples: tuple[Any, Any, Any],
    filters: tuple[Param, ...] = (ACTIVE,),
    filter_errors: tuple[int, ...] = (),
) -> tuple[Operation, ...]:
    """The four operations every fleet resource has (see :mod:`app.api.fleet`);
    ``filter_errors`` are the list's answers to filters naming what is not there."""
    create, patch, row, listing = types
    create_example, row_example, patch_example = examples
    many, one = f"/v1/{noun}s", f"/v1/{noun}s/{{{noun}_id}}"
    listed = listing(**{f"{noun}s": [row_example]})
    return (
        api("GET", many, f"List the {noun}s", READERS,
            ok(f"The {noun}s, by id.", listing, listed), params=filters, errors=filter_errors),
        api("POST", many, f"Create a {noun}", FLEET_WRITERS,
            created(f"The new {noun}.", row, row_example),
            body=json_body(create, create_example), errors=(409,), idempotent=True),
        api("GET", one, f"Read a {noun}", READERS, ok(f"The {noun}.", row, row_example)),
        api("PATCH", one, f"Change some fields of a {noun}", FLEET_WRITERS,
            ok(f"The {noun} as stored now.", row, row_example),
            body=json_body(patch, patch_example), errors=(409,),
            description="Fields left out are unchanged; `null` clears one that may be empty."
            " The merged result is checked like a create."),
    )


PREVIEW: Final = ok(
    "What the action would change, not done: each route it rewrites, with every pending stop's"
    " planned arrival now and after (a route's `version` is the one it was computed on).",
    ActionPreview, ex.ACTION_PREVIEW)
ACTION_BODY: Final = json_body(DriverActionIn, ex.DRIVER_ACTION, required=False,
                              note="May be empty: the action happened now.")
ACTION_AT: Final = ("`at` is when the driver acted, for a command a phone sends late (it was"
                    " offline): kept as the time of the arrival, delivery, failure or start and"
                    " of its event; at most 5 minutes ahead of the server's clock and a day old"
                    " (400 otherwise).")
ROUTE_NOW: Final = ok("The route as it is now (also pushed to the driver's app).", RouteView,
                      ex.ROUTE)
STOP_STATE: Final = (409,)
INDEX: Final = ok("Links to the pages, the reference and the health checks.", Index)
OSMAND_FIELDS: Final = (
    ("lat", float, 52.52), ("lon", float, 13.405), ("location", str, None),
    ("timestamp", str, "1795519200"), ("speed", float, 16.1), ("bearing", float, 90.0),
    ("altitude", float, 34.0), ("accuracy", float, 5.0), ("batt", float, 81.0),
)
OWNTRACKS: Final = OwnTracksLocation(type="location", lat=52.52, lon=13.405, tst=1795519200.0,
                                     vel=30.0)
TRACK: Final = Track(driver_id=7, start=ex.at(9), end=ex.at(10), truncated=False,
                     positions=[ex.PING])
READY: Final = Readiness(status="ready", checks={"postgres": "ok", "redis": "ok"})

OPERATIONS: Final[tuple[Operation, ...]] = (
    *section(
        "reference",
        public("GET", "/", "Where to go from here", INDEX),
        public("GET", "/v1/", "Where to go from here (the API's root)", INDEX),
        public("GET", "/openapi.json", "This reference, as OpenAPI 3.1",
               ok("The document.", dict[str, Any])),
        public("GET", "/docs", "This reference, as a page (Swagger UI)", page("The page.")),
    ),
    *section(
        "operations",
        public("GET", "/healthz", "Liveness",
               ok("The process is up.", Health, Health(status="ok"))),
        public("GET", "/readyz", "Readiness: PostgreSQL and Redis answer",
               ok("Both answer.", Readiness, READY),
               ok("One does not; `checks` names it.", Readiness, status=503)),
        public("GET", "/metrics", "Prometheus metrics",
               Answer(200, "The Prometheus text format.", str, media="text/plain")),
    ),
    *section(
        "pages",
        public("GET", "/dispatch", "The dispatcher's live map",
               page("The page; a user signs in on it, or it reads an API key from the fragment"
                    " `#key=lmk_…`.")),
        public("GET", "/plan", "Plan a day: orders, shifts, plans, review, dispatch",
               page("The page; a user signs in on it, or it reads an API key from the fragment"
                    " `#key=lmk_…`.")),
        public("GET", "/analytics", "Analytics: trends, drivers, zones, patterns, exports",
               page("The page; a user signs in on it, or it reads an API key from the fragment"
                    " `#key=lmk_…`.")),
        public("GET", "/admin", "Settings: the organisation, users, API keys, devices",
               page("The page; a user signs in on it, or it reads an API key from the fragment"
                    " `#key=lmk_…`.")),
        public("GET", "/demo/mail", "The demo's mail (under `serve --demo`)",
               page("The page; it reads the API key the dispatcher map keeps, or asks.")),
        public("GET", "/t/{token}", "A customer's tracking page",
               page("The page, for any token: the page checks it with the API."),
               params=(Param("token", str, "The tracking token (checked by the page, not here).",
                             where="path"),)),
        public("GET", "/driver", "The driver app (an installable web app)",
               page("The page; it reads its device token from the fragment `#token=lmd_…`.")),
        public("GET", "/driver/qr", "Show a driver's sign-in QR code (for dispatchers)",
               page("The page; it reads its API key from the fragment `#key=lmk_…`.")),
        public("GET", "/driver/sw.js", "The driver app's service worker",
               Answer(200, "The script, allowed to control `/driver`.", str,
                      media="text/javascript")),
        public("GET", "/favicon.ico", "The site's icon",
               Answer(200, "The app's icon, a PNG.", bytes, media="image/png")),
    ),
    *section(
        "ingest",
        device("POST", "/v1/pings", "Send a batch of the calling driver's pings",
               Answer(200, "The pings now on the stream, and each rejected one with its index;"
                      " MessagePack when the request was.", IngestResult,
                      example=Example(ex.INGEST_RESULT), alternatives={MSGPACK: IngestResult}),
               Answer(422, "Every ping was rejected.", IngestResult,
                      example=Example(ex.ALL_REJECTED), alternatives={MSGPACK: IngestResult}),
               body=Body({JSON: PingBatchIn, MSGPACK: PingBatchIn},
                         "Up to 1,000 pings; a bad one is reported, the others are kept.",
                         examples={JSON: Example(ex.PING_BATCH)})),
        Operation("GET", "/osmand", "One fix in the OsmAnd protocol (Traccar Client)", "",
                  (ok("The fix is on the stream."),), credential="osmand",
                  params=tuple(Param(name, kind, "An OsmAnd field (see above).", example=value)
                               for name, kind, value in OSMAND_FIELDS),
                  description=OsmAndFix.__doc__ or ""),
        Operation("POST", "/osmand", "One fix in the OsmAnd protocol, as a form or JSON", "",
                  (ok("The fix is on the stream."),), credential="osmand",
                  body=Body({"application/x-www-form-urlencoded": OsmAndFix,
                             JSON: dict[str, Any]},
                            "A form with the fields of `GET /osmand`, or the JSON location object"
                            " of newer Traccar Client versions (`device_id`,"
                            " `location.timestamp`, `location.coords.latitude`, …;"
                            " `coords.speed` in m/s).")),
        Operation("POST", "/owntracks", "One OwnTracks message (HTTP mode)", "",
                  (ok("Acknowledged: `[]`, as the app expects.", tuple[()], ()),),
                  credential="basic",
                  body=Body({JSON: (OwnTracksLocation, OwnTracksOther)},
                            "Only `_type: location` carries a fix; an empty body is"
                            " acknowledged too, as the app's documentation asks.",
                            required=False, examples={JSON: Example(OWNTRACKS)})),
    ),
    *section(
        "positions",
        api("GET", "/v1/drivers/live", "Every driver's latest position", FLEET_WRITERS,
            ok("Newest by device time.", LiveSnapshot,
               LiveSnapshot(as_of=ex.at(9, 15), drivers=[ex.LIVE]))),
        api("GET", "/v1/drivers/{driver_id}/positions", "A driver's track", FLEET_WRITERS,
            Answer(200, "JSON; GeoJSON with `?format=geojson` or `Accept: application/geo+json`.",
                   Track, example=Example(TRACK), alternatives={GEOJSON: dict[str, Any]}),
            params=(query("from", Instant, "Start, with a zone; default `to` minus 24 hours."),
                    query("to", Instant, "End, with a zone; default a minute from now."),
                    Param("limit", TrackLimit, "At most this many pings (default 10,000)."),
                    query("format", Literal["json", "geojson"], "The answer's format."))),
    ),
    *section(
        "fleet",
        *fleet("depot", (DepotIn, DepotPatch, Depot, DepotList),
               (ex.DEPOT_IN, ex.DEPOT, ex.DEPOT_PATCH)),
        *fleet("carrier", (CarrierIn, CarrierPatch, Carrier, CarrierList),
               (ex.CARRIER_IN, ex.CARRIER, ex.CARRIER_PATCH)),
        *fleet("vehicle", (VehicleIn, VehiclePatch, Vehicle, VehicleList),
               (ex.VEHICLE_IN, ex.VEHICLE, ex.VEHICLE_PATCH)),
        *fleet("driver", (DriverIn, DriverPatch, Driver, DriverList),
               (ex.DRIVER_IN, ex.DRIVER, ex.DRIVER_PATCH)),
        *fleet("shift", (ShiftIn, ShiftPatch, Shift, ShiftList),
               (ex.SHIFT_IN, ex.SHIFT, ex.SHIFT_PATCH),
               filters=(DAY, query("driver_id", After, "Only this driver's shifts."),
                        query("status", Literal["scheduled", "cancelled"],
                              "Only shifts in this status.")),
               filter_errors=(422,)),
        api("POST", "/v1/drivers/{driver_id}/devices", "Register a device: a new device token",
            FLEET_WRITERS,
            created("The token, shown in this answer only (a replay answers `token: null`).",
                    DeviceCreated, ex.DEVICE_CREATED),
            body=json_body(DeviceIn, ex.DEVICE_IN, required=False, note="May be empty."),
            idempotent=True),
        api("POST", "/v1/drivers/{driver_id}/devices/qr",
            "Register a device and answer its driver app sign-in QR code", FLEET_WRITERS,
            created("The sign-in URL (`…/driver#token=lmd_…`) and an SVG QR code of it, shown in"
                    " this answer only (a replay answers `null` for both).", DeviceSignIn,
                    ex.DEVICE_SIGN_IN),
            body=json_body(DeviceIn, ex.DEVICE_IN, required=False, note="May be empty."),
            idempotent=True,
            description="The URL's base is `LASTMILE_PUBLIC_URL`, else the address this request"
            " reached. The driver scans the code with the phone's camera and the app opens"
            " signed in."),
        api("GET", "/v1/drivers/{driver_id}/devices", "A driver's device tokens", FLEET_WRITERS,
            ok("Oldest first, revoked ones too; never the secrets.", Devices, ex.DEVICES)),
        api("POST", "/v1/devices/{device_id}/revoke", "Revoke a device token (idempotent)",
            FLEET_WRITERS, ok("The device, revoked.", Credential, ex.REVOKED_DEVICE),
            description="Every server refuses the token at once (the revocation reaches them"
            " through Redis)."),
        api("GET", "/v1/api-keys", "The organisation's API keys", ADMINS,
            ok("Oldest first, revoked ones too; never the secrets.", ApiKeys, ex.API_KEYS)),
        api("POST", "/v1/api-keys", "Create an API key", ADMINS,
            created("The key, shown in this answer only (a replay answers `token: null`).",
                    ApiKeyCreated, ex.API_KEY_CREATED),
            body=json_body(ApiKeyIn, ex.API_KEY_IN), idempotent=True),
        public("POST", "/v1/session", "Sign in",
               created("Signed in: the answer sets the HttpOnly session cookie.", Session,
                       ex.SESSION),
               body=json_body(SignIn, ex.SIGN_IN), errors=(400, 401, 429),
               description="A user of any organisation signs in with their email (any case) and"
               " password. Wrong ones answer 401 without saying which was wrong. Failed sign-ins"
               " are limited per address (`LASTMILE_AUTH_FAILURE_LIMIT`) and per account"
               " (`LASTMILE_SIGNIN_FAILURE_LIMIT`), each answering 429 with `Retry-After`. The"
               " session lasts `LASTMILE_SESSION_TTL_S`; send `csrf_token` back as"
               " `X-CSRF-Token` with every change."),
        signed_in("GET", "/v1/session", "The signed-in user",
                  ok("The session, with its CSRF token.", Session, ex.SESSION)),
        signed_in("DELETE", "/v1/session", "Sign out", ok("Signed out; the cookie is cleared.",
                  status=204),
                  description="The session ends on every server at once."),
        signed_in("PUT", "/v1/session/password", "Change your password",
                  ok("You, as stored.", User, ex.USER),
                  body=json_body(PasswordIn, ex.OWN_PASSWORD_IN),
                  description="`current_password` is required. Every other session of yours"
                  " ends."),
        api("GET", "/v1/users", "The organisation's users", ADMINS,
            ok("Oldest first, deactivated ones too; never the passwords.", Users, ex.USERS)),
        api("POST", "/v1/users", "Create a user", ADMINS,
            created("The new user.", User, ex.USER),
            body=json_body(UserIn, ex.USER_IN), errors=(409,), idempotent=True,
            description="Admins and dispatchers sign in to the pages as users (integrations use"
            " API keys). An email address has one account across all organisations (409)."),
        api("GET", "/v1/users/{user_id}", "Read a user", ADMINS, ok("The user.", User, ex.USER)),
        api("PATCH", "/v1/users/{user_id}", "Rename, change the role, deactivate or reactivate",
            ADMINS, ok("The user as stored now.", User, ex.USER),
            body=json_body(UserPatch, ex.USER_PATCH), errors=(409,),
            description="`active: false` ends the user's sessions on every server at once and"
            " refuses their sign-ins; a new role applies to open sessions at once. Nobody"
            " deactivates or demotes themselves (409)."),
        api("PUT", "/v1/users/{user_id}/password", "Set a user's password", ADMINS,
            ok("The user.", User, ex.USER), body=json_body(PasswordIn, ex.PASSWORD_IN),
            description="Every session of that user ends (the caller's own stays)."),
        api("POST", "/v1/socket-tickets", "A ticket that opens a socket once", READERS,
            created("Open `/v1/live/ws?ticket=…` with it within `expires_in_s`; it works once.",
                    SocketTicket, ex.SOCKET_TICKET),
            description="Pages cannot set headers on a WebSocket: a ticket keeps the API key out"
            " of the socket's URL (and of every log of URLs)."),
        device("POST", "/v1/driver/socket-tickets", "A ticket that opens the driver socket once",
               created("Open `/v1/driver/ws?ticket=…` with it within `expires_in_s`; it works"
                       " once.", SocketTicket, ex.SOCKET_TICKET)),
        api("POST", "/v1/api-keys/{key_id}/rotate", "Rotate an API key", ADMINS,
            created("The successor (same name and role), shown in this answer only (a replay"
                    " answers `token: null`).", ApiKeyCreated, ex.API_KEY_CREATED),
            body=json_body(KeyRotateIn, ex.KEY_ROTATE_IN, required=False, note="May be empty."),
            idempotent=True,
            description="The old key is revoked at once, or with `grace_s` keeps working that"
            " long beside its successor (its expiry is brought forward, never pushed back)."),
        api("POST", "/v1/api-keys/{key_id}/revoke", "Revoke an API key (idempotent)", ADMINS,
            ok("The key, revoked.", Credential, ex.REVOKED_API_KEY),
            description="Every server refuses the key at once (the revocation reaches them"
            " through Redis)."),
        api("POST", "/v1/shifts/{shift_id}/cancel", "Cancel a shift (idempotent)", FLEET_WRITERS,
            ok("The cancelled shift.", Shift, ex.CANCELLED_SHIFT)),
        api("GET", "/v1/settings/organisation", "The organisation's settings", READERS,
            ok("Name, time zone, locale, default service time and the weekly summary's"
               " recipients.", Organisation, ex.ORGANISATION)),
        api("PATCH", "/v1/settings/organisation", "Change the organisation's settings", ADMINS,
            ok("As stored now.", Organisation, ex.ORGANISATION),
            body=json_body(OrganisationPatch, ex.ORGANISATION_PATCH),
            description="Fields left out are unchanged. A new `time_zone` (IANA) applies from"
            " the next request on: days begin and end in it, and pages, messages and emails show"
            " times in it; stored instants do not move. `locale` is the language of customers'"
            " messages where neither the order nor the notification rules name one."
            " `default_service_s` is given to orders stored without `service_s` from then"
            " on. `auto_resequence` re-orders a late driver's remaining stops by itself on each"
            " `running_late`, when a less late order exists (at most every ten minutes per"
            " route; the event `route_changed` says `auto_resequenced`). `summary_emails` (at"
            " most 20, duplicates dropped; `[]`: off) get the weekly summary every Monday"
            " morning, when the deployment has an SMTP relay; an address that is not one is a"
            " 400 naming `summary_emails[i]`."),
        api("GET", "/v1/settings/dimensions", "The organisation's capacity dimensions", READERS,
            ok("In the order amounts are planned.", Dimensions, ex.DIMENSIONS)),
        api("GET", "/v1/settings/customer-proof", "Whether customers see the proof photo",
            READERS, ok("The setting.", CustomerProof, ex.CUSTOMER_PROOF)),
        api("PUT", "/v1/settings/customer-proof", "Show customers their delivery's proof photo",
            ADMINS, ok("As stored.", CustomerProof, ex.CUSTOMER_PROOF),
            body=json_body(CustomerProof, ex.CUSTOMER_PROOF),
            description="The tracking page of a delivered order always shows the time and the"
            " driver's note; with `photo: true` also the first proof photo, through a signed,"
            " short-lived link. Off by default."),
        api("PUT", "/v1/settings/dimensions", "Set the organisation's capacity dimensions", ADMINS,
            ok("As stored.", Dimensions, ex.DIMENSIONS),
            body=json_body(Dimensions, ex.DIMENSIONS), errors=(409,)),
    ),
    *section(
        "orders",
        api("GET", "/v1/orders", "List orders, a page at a time", READERS,
            ok("Orders by id.", OrderPage, OrderPage(orders=[ex.ORDER], next_after=None)),
            params=(DAY, query("status", OrderStatus, "Only orders in this status."),
                    query("after", After, "Orders with a larger id: the last page's `next_after`."),
                    query("limit", Limit, "Page size, default 100."))),
        api("POST", "/v1/orders", "Create an order", ORDER_WRITERS,
            created("The new order.", Order, ex.ORDER),
            body=json_body(OrderIn, ex.ORDER_IN), errors=(409,), idempotent=True,
            description="Windows end after they start and lie within 12 hours of the order's"
            " day; `size` names the organisation's dimensions; `external_ref` is unique (409"
            " when it exists)."),
        api("POST", "/v1/orders/import", "Import orders from CSV or a JSON array", ORDER_WRITERS,
            ok("Every row's fate: created, duplicate (its `external_ref` exists) or rejected.",
               ImportResult, ex.IMPORT_RESULT),
            ok("There were rows and none is (or already was) an order; or the"
               " `Idempotency-Key` came with another request (the error body).",
               (ImportResult, ErrorBody), status=422),
            idempotent=True,
            body=Body({"text/csv": str, JSON: list[Any]},
                      "CSV with a header row (`ref,address,lat,lon,day`, optional columns, one"
                      " per dimension; see docs/delivery.md), or a JSON array of"
                      " `POST /v1/orders` bodies. A bad row is reported with its line, field"
                      " and reason; the good ones are imported in one transaction.",
                      examples={"text/csv": Example(ex.IMPORT_CSV), JSON: Example([ex.ORDER_IN])})),
        api("GET", "/v1/orders/{order_id}", "Read an order", READERS,
            ok("The order.", Order, ex.ORDER)),
        api("PATCH", "/v1/orders/{order_id}", "Change a pending order", ORDER_WRITERS,
            ok("The order as stored now.", Order, ex.ORDER),
            body=json_body(OrderPatch, ex.ORDER_PATCH), errors=(409,),
            description="Only while the order is `pending` (409 otherwise)."),
        api("POST", "/v1/orders/{order_id}/cancel", "Cancel an order (idempotent)", ORDER_WRITERS,
            ok("The cancelled order; its stop left its running route.", Order,
               ex.CANCELLED_ORDER),
            body=json_body(CancelIn, ex.CANCEL_IN, required=False, note="May be empty."),
            errors=(409,)),
        api("POST", "/v1/orders/{order_id}/cancel/preview", "What cancelling would change",
            ORDER_WRITERS, PREVIEW, errors=(409,),
            description="Nothing is cancelled. Its running route's pending stops, each with its"
            " planned arrival now and after; no routes when the order is on none."),
    ),
    *section(
        "notifications",
        api("PUT", "/v1/orders/{order_id}/opt-out", "Whether a customer gets messages",
            ORDER_WRITERS, ok("The order as stored now.", Order, ex.ORDER),
            body=json_body(OptOutIn, {"opted_out": True}),
            description="At any status. An opted-out customer gets no message about the order "
            "(dispatchers' alerts and webhooks still go); an SMS STOP reply opts a number out "
            "of every order of the organisation."),
        api("GET", "/v1/orders/{order_id}/notifications", "An order's notifications", READERS,
            ok("Oldest first, each with its state and every attempt.", OrderNotifications,
               ex.ORDER_NOTIFICATIONS)),
        api("GET", "/v1/notifications", "One recipient's notifications of a day", READERS,
            ok("By id, a page at a time.", NotificationPage, ex.NOTIFICATION_PAGE),
            params=(Param("recipient", Annotated[str, Meta(min_length=1, max_length=320)],
                          "A phone number, email address or webhook endpoint id, as sent to.",
                          required=True, example="dana@example.com"),
                    Param("day", date, "A day of the organisation's time zone, `YYYY-MM-DD`;"
                          " default today there.", example=ex.DAY, empty_is_absent=True),
                    query("after", After, "Messages with a larger id: the last page's"
                          " `next_after`."),
                    query("limit", Limit, "Page size, default 100."))),
        api("GET", "/v1/demo/mail", "The mails the demo mail sink received", READERS,
            ok("This organisation's, newest first.", DemoMailbox, ex.DEMO_MAILBOX),
            params=(query("limit", Annotated[int, Meta(ge=1, le=200)],
                          "At most this many, default 50."),), errors=(404,),
            description="Only under `lastmile serve --demo` with no SMTP relay configured"
            " (404 otherwise). `html` is the mail's markup: show it in a sandboxed frame."),
    ),
    *section(
        "notifications",
        api("GET", "/v1/notification-rules", "The organisation's notification rules", READERS,
            ok("Its own, else the deployment's defaults (`LASTMILE_NOTIFY_*`).", RulesDoc,
               ex.NOTIFICATION_RULES)),
        api("PUT", "/v1/notification-rules", "Set the organisation's notification rules", ADMINS,
            ok("As stored; a field left out took the deployment's default.", RulesDoc,
               ex.NOTIFICATION_RULES),
            body=json_body(RulesDoc, ex.NOTIFICATION_RULES), errors=(422,),
            description="422 naming the field for a value the rules cannot take (a language"
            " Babel does not know, quiet hours that are no times, a value given twice, a number"
            " out of range). See docs/notifications.md."),
        api("GET", "/v1/notification-templates", "Every message template in force", READERS,
            ok("The organisation's own (`custom`) over the built-in defaults.", TemplateList,
               ex.NOTIFICATION_TEMPLATES)),
        api("POST", "/v1/notification-templates/preview", "Render a message for an order",
            READERS, ok("The message as its template renders it for the order now.", Rendered,
                        ex.NOTIFICATION_PREVIEW),
            body=json_body(PreviewIn, ex.NOTIFICATION_PREVIEW_IN), errors=(404, 422),
            description="The stored template (or the default), or `template` from the body;"
            " the window is around the stop's planned arrival and the link a placeholder."
            " 404 for an order of no order of the organisation; 422 naming the field of a"
            " template that does not render."),
        api("GET", "/v1/notification-templates/{kind}/{channel}/{language}",
            "One message template in force", READERS,
            ok("The organisation's own (`custom`), else the built-in default.", Template,
               ex.NOTIFICATION_TEMPLATE), errors=(422,)),
        api("PUT", "/v1/notification-templates/{kind}/{channel}/{language}",
            "Set a message template", ADMINS,
            ok("As stored.", Template, ex.NOTIFICATION_TEMPLATE),
            body=json_body(TemplateIn, ex.NOTIFICATION_TEMPLATE_IN), errors=(422,),
            description="Jinja2, sandboxed. Rendered against sample orders before it is stored:"
            " a syntax error, an unknown variable, a sandbox violation or too long an output is"
            " a 422 naming the part (`text`, `subject`, `html`) and why. SMS: `text` only;"
            " email: `subject` and `text`, `html` optional. Alerts (`alert_*`) go by email only"
            " (422 `channel`)."),
        api("DELETE", "/v1/notification-templates/{kind}/{channel}/{language}",
            "Drop a message template: the built-in default applies again", ADMINS,
            ok("The built-in default now in force.", Template,
               ex.NOTIFICATION_TEMPLATE_DEFAULT), errors=(422,)),
    ),
    *section(
        "tracking",
        api("POST", "/v1/orders/{order_id}/tracking", "Issue a customer tracking link", READERS,
            created("The link; its token is shown once.", TrackingLink, ex.TRACKING_LINK)),
        Operation("GET", "/v1/track/{token}", "An order as its customer sees it", "",
                  (ok("Status, arrival window, and the driver only while the stop is next.",
                      TrackView, ex.TRACK_VIEW),),
                  credential="tracking", errors=(404, 410, 503)),
    ),
    *section(
        "answers",
        Operation("GET", "/v1/track/{token}/answers", "What this order's customer said so far", "",
                  (ok("Instructions, requests for another day, the rating; `can_rate` once"
                      " delivered and not yet rated.", CustomerAnswers, ex.CUSTOMER_ANSWERS),),
                  credential="tracking", errors=(404, 410, 503)),
        Operation("POST", "/v1/track/{token}/instructions", "Leave instructions for the driver",
                  "", (ok("As stored; the driver's app got the route with them.", Instructions,
                          ex.INSTRUCTIONS),),
                  credential="tracking", errors=(404, 409, 410, 503),
                  body=json_body(InstructionsIn, ex.INSTRUCTIONS_IN,
                                 note="Replaces the order's instructions; text without control"
                                 " characters."),
                  description="While the order is open (409 once the delivery has ended)."),
        Operation("POST", "/v1/track/{token}/reschedule", "Ask for another day", "",
                  (ok("The order is pending on that day; its stop left today's route.",
                      Reschedule, ex.RESCHEDULE),),
                  credential="tracking", errors=(404, 409, 410, 503),
                  body=json_body(RescheduleIn, ex.RESCHEDULE_IN),
                  description="A day after today (in the organisation's time zone), at most"
                  " `LASTMILE_RESCHEDULE_MAX_DAYS` ahead (400 otherwise); 409 once the driver"
                  " reached the stop or the delivery ended. An `order_rescheduled` event follows."),
        Operation("POST", "/v1/track/{token}/rating", "Rate a delivered order, once", "",
                  (created("The rating, with the driver who delivered.", Rating, ex.RATING),),
                  credential="tracking", errors=(404, 409, 410, 503),
                  body=json_body(RatingIn, ex.RATING_IN),
                  description="409 before the delivery and for a second rating."),
        api("GET", "/v1/orders/{order_id}/answers", "What an order's customer said", READERS,
            ok("Instructions, requests for another day, the rating.", CustomerAnswers,
               ex.CUSTOMER_ANSWERS)),
        public("POST", "/v1/sms/status", "Twilio's status callback for a text message",
               ok("Taken (also for a message id not known yet)."),
               params=(TWILIO_SIGNATURE,), errors=(403,),
               body=Body({FORM: TwilioStatusForm}, "Twilio's form.")),
        public("POST", "/v1/sms/inbound", "Twilio's webhook for a customer's text",
               Answer(200, "TwiML: empty for STOP and START, else what we understood.", str,
                      media="text/xml"),
               params=(TWILIO_SIGNATURE,), errors=(403,),
               body=Body({FORM: TwilioInboundForm}, "Twilio's form.")),
    ),
    *section(
        "planning",
        api("POST", "/v1/plans", "Queue a plan of a day's pending orders", FLEET_WRITERS,
            ok("The queued job; follow it with `GET /v1/plans/{plan_id}`.", PlanView,
               ex.PLAN_QUEUED, status=202),
            body=json_body(PlanRequest, ex.PLAN_REQUEST), idempotent=True, errors=(422,),
            description="422 `over_limit` for a `time_limit_s` above the server's cap "
                        "(`LASTMILE_PLAN_MAX_S`); 422 `unknown_ids` for `order_ids` of no order "
                        "of the caller's organisation."),
        api("GET", "/v1/plans/{plan_id}", "A plan: status, progress, outcome", READERS,
            ok("The job.", PlanView, ex.PLAN_DONE)),
        api("GET", "/v1/plans", "A day's latest plans with their totals", READERS,
            ok("Newest first, at most 20: to compare plans side by side.", PlanList,
               ex.PLAN_LIST),
            params=(Param("day", date, "The day, `YYYY-MM-DD` (required).", example=ex.DAY),)),
        api("POST", "/v1/plans/{plan_id}/cancel", "Cancel a plan, keeping its best routes so far",
            FLEET_WRITERS,
            ok("A queued plan, now `cancelled` (it never runs); asked again: the same.",
               PlanView, ex.PLAN_CANCELLED),
            ok("A running plan asked to stop (`cancel_requested_at`): within about a second it "
               "ends `cancelled` with the best routes found so far as its outcome.", PlanView,
               ex.PLAN_CANCELLING, status=202),
            errors=(409,),
            description="409 for a plan that is `done` or `failed`."),
        api("POST", "/v1/plans/{plan_id}/dispatch",
            "Send a finished (or cancelled) plan's routes to drivers",
            FLEET_WRITERS, ok("The routes now on drivers' phones.", DispatchResult,
                              ex.DISPATCH_RESULT),
            body=json_body(DispatchRequest, ex.DISPATCH_REQUEST, required=False,
                           note="Empty: every route."),
            errors=(409,)),
    ),
    *section(
        "routes",
        api("GET", "/v1/routes", "Every route of a day, with its stops", READERS,
            ok("Default: today (UTC).", DayRoutes, DayRoutes(day=ex.DAY, routes=[ex.ROUTE])),
            params=(DAY,)),
        api("POST", "/v1/routes/insert", "Insert an urgent order where it costs least",
            FLEET_WRITERS,
            ok("The route that took it.", Inserted, Inserted(route=ex.ROUTE, added_travel_s=420)),
            body=json_body(InsertOrder, ex.INSERT_ORDER), errors=(409, 422)),
        api("POST", "/v1/routes/insert/preview", "What an insertion would change", FLEET_WRITERS,
            PREVIEW, body=json_body(InsertOrder, ex.INSERT_ORDER), errors=(409, 422),
            description="Nothing changes; the same 409 as the insertion when no route can take"
            " it."),
        api("GET", "/v1/routes/{route_id}", "A route with its stops", READERS,
            ok("The route.", RouteView, ex.ROUTE)),
        api("POST", "/v1/routes/{route_id}/resequence", "Re-order a late driver's stops",
            FLEET_WRITERS, ROUTE_NOW, errors=(409,)),
        api("POST", "/v1/routes/{route_id}/resequence/preview", "What a re-sequence would change",
            FLEET_WRITERS, PREVIEW, errors=(409,)),
        api("POST", "/v1/stops/{stop_id}/move", "Give a pending stop to another route",
            FLEET_WRITERS, ROUTE_NOW, body=json_body(MoveStop, ex.MOVE_STOP), errors=(409, 422)),
        api("POST", "/v1/stops/{stop_id}/move/preview", "What a move would change",
            FLEET_WRITERS, PREVIEW, body=json_body(MoveStop, ex.MOVE_STOP), errors=(409, 422),
            description="Both routes: the one the stop leaves and the one it joins."),
    ),
    *section(
        "driver",
        device("GET", "/v1/driver/me", "The calling device's driver and the organisation's zone",
               ok("The driver app shows its times in `time_zone`.", DriverProfile,
                  ex.DRIVER_PROFILE), errors=(404,)),
        device("GET", "/v1/driver/route", "The calling driver's current route",
               ok("The route.", RouteView, ex.ROUTE), errors=(404,)),
        device("POST", "/v1/driver/route/start", "Start the dispatched route", ROUTE_NOW,
               errors=(404, 409), body=ACTION_BODY, description=ACTION_AT),
        device("POST", "/v1/driver/stops/{stop_id}/arrive", "At the stop", ROUTE_NOW,
               errors=STOP_STATE, body=ACTION_BODY, description=ACTION_AT),
        device("POST", "/v1/driver/stops/{stop_id}/deliver", "Delivered", ROUTE_NOW,
               errors=STOP_STATE, body=ACTION_BODY, description=ACTION_AT),
        device("POST", "/v1/driver/stops/{stop_id}/fail", "Could not deliver", ROUTE_NOW,
               errors=STOP_STATE, body=json_body(FailStopIn, ex.FAIL_STOP_CODED),
               description="`code` is one of the failure codes (default `other`, which needs"
               " `reason`); a body with only `reason` is `other`. " + ACTION_AT),
        device("POST", "/v1/driver/stops/{stop_id}/proof", "Capture a proof and close the stop",
               created("The stored proof (again, with `Idempotent-Replayed: true`, for a key"
                       " already stored).", Proof, ex.PROOF),
               params=(Param(IDEMPOTENCY_HEADER, IdempotencyKey, "Required: the capture's own key.",
                             where="header", required=True),),
               body=Body({MULTIPART: ProofUpload}, "Parts as in docs/proofs.md."),
               errors=(409, 413, 415, 422),
               description="422 `requirements_unmet` names what the order requires and the"
               " capture lacks; 413 for a body over `LASTMILE_PROOF_MAX_BYTES` or an image over"
               " `LASTMILE_IMAGE_MAX_PIXELS`; 415 for a part that is not an image."),
    ),
    *section(
        "proofs",
        api("GET", "/v1/proofs", "Search proofs of delivery", READERS,
            ok("Newest first; image URLs are signed and short-lived.", ProofList, ex.PROOF_LIST),
            params=(query("order_id", Id, "Only this order's."),
                    query("driver_id", Id, "Only this driver's."),
                    query("customer", ProofText, "Customer name or order reference contains."),
                    query("from", date, "Delivery day on or after, `YYYY-MM-DD`."),
                    query("to", date, "Delivery day on or before."),
                    query("outcome", Outcome, "`delivered` or `failed`."),
                    query("q", ProofText, "Notes, recipient, failure, scans or reference contain."),
                    query("before", Id, "Proofs with a smaller id: the next page."),
                    query("limit", ProofLimit, "Page size, default 100."))),
        api("GET", "/v1/proofs/{proof_id}", "A proof of delivery", READERS,
            ok("The proof.", Proof, ex.PROOF)),
        api("GET", "/v1/stops/{stop_id}/proof", "The proof that closed a stop", READERS,
            ok("The proof.", Proof, ex.PROOF)),
        api("POST", "/v1/stops/{stop_id}/proof-override", "Waive a stop's proof requirements",
            FLEET_WRITERS, created("Recorded (and in the audit log).", Override,
                                   ex.PROOF_OVERRIDE),
            body=json_body(OverrideIn, ex.PROOF_OVERRIDE_IN), errors=(409,)),
        public("GET", "/v1/blobs/{sha256}", "A proof image through its signed URL",
               Answer(200, "The image, in the type its link was signed for.", str,
                      media="image/jpeg", alternatives={"image/png": str}),
               params=(Param("sha256", str, "The blob's SHA-256.", where="path"),
                       Param("type", str, "`image/jpeg` or `image/png`, as signed."),
                       Param("expires", int, "Unix time the link stops working."),
                       Param("sig", str, "The link's signature.")),
               description="404 for an unknown blob, an expired link or a wrong signature."),
        api("GET", "/v1/settings/proof-requirements", "The organisation's default requirements",
            READERS, ok("The defaults.", ProofRequirements, ex.PROOF_REQUIREMENTS)),
        api("PUT", "/v1/settings/proof-requirements", "Set the default requirements",
            FLEET_WRITERS, ok("As stored.", ProofRequirements, ex.PROOF_REQUIREMENTS),
            body=json_body(ProofRequirements, ex.PROOF_REQUIREMENTS)),
        api("GET", "/v1/orders/{order_id}/proof-requirements", "An order's requirements",
            READERS, ok("Its own, else the defaults.", ProofRequirements, ex.PROOF_REQUIREMENTS)),
        api("PUT", "/v1/orders/{order_id}/proof-requirements", "Set an order's requirements",
            ORDER_WRITERS, ok("As stored.", ProofRequirements, ex.PROOF_REQUIREMENTS),
            body=json_body(ProofRequirements, ex.PROOF_REQUIREMENTS)),
        api("POST", "/v1/orders/{order_id}/reattempt", "Try a failed order again on a later day",
            ORDER_WRITERS, ok("Pending again, one attempt further.", Reattempt, ex.REATTEMPT),
            body=json_body(ReattemptIn, ex.REATTEMPT_IN), errors=(409,)),
        api("GET", "/v1/audit/verify", "Check the organisation's audit chain", ADMINS,
            ok("Whether every entry's hash chains to the one before.", AuditCheck,
               ex.AUDIT_CHECK)),
    ),
    *section(
        "analytics",
        api("GET", "/v1/analytics/deliveries", "Delivery performance over a range of days",
            READERS,
            Answer(200, "One row per group; `format=csv` (or `Accept: text/csv`) for a"
                   " spreadsheet.", DeliveryReport, example=Example(ex.DELIVERY_REPORT),
                   alternatives={"text/csv": str}),
            params=(query("from", date, "First day, `YYYY-MM-DD` (organisation's days;"
                          " default: six days before `to`)."),
                    query("to", date, "Last day (default: today in the organisation's time"
                          " zone); at most 366 days."),
                    query("by", DeliveryGroup, "Group by `day` (default), `driver`, `carrier`,"
                          " `zone` (H3 cell) or `reason` (failed stops by failure code)."),
                    query("format", ReportFormat, "`json` (default) or `csv`."))),
        api("GET", "/v1/analytics/routes", "Route efficiency over a range of days", READERS,
            Answer(200, "One row per group; `format=csv` (or `Accept: text/csv`) for a"
                   " spreadsheet.", RouteReport, example=Example(ex.ROUTE_REPORT),
                   alternatives={"text/csv": str}),
            params=(query("from", date, "First day, `YYYY-MM-DD`."),
                    query("to", date, "Last day; at most 366 days."),
                    query("by", RouteGroup, "Group by `day` (default), `driver` or `carrier`."),
                    query("format", ReportFormat, "`json` (default) or `csv`."))),
        api("GET", "/v1/analytics/patterns", "Patterns worth acting on, with their evidence",
            READERS,
            ok("Zones late day after day, addresses and zones whose first attempts keep"
               " failing, drivers whose service times stand out.", PatternReport,
               ex.PATTERN_REPORT),
            params=(query("from", date, "First day, `YYYY-MM-DD` (default: six days before"
                          " `to`)."),
                    query("to", date, "Last day (default: today); at most 366 days."))),
        api("GET", "/v1/analytics/learned", "What was learned from the fleet's days", READERS,
            ok("The model plans use: speeds per cell and hour, service times.", LearnedModel,
               ex.LEARNED_MODEL),
            errors=(404,)),
        api("GET", "/v1/analytics/weekly-summary", "The weekly summary, as it would be emailed",
            DISPATCHERS,
            ok("A week's figures beside the week before's, its top patterns, and the email"
               " (subject, text, HTML).", WeeklySummaryPreview, ex.WEEKLY_SUMMARY_PREVIEW),
            params=(WEEK,),
            description="Monday to Sunday in the organisation's time zone; numbers and dates in"
            " its locale. Emailed every Monday from `LASTMILE_SUMMARY_HOUR` (its time zone) to"
            " `summary_emails` of `/v1/settings/organisation`, when the deployment has an SMTP"
            " relay. See docs/analytics.md."),
        api("POST", "/v1/analytics/weekly-summary/send", "Email the weekly summary now",
            DISPATCHERS,
            ok("Queued in the notification outbox, one email per recipient; the email sender"
               " delivers them with its retries.", WeeklySummarySent, ex.WEEKLY_SUMMARY_SENT,
               status=202),
            params=(WEEK,), errors=(409,), idempotent=True,
            description="Besides the scheduled summary, never instead of it. 409 when the"
            " organisation names no `summary_emails`, or when the deployment has no SMTP relay"
            " (`LASTMILE_SMTP_HOST`, `LASTMILE_SMTP_FROM`)."),
    ),
    *section(
        "webhooks",
        api("GET", "/v1/webhooks", "List the organisation's webhook endpoints", READERS,
            ok("By id, without their secrets.", WebhookList, WebhookList(webhooks=[ex.WEBHOOK]))),
        api("POST", "/v1/webhooks", "Register a webhook endpoint", ADMINS,
            created("The endpoint and its signing secret, shown in this answer only.",
                    WebhookCreated, ex.WEBHOOK_CREATED),
            body=json_body(WebhookIn, ex.WEBHOOK_IN), errors=(422,),
            description="422 naming `url` unless it is http(s), without credentials or"
            " fragment, and its host resolves to public addresses only; naming"
            " `event_types[i]` for an unknown type (`*`: every type)."),
        api("GET", "/v1/webhooks/{webhook_id}", "Read a webhook endpoint", READERS,
            ok("The endpoint.", Webhook, ex.WEBHOOK)),
        api("PATCH", "/v1/webhooks/{webhook_id}", "Change a webhook endpoint", ADMINS,
            ok("The endpoint as stored now.", Webhook, ex.WEBHOOK),
            body=json_body(WebhookPatch, ex.WEBHOOK_PATCH), errors=(422,),
            description="Fields left out are unchanged. `enabled: true` on a disabled endpoint"
            " clears its failures; its waiting deliveries go out again."),
        api("DELETE", "/v1/webhooks/{webhook_id}", "Remove a webhook endpoint", ADMINS,
            ok("Removed, with its deliveries and their log.", status=204)),
        api("POST", "/v1/webhooks/{webhook_id}/rotate", "Rotate the signing secret", ADMINS,
            ok("The new secret, shown in this answer only; until `previous_secret_until` the"
               " old one signs each delivery too.", WebhookSecret, ex.WEBHOOK_ROTATED),
            body=json_body(RotateIn, ex.WEBHOOK_ROTATE, required=False,
                           note="May be empty: the old secret signs beside the new one for a"
                           " day; `keep_old_s: 0` stops it at once.")),
        api("GET", "/v1/webhooks/{webhook_id}/deliveries", "An endpoint's delivery log", READERS,
            ok("Newest first, each with its attempts.", DeliveryPage, ex.WEBHOOK_DELIVERIES),
            params=(query("before", Id, "Deliveries with a smaller id: the last page's"
                          " `next_before`."),
                    query("limit", DeliveryLimit, "Page size, default 50."),
                    query("state", DeliveryState, "Only deliveries in this state."))),
        api("POST", "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/replay",
            "Send one delivery again", ADMINS,
            ok("Queued, due now; the receiver gets the same body and `webhook-id`.", Delivery,
               ex.WEBHOOK_DELIVERY, status=202),
            errors=(409,), description="409 while a sender is delivering it."),
        api("POST", "/v1/webhooks/{webhook_id}/replay", "Send again the deliveries of a time range",
            ADMINS, ok("How many deliveries were queued again.", Replayed, ex.WEBHOOK_REPLAYED,
                       status=202),
            body=json_body(ReplayRange, ex.WEBHOOK_REPLAY), errors=(422,),
            description="Deliveries of events at `from` or later and before `to`."),
    ),
)
# fmt: on

SOCKETS: Final[tuple[Socket, ...]] = (
    Socket(
        "/v1/driver/ws",
        "The driver app's socket: pings up, acks and route changes down",
        credential="device",
        client=("DriverClientMessage", ClientMessage),
        server=("DriverServerMessage", ServerMessage),
        params=(
            Param("token", str, "The device token, when no Bearer header can be sent."),
            Param("ticket", str, "A ticket from `POST /v1/driver/socket-tickets` (works once)."),
        ),
        closes={
            4401: "no usable device token",
            4429: "too many failed credentials from this address",
            4408: "fell too far behind; reconnect",
            1013: "Redis could not take the pings; reconnect and re-send",
            1009: "a message larger than the server takes",
        },
        description="Text frames carry JSON, binary frames MessagePack. See docs/websockets.md.",
    ),
    Socket(
        "/v1/live/ws",
        "The dispatcher's live feed: a snapshot, then positions, windows and events",
        credential="api_key",
        roles=READERS,
        server=("LiveMessage", LiveMessage),
        params=(
            Param("token", str, "The API key (prefer `ticket`: a URL's query can reach logs)."),
            Param("ticket", str, "A ticket from `POST /v1/socket-tickets` (works once)."),
            Param("since", str, "The last event id seen: replay what was missed."),
            Param("bbox", str, "`min_lon,min_lat,max_lon,max_lat`: positions in this area only."),
            DAY,
        ),
        closes={
            4400: "a bad parameter (`bbox`, `day`)",
            4401: "no usable API key",
            4429: "too many failed credentials from this address",
            4403: "the key's role may not read the feed",
            4408: "fell too far behind; reconnect with `since`",
        },
        description="Server to client only. See docs/websockets.md.",
    ),
    Socket(
        "/v1/track/{token}/ws",
        "A customer's feed: the view, then window and driver position changes",
        credential="tracking",
        server=("TrackMessage", TrackMessage),
        closes={
            1000: "the delivery has ended",
            4404: "unknown tracking link",
            4410: "the tracking link has expired",
            4408: "fell too far behind; reconnect",
        },
        description="Server to client only. See docs/websockets.md.",
    ),
)

TAGS: Final = (
    {"name": "reference", "description": "This reference and the API's root."},
    {"name": "operations", "description": "Health, readiness and metrics."},
    {"name": "pages", "description": "HTML pages: dispatcher map, customer tracking, driver app."},
    {"name": "ingest", "description": "Positions in: native batches, OsmAnd, OwnTracks."},
    {"name": "positions", "description": "Positions out: live and tracks."},
    {"name": "fleet", "description": "Depots, carriers, vehicles, drivers, devices, shifts."},
    {"name": "orders", "description": "Orders: create, change, cancel, import."},
    {"name": "answers", "description": "Customers answer back: instructions, days, ratings."},
    {"name": "planning", "description": "Planning jobs and dispatch."},
    {"name": "routes", "description": "Running routes and re-optimisation."},
    {"name": "driver", "description": "The driver app: its route and stop outcomes."},
    {"name": "proofs", "description": "Proof of delivery: search, requirements, audit."},
    {"name": "tracking", "description": "Customer tracking links and views."},
    {"name": "analytics", "description": "What the days really were: facts and reports."},
    {"name": "webhooks", "description": "Signed webhooks to integrations: endpoints, log, replay."},
    {"name": "notifications", "description": "Messages to customers: what, to whom, how far."},
)
