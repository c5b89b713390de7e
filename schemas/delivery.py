"""The delivery day on the wire: depots, carriers, vehicles, drivers, shifts and orders.

Every resource has up to three shapes:

* ``XIn``: the body that creates one (``POST``). Unknown fields are rejected, so a misspelt
  field (``service_time`` for ``service_s``) is an error instead of a silent default.
* ``XPatch``: the body of ``PATCH``. A field left out is unchanged; ``null`` clears a field
  that may be empty. The server merges the patch into the stored resource and checks the
  result exactly like a create.
* ``X``: what is read back: the ``XIn`` fields plus id, status and timestamps.

Units are in the names (``service_s``, ``duration_s``, ``cost_per_km``); instants are
timezone-aware RFC 3339 times; a ``day`` is a calendar date in the organisation's time zone.
Amounts (a vehicle's ``capacity``, an order's ``size``) are objects ``{dimension: integer}``
whose keys must be among the organisation's dimensions (``GET /v1/settings/dimensions``);
identifiers (``DepotId``, ``CarrierId``, ``ShiftId``, ``OrderId``, ...) are in :mod:`schemas.ids`.

The field-level rules that need more than one field or the organisation's settings (a window
ends after it starts and lies near its day; sizes name known dimensions) are checked by
``app/`` after decoding; everything a single field can say is said here, in ``Meta``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from schemas.ids import CarrierId, DepotId, DeviceId, DriverId, OrderId, ShiftId, VehicleId

VehicleType = Literal["van", "cargo_bike", "truck", "car", "bicycle", "motorbike", "on_foot"]
CarrierKind = Literal["own", "partner"]
ShiftStatus = Literal["scheduled", "cancelled"]
OrderStatus = Literal["pending", "planned", "dispatched", "delivered", "failed", "cancelled"]
"""``pending`` until planned; ``cancelled`` from any state but ``delivered``."""

DEFAULT_DIMENSIONS: tuple[str, ...] = ("weight_kg", "volume_l", "parcels")
MAX_DIMENSIONS = 16
MAX_AMOUNT = 1_000_000_000
MAX_WINDOWS = 10
MAX_PARCELS = 1000

Name = Annotated[str, Meta(min_length=1, max_length=200)]
Ref = Annotated[
    str,
    Meta(min_length=1, max_length=100, pattern=r"^\S(.*\S)?$", description="caller's own id"),
]
Address = Annotated[str, Meta(min_length=1, max_length=500)]
Notes = Annotated[str, Meta(max_length=2000)]
Phone = Annotated[
    str, Meta(max_length=32, pattern=r"^(?=.*[0-9])[0-9 +()\-]{3,}$", description="phone number")
]
Email = Annotated[str, Meta(max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]
Language = Annotated[
    str,
    Meta(
        min_length=2,
        max_length=12,
        pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$",
        description="a language tag such as en, de or en-GB",
    ),
]
Latitude = Annotated[float, Meta(ge=-90.0, le=90.0, description="WGS84 latitude, degrees")]
Longitude = Annotated[float, Meta(ge=-180.0, le=180.0, description="WGS84 longitude, degrees")]
AwareTime = Annotated[datetime, Meta(tz=True, description="timezone-aware instant")]
DimensionName = Annotated[
    str, Meta(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_]*$", description="unit in it")
]
Amount = Annotated[int, Meta(ge=0, le=MAX_AMOUNT, description="in the unit its dimension names")]
Amounts = dict[str, Amount]
"""Keys are checked against the organisation's dimensions by the server, not here."""
Skill = Annotated[str, Meta(min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9_\-]*$")]
Skills = Annotated[list[Skill], Meta(max_length=50)]
Cost = Annotated[float, Meta(ge=0.0, le=1e9, description="in the organisation's currency")]
ServiceS = Annotated[int, Meta(ge=0, le=86_400, description="seconds at the stop")]
EnergySource = Literal["diesel", "petrol", "electric", "none"]
Consumption = Annotated[
    float, Meta(ge=0.0, le=10.0, description="litres (kWh when electric) per km driven")
]
BreakS = Annotated[int, Meta(gt=0, le=43_200, description="break length, seconds")]
MaxDurationS = Annotated[int, Meta(gt=0, le=172_800, description="longest route, seconds")]
Priority = Annotated[int, Meta(ge=0, le=2, description="0 low, 1 normal, 2 high")]
Barcode = Annotated[str, Meta(min_length=1, max_length=100, pattern=r"^[\x21-\x7e]+$")]


class _In(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of request bodies: frozen, keyword-only, unknown fields rejected."""


class TimeWindow(_In, frozen=True, kw_only=True):
    """An interval of instants; the server checks ``start < end``."""

    start: AwareTime
    end: AwareTime


class Place(_In, frozen=True, kw_only=True):
    """Where a shift starts or ends: a depot of the organisation, or coordinates.

    Exactly one of ``depot_id`` or the pair ``lat``/``lon`` must be given.
    """

    depot_id: DepotId | None = None
    lat: Latitude | None = None
    lon: Longitude | None = None

    def __post_init__(self) -> None:
        coordinates = (self.lat is not None, self.lon is not None)
        if self.depot_id is not None and coordinates == (False, False):
            return
        if self.depot_id is None and coordinates == (True, True):
            return
        raise ValueError(
            "expected a depot_id, or lat and lon, "
            f"got depot_id={self.depot_id}, lat={self.lat}, lon={self.lon}"
        )


class Break(_In, frozen=True, kw_only=True):
    """A rest of ``duration_s`` that starts between ``earliest_start`` and ``latest_start``."""

    earliest_start: AwareTime
    latest_start: AwareTime
    duration_s: BreakS


class Parcel(_In, frozen=True, kw_only=True):
    """One physical piece of an order, identified by the barcode printed on it."""

    barcode: Barcode


# --- depots ---------------------------------------------------------------------------------


class DepotIn(_In, frozen=True, kw_only=True):
    """``POST /v1/depots``: a place where vehicles load and shifts start or end."""

    name: Name
    address: Address | None = None
    lat: Latitude
    lon: Longitude
    external_ref: Ref | None = None
    active: bool = True


class DepotPatch(_In, frozen=True, kw_only=True):
    """``PATCH /v1/depots/{id}``."""

    name: Name | UnsetType = UNSET
    address: Address | UnsetType | None = UNSET
    lat: Latitude | UnsetType = UNSET
    lon: Longitude | UnsetType = UNSET
    external_ref: Ref | UnsetType | None = UNSET
    active: bool | UnsetType = UNSET


class Depot(DepotIn, frozen=True, kw_only=True):
    """A depot as read back."""

    id: DepotId
    created_at: datetime
    updated_at: datetime


# --- carriers -------------------------------------------------------------------------------


class CarrierIn(_In, frozen=True, kw_only=True):
    """``POST /v1/carriers``: the own fleet or a partner whose drivers we plan and track."""

    name: Name
    kind: CarrierKind
    contact_name: Name | None = None
    contact_phone: Phone | None = None
    contact_email: Email | None = None
    external_ref: Ref | None = None
    active: bool = True


class CarrierPatch(_In, frozen=True, kw_only=True):
    """``PATCH /v1/carriers/{id}``."""

    name: Name | UnsetType = UNSET
    kind: CarrierKind | UnsetType = UNSET
    contact_name: Name | UnsetType | None = UNSET
    contact_phone: Phone | UnsetType | None = UNSET
    contact_email: Email | UnsetType | None = UNSET
    external_ref: Ref | UnsetType | None = UNSET
    active: bool | UnsetType = UNSET


class Carrier(CarrierIn, frozen=True, kw_only=True):
    """A carrier as read back."""

    id: CarrierId
    created_at: datetime
    updated_at: datetime


# --- vehicles -------------------------------------------------------------------------------


class VehicleIn(_In, frozen=True, kw_only=True):
    """``POST /v1/vehicles``.

    ``capacity`` names only the dimensions the vehicle is limited in; a dimension it leaves
    out does not limit it. Costs are what using the vehicle costs the planner: ``fixed_cost``
    once per day it is used, ``cost_per_km`` driven, ``cost_per_hour`` on the road.
    """

    name: Name
    external_ref: Ref | None = None
    type: VehicleType = "van"
    capacity: Amounts = {}
    skills: Skills = []
    fixed_cost: Cost = 0.0
    cost_per_km: Cost = 0.0
    cost_per_hour: Cost = 0.0
    carrier_id: CarrierId | None = None
    active: bool = True
    energy: EnergySource | None = None
    """What it runs on (``none``: a bicycle, on foot); with ``consumption_per_km``, the route
    reports give its fuel or electricity and CO₂."""
    consumption_per_km: Consumption | None = None


class VehiclePatch(_In, frozen=True, kw_only=True):
    """``PATCH /v1/vehicles/{id}``; ``capacity`` and ``skills`` are replaced whole."""

    name: Name | UnsetType = UNSET
    external_ref: Ref | UnsetType | None = UNSET
    type: VehicleType | UnsetType = UNSET
    capacity: Amounts | UnsetType = UNSET
    skills: Skills | UnsetType = UNSET
    fixed_cost: Cost | UnsetType = UNSET
    cost_per_km: Cost | UnsetType = UNSET
    cost_per_hour: Cost | UnsetType = UNSET
    carrier_id: CarrierId | UnsetType | None = UNSET
    active: bool | UnsetType = UNSET
    energy: EnergySource | UnsetType | None = UNSET
    consumption_per_km: Consumption | UnsetType | None = UNSET


class Vehicle(VehicleIn, frozen=True, kw_only=True):
    """A vehicle as read back."""

    id: VehicleId
    created_at: datetime
    updated_at: datetime


# --- drivers and their devices --------------------------------------------------------------


class DriverIn(_In, frozen=True, kw_only=True):
    """``POST /v1/drivers``; an inactive driver's device tokens stop working."""

    name: Name
    phone: Phone | None = None
    external_ref: Ref | None = None
    carrier_id: CarrierId | None = None
    default_vehicle_id: VehicleId | None = None
    active: bool = True


class DriverPatch(_In, frozen=True, kw_only=True):
    """``PATCH /v1/drivers/{id}``."""

    name: Name | UnsetType = UNSET
    phone: Phone | UnsetType | None = UNSET
    external_ref: Ref | UnsetType | None = UNSET
    carrier_id: CarrierId | UnsetType | None = UNSET
    default_vehicle_id: VehicleId | UnsetType | None = UNSET
    active: bool | UnsetType = UNSET


class Driver(DriverIn, frozen=True, kw_only=True):
    """A driver as read back."""

    id: DriverId
    created_at: datetime
    updated_at: datetime


class DeviceIn(_In, frozen=True, kw_only=True):
    """``POST /v1/drivers/{id}/devices`` (the body may be empty)."""

    name: Name = "phone"


class DeviceCreated(msgspec.Struct, frozen=True, kw_only=True):
    """A new device: ``token`` is shown in this answer only (it is stored hashed).

    A replay of the same idempotent request answers ``token: null``: the server never keeps a
    token in clear, so a client that lost the first answer registers another device.
    """

    device_id: DeviceId
    driver_id: DriverId
    name: str
    token: str | None
    token_prefix: str


# --- shifts ---------------------------------------------------------------------------------


class ShiftIn(_In, frozen=True, kw_only=True):
    """``POST /v1/shifts``: a driver works ``day`` in ``vehicle_id`` within ``working_window``.

    ``vehicle_id`` defaults to the driver's default vehicle; ``end_place`` defaults to
    ``start_place``. Breaks start inside the working window; ``max_duration_s`` bounds the
    route from leaving to returning.
    """

    driver_id: DriverId
    vehicle_id: VehicleId | None = None
    day: date
    start_place: Place
    end_place: Place | None = None
    working_window: TimeWindow
    breaks: Annotated[list[Break], Meta(max_length=10)] = []
    max_duration_s: MaxDurationS | None = None


class ShiftPatch(_In, frozen=True, kw_only=True):
    """``PATCH /v1/shifts/{id}``; ``breaks`` are replaced whole."""

    driver_id: DriverId | UnsetType = UNSET
    vehicle_id: VehicleId | UnsetType = UNSET
    day: date | UnsetType = UNSET
    start_place: Place | UnsetType = UNSET
    end_place: Place | UnsetType | None = UNSET
    working_window: TimeWindow | UnsetType = UNSET
    breaks: Annotated[list[Break], Meta(max_length=10)] | UnsetType = UNSET
    max_duration_s: MaxDurationS | UnsetType | None = UNSET


class Shift(ShiftIn, frozen=True, kw_only=True):
    """A shift as read back (``vehicle_id`` is always set)."""

    id: ShiftId
    status: ShiftStatus
    created_at: datetime
    updated_at: datetime


# --- orders ---------------------------------------------------------------------------------


class OrderIn(_In, frozen=True, kw_only=True):
    """``POST /v1/orders`` and one item of a JSON import.

    ``external_ref`` is the caller's id for the order, unique in the organisation: creating
    it twice answers 409, importing it twice reports a duplicate. Service starts inside one of
    ``time_windows`` (any time of the shift when there is none) and lasts ``service_s``.
    """

    external_ref: Ref
    customer_name: Name | None = None
    phone: Phone | None = None
    email: Email | None = None
    language: Language | None = None
    """The customer's language and locale for messages (``de``, ``en-GB``); none: the
    organisation's (its notification rules')."""
    address: Address
    lat: Latitude
    lon: Longitude
    day: date
    time_windows: Annotated[list[TimeWindow], Meta(max_length=MAX_WINDOWS)] = []
    service_s: ServiceS | None = None
    """Seconds at the stop; none: the organisation's ``default_service_s``
    (``/v1/settings/organisation``) when the order is stored."""
    size: Amounts = {}
    priority: Priority = 1
    required_skills: Skills = []
    parcels: Annotated[list[Parcel], Meta(max_length=MAX_PARCELS)] = []
    notes: Notes | None = None
    notifications_opt_out: bool = False
    """The customer gets no messages about this order (alerts to dispatchers and webhooks
    still go); changed at any status with ``PUT /v1/orders/{id}/opt-out``."""


class OrderPatch(_In, frozen=True, kw_only=True):
    """``PATCH /v1/orders/{id}``, allowed while the order is ``pending``; lists are replaced."""

    customer_name: Name | UnsetType | None = UNSET
    phone: Phone | UnsetType | None = UNSET
    email: Email | UnsetType | None = UNSET
    language: Language | UnsetType | None = UNSET
    address: Address | UnsetType = UNSET
    lat: Latitude | UnsetType = UNSET
    lon: Longitude | UnsetType = UNSET
    day: date | UnsetType = UNSET
    time_windows: Annotated[list[TimeWindow], Meta(max_length=MAX_WINDOWS)] | UnsetType = UNSET
    service_s: ServiceS | UnsetType = UNSET
    size: Amounts | UnsetType = UNSET
    priority: Priority | UnsetType = UNSET
    required_skills: Skills | UnsetType = UNSET
    parcels: Annotated[list[Parcel], Meta(max_length=MAX_PARCELS)] | UnsetType = UNSET
    notes: Notes | UnsetType | None = UNSET


class Order(OrderIn, frozen=True, kw_only=True):
    """An order as read back."""

    service_s: ServiceS = 0  # always stored: as given, or the organisation's default
    id: OrderId
    status: OrderStatus
    cancel_reason: str | None = None
    cancelled_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class OptOutIn(_In, frozen=True, kw_only=True):
    """``PUT /v1/orders/{id}/opt-out``: whether the order's customer gets messages."""

    opted_out: bool


class CancelIn(_In, frozen=True, kw_only=True):
    """``POST /v1/orders/{id}/cancel`` (the body may be empty)."""

    reason: Annotated[str, Meta(max_length=500)] | None = None


class ImportedRow(msgspec.Struct, frozen=True, kw_only=True):
    """A row of an import that is now (or already was) an order."""

    line: int
    external_ref: str
    order_id: OrderId


class ImportProblem(msgspec.Struct, frozen=True, kw_only=True):
    """A row of an import that was not imported: where, which field, and why."""

    line: int
    field: str
    reason: str


class ImportResult(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to ``POST /v1/orders/import``.

    ``line`` is the CSV line (the header is line 1, so the first order is line 2, as a
    spreadsheet numbers its rows) or the index in a JSON array. ``duplicates`` are rows whose
    ``external_ref`` exists already (or appeared earlier in the same file); they were not
    changed. Every row appears in exactly one of the three lists.
    """

    rows: int
    created: list[ImportedRow]
    duplicates: list[ImportedRow]
    rejected: list[ImportProblem]


# --- settings -------------------------------------------------------------------------------


class Dimensions(_In, frozen=True, kw_only=True):
    """``GET``/``PUT /v1/settings/dimensions``: the organisation's capacity dimensions, in order.

    The unit belongs in the name (``weight_kg``). The planner reads amounts as integer lists
    aligned with this order.
    """

    dimensions: Annotated[list[DimensionName], Meta(max_length=MAX_DIMENSIONS)]
