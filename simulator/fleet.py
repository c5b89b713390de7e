"""A simulated delivery day, created through the real API: depot, fleet, shifts, orders, plan.

Two halves. :func:`day_orders` and the other ``*_body`` functions are pure and seeded: the same
:class:`DaySpec` and run id give the same bodies. :func:`create_fleet`, :func:`plan_and_dispatch`
and :func:`retire` send them with an :class:`Api` key (role ``admin`` or ``dispatcher``).

Every run gets a fresh random run id. It is in every name, ``external_ref`` and
``Idempotency-Key`` of the run, so a retried request inside a run replays instead of creating
twice, and a new run (or a restarted one) never collides with an earlier run's orders. A
restarted run does not resume the old one: the old run's drivers are retired when it ends.
"""

from __future__ import annotations

import asyncio
import math
import random
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import httpx
import msgspec
import structlog

from schemas.delivery import (
    DepotIn,
    DeviceCreated,
    DeviceIn,
    DriverIn,
    DriverPatch,
    ImportResult,
    OrderIn,
    Parcel,
    Place,
    ShiftIn,
    TimeWindow,
    VehicleIn,
)
from schemas.ids import DepotId, DriverId, OrderId, VehicleId
from schemas.plan import DispatchRequest, DispatchResult, LeftOut, PlanRequest, PlanView
from schemas.route import RouteView
from simulator.driving import Point, round_share, shifted
from simulator.streets import StreetMap

log = structlog.get_logger(__name__)

HTTP_ATTEMPTS = 4
RETRY_BACKOFF_S = 0.25
IMPORT_CHUNK_ROWS = 1000
PLAN_QUEUE_WAIT_S = 120.0
"""How long a plan may wait for a planner worker beyond its own time limit."""
FAILURE_REASONS = (
    "nobody home",
    "address not found",
    "customer refused the parcel",
    "no access to the building",
    "shop closed",
)


# --- the city and the day -------------------------------------------------------------------


@dataclass(frozen=True)
class District:
    """A neighbourhood orders cluster in: its centre, spread and postcode."""

    name: str
    centre: Point
    postcode: str
    spread_m: float = 900.0


@dataclass(frozen=True)
class City:
    """Where the simulated day happens: a depot and the districts its customers live in."""

    name: str
    depot: Point
    depot_address: str
    districts: tuple[District, ...]
    streets: tuple[str, ...]


BERLIN = City(
    name="Berlin",
    depot=Point(52.4755, 13.3650),
    depot_address="Sachsendamm 1, 10829 Berlin",
    districts=(
        District("Mitte", Point(52.5200, 13.4050), "10117"),
        District("Prenzlauer Berg", Point(52.5390, 13.4240), "10405"),
        District("Friedrichshain", Point(52.5150, 13.4540), "10245"),
        District("Kreuzberg", Point(52.4970, 13.4030), "10999"),
        District("Neukölln", Point(52.4810, 13.4350), "12043"),
        District("Schöneberg", Point(52.4830, 13.3530), "10827"),
        District("Charlottenburg", Point(52.5160, 13.3040), "10585"),
        District("Moabit", Point(52.5300, 13.3420), "10551"),
        District("Wedding", Point(52.5500, 13.3600), "13353"),
        District("Tempelhof", Point(52.4660, 13.3850), "12099"),
    ),
    streets=(
        "Torstraße",
        "Kastanienallee",
        "Schönhauser Allee",
        "Oranienstraße",
        "Sonnenallee",
        "Karl-Marx-Straße",
        "Kantstraße",
        "Turmstraße",
        "Müllerstraße",
        "Bergmannstraße",
        "Boxhagener Straße",
        "Potsdamer Straße",
        "Invalidenstraße",
        "Danziger Straße",
        "Hauptstraße",
    ),
)

FIRST_NAMES = (
    "Ada", "Ben", "Cleo", "Dana", "Emil", "Fatma", "Goran", "Hana", "Ilja", "Jonas",
    "Kemal", "Lina", "Mila", "Noah", "Olga", "Paul", "Rosa", "Sami", "Tara", "Yusuf",
)  # fmt: skip
LAST_NAMES = (
    "Arslan", "Becker", "Costa", "Dietrich", "Engel", "Fischer", "Günther", "Hoffmann",
    "Ivanova", "Jansen", "Kaya", "Lehmann", "Müller", "Nowak", "Öztürk", "Peters",
    "Richter", "Schulz", "Weber", "Zimmermann",
)  # fmt: skip
NOTES = ("ring twice", "leave with a neighbour", "back door", "call on arrival", "3rd floor")


@dataclass(frozen=True)
class DaySpec:
    """What to create: how many drivers and orders, from when, for how long, and where.

    The shifts run from ``start`` for ``day_hours``; orders get windows of ``window_hours``
    starting on a whole hour after ``start`` (one in five has none: any time of the shift);
    exactly ``round_share(orders, fail_share)`` customers are not home.
    """

    drivers: int
    orders: int
    start: datetime
    seed: int = 1
    fail_share: float = 0.05
    day_hours: float = 8.0
    window_hours: float = 2.0
    city: City = BERLIN
    service_given: bool = True
    """Orders tell the server their service time; off, they leave it to the organisation's
    default (and to what the server learned), and only the simulator knows it."""
    streets: StreetMap | None = None
    """The city's streets: each customer lives at the street corner nearest the place drawn for
    it; None: where it was drawn."""

    @property
    def day(self) -> date:
        """The shifts' and orders' day: the UTC date of ``start``."""
        return self.start.date()

    @property
    def end(self) -> datetime:
        return self.start + timedelta(hours=self.day_hours)


@dataclass(frozen=True)
class DayOrders:
    """The day's order bodies, and the failure reason of each order whose customer is out."""

    bodies: list[OrderIn]
    fail_reasons: dict[str, str]
    service_s: dict[str, int] = field(default_factory=dict)
    """Each order's true service time, by reference (what it tells the server, unless
    :attr:`DaySpec.service_given` is off)."""

    @property
    def parcels(self) -> int:
        return sum(b.size.get("parcels", 0) for b in self.bodies)


def ascii_address(address: str) -> str:
    """``address`` lower-cased with its accents dropped (``Öztürk`` → ``ozturk``): a relay that
    does not speak SMTPUTF8 refuses other characters in an address."""
    folded = unicodedata.normalize("NFKD", address.lower().replace("ß", "ss"))
    return folded.encode("ascii", "ignore").decode()


def day_orders(spec: DaySpec, run: str, dimensions: Sequence[str]) -> DayOrders:
    """The seeded orders of the day, sized only in the organisation's ``dimensions``."""
    rng = random.Random(spec.seed)
    slots = max(0, math.floor(spec.day_hours - spec.window_hours))
    bodies = []
    truth: dict[str, int] = {}

    def service(ref: str, seconds: int) -> int | None:
        truth[ref] = seconds
        return seconds if spec.service_given else None

    for i in range(spec.orders):
        district = rng.choice(spec.city.districts)
        spot = shifted(
            district.centre,
            rng.gauss(0.0, district.spread_m),
            rng.gauss(0.0, district.spread_m),
        )
        if spec.streets is not None:
            spot = spec.streets.snap(spot)
        parcels = rng.choices((1, 2, 3), weights=(6, 3, 1))[0]
        size = {
            "parcels": parcels,
            "weight_kg": rng.randint(1, 8) * parcels,
            "volume_l": rng.randint(5, 30) * parcels,
        }
        windows = []
        if rng.random() >= 0.2:
            opens = spec.start + timedelta(hours=rng.randint(0, slots))
            windows.append(TimeWindow(start=opens, end=opens + timedelta(hours=spec.window_hours)))
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        ref = f"sim-{run}-{i:05d}"
        phone = f"+49 30 {rng.randint(1_000_000, 9_999_999)}"
        # Every customer has an email address at a reserved domain, so the demo's mail sink has
        # mail to show; the draw that once chose who had one stays, so seeded days keep the rest.
        rng.random()
        bodies.append(
            OrderIn(
                external_ref=ref,
                customer_name=f"{first} {last}",
                phone=phone,
                email=ascii_address(f"{first}.{last}.{i}@example.com"),
                address=(
                    f"{rng.choice(spec.city.streets)} {rng.randint(1, 180)}, "
                    f"{district.postcode} {spec.city.name}"
                ),
                lat=round(spot.lat, 6),
                lon=round(spot.lon, 6),
                day=spec.day,
                time_windows=windows,
                service_s=service(ref, 60 + 60 * parcels + rng.randint(0, 120)),
                size={k: v for k, v in size.items() if k in dimensions},
                priority=2 if rng.random() < 0.1 else 1,
                parcels=[Parcel(barcode=f"SIM{run.upper()}{i:05d}{n}") for n in range(parcels)],
                notes=rng.choice(NOTES) if rng.random() < 0.25 else None,
            )
        )
    failing = rng.sample(range(spec.orders), round_share(spec.orders, spec.fail_share))
    reasons = {bodies[i].external_ref: rng.choice(FAILURE_REASONS) for i in sorted(failing)}
    return DayOrders(bodies, reasons, truth)


def vehicle_body(
    spec: DaySpec, run: str, n: int, orders: DayOrders, dimensions: Sequence[str]
) -> VehicleIn:
    """Van ``n``: room for 10 % more than an equal share of the day's parcels, in ``dimensions``.

    Tight enough that the planner spreads the day over the fleet, loose enough for every order;
    no fixed cost per van used, so leaving one at the depot saves nothing.
    """
    share = math.ceil(1.1 * orders.parcels / spec.drivers) if orders.bodies else 1
    largest = max((b.size.get("parcels", 0) for b in orders.bodies), default=1)
    capacity = {"parcels": max(share, largest), "weight_kg": 1000, "volume_l": 8000}
    return VehicleIn(
        name=f"Sim van {n + 1} ({run})",
        external_ref=f"sim-{run}-van-{n + 1}",
        type="van",
        capacity={k: v for k, v in capacity.items() if k in dimensions},
        cost_per_km=0.35,
        cost_per_hour=24.0,
    )


def driver_body(spec: DaySpec, run: str, n: int, vehicle_id: VehicleId) -> DriverIn:
    """Driver ``n``, with van ``vehicle_id`` as its default vehicle."""
    rng = random.Random(spec.seed * 7919 + n)
    return DriverIn(
        name=f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)} (sim {n + 1})",
        phone=f"+49 151 {rng.randint(1_000_000, 9_999_999)}",
        external_ref=f"sim-{run}-driver-{n + 1}",
        default_vehicle_id=vehicle_id,
    )


def shift_body(
    spec: DaySpec, driver_id: DriverId, vehicle_id: VehicleId, depot_id: DepotId
) -> ShiftIn:
    """A shift from the depot and back, ``spec.day_hours`` long from ``spec.start``."""
    return ShiftIn(
        driver_id=driver_id,
        vehicle_id=vehicle_id,
        day=spec.day,
        start_place=Place(depot_id=depot_id),
        working_window=TimeWindow(start=spec.start, end=spec.end),
    )


# --- the API --------------------------------------------------------------------------------


class ApiError(Exception):
    """The API answered a request with something other than what the simulator expected."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path}: expected a 2xx answer, got {status}: {body[:300]}")
        self.method = method
        self.path = path
        self.status = status
        self.body = body


_ENCODER = msgspec.json.Encoder()
_CREATED = msgspec.json.Decoder(dict[str, object])
_DEVICE = msgspec.json.Decoder(DeviceCreated)
_IMPORT = msgspec.json.Decoder(ImportResult)
_PLAN = msgspec.json.Decoder(PlanView)
_DISPATCH = msgspec.json.Decoder(DispatchResult)
_ROUTE = msgspec.json.Decoder(RouteView)


class _Dimensions(msgspec.Struct, frozen=True):
    dimensions: list[str]


class _ShiftRow(msgspec.Struct, frozen=True):
    id: int
    driver_id: int


class _Shifts(msgspec.Struct, frozen=True):
    shifts: list[_ShiftRow]


class _DriverRow(msgspec.Struct, frozen=True):
    id: int


class _Drivers(msgspec.Struct, frozen=True):
    drivers: list[_DriverRow]


_DIMENSIONS = msgspec.json.Decoder(_Dimensions)
_DRIVERS = msgspec.json.Decoder(_Drivers)
_SHIFTS = msgspec.json.Decoder(_Shifts)


class Api:
    """The lastmile HTTP API as the simulator speaks it: JSON, an API key or a device token.

    Requests that are safe to repeat (reads, patches, creates with an ``Idempotency-Key``,
    dispatch) are retried on a broken connection or a 503, a few times with backoff.
    """

    def __init__(self, client: httpx.AsyncClient, api_key: str) -> None:
        self.client = client
        self._api_key = api_key

    def __repr__(self) -> str:
        return f"Api(base_url={str(self.client.base_url)!r})"

    async def call(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        token: str | None = None,
        idempotency_key: str | None = None,
        retry: bool | None = None,
        accept: tuple[int, ...] = (),
    ) -> httpx.Response:
        """Send one request; raise :class:`ApiError` unless the answer is 2xx or in ``accept``.

        ``token`` (a device token) replaces the API key. ``retry`` defaults to whether the
        request is safe to repeat.
        """
        headers = {"authorization": f"Bearer {token or self._api_key}"}
        if idempotency_key is not None:
            headers["idempotency-key"] = idempotency_key
        content = None
        if body is not None:
            content = _ENCODER.encode(body)
            headers["content-type"] = "application/json"
        if retry is None:
            retry = method in ("GET", "PATCH") or idempotency_key is not None
        attempts = HTTP_ATTEMPTS if retry else 1
        for attempt in range(1, attempts + 1):
            try:
                response = await self.client.request(method, path, content=content, headers=headers)
            except httpx.TransportError:
                if attempt == attempts:
                    raise
            else:
                if response.status_code != 503 or attempt == attempts:
                    break
            await asyncio.sleep(RETRY_BACKOFF_S * 2**attempt)
        if not response.is_success and response.status_code not in accept:
            raise ApiError(method, path, response.status_code, response.text)
        return response

    async def create(self, path: str, body: msgspec.Struct, key: str) -> int:
        """Create with ``Idempotency-Key: key``; the new (or replayed) resource's id."""
        response = await self.call("POST", path, body, idempotency_key=key)
        return int(str(_CREATED.decode(response.content)["id"]))


# --- the day through the API ----------------------------------------------------------------


@dataclass(frozen=True)
class FleetDriver:
    """A simulated driver: its id and name, device token, van and shift."""

    driver_id: DriverId
    name: str
    token: str
    vehicle_id: VehicleId
    shift_id: int


@dataclass(frozen=True)
class Fleet:
    """What :func:`create_fleet` made: the run, the depot, the drivers and the orders.

    ``fail_reasons`` maps an order id to why it will fail; ``other_shifts`` counts scheduled
    shifts of the day that are not this run's (the planner may give them orders nobody drives).
    """

    run: str
    spec: DaySpec
    depot_id: DepotId
    drivers: tuple[FleetDriver, ...]
    order_ids: dict[str, OrderId]
    fail_reasons: dict[OrderId, str]
    other_shifts: int
    service_s: dict[OrderId, int] = field(default_factory=dict)
    """Each order's true service time (see :attr:`DayOrders.service_s`)."""


async def create_fleet(api: Api, spec: DaySpec, run: str) -> Fleet:
    """Create the day's depot, vans, drivers with devices, shifts and orders for run ``run``."""
    dimensions = _DIMENSIONS.decode((await api.call("GET", "/v1/settings/dimensions")).content)
    orders = day_orders(spec, run, dimensions.dimensions)
    depot_body = DepotIn(
        name=f"Sim hub {spec.city.name} ({run})",
        address=spec.city.depot_address,
        lat=spec.city.depot.lat,
        lon=spec.city.depot.lon,
        external_ref=f"sim-{run}-depot",
    )
    depot = DepotId(await api.create("/v1/depots", depot_body, f"sim-{run}-depot"))
    drivers = []
    for n in range(spec.drivers):
        vehicle = VehicleId(
            await api.create(
                "/v1/vehicles",
                vehicle_body(spec, run, n, orders, dimensions.dimensions),
                f"sim-{run}-van-{n}",
            )
        )
        body = driver_body(spec, run, n, vehicle)
        driver = DriverId(await api.create("/v1/drivers", body, f"sim-{run}-driver-{n}"))
        device = _DEVICE.decode(
            (
                await api.call(
                    "POST",
                    f"/v1/drivers/{driver}/devices",
                    DeviceIn(name="simulator"),
                    idempotency_key=f"sim-{run}-device-{n}",
                )
            ).content
        )
        if device.token is None:
            # A replayed registration hides the token; register another device instead.
            raise ApiError("POST", f"/v1/drivers/{driver}/devices", 201, "the token was not shown")
        shift = await api.create(
            "/v1/shifts", shift_body(spec, driver, vehicle, depot), f"sim-{run}-shift-{n}"
        )
        drivers.append(FleetDriver(driver, body.name, device.token, vehicle, shift))
    order_ids: dict[str, OrderId] = {}
    for chunk in range(0, len(orders.bodies), IMPORT_CHUNK_ROWS):
        rows = orders.bodies[chunk : chunk + IMPORT_CHUNK_ROWS]
        response = await api.call(
            "POST", "/v1/orders/import", rows, idempotency_key=f"sim-{run}-orders-{chunk}"
        )
        result = _IMPORT.decode(response.content)
        if result.rejected:
            problem = result.rejected[0]
            raise ApiError(
                "POST",
                "/v1/orders/import",
                response.status_code,
                f"{problem.field}: {problem.reason}",
            )
        order_ids.update({row.external_ref: row.order_id for row in result.created})
        order_ids.update({row.external_ref: row.order_id for row in result.duplicates})
    # The planner takes the scheduled shifts of active drivers (not those of retired runs).
    ours = {d.shift_id for d in drivers}
    day_shifts = await api.call("GET", f"/v1/shifts?day={spec.day}&status=scheduled")
    active = _DRIVERS.decode((await api.call("GET", "/v1/drivers?active=true")).content)
    working = {d.id for d in active.drivers}
    others = sum(
        1
        for s in _SHIFTS.decode(day_shifts.content).shifts
        if s.id not in ours and s.driver_id in working
    )
    return Fleet(
        run=run,
        spec=spec,
        depot_id=depot,
        drivers=tuple(drivers),
        order_ids=order_ids,
        fail_reasons={order_ids[ref]: why for ref, why in orders.fail_reasons.items()},
        other_shifts=others,
        service_s={order_ids[ref]: s for ref, s in orders.service_s.items() if ref in order_ids},
    )


@dataclass(frozen=True)
class Dispatched:
    """A dispatched plan: the routes of this run's drivers, orders left out, orders elsewhere.

    ``elsewhere`` counts this run's orders the plan gave to shifts that are not the run's;
    they stay planned and nobody drives them.
    """

    plan_id: int
    routes: list[RouteView]
    unassigned: list[LeftOut]
    elsewhere: int


async def plan_and_dispatch(
    api: Api,
    fleet: Fleet,
    time_limit_s: float,
    *,
    poll_s: float = 0.25,
    stop: asyncio.Event | None = None,
) -> Dispatched | None:
    """Plan the run's orders, wait for the planner, dispatch the run's routes.

    Returns None when ``stop`` is set while waiting. Raises :class:`ApiError` when the plan
    fails or does not finish within its time limit plus :data:`PLAN_QUEUE_WAIT_S`.
    """
    request = PlanRequest(
        day=fleet.spec.day,
        time_limit_s=time_limit_s,
        balance_workload=True,
        order_ids=sorted(fleet.order_ids.values()),
    )
    created = await api.call("POST", "/v1/plans", request, idempotency_key=f"sim-{fleet.run}-plan")
    plan = _PLAN.decode(created.content)
    path = f"/v1/plans/{plan.id}"
    for _ in range(math.ceil((time_limit_s + PLAN_QUEUE_WAIT_S) / poll_s)):
        if plan.status in ("done", "failed"):
            break
        if stop is not None and stop.is_set():
            return None
        await asyncio.sleep(poll_s)
        plan = _PLAN.decode((await api.call("GET", path)).content)
    if plan.status != "done" or plan.outcome is None:
        raise ApiError(
            "GET", path, 200, f"expected a finished plan, got {plan.status}: {plan.error}"
        )
    ours = {d.shift_id for d in fleet.drivers}
    mine = [r.shift_id for r in plan.outcome.routes if r.shift_id in ours]
    elsewhere = sum(len(r.visits) for r in plan.outcome.routes if r.shift_id not in ours)
    routes: list[RouteView] = []
    if mine:
        answer = await api.call(
            "POST", f"{path}/dispatch", DispatchRequest(shift_ids=mine), retry=True
        )
        for route_id in _DISPATCH.decode(answer.content).route_ids:
            routes.append(_ROUTE.decode((await api.call("GET", f"/v1/routes/{route_id}")).content))
    return Dispatched(plan.id, routes, list(plan.outcome.unassigned), elsewhere)


async def retire(api: Api, fleet: Fleet) -> int:
    """Deactivate the run's drivers (their shifts leave later plans, their tokens stop working).

    Best effort: a driver that cannot be changed is logged and skipped. Returns how many were.
    """
    retired = 0
    for driver in fleet.drivers:
        try:
            await api.call("PATCH", f"/v1/drivers/{driver.driver_id}", DriverPatch(active=False))
        except (ApiError, httpx.HTTPError) as exc:
            log.warning(
                "could not retire a simulated driver", driver_id=driver.driver_id, error=str(exc)
            )
        else:
            retired += 1
    return retired
