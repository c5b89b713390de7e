"""How good are the live arrival windows? Simulated days against a plan-shifting baseline.

Run from the repository root::

    python -m bench.eta_quality [--days 20] [--seed 1]

Each simulated day has ``--drivers`` (5) vans, each with a route of ``--stops`` (15) stops
around a city, planned with great-circle travel times (x 1.3 circuity, 7 m/s) and two-hour
customer windows on three stops in four (one in five of those opening after the planned
arrival, so the plan waits). The truth differs from the plan the way real days do:

* each route is driven slower or faster than planned by a random factor (log-normal, sigma
  ``--driver-sigma`` 0.2: the driver, and the plan's one speed being wrong for the area),
  times ``--city-factor`` (1: the travel model right on average; 0.45 or 2, wrong for the
  whole city, as it is before an organisation has learned speeds);
* every leg by its own noise (sigma 0.15), and one leg in twenty (``--jam-probability``)
  holds a traffic jam of 3-15 minutes;
* service times vary by driver (sigma ``--service-driver-sigma`` 0.25) and by stop (0.3);
* drivers leave up to ten minutes late, and park up to 40 m from the address.

Fixes come every 5-10 s from the true trajectory with 6 m of GPS noise and go through
:func:`solver.eta.update` one by one, as the ETA worker would send them.

For every stop and each horizon (5, 15, 30, 60 minutes before its true arrival) it records the
window the customer saw then (the last one published) and its likely arrival, the freshly
computed likely arrival, and the **baseline**: the planned arrival shifted by the driver's
current delay, that is now minus the planned instant of the driver's progress point (the same
fraction of the current leg; the planned arrival while waiting at a stop; the plan's service
clock run from when service began). It prints the mean absolute errors side by side, the
share of arrivals inside their window (and before / after it), the windows' mean width, and
how the geofence did. Targets (issue 4): at 30 minutes an error at least 30 % below the
baseline's; 80 % ± 5 % of arrivals inside windows meant to hold 80 %. The spread parameters
of :class:`~schemas.eta.EtaConfig` were calibrated on ``--seed 2``; seed 1 is held out.
"""

from __future__ import annotations

import argparse
import bisect
import math
import random
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from schemas.eta import (
    ArrivalDetected,
    DepartureDetected,
    EtaConfig,
    EtaRoute,
    EtaStop,
    Fix,
    TrackerState,
)
from schemas.ids import DriverId, OrderId, RouteId, StopId
from schemas.planning import Location, PlanningTimeWindow
from solver.eta import update
from solver.instance import Window
from solver.matrix import ConstantSpeed, GreatCircleProvider
from solver.timeline import service_start

CENTRE = (52.5200, 13.4050)
DAY = int(datetime(2025, 6, 2, tzinfo=UTC).timestamp())
HOUR = 3600
SPEED_MPS = 7.0
CIRCUITY = 1.3
HORIZONS_MIN = (5, 15, 30, 60)
M_PER_DEG_LAT = 111_195.0


def provider() -> GreatCircleProvider:
    """The plan's and the model's travel times (no pair cache: every fix is a new point)."""
    return GreatCircleProvider(
        speed=ConstantSpeed(SPEED_MPS), circuity=CIRCUITY, max_cached_pairs=0
    )


@dataclass(frozen=True)
class Noise:
    """How the true day departs from the plan (log-normal sigmas, probabilities, seconds)."""

    city_factor: float = 1.0
    driver_sigma: float = 0.2
    leg_sigma: float = 0.15
    jam_probability: float = 0.05
    jam_s: tuple[int, int] = (180, 900)
    service_driver_sigma: float = 0.25
    service_stop_sigma: float = 0.3
    start_delay_s: tuple[int, int] = (0, 600)
    gps_sigma_m: float = 6.0
    parking_m: float = 40.0
    ping_s: tuple[int, int] = (5, 10)


@dataclass
class Segment:
    """A piece of the true trajectory: moving from ``a`` to ``b`` or standing at ``a``.

    ``leg``/``stop`` locate it on the route for the baseline: on leg ``leg`` between
    ``frac_from`` and ``frac_to`` of its distance, or at stop ``stop`` waiting (before
    ``service_from``) and serving.
    """

    t0: float
    t1: float
    a: tuple[float, float]
    b: tuple[float, float]
    leg: int | None = None
    frac_from: float = 0.0
    frac_to: float = 0.0
    stop: int | None = None
    service_from: float = 0.0


@dataclass
class DriverDay:
    """One driver's route, plan and true day."""

    route: EtaRoute
    planned_departure: list[float]
    planned_start: list[float]
    route_start: float
    segments: list[Segment]
    true_arrival: list[float]
    end: float
    pace: float
    service_pace: float


@dataclass
class Stats:
    """Signed errors (predicted minus true arrival, seconds) and coverage per horizon.

    ``early`` marks arrivals before their window's lower bound; geofence counts at the end.
    """

    model_err: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    fresh_err: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    base_err: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    inside: dict[int, list[bool]] = field(default_factory=lambda: defaultdict(list))
    early: dict[int, list[bool]] = field(default_factory=lambda: defaultdict(list))
    width: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    missing: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    stops: int = 0
    arrived: int = 0
    departed: int = 0
    skipped: int = 0
    fixes: int = 0


def _point(rng: random.Random, centre: tuple[float, float], radius_m: float) -> tuple[float, float]:
    r = radius_m * math.sqrt(rng.random())
    a = rng.uniform(0.0, 2.0 * math.pi)
    lat = centre[0] + r * math.cos(a) / M_PER_DEG_LAT
    lon = centre[1] + r * math.sin(a) / (M_PER_DEG_LAT * math.cos(math.radians(centre[0])))
    return lat, lon


def _offset(p: tuple[float, float], north_m: float, east_m: float) -> tuple[float, float]:
    lat = p[0] + north_m / M_PER_DEG_LAT
    return lat, p[1] + east_m / (M_PER_DEG_LAT * math.cos(math.radians(p[0])))


def _loc(p: tuple[float, float]) -> Location:
    return Location(lat=p[0], lon=p[1])


def driver_day(rng: random.Random, day: int, driver: int, n_stops: int, noise: Noise) -> DriverDay:
    """Plan one route and live it with noise."""
    area = _point(rng, CENTRE, 8_000.0)
    depot = _point(rng, CENTRE, 3_000.0)
    points = [_point(rng, area, 5_000.0) for _ in range(n_stops)]
    order: list[tuple[float, float]] = []
    here = depot
    while points:
        nearest = min(points, key=lambda p: (p[0] - here[0]) ** 2 + (p[1] - here[1]) ** 2)
        points.remove(nearest)
        order.append(nearest)
        here = nearest
    matrix = provider().matrix([_loc(depot), *(_loc(p) for p in order)], depart_epoch_s=0)
    plan_dur = matrix.duration_s

    route_start = DAY + day * 24 * HOUR + 8 * HOUR
    clock = float(route_start)
    stops: list[EtaStop] = []
    windows: list[list[Window]] = []
    planned_departure = [clock]
    planned_start: list[float] = []
    for k, p in enumerate(order):
        arrival = clock + plan_dur[k][k + 1]
        service_s = rng.randrange(90, 361, 30)
        roll = rng.random()
        win: list[Window] = []
        if roll < 0.15:
            opens = arrival + rng.uniform(5 * 60, 25 * 60)
            win = [(round(opens), round(opens) + 2 * HOUR)]
        elif roll < 0.75:
            opens = arrival - rng.uniform(15 * 60, 105 * 60)
            win = [(round(opens), round(opens) + 2 * HOUR)]
        start = service_start(round(arrival), win)[0]
        clock = float(start + service_s)
        windows.append(win)
        planned_start.append(float(start))
        planned_departure.append(clock)
        stops.append(
            EtaStop(
                stop_id=StopId(driver * 100 + k),
                order_id=OrderId(driver * 100 + k),
                location=_loc(p),
                time_windows=[PlanningTimeWindow(start_epoch_s=a, end_epoch_s=b) for a, b in win],
                service_s=service_s,
                planned_arrival_epoch_s=round(arrival),
            )
        )
    route = EtaRoute(
        driver_id=DriverId(driver),
        route_id=RouteId(day * 1000 + driver),
        version=1,
        stops=stops,
        start_epoch_s=route_start,
    )

    pace = noise.city_factor * math.exp(rng.gauss(0.0, noise.driver_sigma))
    service_pace = math.exp(rng.gauss(0.0, noise.service_driver_sigma))
    clock = route_start + rng.uniform(*noise.start_delay_s)
    segments = [Segment(clock - 120.0, clock, depot, depot, leg=0)]
    true_arrival: list[float] = []
    where = depot
    for k, p in enumerate(order):
        park = _offset(
            p, rng.uniform(-1, 1) * noise.parking_m, rng.uniform(-1, 1) * noise.parking_m
        )
        drive = plan_dur[k][k + 1] * pace * math.exp(rng.gauss(0.0, noise.leg_sigma))
        if rng.random() < noise.jam_probability:
            frac = rng.uniform(0.1, 0.9)
            mid = (where[0] + frac * (park[0] - where[0]), where[1] + frac * (park[1] - where[1]))
            jam = rng.uniform(*noise.jam_s)
            segments.append(Segment(clock, clock + frac * drive, where, mid, leg=k, frac_to=frac))
            clock += frac * drive
            segments.append(
                Segment(clock, clock + jam, mid, mid, leg=k, frac_from=frac, frac_to=frac)
            )
            clock += jam
            segments.append(
                Segment(
                    clock, clock + (1 - frac) * drive, mid, park, leg=k, frac_from=frac, frac_to=1
                )
            )
            clock += (1 - frac) * drive
        else:
            segments.append(Segment(clock, clock + drive, where, park, leg=k, frac_to=1.0))
            clock += drive
        true_arrival.append(clock)
        begins = float(service_start(math.ceil(clock), windows[k])[0])
        serve = (
            stops[k].service_s * service_pace * math.exp(rng.gauss(0.0, noise.service_stop_sigma))
        )
        segments.append(Segment(clock, begins + serve, park, park, stop=k, service_from=begins))
        clock = begins + serve
        where = park
    return DriverDay(
        route=route,
        planned_departure=planned_departure,
        planned_start=planned_start,
        route_start=float(route_start),
        segments=segments,
        true_arrival=true_arrival,
        end=clock + 60.0,
        pace=pace,
        service_pace=service_pace,
    )


def position_and_delay(
    dd: DriverDay, t: float, hint: int
) -> tuple[tuple[float, float], float, int]:
    """Where the driver truly is at ``t``, the baseline's current delay, and the segment index."""
    segs = dd.segments
    i = hint
    while i + 1 < len(segs) and segs[i].t1 <= t:
        i += 1
    s = segs[i]
    u = 0.0 if s.t1 <= s.t0 else min(1.0, max(0.0, (t - s.t0) / (s.t1 - s.t0)))
    pos = (s.a[0] + u * (s.b[0] - s.a[0]), s.a[1] + u * (s.b[1] - s.a[1]))
    if s.stop is not None:
        k = s.stop
        stop = dd.route.stops[k]
        if t < s.service_from:
            planned = float(stop.planned_arrival_epoch_s)
        else:
            # Observable progress: service began on arrival or when the window opened; the
            # plan's service clock runs from there, up to its planned length.
            planned = dd.planned_start[k] + min(t - s.service_from, float(stop.service_s))
    else:
        k = s.leg if s.leg is not None else 0
        frac = s.frac_from + u * (s.frac_to - s.frac_from)
        leaves = dd.planned_departure[k]
        planned = leaves + frac * (dd.route.stops[k].planned_arrival_epoch_s - leaves)
    return pos, t - planned, i


def run_driver(
    dd: DriverDay, rng: random.Random, noise: Noise, config: EtaConfig, stats: Stats
) -> None:
    """Feed the driver's fixes to the model and record each stop at each horizon."""
    prov = provider()
    targets = sorted(
        (dd.true_arrival[k] - h * 60.0, k, h)
        for k in range(len(dd.route.stops))
        for h in HORIZONS_MIN
    )
    keys = [t for t, _, _ in targets]
    state: TrackerState | None = None
    delay = 0.0
    t = dd.segments[0].t0
    hint = 0
    flushed = bisect.bisect_left(keys, t)  # targets before the first fix have no prediction
    stats.stops += len(dd.route.stops)
    while t < dd.end:
        # Every target before this fix is judged on the previous fix's state.
        upto = bisect.bisect_left(keys, t)
        if state is not None:
            for _, k, h in targets[flushed:upto]:
                _record(stats, state, dd, k, h, delay)
        flushed = max(flushed, upto)
        pos, delay, hint = position_and_delay(dd, t, hint)
        noisy = _offset(pos, rng.gauss(0.0, noise.gps_sigma_m), rng.gauss(0.0, noise.gps_sigma_m))
        fix = Fix(epoch_s=int(t), location=_loc(noisy), accuracy_m=10.0)
        state, _, events = update(state, dd.route, fix, prov, config)
        stats.fixes += 1
        stats.arrived += sum(isinstance(e, ArrivalDetected) for e in events)
        stats.departed += sum(isinstance(e, DepartureDetected) for e in events)
        t += rng.uniform(*noise.ping_s)
    if state is not None:
        stats.skipped += sum(1 for s in state.stops if s.status == "skipped")


def _record(stats: Stats, state: TrackerState, dd: DriverDay, k: int, h: int, delay: float) -> None:
    track = state.stops[k]
    truth = dd.true_arrival[k]
    stats.base_err[h].append(dd.route.stops[k].planned_arrival_epoch_s + delay - truth)
    if track.status != "pending" or track.published is None or track.window is None:
        stats.missing[h] += 1
        return
    shown = track.published
    stats.model_err[h].append(shown.likely_epoch_s - truth)
    stats.fresh_err[h].append(track.window.likely_epoch_s - truth)
    stats.inside[h].append(shown.lower_epoch_s <= truth <= shown.upper_epoch_s)
    stats.early[h].append(truth < shown.lower_epoch_s)
    stats.width[h].append(shown.upper_epoch_s - shown.lower_epoch_s)


def simulate(
    days: int, drivers: int, n_stops: int, seed: int, config: EtaConfig, noise: Noise
) -> Stats:
    """Run every driver-day and gather the statistics."""
    stats = Stats()
    for day in range(days):
        for driver in range(drivers):
            rng = random.Random(seed * 1_000_003 + day * 1_009 + driver)
            dd = driver_day(rng, day, driver, n_stops, noise)
            run_driver(dd, rng, noise, config, stats)
    return stats


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def _mae(values: list[float]) -> float:
    return _mean([abs(v) for v in values])


def report(stats: Stats, config: EtaConfig) -> tuple[bool, list[str]]:
    """The printed table and whether both targets were met."""
    low, high = config.window_quantiles
    nominal = high - low
    lines = [
        "horizon  stops  MAE shown  MAE fresh  MAE baseline  shown vs baseline"
        "  inside  before  after  width",
    ]
    all_inside: list[bool] = []
    gain_30 = 0.0
    for h in HORIZONS_MIN:
        model = _mae(stats.model_err[h]) / 60.0
        fresh = _mae(stats.fresh_err[h]) / 60.0
        base = _mae(stats.base_err[h]) / 60.0
        gain = 1.0 - model / base if base else 0.0
        if h == 30:
            gain_30 = gain
        inside = _mean([float(x) for x in stats.inside[h]])
        before = _mean([float(x) for x in stats.early[h]])
        all_inside += stats.inside[h]
        lines.append(
            f"{h:>4} min  {len(stats.model_err[h]):>5}  {model:>5.2f} min  {fresh:>5.2f} min"
            f"  {base:>8.2f} min  {-gain:>+17.0%}  {inside:>6.1%}  {before:>6.1%}"
            f"  {1.0 - inside - before:>5.1%}  {_mean(stats.width[h]) / 60:>4.1f} min"
        )
    overall = _mean([float(x) for x in all_inside])
    missing = sum(stats.missing.values())
    lines.append(
        f"inside windows, all horizons: {overall:.1%} (nominal {nominal:.0%}); "
        f"predictions missing (stop no longer pending): {missing}"
    )
    lines.append(
        f"geofence: {stats.stops} stops, {stats.arrived} arrivals and {stats.departed} departures "
        f"detected, {stats.skipped} skipped; {stats.fixes} fixes"
    )
    ok_gain = gain_30 >= 0.30
    ok_cover = abs(overall - nominal) <= 0.05
    lines.append(
        f"targets: MAE at 30 min {gain_30:.0%} below the baseline's (>= 30 %): "
        f"{'met' if ok_gain else 'MISSED'}; coverage {overall:.1%} within {nominal:.0%} ± 5 %: "
        f"{'met' if ok_cover else 'MISSED'}"
    )
    return ok_gain and ok_cover, lines


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, simulate, print; exit status 1 when a target is missed."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.eta_quality",
        description="Live arrival windows on simulated days against a plan-shifting baseline.",
    )
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--drivers", type=int, default=5, help="drivers per day")
    parser.add_argument("--stops", type=int, default=15, help="stops per route")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--city-factor",
        type=float,
        default=Noise.city_factor,
        help="true over modelled driving time for every driver (the model wrong city-wide)",
    )
    parser.add_argument("--driver-sigma", type=float, default=Noise.driver_sigma)
    parser.add_argument("--jam-probability", type=float, default=Noise.jam_probability)
    parser.add_argument("--service-driver-sigma", type=float, default=Noise.service_driver_sigma)
    args = parser.parse_args(argv)
    config = EtaConfig()
    noise = Noise(
        city_factor=args.city_factor,
        driver_sigma=args.driver_sigma,
        jam_probability=args.jam_probability,
        service_driver_sigma=args.service_driver_sigma,
    )
    began = time.perf_counter()
    stats = simulate(args.days, args.drivers, args.stops, args.seed, config, noise)
    spent = time.perf_counter() - began
    ok, lines = report(stats, config)
    given = argv if argv is not None else sys.argv[1:]
    print(f"$ python -m bench.eta_quality {' '.join(given)}".rstrip())
    print(
        f"{args.days} days x {args.drivers} drivers x {args.stops} stops, seed {args.seed}: "
        f"{spent:.1f} s ({stats.fixes / spent:,.0f} fixes/s)"
    )
    for line in lines:
        print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
