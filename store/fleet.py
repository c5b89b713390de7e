"""The fleet tables: depots, carriers, vehicles, drivers and shifts of an organisation.

Each table is an :class:`Entity`: the columns a create or an update writes, the conversion
from its ``XIn`` body to those columns, and from a row back to the ``X`` read shape. Four
generic functions serve every entity: :func:`create`, :func:`get`, :func:`list_rows` and
:func:`update`. Updates write the whole row: the caller merges a patch into the stored state
and checks the result first (``app/fleet.py``), so a patch can never produce a row a create
would have refused.

Every statement is scoped by ``org_id``; references between rows are checked by the
database's composite foreign keys, whose violations :func:`store.delivery.translated` turns
into :class:`store.delivery.Missing`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from schemas.delivery import (
    Carrier,
    CarrierIn,
    Depot,
    DepotIn,
    Driver,
    DriverIn,
    Place,
    Shift,
    ShiftIn,
    TimeWindow,
    Vehicle,
    VehicleIn,
)
from schemas.ids import OrgId, ShiftId
from store.delivery import breaks_of, translated
from store.rows import returned

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass(frozen=True)
class Entity(Generic[In, Out]):
    """How one organisation-owned table is written from ``In`` and read into ``Out``.

    ``columns`` are the columns a create or a whole update writes, in the order
    ``values(data)`` gives them; ``select`` is the select list that ``read`` turns into
    ``Out`` (rows come as dicts keyed by the names in ``select``). Every statement is scoped
    by ``org_id``: another organisation's row reads as absent.
    """

    table: str
    columns: tuple[str, ...]
    values: Callable[[In], tuple[Any, ...]]
    select: str
    read: Callable[[dict[str, Any]], Out]


async def create(conn: AsyncConnection, entity: Entity[In, Out], org_id: OrgId, data: In) -> Out:
    """Insert ``data`` as a new row of ``org_id``; raises :class:`DeliveryError` on a refusal."""
    names = ", ".join(("org_id", *entity.columns))
    marks = ", ".join(["%s"] * (len(entity.columns) + 1))
    query = f"INSERT INTO {entity.table} ({names}) VALUES ({marks}) RETURNING {entity.select}"
    async with translated(), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, (org_id, *entity.values(data)))
        row = await cur.fetchone()
    row = returned(row)
    return entity.read(row)


async def get(
    conn: AsyncConnection,
    entity: Entity[In, Out],
    org_id: OrgId,
    row_id: int,
    *,
    lock: bool = False,
) -> Out | None:
    """Row ``row_id`` of ``org_id``, or None; ``lock`` holds it (FOR UPDATE) until commit."""
    query = f"SELECT {entity.select} FROM {entity.table} WHERE org_id = %s AND id = %s"
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query + (" FOR UPDATE" if lock else ""), (org_id, row_id))
        row = await cur.fetchone()
    return None if row is None else entity.read(row)


async def list_rows(
    conn: AsyncConnection,
    entity: Entity[In, Out],
    org_id: OrgId,
    where: str = "",
    params: Sequence[Any] = (),
) -> list[Out]:
    """Every row of ``org_id`` matching ``where`` (SQL text from constants only), by id."""
    query = f"SELECT {entity.select} FROM {entity.table} WHERE org_id = %s {where} ORDER BY id"
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, (org_id, *params))
        return [entity.read(row) for row in await cur.fetchall()]


async def update(
    conn: AsyncConnection, entity: Entity[In, Out], org_id: OrgId, row_id: int, data: In
) -> Out | None:
    """Overwrite row ``row_id`` of ``org_id`` with ``data``; None when there is no such row."""
    assignments = ", ".join(f"{column} = %s" for column in entity.columns)
    query = (
        f"UPDATE {entity.table} SET {assignments}, updated_at = now()"
        f" WHERE org_id = %s AND id = %s RETURNING {entity.select}"
    )
    async with translated(), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, (*entity.values(data), org_id, row_id))
        row = await cur.fetchone()
    return None if row is None else entity.read(row)


def _same_names(cls: type[Any]) -> Callable[[dict[str, Any]], Any]:
    """A reader for tables whose column names are the read shape's field names."""
    return lambda row: cls(**row)


def _select(*columns: str) -> str:
    return ", ".join((*columns, "id", "created_at", "updated_at"))


_DEPOT_COLUMNS: Final = ("name", "address", "lat", "lon", "external_ref", "active")
DEPOTS: Final[Entity[DepotIn, Depot]] = Entity(
    table="depots",
    columns=_DEPOT_COLUMNS,
    values=lambda d: (d.name, d.address, d.lat, d.lon, d.external_ref, d.active),
    select=_select(*_DEPOT_COLUMNS),
    read=_same_names(Depot),
)

_CARRIER_COLUMNS: Final = (
    "name",
    "kind",
    "contact_name",
    "contact_phone",
    "contact_email",
    "external_ref",
    "active",
)
CARRIERS: Final[Entity[CarrierIn, Carrier]] = Entity(
    table="carriers",
    columns=_CARRIER_COLUMNS,
    values=lambda c: (
        c.name,
        c.kind,
        c.contact_name,
        c.contact_phone,
        c.contact_email,
        c.external_ref,
        c.active,
    ),
    select=_select(*_CARRIER_COLUMNS),
    read=_same_names(Carrier),
)

_VEHICLE_COLUMNS: Final = (
    "name",
    "external_ref",
    "type",
    "capacity",
    "skills",
    "fixed_cost",
    "cost_per_km",
    "cost_per_hour",
    "carrier_id",
    "active",
    "energy",
    "consumption_per_km",
)
VEHICLES: Final[Entity[VehicleIn, Vehicle]] = Entity(
    table="vehicles",
    columns=_VEHICLE_COLUMNS,
    values=lambda v: (
        v.name,
        v.external_ref,
        v.type,
        Jsonb(v.capacity),
        sorted(set(v.skills)),
        v.fixed_cost,
        v.cost_per_km,
        v.cost_per_hour,
        v.carrier_id,
        v.active,
        v.energy,
        v.consumption_per_km,
    ),
    select=_select(*_VEHICLE_COLUMNS),
    read=_same_names(Vehicle),
)

_DRIVER_COLUMNS: Final = ("name", "phone", "external_ref", "carrier_id", "vehicle_id", "active")
DRIVERS: Final[Entity[DriverIn, Driver]] = Entity(
    table="drivers",
    columns=_DRIVER_COLUMNS,
    values=lambda d: (
        d.name,
        d.phone,
        d.external_ref,
        d.carrier_id,
        d.default_vehicle_id,
        d.active,
    ),
    select=_select(
        "name", "phone", "external_ref", "carrier_id", "vehicle_id AS default_vehicle_id", "active"
    ),
    read=_same_names(Driver),
)

_SHIFT_COLUMNS: Final = (
    "driver_id",
    "vehicle_id",
    "day",
    "start_depot_id",
    "start_lat",
    "start_lon",
    "end_depot_id",
    "end_lat",
    "end_lon",
    "work_start",
    "work_end",
    "breaks",
    "max_duration_s",
)


def _shift_values(s: ShiftIn) -> tuple[Any, ...]:
    end = s.end_place
    # no end place: all three columns NULL (the planner reads that as "back to the start")
    end_columns = (None, None, None) if end is None else (end.depot_id, end.lat, end.lon)
    return (
        s.driver_id,
        s.vehicle_id,
        s.day,
        s.start_place.depot_id,
        s.start_place.lat,
        s.start_place.lon,
        *end_columns,
        s.working_window.start,
        s.working_window.end,
        Jsonb(msgspec.to_builtins(s.breaks)),
        s.max_duration_s,
    )


def _place(depot_id: Any, lat: Any, lon: Any) -> Place | None:
    if depot_id is None and lat is None:
        return None
    return Place(depot_id=depot_id, lat=lat, lon=lon)


def _shift(row: dict[str, Any]) -> Shift:
    start = _place(row["start_depot_id"], row["start_lat"], row["start_lon"])
    if start is None:  # the shifts_start_place constraint forbids it
        raise ValueError(f"shift {row['id']} has no start place")
    return Shift(
        id=ShiftId(row["id"]),
        driver_id=row["driver_id"],
        vehicle_id=row["vehicle_id"],
        day=row["day"],
        start_place=start,
        end_place=_place(row["end_depot_id"], row["end_lat"], row["end_lon"]),
        working_window=TimeWindow(start=row["work_start"], end=row["work_end"]),
        breaks=breaks_of(row["breaks"]),
        max_duration_s=row["max_duration_s"],
        status=row["status"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


SHIFTS: Final[Entity[ShiftIn, Shift]] = Entity(
    table="shifts",
    columns=_SHIFT_COLUMNS,
    values=_shift_values,
    select=_select(*_SHIFT_COLUMNS, "status"),
    read=_shift,
)


async def cancel_shift(conn: AsyncConnection, org_id: OrgId, shift_id: ShiftId) -> Shift | None:
    """Mark a shift of ``org_id`` cancelled (again, harmlessly); None when there is none."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "UPDATE shifts SET status = 'cancelled',"
            " updated_at = CASE WHEN status = 'cancelled' THEN updated_at ELSE now() END"
            f" WHERE org_id = %s AND id = %s RETURNING {SHIFTS.select}",
            (org_id, shift_id),
        )
        row = await cur.fetchone()
    return None if row is None else _shift(row)
