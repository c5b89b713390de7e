"""A realistic mixed load on one lastmile server: drivers on their routes, dispatchers watching.

    pip install 'lastmile[bench]'
    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 \\
        --lastmile-api-key lmk_... --sim-drivers 50 --sim-orders 500 --sim-speedup 60

Each locust process first creates a day of its own through the API, exactly as the fleet
simulator does (:mod:`simulator.fleet`: depot, vans, drivers with device tokens, shifts,
orders, a plan, dispatch), then runs two kinds of users:

* :class:`DriverUser` (one per dispatched route): every ``--sim-ping-interval-s`` of simulated
  time posts a fix along its route (``POST /v1/pings``, the motion model of
  :mod:`simulator.driving`), starts the route, arrives, delivers or fails stops when due;
* :class:`DispatcherUser`: reads the live positions, the day's routes, a driver's track and a
  route, every few seconds, as a dispatcher's screen would.

Simulated time runs ``--sim-speedup`` times faster than the wall clock, as in the simulator
(docs/simulator.md); a driver whose route is done stops. Spawn ``-u`` = ``--sim-drivers`` +
``--sim-dispatchers`` users: the dispatchers are a fixed count, the rest are drivers (one
without a route stops at once). The fleet's drivers are not retired at the end: run it in an
organisation of its own.
"""

# Locust is an optional extra (``bench``); without it mypy sees its decorators as untyped.
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
from locust import HttpUser, between, constant_pacing, events, task
from locust.exception import StopUser

from schemas.ping import Ping, PingBatchIn
from simulator.driving import (
    ActionKind,
    DeviceClock,
    DriverModel,
    Itinerary,
    Point,
    SimClock,
    Stop,
    derive_seed,
    draw_profiles,
)
from simulator.fleet import Api, DaySpec, create_fleet, plan_and_dispatch
from simulator.simulation import STOP_COMMANDS, default_start

_ENCODER = msgspec.json.Encoder()


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument(
        "--lastmile-api-key", env_var="LASTMILE_LOCUST_API_KEY", default="", help="admin key"
    )
    parser.add_argument("--sim-drivers", type=int, default=20, help="drivers (routes) per process")
    parser.add_argument("--sim-orders", type=int, default=200, help="orders per process")
    parser.add_argument("--sim-speedup", type=float, default=60.0, help="simulated s per wall s")
    parser.add_argument("--sim-ping-interval-s", type=float, default=5.0, help="simulated s")
    parser.add_argument("--sim-dispatchers", type=int, default=2, help="dispatcher users")
    parser.add_argument("--sim-seed", type=int, default=1)


@events.init.add_listener
def _mix(environment: Any, **kwargs: Any) -> None:
    if environment.parsed_options is not None:
        DispatcherUser.fixed_count = environment.parsed_options.sim_dispatchers
    # One log line per setup request would bury locust's own output.
    logging.getLogger("httpx").setLevel(logging.WARNING)


@dataclass
class Seat:
    """One driver's route in this process, and what it has done so far."""

    token: str
    model: DriverModel
    itinerary: Itinerary
    device_clock: DeviceClock = field(default_factory=DeviceClock)
    done: set[tuple[ActionKind, int | None]] = field(default_factory=set)
    seq: int = 0


class Day:
    """This process's simulated day, created once by the first user that needs it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free: list[Seat] = []
        self.ready = False
        self.day = ""
        self.driver_ids: list[int] = []
        self.route_ids: list[int] = []
        self.clock = SimClock(0.0, 0.0, 1.0)

    def ensure(self, host: str, options: Any) -> None:
        """Create the day unless it exists (users of one process wait for the first)."""
        if not options.lastmile_api_key:
            raise StopUser()  # nothing to do without a key; locust reports no requests
        with self._lock:
            if not self.ready:
                # The fleet code is asyncio; under gevent one loop runs to completion here.
                asyncio.run(self._create(host, options))
                self.ready = True

    def take(self, host: str, options: Any) -> Seat | None:
        """A route nobody drives yet (creating the day first), or None when all are taken."""
        self.ensure(host, options)
        with self._lock:
            return self._free.pop() if self._free else None

    async def _create(self, host: str, options: Any) -> None:
        start = default_start(datetime.now(UTC))
        spec = DaySpec(
            drivers=options.sim_drivers,
            orders=options.sim_orders,
            start=start,
            seed=options.sim_seed,
        )
        async with httpx.AsyncClient(base_url=host, timeout=30.0) as client:
            api = Api(client, options.lastmile_api_key)
            fleet = await create_fleet(api, spec, secrets.token_hex(3))
            dispatched = await plan_and_dispatch(api, fleet, time_limit_s=10.0)
        routes = [] if dispatched is None else dispatched.routes
        self.day = spec.day.isoformat()
        self.driver_ids = [d.driver_id for d in fleet.drivers]
        self.route_ids = [r.id for r in routes]
        self.clock = SimClock(time.time(), start.timestamp(), options.sim_speedup)
        profiles = draw_profiles(options.sim_seed, len(fleet.drivers), 0.2)
        index = {d.driver_id: n for n, d in enumerate(fleet.drivers)}
        tokens = {d.driver_id: d.token for d in fleet.drivers}
        depot = spec.city.depot
        for route in routes:
            n = index[route.driver_id]
            model = DriverModel(derive_seed(options.sim_seed, n), profiles[n])
            stops = [
                Stop(
                    stop_id=s.id,
                    point=Point(s.lat, s.lon),
                    service_s=s.service_s,
                    windows=tuple((w.start.timestamp(), w.end.timestamp()) for w in s.windows),
                    fail_reason=fleet.fail_reasons.get(s.order_id),
                )
                for s in route.stops
            ]
            itinerary = model.itinerary(
                depot, start.timestamp(), route.planned_start.timestamp(), stops, depot
            )
            self._free.append(Seat(tokens[route.driver_id], model, itinerary))


DAY = Day()


class DriverUser(HttpUser):  # type: ignore[misc, unused-ignore]
    """A driver app on a route: a fix every ping interval, stop outcomes when they are due."""

    seat: Seat | None = None

    def wait_time(self) -> float:
        options = self.environment.parsed_options
        return float(constant_pacing(options.sim_ping_interval_s / options.sim_speedup)(self))

    def on_start(self) -> None:
        self.seat = DAY.take(self.host, self.environment.parsed_options)

    @task
    def drive(self) -> None:
        seat, clock = self.seat, DAY.clock
        if seat is None:
            raise StopUser()  # more driver users than routes
        headers = {"authorization": f"Bearer {seat.token}"}
        for action in seat.itinerary.due(clock.sim(time.time()), seat.done):
            path = STOP_COMMANDS[action.kind].format(action.stop_id)
            body = {"reason": action.reason} if action.kind == "fail" else None
            name = path if action.stop_id is None else STOP_COMMANDS[action.kind].format("[id]")
            self.client.post(
                path,
                data=None if body is None else _ENCODER.encode(body),
                headers=headers,
                name=name,
            )
            seat.done.add(action.key)
        wall = time.time()
        fix = seat.model.fix(seat.itinerary, clock.sim(wall))
        seat.seq += 1
        batch = PingBatchIn(
            pings=[
                Ping(
                    time=seat.device_clock.stamp(wall),
                    lat=fix.lat,
                    lon=fix.lon,
                    speed_mps=fix.speed_mps,
                    heading_deg=fix.heading_deg,
                    accuracy_m=fix.accuracy_m,
                    battery_pct=fix.battery_pct,
                    seq=seat.seq,
                )
            ]
        )
        self.client.post(
            "/v1/pings",
            data=_ENCODER.encode(batch),
            headers={**headers, "content-type": "application/json"},
        )
        if clock.sim(wall) > seat.itinerary.end_s:
            raise StopUser()


class DispatcherUser(HttpUser):  # type: ignore[misc, unused-ignore]
    """A dispatcher's screen: the live map, the day's routes, a track, a route."""

    fixed_count = 2
    wait_time = between(2, 5)

    def on_start(self) -> None:
        DAY.ensure(self.host, self.environment.parsed_options)
        key = self.environment.parsed_options.lastmile_api_key
        self.client.headers["authorization"] = f"Bearer {key}"

    @task(5)
    def live_positions(self) -> None:
        self.client.get("/v1/drivers/live")

    @task(2)
    def routes_of_the_day(self) -> None:
        self.client.get(f"/v1/routes?day={DAY.day}", name="/v1/routes?day=[day]")

    @task(2)
    def a_drivers_track(self) -> None:
        if DAY.driver_ids:
            driver = random.choice(DAY.driver_ids)
            self.client.get(
                f"/v1/drivers/{driver}/positions?limit=500",
                name="/v1/drivers/[id]/positions",
            )

    @task(1)
    def a_route(self) -> None:
        if DAY.route_ids:
            self.client.get(f"/v1/routes/{random.choice(DAY.route_ids)}", name="/v1/routes/[id]")
