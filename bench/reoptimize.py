"""Re-optimising a running day: urgent insertions and re-sequencing a late driver.

Run from the repository root::

    python -m bench.reoptimize --seed 7

It builds a seeded running day around a city centre at 11:00: ``--drivers`` vans (10) with
``--stops`` remaining stops each (10), every route timed so it is on time now, about half its
stops with a two-hour window around the planned arrival, great-circle travel times. Then it
times :func:`~solver.reoptimize.cheapest_insertion` of ``--orders`` different urgent orders
(50) — each with a fresh provider (nothing cached: the worst case) and with one shared provider
(its pair cache warm, as in a long-running process) — and
:func:`~solver.reoptimize.resequence` of one driver who is ``--delay-min`` (60) minutes late
with the stops shuffled. It prints median and maximum times and what the calls answered. It is a
benchmark, not a test; the target for one insertion is well under a second.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec

from schemas.planning import Location, OrderRef, PlanningOrder, PlanningTimeWindow, VehicleRef
from schemas.reoptimize import Insertion, RemainingStop, RunningRoute
from solver.matrix import ConstantSpeed, GreatCircleProvider, TravelMatrix
from solver.reoptimize import cheapest_insertion, resequence, retime

CENTRE = (52.5200, 13.4050)
RADIUS_M = 12_000.0
DAY = int(datetime(2025, 6, 2, tzinfo=UTC).timestamp())
HOUR = 3600
NOW = DAY + 11 * HOUR
SPEED_MPS = 7.0
CIRCUITY = 1.35


def provider() -> GreatCircleProvider:
    """The travel times of the benchmark: 7 m/s over great-circle distance x 1.35."""
    return GreatCircleProvider(speed=ConstantSpeed(SPEED_MPS), circuity=CIRCUITY)


class TimedProvider:
    """Wraps a provider and adds up the seconds spent computing matrices."""

    def __init__(self, inner: GreatCircleProvider) -> None:
        self.inner = inner
        self.spent_s = 0.0

    def matrix(self, points: Sequence[Location], *, depart_epoch_s: int) -> TravelMatrix:
        began = time.perf_counter()
        try:
            return self.inner.matrix(points, depart_epoch_s=depart_epoch_s)
        finally:
            self.spent_s += time.perf_counter() - began


def running_day(seed: int, n_drivers: int, n_stops: int) -> list[RunningRoute]:
    """The seeded day at 11:00: each driver in its own sector of the city, on time."""
    rng = random.Random(seed)
    routes: list[RunningRoute] = []
    for d in range(n_drivers):
        sector = (2.0 * math.pi * d / n_drivers, 2.0 * math.pi * (d + 1) / n_drivers)
        position = _around(rng, RADIUS_M, sector)
        points = [_around(rng, RADIUS_M, sector) for _ in range(n_stops)]
        stops = [
            RemainingStop(
                order_ref=OrderRef(f"order-{d:02d}-{k:02d}"),
                location=point,
                service_s=rng.randrange(120, 301, 30),
                size=[rng.randint(1, 40), rng.randint(1, 4)],
            )
            for k, point in enumerate(_nearest_first(position, points))
        ]
        route = RunningRoute(
            vehicle_ref=VehicleRef(f"van-{d:02d}"),
            position=position,
            now_epoch_s=NOW,
            stops=stops,
            end_location=Location(lat=CENTRE[0], lon=CENTRE[1]),
            shift_end_epoch_s=DAY + 19 * HOUR,
            route_start_epoch_s=DAY + 8 * HOUR,
            max_duration_s=10 * HOUR,
            capacity=[1_000, 150],
            skills=frozenset({"cold"}) if d % 5 == 0 else frozenset(),
        )
        # Windows of two hours around the planned arrival, so the day is on time at 11:00.
        timeline = retime(route, provider())
        windowed = [
            msgspec.structs.replace(stop, time_windows=[_window_around(rng, timed.arrival_epoch_s)])
            if rng.random() < 0.5
            else stop
            for stop, timed in zip(route.stops, timeline.stops, strict=True)
        ]
        routes.append(msgspec.structs.replace(route, stops=windowed))
    return routes


def urgent_orders(seed: int, n_orders: int) -> list[PlanningOrder]:
    """Urgent orders anywhere in the city; half due within three hours, one in ten cold."""
    rng = random.Random(seed + 1)
    orders: list[PlanningOrder] = []
    for k in range(n_orders):
        windows = []
        if rng.random() < 0.5:
            start = NOW + rng.randrange(0, 3_600, 300)
            windows = [PlanningTimeWindow(start_epoch_s=start, end_epoch_s=start + 2 * HOUR)]
        orders.append(
            PlanningOrder(
                ref=OrderRef(f"urgent-{k:02d}"),
                location=_around(rng, RADIUS_M, (0.0, 2.0 * math.pi)),
                time_windows=windows,
                service_s=180,
                size=[rng.randint(1, 20), 1],
                required_skills=frozenset({"cold"}) if rng.random() < 0.1 else frozenset(),
            )
        )
    return orders


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m bench.reoptimize", description=__doc__)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--drivers", type=int, default=10)
    parser.add_argument("--stops", type=int, default=10, help="remaining stops per driver")
    parser.add_argument("--orders", type=int, default=50, help="urgent orders to insert")
    parser.add_argument("--time-limit", type=float, default=1.0, help="resequence, seconds")
    parser.add_argument("--delay-min", type=int, default=60, help="the late driver's delay")
    args = parser.parse_args(argv)

    routes = running_day(args.seed, args.drivers, args.stops)
    orders = urgent_orders(args.seed, args.orders)
    print(f"# python -m bench.reoptimize {' '.join(argv or [])}".rstrip())
    print(
        f"drivers {len(routes)}, remaining stops {sum(len(r.stops) for r in routes)}, "
        f"urgent orders {len(orders)}, seed {args.seed}"
    )

    outcomes: Counter[str] = Counter()
    for label, fresh in (("cold cache", True), ("warm cache", False)):
        shared = TimedProvider(provider())
        walls: list[float] = []
        matrix_s: list[float] = []
        for order in orders:
            timed = TimedProvider(provider()) if fresh else shared
            before = timed.spent_s
            began = time.perf_counter()
            answer = cheapest_insertion(routes, order, timed)
            walls.append(time.perf_counter() - began)
            matrix_s.append(timed.spent_s - before)
            if fresh:
                outcomes[answer.code if not isinstance(answer, Insertion) else "inserted"] += 1
        rest = [w - m for w, m in zip(walls, matrix_s, strict=True)]
        print(
            f"cheapest_insertion ({label}): median {statistics.median(walls) * 1000:.1f} ms, "
            f"max {max(walls) * 1000:.1f} ms; of which the matrix median "
            f"{statistics.median(matrix_s) * 1000:.1f} ms, the rest median "
            f"{statistics.median(rest) * 1000:.1f} ms"
        )
    print(f"answers: {dict(sorted(outcomes.items()))}")

    late = _late_and_shuffled(routes[0], args.delay_min, random.Random(args.seed + 2))
    current = retime(late, provider())
    began = time.perf_counter()
    better = resequence(late, provider(), time_limit_s=args.time_limit)
    wall = time.perf_counter() - began
    print(
        f"resequence of a driver {args.delay_min} min late, stops shuffled "
        f"({len(late.stops)} stops, "
        f"limit {args.time_limit:g} s): {wall:.2f} s"
    )
    for name, timeline in (("before", current), ("after", better)):
        late_stops = sum(1 for s in timeline.stops if s.lateness_s)
        print(
            f"  {name}: lateness {timeline.lateness_s / 60:.0f} min over {late_stops} stops, "
            f"overtime {timeline.overtime_s} s, driving {timeline.travel_s / 60:.0f} min, "
            f"{timeline.distance_m / 1000:.1f} km"
        )
    return 0


def _late_and_shuffled(route: RunningRoute, delay_min: int, rng: random.Random) -> RunningRoute:
    stops = list(route.stops)
    rng.shuffle(stops)
    now = route.now_epoch_s + delay_min * 60
    return msgspec.structs.replace(route, stops=stops, now_epoch_s=now)


def _around(rng: random.Random, radius_m: float, sector: tuple[float, float]) -> Location:
    r = radius_m * math.sqrt(rng.uniform(0.05, 1.0))
    theta = rng.uniform(*sector)
    lat = CENTRE[0] + (r * math.cos(theta)) / 111_195.0
    lon = CENTRE[1] + (r * math.sin(theta)) / (111_195.0 * math.cos(math.radians(CENTRE[0])))
    return Location(lat=round(lat, 6), lon=round(lon, 6))


def _nearest_first(start: Location, points: list[Location]) -> list[Location]:
    """The points in nearest-neighbour order from ``start``: a plausible dispatched sequence."""
    shrink = math.cos(math.radians(CENTRE[0]))

    def gap(a: Location, b: Location) -> float:
        # Every point here is geographic; the "or 0.0" only tells the type checker so.
        d_lat = (a.lat or 0.0) - (b.lat or 0.0)
        d_lon = ((a.lon or 0.0) - (b.lon or 0.0)) * shrink
        return math.hypot(d_lat, d_lon)

    left = list(points)
    ordered: list[Location] = []
    here = start
    while left:
        here = min(left, key=lambda p: gap(here, p))
        left.remove(here)
        ordered.append(here)
    return ordered


def _window_around(rng: random.Random, arrival_epoch_s: int) -> PlanningTimeWindow:
    start = arrival_epoch_s - rng.randrange(0, 3_600, 300)
    return PlanningTimeWindow(start_epoch_s=start, end_epoch_s=start + 2 * HOUR)


if __name__ == "__main__":
    raise SystemExit(main())
