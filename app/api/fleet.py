"""The fleet API: depots, carriers, vehicles, drivers (and their devices), shifts, dimensions.

Depots, carriers, vehicles, drivers and shifts share one shape, built by :func:`collection`
and :func:`item` from a :class:`Kind`:

* ``GET /v1/<kind>``: every row of the caller's organisation, by id (admin, dispatcher,
  integration);
* ``POST /v1/<kind>``: create, ``201`` with the row; accepts ``Idempotency-Key`` (admin,
  dispatcher);
* ``GET /v1/<kind>/{id}``, ``PATCH /v1/<kind>/{id}``: read, and change some fields. A patch
  is merged into the stored row under a lock and the result is checked like a create.

Another organisation's rows answer 404 exactly like missing ones; a body naming another
organisation's id (``carrier_id``) is a 400 naming the field, like an id that does not exist;
a list filter naming one (``GET /v1/shifts?driver_id=``) is a 422 naming the parameter.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import msgspec
from psycopg import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response

from app.api import credentials
from app.api.checks import check_amounts, check_window
from app.api.order_import import RESERVED_COLUMNS
from app.auth import ADMINS, FLEET_WRITERS, READERS, issue_device_token, token_prefix
from app.errors import BadParameter, Conflict, InvalidField, NotFound, UnknownIds
from app.http import (
    answer,
    ascii_int,
    decode,
    encode,
    merge,
    path_id,
    query_date,
    request_body,
    resources_of,
)
from app.idempotency import Answer, run_create
from app.resources import Resources
from schemas.auth import ApiPrincipal, Role
from schemas.delivery import (
    CarrierIn,
    CarrierPatch,
    DepotIn,
    DepotPatch,
    DeviceCreated,
    DeviceIn,
    Dimensions,
    Driver,
    DriverIn,
    DriverPatch,
    Shift,
    ShiftIn,
    ShiftPatch,
    VehicleIn,
    VehiclePatch,
)
from schemas.ids import MAX_ID, DeviceId, DriverId, OrgId, ShiftId
from store import fleet
from store.delivery import Missing, org_settings, set_dimensions

In = TypeVar("In", bound=msgspec.Struct)
Out = TypeVar("Out", bound=msgspec.Struct)

Prepare = Callable[[AsyncConnection, OrgId, Any], Awaitable[Any]]
Changed = Callable[[Resources, OrgId, Any, Any], Awaitable[None]]
Filters = Callable[[Request, AsyncConnection, OrgId], Awaitable[tuple[str, list[Any]]]]


async def _by_active(
    request: Request, conn: AsyncConnection, org_id: OrgId
) -> tuple[str, list[Any]]:
    """``?active=true|false`` filters on the ``active`` column."""
    raw = request.query_params.get("active")
    if raw is None or raw == "":
        return "", []
    if raw not in ("true", "false"):
        raise BadParameter("active", f"expected true or false, got {raw!r}")
    return "AND active = %s", [raw == "true"]


async def _shift_filters(
    request: Request, conn: AsyncConnection, org_id: OrgId
) -> tuple[str, list[Any]]:
    """``?day=YYYY-MM-DD``, ``?driver_id=N`` (a driver of the organisation, else 422),
    ``?status=scheduled|cancelled``."""
    clauses: list[str] = []
    params: list[Any] = []
    day = query_date(request, "day")
    if day is not None:
        clauses, params = [*clauses, "AND day = %s"], [*params, day]
    raw_driver = request.query_params.get("driver_id")
    if raw_driver:
        driver_id = ascii_int(raw_driver)
        if driver_id is None or not 0 < driver_id <= MAX_ID:
            raise BadParameter("driver_id", f"expected a driver id, got {raw_driver!r}")
        if await fleet.get(conn, fleet.DRIVERS, org_id, driver_id) is None:
            raise UnknownIds("driver_id", [driver_id])
        clauses, params = [*clauses, "AND driver_id = %s"], [*params, driver_id]
    status = request.query_params.get("status")
    if status:
        if status not in ("scheduled", "cancelled"):
            raise BadParameter("status", f"expected scheduled or cancelled, got {status!r}")
        clauses, params = [*clauses, "AND status = %s"], [*params, status]
    return " ".join(clauses), params


async def _as_is(conn: AsyncConnection, org_id: OrgId, data: In) -> In:
    return data


@dataclass(frozen=True)
class Kind(Generic[In, Out]):
    """One fleet resource: its table, body types, and the checks beyond its schema.

    ``prepare`` checks a complete body (a create, or a patch merged into the stored row)
    against the organisation and may fill defaults; it raises :class:`InvalidField`.
    ``editable`` says why a stored row may not be patched, or None when it may; ``filters``
    reads the list's query parameters into SQL conditions (constant text, bound values),
    looking up on the connection the ids they name (another organisation's: 422).
    ``changed`` runs after a patch committed, with the row before and after it.
    """

    noun: str
    entity: fleet.Entity[In, Out]
    create: type[In]
    patch: type[msgspec.Struct]
    prepare: Prepare = _as_is
    editable: Callable[[Out], str | None] = field(default=lambda row: None)
    filters: Filters = _by_active
    changed: Changed | None = None


async def _principal(request: Request, roles: tuple[Role, ...]) -> ApiPrincipal:
    return await resources_of(request).auth.require_api_key(request, roles)


def collection(kind: Kind[In, Out]) -> Callable[[Request], Awaitable[Response]]:
    """``GET`` (list) and ``POST`` (create) on ``/v1/<kind>``."""

    async def handle(request: Request) -> Response:
        if request.method == "GET":
            principal = await _principal(request, READERS)
            async with resources_of(request).pool.connection() as conn:
                where, params = await kind.filters(request, conn, principal.org_id)
                rows = await fleet.list_rows(conn, kind.entity, principal.org_id, where, params)
            return answer({f"{kind.noun}s": rows})
        principal = await _principal(request, FLEET_WRITERS)
        body = await request_body(request)
        data = decode(body, request.headers.get("content-type"), kind.create)

        async def command(conn: AsyncConnection) -> Answer:
            prepared = await kind.prepare(conn, principal.org_id, data)
            created = await fleet.create(conn, kind.entity, principal.org_id, prepared)
            return Answer(201, encode(created))

        return await run_create(request, principal, body, command)

    return handle


def item(kind: Kind[In, Out]) -> Callable[[Request], Awaitable[Response]]:
    """``GET`` and ``PATCH`` on ``/v1/<kind>/{id}``."""
    param = f"{kind.noun}_id"

    async def handle(request: Request) -> Response:
        row_id = path_id(request, param)
        missing = NotFound(f"no {kind.noun} {row_id} in this organisation")
        pool = resources_of(request).pool
        if request.method == "GET":
            principal = await _principal(request, READERS)
            async with pool.connection() as conn:
                found = await fleet.get(conn, kind.entity, principal.org_id, row_id)
            if found is None:
                raise missing
            return answer(found)
        principal = await _principal(request, FLEET_WRITERS)
        body = await request_body(request)
        patch = decode(body, request.headers.get("content-type"), kind.patch)
        org_id = principal.org_id
        async with pool.connection() as conn, conn.transaction():
            current = await fleet.get(conn, kind.entity, org_id, row_id, lock=True)
            if current is None:
                raise missing
            refusal = kind.editable(current)
            if refusal is not None:
                raise Conflict("status", refusal)
            merged = await kind.prepare(conn, org_id, merge(current, patch, kind.create))
            updated = await fleet.update(conn, kind.entity, org_id, row_id, merged)
        if kind.changed is not None and updated is not None:
            await kind.changed(resources_of(request), org_id, current, updated)
        return answer(updated)

    return handle


# --- the checks of each kind ----------------------------------------------------------------


async def _vehicle(conn: AsyncConnection, org_id: OrgId, data: VehicleIn) -> VehicleIn:
    settings = await org_settings(conn, org_id)
    check_amounts(data.capacity, "capacity", settings.dimensions)
    return data


async def _shift(conn: AsyncConnection, org_id: OrgId, data: ShiftIn) -> ShiftIn:
    settings = await org_settings(conn, org_id)
    window = data.working_window
    check_window(window.start, window.end, "working_window", data.day, settings.timezone)
    for n, pause in enumerate(data.breaks):
        if pause.latest_start < pause.earliest_start:
            raise InvalidField(
                f"breaks[{n}].latest_start",
                f"expected a time at or after earliest_start {pause.earliest_start.isoformat()},"
                f" got {pause.latest_start.isoformat()}",
            )
        if pause.earliest_start < window.start or pause.latest_start > window.end:
            raise InvalidField(
                f"breaks[{n}]",
                f"expected a break that starts inside the working window"
                f" {window.start.isoformat()} to {window.end.isoformat()}",
            )
    if data.vehicle_id is not None:
        return data
    driver = await fleet.get(conn, fleet.DRIVERS, org_id, data.driver_id)
    if driver is None:
        raise Missing(
            "driver_id",
            f"expected the id of a driver of this organisation, got {data.driver_id}",
        )
    if driver.default_vehicle_id is None:
        raise InvalidField("vehicle_id", "the driver has no default vehicle; expected a vehicle_id")
    return msgspec.structs.replace(data, vehicle_id=driver.default_vehicle_id)


def _shift_editable(shift: Shift) -> str | None:
    if shift.status == "scheduled":
        return None
    return f"expected a scheduled shift, got status {shift.status}"


DEPOTS = Kind("depot", fleet.DEPOTS, DepotIn, DepotPatch)
CARRIERS = Kind("carrier", fleet.CARRIERS, CarrierIn, CarrierPatch)
VEHICLES = Kind("vehicle", fleet.VEHICLES, VehicleIn, VehiclePatch, _vehicle)


async def _driver_changed(
    resources: Resources, org_id: OrgId, before: Driver, after: Driver
) -> None:
    """A driver made inactive is refused on every device at once, in every process."""
    if before.active and not after.active:
        await credentials.driver_deactivated(resources, org_id, after.id)
    elif after.active and not before.active:
        await credentials.driver_reactivated(resources, org_id, after.id)


DRIVERS = Kind("driver", fleet.DRIVERS, DriverIn, DriverPatch, changed=_driver_changed)
SHIFTS = Kind("shift", fleet.SHIFTS, ShiftIn, ShiftPatch, _shift, _shift_editable, _shift_filters)

depots, depot = collection(DEPOTS), item(DEPOTS)
carriers, carrier = collection(CARRIERS), item(CARRIERS)
vehicles, vehicle = collection(VEHICLES), item(VEHICLES)
drivers, driver = collection(DRIVERS), item(DRIVERS)
shifts, shift = collection(SHIFTS), item(SHIFTS)


# --- the routes that are not plain create/read/update ---------------------------------------


async def cancel_shift(request: Request) -> Response:
    """``POST /v1/shifts/{shift_id}/cancel``: the shift is no longer planned (idempotent)."""
    principal = await _principal(request, FLEET_WRITERS)
    shift_id = ShiftId(path_id(request, "shift_id"))
    async with resources_of(request).pool.connection() as conn:
        cancelled = await fleet.cancel_shift(conn, principal.org_id, shift_id)
    if cancelled is None:
        raise NotFound(f"no shift {shift_id} in this organisation")
    return answer(cancelled)


async def new_device(
    conn: AsyncConnection, org_id: OrgId, driver_id: DriverId, name: str
) -> tuple[DeviceId, str]:
    """Register a device for the driver: its id and token (to be shown once), or 404."""
    issued = await issue_device_token(conn, org_id, driver_id, name=name)
    if issued is None:
        raise NotFound(f"no driver {driver_id} in this organisation")
    return issued


async def devices(request: Request) -> Response:
    """``GET`` (list, :func:`app.api.credentials.devices`) and ``POST`` (register)
    ``/v1/drivers/{driver_id}/devices``."""
    if request.method == "GET":
        return await credentials.devices(request)
    return await add_device(request)


async def add_device(request: Request) -> Response:
    """``POST /v1/drivers/{driver_id}/devices``: a new device token, shown in this answer only."""
    principal = await _principal(request, FLEET_WRITERS)
    driver_id = DriverId(path_id(request, "driver_id"))
    body = await request_body(request)
    data = decode(body, request.headers.get("content-type"), DeviceIn, empty_ok=True)

    async def command(conn: AsyncConnection) -> Answer:
        device_id, token = await new_device(conn, principal.org_id, driver_id, data.name)
        shown = DeviceCreated(
            device_id=device_id,
            driver_id=driver_id,
            name=data.name,
            token=token,
            token_prefix=token_prefix(token),
        )
        replay = msgspec.structs.replace(shown, token=None)
        return Answer(201, encode(shown), encode(replay))

    return await run_create(request, principal, body, command)


async def dimensions(request: Request) -> Response:
    """``GET`` (any reader) and ``PUT`` (admin) ``/v1/settings/dimensions``."""
    if request.method == "GET":
        principal = await _principal(request, READERS)
        async with resources_of(request).pool.connection() as conn:
            settings = await org_settings(conn, principal.org_id)
        return answer(Dimensions(dimensions=settings.dimensions))
    principal = await _principal(request, ADMINS)
    wanted = decode(await request_body(request), request.headers.get("content-type"), Dimensions)
    seen: set[str] = set()
    for n, name in enumerate(wanted.dimensions):
        if name in seen:
            raise InvalidField(f"dimensions[{n}]", f"expected each name once, got {name!r} again")
        if name in RESERVED_COLUMNS:  # it would clash with a column of the CSV import
            raise InvalidField(f"dimensions[{n}]", f"expected a name with a unit, got {name!r}")
        seen.add(name)
    async with resources_of(request).pool.connection() as conn:
        stored = await set_dimensions(conn, principal.org_id, wanted.dimensions)
    return answer(Dimensions(dimensions=stored))
