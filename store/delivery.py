"""The delivery day as the planner reads it, and what the delivery tables share.

Besides, it holds what the fleet and order stores share: the errors below (and
:func:`translated`, which raises them), and the organisation's capacity dimensions.

:func:`load_day` gathers everything a plan of one organisation's day needs in three queries:
the depots, the scheduled shifts joined with their drivers and vehicles (places resolved to
coordinates), and the open orders. Amounts come back as integer lists aligned with the
organisation's dimensions, the form :mod:`schemas.planning` takes.

Errors raised by ``store.fleet`` and ``store.orders`` when the database refuses a change::

    DeliveryError(field, reason)   the field at fault, as the API spells it, and why
    ├── Missing                    a referenced row is not in the organisation (a carrier_id)
    ├── Duplicate                  a unique value is taken (an external_ref)
    └── WrongState                 the row's state forbids the change (cancel a delivered order)

:func:`integrity` translates a constraint violation into one of them by the constraint's name
(named in migration 0002), so that a reference to another organisation's row, caught by the
composite foreign keys, reads exactly like a reference to a row that does not exist.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import date
from typing import Any, Final

import msgspec
from psycopg import AsyncConnection, errors
from psycopg.pq import TransactionStatus
from psycopg.rows import class_row, dict_row, scalar_row

from schemas.delivery import (
    DEFAULT_DIMENSIONS,
    Break,
    OrderStatus,
    TimeWindow,
    VehicleType,
)
from schemas.ids import CarrierId, DepotId, DriverId, OrderId, OrgId, ShiftId, VehicleId
from store.rows import fetch_all, fetch_one

UNLIMITED_AMOUNT: Final = 2**31 - 1
"""A vehicle's capacity in a dimension its ``capacity`` object does not name."""

OPEN_STATUSES: Final[tuple[OrderStatus, ...]] = ("pending", "planned", "dispatched")
"""Orders still to be delivered; a dimension they use cannot be removed."""


class DeliveryError(Exception):
    """The database refused a change: ``field`` is what is wrong, ``reason`` says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class Missing(DeliveryError):
    """A referenced row does not exist in the caller's organisation."""


class Duplicate(DeliveryError):
    """A value that must be unique in the organisation is taken."""


class WrongState(DeliveryError):
    """The row's state does not allow the change."""


_REFERENCES: Final[Mapping[str, tuple[str, str]]] = {
    "vehicles_carrier_fk": ("carrier_id", "carrier"),
    "drivers_carrier_fk": ("carrier_id", "carrier"),
    "drivers_vehicle_fk": ("default_vehicle_id", "vehicle"),
    # 0001's single-column key on the same column, still in place: it fires first for a
    # vehicle id that no organisation has.
    "drivers_vehicle_id_fkey": ("default_vehicle_id", "vehicle"),
    "shifts_driver_fk": ("driver_id", "driver"),
    "shifts_vehicle_fk": ("vehicle_id", "vehicle"),
    "shifts_start_depot_fk": ("start_place.depot_id", "depot"),
    "shifts_end_depot_fk": ("end_place.depot_id", "depot"),
}
_UNIQUE: Final[Mapping[str, tuple[str, str]]] = {
    "depots_org_ref_key": ("external_ref", "depot"),
    "carriers_org_ref_key": ("external_ref", "carrier"),
    "vehicles_org_id_external_ref_key": ("external_ref", "vehicle"),
    "drivers_org_id_external_ref_key": ("external_ref", "driver"),
    "orders_org_ref_key": ("external_ref", "order"),
    "parcels_order_barcode_key": ("parcels", "parcel"),
}
_KEY_VALUE = re.compile(r"\)=\((?:[^,]*, )?(?P<value>.*)\)")


def integrity(exc: errors.IntegrityError) -> DeliveryError | None:
    """The :class:`DeliveryError` a constraint violation means, or None for an unexpected one."""
    name = exc.diag.constraint_name or ""
    found = _KEY_VALUE.search(exc.diag.message_detail or "")
    value = found["value"] if found else "?"
    if isinstance(exc, errors.ForeignKeyViolation) and name in _REFERENCES:
        field, noun = _REFERENCES[name]
        return Missing(field, f"expected the id of a {noun} of this organisation, got {value}")
    if isinstance(exc, errors.UniqueViolation) and name in _UNIQUE:
        field, noun = _UNIQUE[name]
        return Duplicate(field, f"another {noun} of this organisation has {field} {value!r}")
    return None


@contextlib.asynccontextmanager
async def translated() -> AsyncIterator[None]:
    """Turn a constraint violation inside the block into a :class:`DeliveryError`.

    Constraints not named in :func:`integrity` propagate unchanged: they are bugs.
    """
    try:
        yield
    except errors.IntegrityError as exc:
        mapped = integrity(exc)
        if mapped is None:
            raise
        raise mapped from exc


# --- the organisation's dimensions ----------------------------------------------------------


class OrgSettings(msgspec.Struct, frozen=True, kw_only=True):
    """What the delivery API needs to know about an organisation to check a request."""

    dimensions: list[str]
    timezone: str


async def org_settings(conn: AsyncConnection, org_id: OrgId) -> OrgSettings:
    """The organisation's dimensions and time zone (defaults if it vanished meanwhile)."""
    # dimensions is text[], which loads as a fresh list: the Struct owns it.
    settings = await fetch_one(
        conn,
        class_row(OrgSettings),
        "SELECT dimensions, timezone FROM orgs WHERE id = %s",
        (org_id,),
    )
    if settings is None:
        return OrgSettings(dimensions=list(DEFAULT_DIMENSIONS), timezone="UTC")
    return settings


async def set_dimensions(
    conn: AsyncConnection, org_id: OrgId, dimensions: Sequence[str]
) -> list[str]:
    """Replace the organisation's dimensions; returns them.

    Raises :class:`WrongState` naming a dropped dimension that an active vehicle's capacity or
    an open order's size still uses. Renaming is dropping one name and adding another.
    """
    async with conn.transaction():
        current = await fetch_one(
            conn, scalar_row, "SELECT dimensions FROM orgs WHERE id = %s FOR UPDATE", (org_id,)
        )
        dropped = [d for d in (current if current is not None else []) if d not in dimensions]
        # A NULL name is never selected (``? NULL`` is not true), so None means "none in use".
        in_use = await fetch_one(
            conn,
            scalar_row,
            "SELECT d FROM unnest(%s::text[]) AS d WHERE"
            " EXISTS (SELECT 1 FROM vehicles v"
            "         WHERE v.org_id = %s AND v.active AND v.capacity ? d)"
            " OR EXISTS (SELECT 1 FROM orders o"
            "            WHERE o.org_id = %s AND o.status = ANY(%s) AND o.size ? d)"
            " LIMIT 1",
            (dropped, org_id, org_id, list(OPEN_STATUSES)),
        )
        if in_use is not None:
            raise WrongState(
                "dimensions",
                f"{in_use} is still used by an active vehicle's capacity or an open order's"
                " size; remove it there first",
            )
        await conn.execute(
            "UPDATE orgs SET dimensions = %s WHERE id = %s", (list(dimensions), org_id)
        )
    return list(dimensions)


def aligned(amounts: Mapping[str, int], dimensions: Sequence[str], missing: int) -> list[int]:
    """``amounts`` as a list in ``dimensions`` order, ``missing`` where a dimension is absent."""
    return [int(amounts.get(name, missing)) for name in dimensions]


# --- the day as the planner reads it --------------------------------------------------------


class DayPlace(msgspec.Struct, frozen=True, kw_only=True):
    """A resolved place: coordinates always, and the depot when it is one."""

    depot_id: DepotId | None
    lat: float
    lon: float


class DayDepot(msgspec.Struct, frozen=True, kw_only=True):
    """A depot of the organisation (active or not: a shift may still start there)."""

    depot_id: DepotId
    name: str
    lat: float
    lon: float


class DayShift(msgspec.Struct, frozen=True, kw_only=True):
    """A scheduled shift with its driver and vehicle, ready to become a planner's vehicle.

    ``end`` is ``start`` when the shift names no end place. ``capacity`` is aligned with
    :attr:`DeliveryDay.dimensions`; a dimension the vehicle does not limit holds
    :data:`UNLIMITED_AMOUNT`.
    """

    shift_id: ShiftId
    driver_id: DriverId
    driver_name: str
    carrier_id: CarrierId | None
    vehicle_id: VehicleId
    vehicle_type: VehicleType
    start: DayPlace
    end: DayPlace
    working_window: TimeWindow
    breaks: list[Break]
    max_duration_s: int | None
    capacity: list[int]
    skills: list[str]
    fixed_cost: float
    cost_per_km: float
    cost_per_hour: float


class DayOrder(msgspec.Struct, frozen=True, kw_only=True):
    """An order to plan; ``size`` is aligned with :attr:`DeliveryDay.dimensions` (0 if absent)."""

    order_id: OrderId
    external_ref: str
    lat: float
    lon: float
    time_windows: list[TimeWindow]
    service_s: int
    size: list[int]
    priority: int
    required_skills: list[str]
    status: OrderStatus
    service_s_given: bool = True
    """False: ``service_s`` is the organisation's default (a learned figure may replace it)."""
    address: str = ""
    customer: str | None = None
    """The customer's email, else phone: who learned service times are kept for."""
    parcels: int = 1


class DeliveryDay(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a plan of one organisation's day needs.

    ``depots`` are all the organisation's depots (a planner needs those the shifts name);
    ``shifts`` and ``orders`` are ordered by id, so loading the same day twice gives the same
    problem.
    """

    org_id: OrgId
    day: date
    timezone: str
    dimensions: list[str]
    depots: list[DayDepot]
    shifts: list[DayShift]
    orders: list[DayOrder]


_DAY_DEPOTS: Final = (
    "SELECT id AS depot_id, name, lat, lon FROM depots WHERE org_id = %s ORDER BY id"
)
_DAY_SHIFTS: Final = """
SELECT s.id AS shift_id, s.driver_id, d.name AS driver_name, d.carrier_id, s.vehicle_id,
       v.type AS vehicle_type,
       s.start_depot_id, coalesce(sd.lat, s.start_lat) AS start_lat,
       coalesce(sd.lon, s.start_lon) AS start_lon,
       s.end_depot_id, coalesce(ed.lat, s.end_lat) AS end_lat,
       coalesce(ed.lon, s.end_lon) AS end_lon,
       s.work_start, s.work_end, s.breaks, s.max_duration_s,
       v.capacity, v.skills, v.fixed_cost, v.cost_per_km, v.cost_per_hour
FROM shifts s
JOIN drivers d ON d.org_id = s.org_id AND d.id = s.driver_id
JOIN vehicles v ON v.org_id = s.org_id AND v.id = s.vehicle_id
LEFT JOIN depots sd ON sd.org_id = s.org_id AND sd.id = s.start_depot_id
LEFT JOIN depots ed ON ed.org_id = s.org_id AND ed.id = s.end_depot_id
WHERE s.org_id = %s AND s.day = %s AND s.status = 'scheduled' AND d.active AND v.active
ORDER BY s.id
"""
_DAY_ORDERS: Final = """
SELECT id AS order_id, external_ref, lat, lon, window_starts, window_ends, service_s, size,
       priority, required_skills, status, service_s_given, address,
       coalesce(nullif(email, ''), phone) AS customer,
       greatest(1, (SELECT count(*) FROM parcels p WHERE p.order_id = orders.id)::int,
                coalesce((size->>'parcels')::numeric::int, 1)) AS parcels
FROM orders WHERE org_id = %s AND day = %s AND status = ANY(%s)
ORDER BY id
"""


async def load_day(
    conn: AsyncConnection,
    org_id: OrgId,
    day: date,
    *,
    statuses: Sequence[OrderStatus] = ("pending", "planned"),
) -> DeliveryDay:
    """The depots, scheduled shifts and orders in ``statuses`` of ``org_id`` on ``day``.

    Shifts of inactive drivers or vehicles are left out. On a connection outside a
    transaction the reads run in one REPEATABLE READ transaction, so the lists are one
    consistent snapshot; inside the caller's transaction they share its isolation.
    """
    own_transaction = conn.info.transaction_status == TransactionStatus.IDLE
    async with conn.transaction():
        if own_transaction:  # only the first statement of a transaction may set this
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        settings = await org_settings(conn, org_id)
        dims = settings.dimensions
        depots = await fetch_all(conn, class_row(DayDepot), _DAY_DEPOTS, (org_id,))
        shift_rows = await fetch_all(conn, dict_row, _DAY_SHIFTS, (org_id, day))
        order_rows = await fetch_all(conn, dict_row, _DAY_ORDERS, (org_id, day, list(statuses)))
    return DeliveryDay(
        org_id=org_id,
        day=day,
        timezone=settings.timezone,
        dimensions=dims,
        depots=depots,
        shifts=[_day_shift(row, dims) for row in shift_rows],
        orders=[_day_order(row, dims) for row in order_rows],
    )


def _day_shift(row: dict[str, Any], dims: Sequence[str]) -> DayShift:
    start = DayPlace(depot_id=row["start_depot_id"], lat=row["start_lat"], lon=row["start_lon"])
    has_end = row["end_depot_id"] is not None or row["end_lat"] is not None
    return DayShift(
        shift_id=ShiftId(row["shift_id"]),
        driver_id=DriverId(row["driver_id"]),
        driver_name=row["driver_name"],
        carrier_id=row["carrier_id"],
        vehicle_id=VehicleId(row["vehicle_id"]),
        vehicle_type=row["vehicle_type"],
        start=start,
        end=(
            DayPlace(depot_id=row["end_depot_id"], lat=row["end_lat"], lon=row["end_lon"])
            if has_end
            else start
        ),
        working_window=TimeWindow(start=row["work_start"], end=row["work_end"]),
        breaks=breaks_of(row["breaks"]),
        max_duration_s=row["max_duration_s"],
        capacity=aligned(row["capacity"], dims, UNLIMITED_AMOUNT),
        skills=list(row["skills"]),
        fixed_cost=row["fixed_cost"],
        cost_per_km=row["cost_per_km"],
        cost_per_hour=row["cost_per_hour"],
    )


def _day_order(row: dict[str, Any], dims: Sequence[str]) -> DayOrder:
    return DayOrder(
        order_id=OrderId(row["order_id"]),
        external_ref=row["external_ref"],
        lat=row["lat"],
        lon=row["lon"],
        time_windows=windows_of(row["window_starts"], row["window_ends"]),
        service_s=row["service_s"],
        size=aligned(row["size"], dims, 0),
        priority=row["priority"],
        required_skills=list(row["required_skills"]),
        status=row["status"],
        service_s_given=row["service_s_given"],
        address=row["address"],
        customer=row["customer"],
        parcels=row["parcels"],
    )


def windows_of(starts: Sequence[Any], ends: Sequence[Any]) -> list[TimeWindow]:
    """Time windows from the two aligned array columns."""
    return [TimeWindow(start=s, end=e) for s, e in zip(starts, ends, strict=True)]


def breaks_of(stored: Any) -> list[Break]:
    """Breaks from their ``jsonb`` column (psycopg hands over the parsed list)."""
    return msgspec.convert(stored, list[Break])
