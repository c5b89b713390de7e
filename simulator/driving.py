"""The fleet simulator's motion model: where a driver is, and what it reports, at an instant.

Pure: no I/O, no clocks read. Times are simulated instants in epoch seconds (``float``).

Without a street map, a driver moves along the great circle between consecutive places at a
*progress* speed of ``road speed / circuity`` — the same assumption the planner makes by default
(``LASTMILE_TRAVEL_SPEED_MPS`` over great-circle distance × ``LASTMILE_CIRCUITY``), so legs take
about as long as planned while the GPS reports the road speed a real device would; the track is
a straight line on the map. With one (:class:`~simulator.streets.StreetMap`), each leg follows
the shortest way along the streets at the road speed: the leg's own circuity is its street
length over the straight line, and the track follows the streets.

A route becomes an :class:`Itinerary`: a gapless timeline of phases — :class:`Hold` (standing at
the depot, waiting for a window to open, serving a stop) and :class:`Drive` (a leg, made of
constant-speed segments) — and the driver commands due along it (:class:`Action`: start the
route, arrive, deliver or fail). Randomness is per driver and seeded (:class:`DriverModel`):

* a speed factor per driver (careful or brisk), and log-normal noise per leg (traffic);
* dwell time at a stop: the order's service time with log-normal noise;
* a jam for delayed drivers: on one leg the driver crawls for ``jam_s`` extra seconds;
* GPS noise on every fix: a few metres of position error, speed and heading jitter, a reported
  accuracy, and a battery that drains over the simulated day.

With a :class:`~simulator.world.World`, the city's hidden truth multiplies in: each leg's speed
by its zone's and hour's factor (at the leg's midpoint and start) and the city-wide error, each
stop's service time by its customer's factor.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Sequence, Set
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from simulator.world import World

if TYPE_CHECKING:
    from simulator.streets import StreetMap

EARTH_RADIUS_M = 6_371_008.8
BASE_SPEED_MPS = 8.0
"""A van's road speed in town, the planner's default ``LASTMILE_TRAVEL_SPEED_MPS``."""
CIRCUITY = 1.3
"""Road distance ÷ great-circle distance, the planner's default ``LASTMILE_CIRCUITY``."""
LEG_SPEED_SIGMA = 0.15
"""Log-normal sigma of one leg's speed around the driver's own (traffic, lights)."""
DWELL_SIGMA = 0.25
"""Log-normal sigma of the time spent at a stop around the order's service time."""
JAM_CRAWL_MPS = 1.0
"""Road speed while stuck in a jam: stop-and-go, not a standstill."""
GPS_SIGMA_M = 4.0
"""Standard deviation of a fix's position error, per axis (open sky to light urban)."""
BATTERY_DRAIN_PCT_PER_H = 6.0
MIN_BATTERY_PCT = 5.0


# --- geometry on the sphere ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Point:
    """A WGS84 position in degrees."""

    lat: float
    lon: float


def distance_m(a: Point, b: Point) -> float:
    """Great-circle distance between two points (haversine), in metres.

    The same formula as ``solver.geo.haversine_m``, written here on purpose: ``loadtests/``
    imports only ``schemas/`` (DESIGN.md), so the simulated world shares no code with the
    solver whose predictions it is used to test.
    """
    phi1, phi2 = math.radians(a.lat), math.radians(b.lat)
    dphi, dlam = phi2 - phi1, math.radians(b.lon - a.lon)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlam / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def bearing_deg(a: Point, b: Point) -> float:
    """Initial course from ``a`` towards ``b``, degrees clockwise from north in [0, 360)."""
    phi1, phi2 = math.radians(a.lat), math.radians(b.lat)
    dlam = math.radians(b.lon - a.lon)
    y = math.sin(dlam) * math.cos(phi2)
    x = math.cos(phi1) * math.sin(phi2) - math.sin(phi1) * math.cos(phi2) * math.cos(dlam)
    return math.degrees(math.atan2(y, x)) % 360.0


def along(a: Point, b: Point, fraction: float) -> Point:
    """The point ``fraction`` (0–1) of the way from ``a`` to ``b`` on the great circle."""
    delta = distance_m(a, b) / EARTH_RADIUS_M
    if delta < 1e-12:
        return a
    phi1, lam1 = math.radians(a.lat), math.radians(a.lon)
    phi2, lam2 = math.radians(b.lat), math.radians(b.lon)
    wa = math.sin((1 - fraction) * delta) / math.sin(delta)
    wb = math.sin(fraction * delta) / math.sin(delta)
    x = wa * math.cos(phi1) * math.cos(lam1) + wb * math.cos(phi2) * math.cos(lam2)
    y = wa * math.cos(phi1) * math.sin(lam1) + wb * math.cos(phi2) * math.sin(lam2)
    z = wa * math.sin(phi1) + wb * math.sin(phi2)
    return Point(math.degrees(math.atan2(z, math.hypot(x, y))), math.degrees(math.atan2(y, x)))


def shifted(p: Point, north_m: float, east_m: float) -> Point:
    """``p`` moved by a few metres north and east (flat-earth approximation, fine below 1 km)."""
    dlat = math.degrees(north_m / EARTH_RADIUS_M)
    dlon = math.degrees(east_m / (EARTH_RADIUS_M * max(math.cos(math.radians(p.lat)), 1e-6)))
    return Point(p.lat + dlat, p.lon + dlon)


# --- the timeline of one driver -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Motion:
    """Where a driver is at an instant, noise-free: position, road speed, course (None standing)."""

    point: Point
    speed_mps: float
    heading_deg: float | None


@dataclass(frozen=True, slots=True)
class Segment:
    """Part of a leg at one road speed, ending at ``end_s`` having covered ``end_fraction``."""

    end_s: float
    end_fraction: float
    road_speed_mps: float


@dataclass(frozen=True, slots=True)
class Drive:
    """Driving leg number ``leg`` from ``origin`` to ``destination``, starting at ``start_s``."""

    origin: Point
    destination: Point
    start_s: float
    segments: tuple[Segment, ...]
    leg: int
    path: tuple[Point, ...] = ()
    """The streets driven, from ``origin`` to ``destination``; empty: the straight line."""
    path_m: tuple[float, ...] = ()
    """How far along ``path`` each of its points is, in metres."""

    @property
    def end_s(self) -> float:
        return self.segments[-1].end_s

    def fraction_at(self, t_s: float) -> tuple[float, float]:
        """Share of the leg covered at ``t_s``, and the road speed then."""
        prev_s, prev_f = self.start_s, 0.0
        for seg in self.segments:
            if t_s <= seg.end_s:
                span = seg.end_s - prev_s
                share = 1.0 if span <= 0 else max(0.0, t_s - prev_s) / span
                return prev_f + (seg.end_fraction - prev_f) * share, seg.road_speed_mps
            prev_s, prev_f = seg.end_s, seg.end_fraction
        return self.segments[-1].end_fraction, self.segments[-1].road_speed_mps

    def at(self, t_s: float) -> Motion:
        fraction, speed = self.fraction_at(t_s)
        if len(self.path) >= 2:
            point, course = self._on_path(fraction)
            return Motion(point, speed, course)
        point = along(self.origin, self.destination, fraction)
        towards = self.origin if fraction >= 1.0 else point
        return Motion(point, speed, bearing_deg(towards, self.destination))

    def _on_path(self, fraction: float) -> tuple[Point, float]:
        """The point ``fraction`` of the way along the streets, and the street's course there."""
        goal = min(1.0, max(0.0, fraction)) * self.path_m[-1]
        i = min(max(bisect.bisect_right(self.path_m, goal), 1), len(self.path) - 1)
        a, b = self.path[i - 1], self.path[i]
        span = self.path_m[i] - self.path_m[i - 1]
        share = 0.0 if span <= 0 else (goal - self.path_m[i - 1]) / span
        return along(a, b, min(1.0, share)), bearing_deg(a, b)

    def cut(self, t_s: float) -> Drive:
        """This leg as driven until ``t_s`` (the driver turns elsewhere then)."""
        fraction, speed = self.fraction_at(t_s)
        kept = tuple(s for s in self.segments if s.end_s < t_s)
        return replace(self, segments=(*kept, Segment(t_s, fraction, speed)))


@dataclass(frozen=True, slots=True)
class Hold:
    """Standing at ``point`` from ``start_s`` to ``end_s``: at a stop (``stop_id``) or the depot."""

    point: Point
    start_s: float
    end_s: float
    stop_id: int | None = None

    def at(self, t_s: float) -> Motion:
        return Motion(self.point, 0.0, None)


Phase = Drive | Hold
ActionKind = Literal["start", "arrive", "deliver", "fail"]


@dataclass(frozen=True, slots=True)
class Action:
    """A driver command due at ``at_s``: start the route, or arrive at / deliver / fail a stop."""

    at_s: float
    kind: ActionKind
    stop_id: int | None = None
    reason: str | None = None

    @property
    def key(self) -> tuple[ActionKind, int | None]:
        """What identifies the command across re-plans: its kind and its stop."""
        return (self.kind, self.stop_id)


@dataclass(frozen=True, slots=True)
class Stop:
    """A stop to serve: where, its windows (epoch s), the service time, and how it ends.

    ``fail_reason`` set means nobody takes the goods: the driver reports a failure with it.
    """

    stop_id: int
    point: Point
    service_s: float
    windows: tuple[tuple[float, float], ...] = ()
    fail_reason: str | None = None


def service_start(arrival_s: float, windows: Sequence[tuple[float, float]]) -> float:
    """When service starts after arriving at ``arrival_s``: at once inside a window, at the
    next window's opening when early, and at once (late) after the last window closed."""
    for start, end in sorted(windows):
        if arrival_s <= end:
            return max(arrival_s, start)
    return arrival_s


@dataclass(frozen=True, slots=True)
class Itinerary:
    """A driver's gapless timeline from ``start`` at ``start_s``, and the commands due on it.

    ``stop_ids`` are the stops in visiting order; ``legs`` counts the legs driven or planned,
    so a re-plan numbers its legs on from there.
    """

    start: Point
    start_s: float
    phases: tuple[Phase, ...]
    actions: tuple[Action, ...]
    stop_ids: tuple[int, ...]
    legs: int
    _starts: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_starts", tuple(p.start_s for p in self.phases))

    @property
    def end_s(self) -> float:
        """When the last phase ends (back at the depot)."""
        return self.phases[-1].end_s if self.phases else self.start_s

    def phase_at(self, t_s: float) -> Phase | None:
        """The phase under way at ``t_s``; None before the first and after the last."""
        i = bisect.bisect_right(self._starts, t_s) - 1
        if i < 0 or t_s > self.phases[i].end_s:
            return None
        return self.phases[i]

    def at(self, t_s: float) -> Motion:
        """Where the driver is at ``t_s``; before and after the timeline it stands at its ends."""
        phase = self.phase_at(t_s)
        if phase is not None:
            return phase.at(t_s)
        if not self.phases or t_s < self.start_s:
            return Motion(self.start, 0.0, None)
        last = self.phases[-1]
        end = last.destination if isinstance(last, Drive) else last.point
        return Motion(end, 0.0, None)

    def due(self, now_s: float, done: Set[tuple[ActionKind, int | None]]) -> list[Action]:
        """Commands due by ``now_s`` that are not ``done``, in order."""
        return [a for a in self.actions if a.at_s <= now_s and a.key not in done]

    def next_action_s(self, done: Set[tuple[ActionKind, int | None]]) -> float | None:
        """When the next command not yet ``done`` is due; None when all are done."""
        return min((a.at_s for a in self.actions if a.key not in done), default=None)


# --- one driver's behaviour -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DriverProfile:
    """How one driver drives: a speed factor, a jam (``jam_s`` 0 for none), a battery at start.

    The jam hits the leg at ``jam_at`` (0–1) of the first route's legs, ``jam_fraction`` of
    the way along it.
    """

    speed_factor: float = 1.0
    jam_s: float = 0.0
    jam_at: float = 0.0
    jam_fraction: float = 0.5
    battery_start_pct: float = 90.0


def round_share(count: int, share: float) -> int:
    """``share`` of ``count`` items, rounded to the nearest whole number (halves up)."""
    return math.floor(count * share + 0.5)


def derive_seed(seed: int, index: int) -> int:
    """A seed of its own for item ``index`` of a run seeded with ``seed``."""
    return (seed * 1_000_003 + index) % 2**32


def draw_profiles(seed: int, count: int, delay_share: float) -> list[DriverProfile]:
    """``count`` driver profiles; exactly ``round_share(count, delay_share)`` of them jammed."""
    rng = random.Random(seed)
    delayed = set(rng.sample(range(count), round_share(count, delay_share)))
    profiles = []
    for i in range(count):
        profiles.append(
            DriverProfile(
                speed_factor=min(1.25, max(0.75, rng.gauss(1.0, 0.1))),
                jam_s=rng.uniform(10, 30) * 60.0 if i in delayed else 0.0,
                jam_at=rng.random(),
                jam_fraction=rng.uniform(0.2, 0.8),
                battery_start_pct=rng.uniform(55.0, 100.0),
            )
        )
    return profiles


@dataclass(frozen=True, slots=True)
class Fix:
    """What the device reports at an instant: a noisy position with speed, course, accuracy."""

    lat: float
    lon: float
    speed_mps: float
    heading_deg: float | None
    accuracy_m: float
    battery_pct: float


class DriverModel:
    """One driver's seeded behaviour: leg speeds, dwell times, the jam and the GPS noise.

    The same seed, profile and calls give the same itineraries and fixes. Route draws and GPS
    draws use separate generators, so how often a fix is taken never changes the route.
    """

    def __init__(
        self,
        seed: int,
        profile: DriverProfile,
        *,
        base_speed_mps: float = BASE_SPEED_MPS,
        circuity: float = CIRCUITY,
        gps_sigma_m: float = GPS_SIGMA_M,
        world: World | None = None,
        streets: StreetMap | None = None,
    ) -> None:
        self.seed = seed
        self.world = world
        self.streets = streets
        self.profile = profile
        self.base_speed_mps = base_speed_mps
        self.circuity = circuity
        self.gps_sigma_m = gps_sigma_m
        self._route_rng = random.Random(seed)
        self._gps_rng = random.Random(derive_seed(seed, 1))
        self._jam_leg: int | None = None
        self._origin_s: float | None = None

    def __repr__(self) -> str:
        p = self.profile
        return (
            f"DriverModel(seed={self.seed}, speed_factor={p.speed_factor:.2f}, jam_s={p.jam_s:.0f})"
        )

    def itinerary(
        self,
        start: Point,
        now_s: float,
        depart_s: float,
        stops: Sequence[Stop],
        end: Point,
        *,
        first_leg: int = 0,
        with_start: bool = True,
    ) -> Itinerary:
        """Wait at ``start`` until ``depart_s``, serve ``stops`` in order, drive to ``end``.

        ``with_start`` adds the route's ``start`` command at departure.
        """
        if self._origin_s is None:
            self._origin_s = now_s
        if self._jam_leg is None and self.profile.jam_s > 0 and stops:
            # On a leg towards a stop, not the way home, so that a stop is late because of it.
            self._jam_leg = first_leg + math.floor(self.profile.jam_at * len(stops))
        phases: list[Phase] = []
        actions: list[Action] = []
        t, here, leg = now_s, start, first_leg
        if depart_s > t:
            phases.append(Hold(here, t, depart_s))
            t = depart_s
        if with_start:
            actions.append(Action(t, "start"))
        for stop in stops:
            drive = self._drive(here, stop.point, t, leg)
            leg += 1
            if drive is not None:
                phases.append(drive)
                t = drive.end_s
            here = stop.point
            actions.append(Action(t, "arrive", stop.stop_id))
            done_s = service_start(t, stop.windows) + self._dwell(stop.service_s, stop.point)
            phases.append(Hold(here, t, done_s, stop.stop_id))
            kind: ActionKind = "deliver" if stop.fail_reason is None else "fail"
            actions.append(Action(done_s, kind, stop.stop_id, stop.fail_reason))
            t = done_s
        drive = self._drive(here, end, t, leg)
        leg += 1
        if drive is not None:
            phases.append(drive)
        return Itinerary(
            start=start,
            start_s=now_s,
            phases=tuple(phases),
            actions=tuple(actions),
            stop_ids=tuple(s.stop_id for s in stops),
            legs=leg,
        )

    def replan(
        self, itinerary: Itinerary, now_s: float, stops: Sequence[Stop], end: Point
    ) -> Itinerary:
        """Continue ``itinerary`` at ``now_s`` with ``stops`` as the remaining route.

        What happened before ``now_s`` stays, and so do commands already due. A stop being
        served that is still among ``stops`` is finished as planned first; a stop whose outcome
        is already due is not visited again; a leg under way is abandoned where the driver is;
        before departure the driver still leaves at the planned time.
        """
        phase = itinerary.phase_at(now_s)
        index = len(itinerary.phases) if phase is None else itinerary.phases.index(phase)
        kept: list[Phase] = list(itinerary.phases[:index])
        actions = [a for a in itinerary.actions if a.at_s <= now_s]
        closed = {a.stop_id for a in actions if a.kind in ("deliver", "fail")}
        remaining = [s for s in stops if s.stop_id not in closed]
        boundary_s, depart_s, with_start = now_s, now_s, False
        serving_id: int | None = None
        if isinstance(phase, Hold) and phase.stop_id in {s.stop_id for s in remaining}:
            # Finish the stop at hand as planned, then go on with the others.
            serving_id = phase.stop_id
            kept.append(phase)
            actions += [a for a in itinerary.actions if a.stop_id == serving_id and a.at_s > now_s]
            remaining = [s for s in remaining if s.stop_id != serving_id]
            boundary_s = depart_s = phase.end_s
        elif isinstance(phase, Hold):
            kept.append(replace(phase, end_s=now_s))
            later = [a.at_s for a in itinerary.actions if a.kind == "start" and a.at_s > now_s]
            if later:
                depart_s, with_start = later[0], True
        elif isinstance(phase, Drive):
            kept.append(phase.cut(now_s))
        driven = max((p.leg + 1 for p in kept if isinstance(p, Drive)), default=0)
        rest = self.itinerary(
            itinerary.at(boundary_s).point,
            boundary_s,
            depart_s,
            remaining,
            end,
            first_leg=driven,
            with_start=with_start,
        )
        visited = [i for i in itinerary.stop_ids if i in closed or i == serving_id]
        return Itinerary(
            start=itinerary.start,
            start_s=itinerary.start_s,
            phases=(*kept, *rest.phases),
            actions=tuple(sorted([*actions, *rest.actions], key=lambda a: a.at_s)),
            stop_ids=tuple(dict.fromkeys([*visited, *rest.stop_ids])),
            legs=rest.legs,
        )

    def fix(self, itinerary: Itinerary, t_s: float) -> Fix:
        """The device's report at ``t_s``: the position with GPS noise, speed, course, battery."""
        rng = self._gps_rng
        motion = itinerary.at(t_s)
        sigma = self.gps_sigma_m
        point = shifted(motion.point, rng.gauss(0.0, sigma), rng.gauss(0.0, sigma))
        moving = motion.speed_mps > 0 and motion.heading_deg is not None
        speed = motion.speed_mps * rng.gauss(1.0, 0.08) if moving else abs(rng.gauss(0.0, 0.15))
        heading = (
            round((motion.heading_deg + rng.gauss(0.0, 4.0)) % 360.0, 1)
            if moving and motion.heading_deg is not None
            else None
        )
        elapsed_h = max(0.0, t_s - (self._origin_s or t_s)) / 3600.0
        battery = self.profile.battery_start_pct - BATTERY_DRAIN_PCT_PER_H * elapsed_h
        return Fix(
            lat=round(point.lat, 7),
            lon=round(point.lon, 7),
            speed_mps=round(min(max(speed, 0.0), 60.0), 2),
            heading_deg=heading,
            accuracy_m=round(min(max(rng.gauss(1.5 * sigma, 0.5 * sigma), 2.0), 50.0), 1),
            battery_pct=round(max(MIN_BATTERY_PCT, battery), 1),
        )

    def _drive(self, origin: Point, destination: Point, start_s: float, leg: int) -> Drive | None:
        dist = distance_m(origin, destination)
        noise = min(2.0, max(0.5, self._route_rng.lognormvariate(0.0, LEG_SPEED_SIGMA)))
        if dist < 1.0:
            return None
        road = self.base_speed_mps * self.profile.speed_factor * noise
        if self.world is not None:  # the city's own speed there, then (the leg's midpoint)
            middle = along(origin, destination, 0.5)
            road *= self.world.speed_factor(middle.lat, middle.lon, start_s)
        circuity = self.circuity
        path: tuple[Point, ...] = ()
        path_m: tuple[float, ...] = ()
        if self.streets is not None:
            path = self.streets.route(origin, destination)
            path_m = cumulative_m(path)
            circuity = max(1.0, path_m[-1] / dist)
        progress = road / circuity
        if leg != self._jam_leg:
            only = (Segment(start_s + dist / progress, 1.0, road),)
            return Drive(origin, destination, start_s, only, leg, path, path_m)
        # A jam adds exactly ``jam_s``: the crawl distance takes jam_s longer than at speed.
        f0 = self.profile.jam_fraction
        crawl_m = min(JAM_CRAWL_MPS / circuity * self.profile.jam_s, (1 - f0) * dist / 2)
        f1 = f0 + crawl_m / dist
        t0 = start_s + f0 * dist / progress
        t1 = t0 + crawl_m / progress + self.profile.jam_s
        t2 = t1 + (1 - f1) * dist / progress
        crawl_road = crawl_m * circuity / (t1 - t0)
        segments = (Segment(t0, f0, road), Segment(t1, f1, crawl_road), Segment(t2, 1.0, road))
        return Drive(origin, destination, start_s, segments, leg, path, path_m)

    def _dwell(self, service_s: float, place: Point) -> float:
        noise = min(2.0, max(0.5, self._route_rng.lognormvariate(0.0, DWELL_SIGMA)))
        if self.world is not None:  # what this customer really takes
            service_s *= self.world.service_factor(place.lat, place.lon)
        return service_s * noise


def cumulative_m(path: Sequence[Point]) -> tuple[float, ...]:
    """How far along ``path`` each of its points is, in metres."""
    out = [0.0]
    for a, b in itertools.pairwise(path):
        out.append(out[-1] + distance_m(a, b))
    return tuple(out)


# --- time ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SimClock:
    """Simulated time runs ``speedup`` times faster than the wall clock from a common origin."""

    wall_start_s: float
    sim_start_s: float
    speedup: float

    def sim(self, wall_s: float) -> float:
        """The simulated instant at wall-clock instant ``wall_s`` (both epoch seconds)."""
        return self.sim_start_s + (wall_s - self.wall_start_s) * self.speedup

    def wall(self, sim_s: float) -> float:
        """The wall-clock instant at which simulated instant ``sim_s`` comes."""
        return self.wall_start_s + (sim_s - self.sim_start_s) / self.speedup


@dataclass(frozen=True, slots=True)
class CatchUpClock:
    """A day already under way: simulated time starts in the past (``sim_start_s``, before
    ``wall_start_s``), runs ``catch_up`` times faster than the wall clock until it reaches the
    real time, and from then on *is* the real time (a speedup of 1).

    What the drivers did before now is so replayed within seconds, with its own (past) times,
    and everything after happens when the server's clock says it does.
    """

    wall_start_s: float
    sim_start_s: float
    catch_up: float = 600.0
    speedup: float = 1.0

    @property
    def caught_up_wall_s(self) -> float:
        """The wall-clock instant at which simulated time reaches the real time."""
        lag = self.wall_start_s - self.sim_start_s
        return self.wall_start_s + max(0.0, lag) / (self.catch_up - 1.0)

    def sim(self, wall_s: float) -> float:
        if wall_s >= self.caught_up_wall_s:
            return wall_s
        return self.sim_start_s + (wall_s - self.wall_start_s) * self.catch_up

    def wall(self, sim_s: float) -> float:
        if sim_s >= self.caught_up_wall_s:
            return sim_s
        return self.wall_start_s + (sim_s - self.sim_start_s) / self.catch_up


class DeviceClock:
    """A device's timestamps: the real time, but strictly increasing (by 1 ms at least).

    Ingest identifies a ping by driver and device time, so two fixes in one millisecond would
    be stored once; a device clock that never repeats or goes back avoids that.
    """

    def __init__(self) -> None:
        self._last: datetime | None = None

    def stamp(self, wall_s: float) -> datetime:
        """The device time of a fix taken at wall-clock instant ``wall_s``."""
        now = datetime.fromtimestamp(wall_s, UTC)
        if self._last is not None and now <= self._last:
            now = self._last + timedelta(milliseconds=1)
        self._last = now
        return now
