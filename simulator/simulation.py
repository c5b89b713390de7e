"""The fleet simulator: a delivery day driven through the real API, end to end.

:class:`Simulation` creates a day (:mod:`simulator.fleet`), plans and dispatches it, then
drives every driver that got a route along it (:mod:`simulator.driving`), as a driver app
would: one WebSocket per driver (``/v1/driver/ws``) carrying one ``ping`` message per fix,
each awaited until its ``ack``, and the route start and stop outcomes over HTTP with the
driver's device token. A route change pushed on the socket (a cancelled or inserted order, a
moved stop, a re-sequence) is followed from where the driver is.

Time. Simulated time starts at the shifts' start and runs ``speedup`` times faster than the
wall clock from the moment the routes are dispatched. Positions, dwell times and stop commands
follow simulated time; a fix's device time is the real time it is sent (ingest accepts device
times at most 5 minutes ahead and 7 days old), strictly increasing per driver. So at a speedup
above 1 the track's timestamps are compressed: the day's 8 hours of movement arrive in 48
minutes at 10×, and speeds computed from consecutive fixes are ``speedup`` times what the fixes
report. ``speedup=1`` gives a faithful real-time day.

Everything is bounded: the plan wait, every request (timeouts, a few retries), and each
driver's loop, which ends when its itinerary is done, when ``stop`` is set, or at the latest
:data:`DEADLINE_SLACK_S` of wall time after its itinerary should have ended. At the end, the
run's drivers are retired (:func:`simulator.fleet.retire`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import msgspec
import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from schemas.driver_ws import Ack, ErrorMessage, PingMessage, RouteMessage, ServerMessage
from schemas.ids import DriverId, OrderId
from schemas.route import RouteStop, RouteView
from simulator.driving import (
    Action,
    ActionKind,
    CatchUpClock,
    DeviceClock,
    DriverModel,
    Itinerary,
    Point,
    SimClock,
    Stop,
    derive_seed,
    draw_profiles,
)
from simulator.fleet import Api, ApiError, DaySpec, Fleet, create_fleet, plan_and_dispatch, retire
from simulator.streets import berlin
from simulator.world import World

log = structlog.get_logger(__name__)

HTTP_TIMEOUT_S = 15.0
ACK_TIMEOUT_S = 10.0
LINK_ATTEMPTS = 3
DEADLINE_SLACK_S = 60.0
"""Wall time a driver may run past its itinerary's end (slow requests) before it gives up."""
STOP_COMMANDS: dict[ActionKind, str] = {
    "start": "/v1/driver/route/start",
    "arrive": "/v1/driver/stops/{}/arrive",
    "deliver": "/v1/driver/stops/{}/deliver",
    "fail": "/v1/driver/stops/{}/fail",
}
OPEN_STATUSES = ("pending", "arrived")
CLOSED_STATUSES = ("delivered", "failed")


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate and against which server. ``api_key``: role admin or dispatcher.

    ``start`` is when the simulated shifts begin (default: now, to the minute, UTC).
    """

    url: str
    api_key: str = field(repr=False)
    drivers: int = 10
    orders: int = 100
    speedup: float = 10.0
    delay_share: float = 0.2
    fail_share: float = 0.05
    seed: int = 1
    ping_interval_s: float = 5.0
    day_hours: float = 8.0
    window_hours: float = 2.0
    plan_time_limit_s: float = 5.0
    progress_every_s: float = 60.0
    start: datetime | None = None
    under_way_h: float = 0.0
    """A day already under way: its shifts began this many hours before the run (``start``
    moves back as much). What the drivers did since is replayed within seconds, with its own
    past times (fixes, arrivals, deliveries), and the rest of the day runs on the server's clock.
    Needs ``speedup`` 1."""
    tracking_links: int = 3
    """How many customers' tracking links to print once the day is dispatched."""
    ca_file: Path | None = None
    """Certificates to trust for an ``https`` server (a local authority's), besides the
    system's."""
    world: World | None = None
    """The city's hidden truth (zone, hour and city-wide speeds, customers' service times) the
    drivers live in and the planner does not know; None: the planner's own model, noise aside."""
    service_given: bool = True
    """Orders tell the server their service time; off, only the simulator knows it (the
    organisation's default, and what was learned, stand in for it when planning)."""
    fleet_seed: int | None = None
    """The seed of the drivers themselves (each one's pace, battery and jam): the same value on
    runs with different ``seed`` drives the same fleet on other days; None: ``seed``."""
    streets: bool = False
    """Drive along the city's streets (the packaged street map, :mod:`simulator.streets`),
    customers living on them; off, straight lines between places as the planner assumes."""

    def tls(self) -> ssl.SSLContext | None:
        """How HTTPS and WSS connections check the server: None for plain HTTP."""
        if not self.url.startswith("https:"):
            return None
        context = ssl.create_default_context()
        if self.ca_file is not None:
            context.load_verify_locations(cafile=str(self.ca_file))
        return context

    def __post_init__(self) -> None:
        checks = [
            ("drivers", self.drivers, 1, 1000),
            ("orders", self.orders, 1, 50_000),
            ("speedup", self.speedup, 0.01, 100_000),
            ("delay_share", self.delay_share, 0, 1),
            ("fail_share", self.fail_share, 0, 1),
            ("ping_interval_s", self.ping_interval_s, 0.1, 3600),
            ("day_hours", self.day_hours, 0.5, 12),
            ("window_hours", self.window_hours, 0.25, self.day_hours),
            ("plan_time_limit_s", self.plan_time_limit_s, 0.1, 3600),
        ]
        for name, value, low, high in checks:
            if not low <= value <= high:
                raise ValueError(f"expected {name} in [{low}, {high}], got {value}")
        if not 0 <= self.under_way_h < self.day_hours:
            raise ValueError(
                f"expected under_way_h in [0, {self.day_hours:g}), got {self.under_way_h}"
            )
        if self.under_way_h and self.speedup != 1:
            raise ValueError(f"expected speedup 1 for a day under way, got {self.speedup:g}")
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL, got {self.url!r}")
        if self.start is not None and self.start.tzinfo is None:
            raise ValueError(f"expected a timezone-aware start, got {self.start.isoformat()}")


def default_start(now: datetime) -> datetime:
    """The simulated day's start for a run begun at ``now``: the minute, in UTC."""
    return now.astimezone(UTC).replace(second=0, microsecond=0)


@dataclass
class DriverReport:
    """What one simulated driver did."""

    driver_id: int
    name: str
    route_id: int | None = None
    stops: int = 0
    delivered: int = 0
    failed: int = 0
    refused: int = 0
    pings_accepted: int = 0
    pings_rejected: int = 0
    pings_lost: int = 0
    replans: int = 0
    finished: bool = False
    error: str | None = None


@dataclass(frozen=True)
class Summary:
    """The outcome of a run; ``stopped_early`` when ``stop`` ended it before every route did.

    ``unassigned``: orders the plan left out; ``elsewhere``: orders it gave to shifts that are
    not the run's; ``other_shifts``: such shifts, scheduled on the day for active drivers.
    """

    run: str
    day: date
    orders: int
    unassigned: int
    elsewhere: int
    other_shifts: int
    drivers: tuple[DriverReport, ...]
    wall_s: float
    stopped_early: bool

    @property
    def routes(self) -> int:
        return sum(1 for d in self.drivers if d.route_id is not None)

    @property
    def delivered(self) -> int:
        return sum(d.delivered for d in self.drivers)

    @property
    def failed(self) -> int:
        return sum(d.failed for d in self.drivers)

    @property
    def pings(self) -> int:
        return sum(d.pings_accepted for d in self.drivers)

    def describe(self) -> str:
        """One paragraph for people."""
        ending = "stopped early" if self.stopped_early else "finished"
        text = (
            f"Simulation {self.run} {ending} after {self.wall_s:.0f} s: {self.routes} routes, "
            f"{self.delivered} delivered, {self.failed} failed of {self.orders} orders, "
            f"{self.pings} pings accepted"
        )
        rejected = sum(d.pings_rejected + d.pings_lost for d in self.drivers)
        extras = [
            f"{self.unassigned} orders left out by the plan" if self.unassigned else "",
            f"{self.elsewhere} orders on routes of other drivers" if self.elsewhere else "",
            f"{rejected} pings rejected or lost" if rejected else "",
            f"{sum(d.refused for d in self.drivers)} stop commands refused"
            if any(d.refused for d in self.drivers)
            else "",
        ]
        notes = "; ".join(e for e in extras if e)
        return text + (f" ({notes})." if notes else ".")


def _quiet(line: str) -> None:
    pass


_PING_ENCODER = msgspec.json.Encoder()
_SERVER_DECODER = msgspec.json.Decoder(ServerMessage)
_ROUTE_DECODER = msgspec.json.Decoder(RouteView)


class LinkError(Exception):
    """A driver's socket could not deliver a ping after :data:`LINK_ATTEMPTS` tries."""


class DriverLink:
    """One driver app's socket: pings out, each awaited until acknowledged; routes in.

    A ping without an ack is re-sent on a new connection (ingest stores it once). ``route`` is
    the newest route the server pushed (or that a driver command answered).
    """

    def __init__(self, ws_url: str, token: str, tls: ssl.SSLContext | None = None) -> None:
        self._url = ws_url
        self._token = token
        self._tls = tls
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiting: dict[int, asyncio.Future[Ack | ErrorMessage]] = {}
        self.route: RouteView | None = None

    def offer(self, route: RouteView) -> None:
        """Keep ``route`` if it is at least as new as the one known."""
        if self.route is None or route.version >= self.route.version:
            self.route = route

    async def ping(self, message: PingMessage) -> Ack | ErrorMessage:
        """Send ``message`` (its ``id`` set) and return the server's answer to it."""
        if message.id is None:
            raise ValueError("expected a ping message with an id, got id=None")
        for attempt in range(1, LINK_ATTEMPTS + 1):
            answer = asyncio.get_running_loop().create_future()
            self._waiting[message.id] = answer
            try:
                ws = await self._connected()
                await ws.send(_PING_ENCODER.encode(message).decode())
                return await asyncio.wait_for(answer, ACK_TIMEOUT_S)
            except (WebSocketException, OSError, TimeoutError, ConnectionError) as exc:
                log.info("driver socket dropped; reconnecting", attempt=attempt, error=repr(exc))
                await self.close()
                await asyncio.sleep(0.2 * attempt)
            finally:
                self._waiting.pop(message.id, None)
        raise LinkError(f"no ack for ping {message.id} after {LINK_ATTEMPTS} attempts")

    async def close(self) -> None:
        """Close the socket (a later :meth:`ping` opens a new one)."""
        ws, reader = self._ws, self._reader
        self._ws = self._reader = None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        if ws is not None:
            with contextlib.suppress(WebSocketException, OSError):
                await ws.close()

    async def _connected(self) -> ClientConnection:
        if self._ws is None:
            self._ws = await connect(
                self._url,
                additional_headers={"authorization": f"Bearer {self._token}"},
                open_timeout=HTTP_TIMEOUT_S,
                ssl=self._tls,
            )
            self._reader = asyncio.create_task(self._read(self._ws))
        return self._ws

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for frame in ws:
                try:
                    message = _SERVER_DECODER.decode(frame)
                except msgspec.DecodeError:
                    continue  # a message type this client does not know: ignore it
                if isinstance(message, RouteMessage):
                    self.offer(message.route)
                elif message.id is not None and message.id in self._waiting:
                    waiter = self._waiting[message.id]
                    if not waiter.done():
                        waiter.set_result(message)
        except WebSocketException:
            pass
        finally:
            for waiter in self._waiting.values():
                if not waiter.done():
                    waiter.set_exception(ConnectionError("the driver socket closed"))


@dataclass
class _Seat:
    """One driver at work: its model, itinerary, socket, clocks and what it has done."""

    token: str
    model: DriverModel
    itinerary: Itinerary
    link: DriverLink
    report: DriverReport
    fail_reasons: dict[OrderId, str]
    depot: Point
    service_s: dict[OrderId, int] = field(default_factory=dict)
    device_clock: DeviceClock = field(default_factory=DeviceClock)
    done: set[tuple[ActionKind, int | None]] = field(default_factory=set)
    seq: int = 0
    followed: RouteView | None = None


class Simulation:
    """One run of the simulator; :meth:`run` returns its :class:`Summary`.

    ``say`` receives progress lines for people; ``stop``, when set, ends the run early (the
    drivers stop where they are, are retired, and the summary says ``stopped_early``).
    """

    def __init__(
        self,
        config: SimulationConfig,
        *,
        say: Callable[[str], None] = _quiet,
        stop: asyncio.Event | None = None,
    ) -> None:
        self.config = config
        self.run_id = secrets.token_hex(3)
        start = config.start or default_start(datetime.now(UTC))
        self.spec = DaySpec(
            drivers=config.drivers,
            orders=config.orders,
            start=start - timedelta(hours=config.under_way_h),
            seed=config.seed,
            fail_share=config.fail_share,
            day_hours=config.day_hours,
            window_hours=config.window_hours,
            service_given=config.service_given,
            streets=berlin() if config.streets else None,
        )
        self._say = say
        self._stop = stop or asyncio.Event()
        self._ws_url = config.url.replace("http", "ws", 1).rstrip("/") + "/v1/driver/ws"
        self._tls = config.tls()
        self._real_time = config.speedup == 1
        """Simulated time is the server's: fixes carry it as their device time, and stop
        commands say when they happened (``at``)."""

    def __repr__(self) -> str:
        return f"Simulation(run={self.run_id!r}, config={self.config!r})"

    async def run(self) -> Summary:
        """Create the day, plan and dispatch it, drive it, retire the drivers."""
        began = time.monotonic()
        c, spec = self.config, self.spec
        async with httpx.AsyncClient(
            base_url=c.url, timeout=HTTP_TIMEOUT_S, verify=self._tls or True
        ) as client:
            api = Api(client, c.api_key)
            self._say(
                f"Simulation {self.run_id}: creating {spec.day} in {spec.city.name} — "
                f"{c.drivers} drivers, {c.orders} orders, shifts from {spec.start:%H:%M} UTC "
                f"for {c.day_hours:g} h"
            )
            fleet = await create_fleet(api, spec, self.run_id)
            reports = {d.driver_id: DriverReport(d.driver_id, d.name) for d in fleet.drivers}
            dispatched = None
            try:
                if fleet.other_shifts:
                    self._say(
                        f"  note: {fleet.other_shifts} other shifts are scheduled on {spec.day}; "
                        "the plan may give them orders nobody drives"
                    )
                self._say(f"  planning (up to {c.plan_time_limit_s:g} s)")
                dispatched = await plan_and_dispatch(
                    api, fleet, c.plan_time_limit_s, stop=self._stop
                )
                if dispatched is not None:
                    await self._show_tracking_links(api, dispatched.routes)
                    await self._drive_all(api, fleet, dispatched.routes, reports)
            finally:
                retired = await retire(api, fleet)
                log.info("simulated drivers retired", run=self.run_id, retired=retired)
        summary = Summary(
            run=self.run_id,
            day=spec.day,
            orders=c.orders,
            unassigned=0 if dispatched is None else len(dispatched.unassigned),
            elsewhere=0 if dispatched is None else dispatched.elsewhere,
            other_shifts=fleet.other_shifts,
            drivers=tuple(reports.values()),
            wall_s=time.monotonic() - began,
            stopped_early=self._stop.is_set()
            and (
                dispatched is None
                or not all(r.finished for r in reports.values() if r.route_id is not None)
            ),
        )
        self._say(summary.describe())
        return summary

    async def _show_tracking_links(self, api: Api, routes: list[RouteView]) -> None:
        """Print customer pages to watch: the second stop of the first few routes (the first
        is next as soon as the route starts; the second shows the whole progression)."""
        base = self.config.url.rstrip("/")
        chosen = [r.stops[min(1, len(r.stops) - 1)] for r in routes if r.stops]
        for stop in chosen[: self.config.tracking_links]:
            response = await api.call("POST", f"/v1/orders/{stop.order_id}/tracking")
            link = response.json()
            url = link["url"] if link["url"].startswith("http") else base + link["url"]
            self._say(f"  customer page  {url}  (order {stop.order_ref})")

    async def _drive_all(
        self,
        api: Api,
        fleet: Fleet,
        routes: list[RouteView],
        reports: dict[DriverId, DriverReport],
    ) -> None:
        c = self.config
        depot = fleet.spec.city.depot
        clock: SimClock | CatchUpClock = (
            CatchUpClock(time.time(), fleet.spec.start.timestamp())
            if c.under_way_h
            else SimClock(time.time(), fleet.spec.start.timestamp(), c.speedup)
        )
        fleet_seed = c.seed if c.fleet_seed is None else c.fleet_seed
        profiles = draw_profiles(fleet_seed, c.drivers, c.delay_share)
        tokens = {d.driver_id: d.token for d in fleet.drivers}
        index = {d.driver_id: n for n, d in enumerate(fleet.drivers)}
        seats = []
        for route in routes:
            n = index[route.driver_id]
            model = DriverModel(
                derive_seed(c.seed, n), profiles[n], world=c.world, streets=fleet.spec.streets
            )
            stops = [self._stop_of(s, fleet.fail_reasons, fleet.service_s) for s in route.stops]
            itinerary = model.itinerary(
                depot, clock.sim_start_s, route.planned_start.timestamp(), stops, depot
            )
            report = reports[route.driver_id]
            report.route_id, report.stops = route.id, len(route.stops)
            link = DriverLink(self._ws_url, tokens[route.driver_id], self._tls)
            link.offer(route)
            seats.append(
                _Seat(
                    tokens[route.driver_id],
                    model,
                    itinerary,
                    link,
                    report,
                    fleet.fail_reasons,
                    depot,
                    service_s=fleet.service_s,
                )
            )
        if not seats:
            self._say("  no route was dispatched to the simulated drivers")
            return
        last_s = max(s.itinerary.end_s for s in seats)
        wall = timedelta(seconds=round(clock.wall(last_s) - clock.wall_start_s))
        replayed = f" (the first {c.under_way_h:g} h replayed in seconds)" if c.under_way_h else ""
        self._say(
            f"  driving {len(seats)} routes: simulated {fleet.spec.start:%H:%M}–"
            f"{datetime.fromtimestamp(last_s, UTC):%H:%M} UTC at {c.speedup:g}×, "
            f"about {wall} of wall time{replayed}"
        )
        progress = asyncio.create_task(self._report_progress(clock, seats))
        try:
            await asyncio.gather(*(self._drive(api, clock, seat) for seat in seats))
        finally:
            progress.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await progress

    @staticmethod
    def _stop_of(
        stop: RouteStop, fail_reasons: dict[OrderId, str], service_s: dict[OrderId, int]
    ) -> Stop:
        return Stop(
            stop_id=stop.id,
            point=Point(stop.lat, stop.lon),
            service_s=service_s.get(stop.order_id, stop.service_s),
            windows=tuple((w.start.timestamp(), w.end.timestamp()) for w in stop.windows),
            fail_reason=fail_reasons.get(stop.order_id),
        )

    async def _drive(self, api: Api, clock: SimClock | CatchUpClock, seat: _Seat) -> None:
        """Drive one seat until its itinerary is done, ``stop`` is set, or its deadline passes."""
        report = seat.report
        interval = self.config.ping_interval_s
        next_ping_s = clock.sim(time.time())
        try:
            while not self._stop.is_set():
                now_s = clock.sim(time.time())
                self._follow(seat, now_s)
                for action in seat.itinerary.due(now_s, seat.done):
                    await self._act(api, seat, action)
                now_wall = time.time()
                now_s = clock.sim(now_wall)
                finished = (
                    now_s >= seat.itinerary.end_s
                    and seat.itinerary.next_action_s(seat.done) is None
                )
                if now_s >= next_ping_s or finished:
                    await self._ping(seat, now_wall, now_s)
                    next_ping_s += interval
                    if next_ping_s <= now_s:  # fell behind: skip, never burst
                        next_ping_s = now_s + interval
                if finished:
                    report.finished = True
                    return
                if now_wall > clock.wall(seat.itinerary.end_s) + DEADLINE_SLACK_S:
                    report.error = "gave up: the itinerary's end passed long ago"
                    log.warning("simulated driver gave up", driver_id=report.driver_id)
                    return
                wake_s = min(next_ping_s, seat.itinerary.next_action_s(seat.done) or math.inf)
                await self._pause(clock.wall(wake_s) - time.time())
        except (ApiError, httpx.HTTPError, LinkError) as exc:
            report.error = str(exc)
            log.error("simulated driver stopped", driver_id=report.driver_id, error=str(exc))
        finally:
            await seat.link.close()

    def _follow(self, seat: _Seat, now_s: float) -> None:
        """Re-plan the rest of the day when the route's open stops differ from the plan's."""
        route = seat.link.route
        if route is None or route is seat.followed:
            return
        seat.followed = route
        closed = {s.id for s in route.stops if s.status in CLOSED_STATUSES}
        done = {stop for kind, stop in seat.done if kind in ("deliver", "fail")}
        expected = [i for i in seat.itinerary.stop_ids if i not in done and i not in closed]
        opened = [s for s in route.stops if s.status in OPEN_STATUSES]
        if route.status == "cancelled":
            opened = []
        if [s.id for s in opened] == expected:
            return
        stops = [self._stop_of(s, seat.fail_reasons, seat.service_s) for s in opened]
        seat.itinerary = seat.model.replan(seat.itinerary, now_s, stops, seat.depot)
        seat.report.replans += 1
        log.info(
            "route changed; re-planned", driver_id=seat.report.driver_id, version=route.version
        )

    async def _act(self, api: Api, seat: _Seat, action: Action) -> None:
        report = seat.report
        path = STOP_COMMANDS[action.kind].format(action.stop_id)
        body: dict[str, str] | None = (
            {"reason": action.reason or ""} if action.kind == "fail" else None
        )
        if self._real_time:  # sent now, done then (a day under way replays its past)
            body = {**(body or {}), "at": datetime.fromtimestamp(action.at_s, UTC).isoformat()}
        response = await api.call(
            "POST", path, body, token=seat.token, retry=False, accept=(404, 409)
        )
        seat.done.add(action.key)
        if not response.is_success:
            # Removed or moved by a dispatcher meanwhile: the pushed route will say so.
            report.refused += 1
            log.info("stop command refused", path=path, status=response.status_code)
            return
        seat.link.offer(_ROUTE_DECODER.decode(response.content))
        if action.kind == "deliver":
            report.delivered += 1
        elif action.kind == "fail":
            report.failed += 1

    async def _ping(self, seat: _Seat, wall_s: float, sim_s: float) -> None:
        fix = seat.model.fix(seat.itinerary, sim_s)
        seat.seq += 1
        message = PingMessage(
            id=seat.seq,
            time=seat.device_clock.stamp(sim_s if self._real_time else wall_s),
            lat=fix.lat,
            lon=fix.lon,
            speed_mps=fix.speed_mps,
            heading_deg=fix.heading_deg,
            accuracy_m=fix.accuracy_m,
            battery_pct=fix.battery_pct,
            seq=seat.seq,
        )
        try:
            answer = await seat.link.ping(message)
        except LinkError as exc:
            seat.report.pings_lost += 1
            log.warning("ping lost", driver_id=seat.report.driver_id, error=str(exc))
            return
        if isinstance(answer, Ack):
            seat.report.pings_accepted += answer.accepted
            seat.report.pings_rejected += len(answer.rejected)
            for rejection in answer.rejected:
                log.warning("ping rejected", field=rejection.field, reason=rejection.reason)
        else:
            seat.report.pings_rejected += 1
            log.warning("ping refused", field=answer.field, reason=answer.reason)

    async def _pause(self, seconds: float) -> None:
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), seconds)

    async def _report_progress(self, clock: SimClock | CatchUpClock, seats: list[_Seat]) -> None:
        while True:
            await asyncio.sleep(self.config.progress_every_s)
            reports = [s.report for s in seats]
            self._say(
                f"  simulated {datetime.fromtimestamp(clock.sim(time.time()), UTC):%H:%M} UTC: "
                f"{sum(r.finished for r in reports)}/{len(reports)} routes done, "
                f"{sum(r.delivered for r in reports)} delivered, "
                f"{sum(r.failed for r in reports)} failed, "
                f"{sum(r.pings_accepted for r in reports)} pings"
            )


async def simulate(
    config: SimulationConfig,
    *,
    say: Callable[[str], None] = _quiet,
    stop: asyncio.Event | None = None,
) -> Summary:
    """Run one simulated day against ``config.url``; see :class:`Simulation`."""
    return await Simulation(config, say=say, stop=stop).run()
