"""A synthetic planning day: 1,000 orders, 50 vehicles, great-circle travel times.

Run from the repository root::

    python -m bench.planning --time-limit 60 --seed 7

Orders are spread over a disc of 12 km around a city centre, 40 % of them with a two-hour
delivery window, some with priorities and a cold-chain skill; vans and small vans with a lunch
break, a maximum shift duration, fixed, per-km and per-hour costs. Everything is drawn from
one seeded generator, so a seed names one day. The command prints the time to the first
solution, the wall time, orders served, the total distance, and the plan's cost (the routes'
costs plus the penalties of the orders left out), with the engine and processes that ran.
``--processes 1`` is OR-Tools alone (this day has breaks, so the planner's engine is
OR-Tools; a second process adds PyVRP's plan of the day with room kept for the breaks, its
late stops left out, and the cheaper plan is kept). It is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from schemas.planning import (
    DepotRef,
    Location,
    OrderRef,
    PlanningBreak,
    PlanningDepot,
    PlanningOptions,
    PlanningOrder,
    PlanningProblem,
    PlanningTimeWindow,
    PlanningVehicle,
    VehicleRef,
)
from solver.matrix import ConstantSpeed, GreatCircleProvider
from solver.search import Progress, SearchTuning
from solver.vrptw import solve

CENTRE = (52.5200, 13.4050)
RADIUS_M = 12_000.0
DAY = int(datetime(2025, 6, 2, tzinfo=UTC).timestamp())
HOUR = 3600


def synthetic_day(
    seed: int, n_orders: int, n_vehicles: int, time_limit_s: float
) -> PlanningProblem:
    """The seeded day: two depots, ``n_vehicles`` (one in five a small van), ``n_orders``."""
    rng = random.Random(seed)

    def around(radius_m: float) -> Location:
        r = radius_m * math.sqrt(rng.random())
        theta = rng.uniform(0.0, 2.0 * math.pi)
        lat = CENTRE[0] + (r * math.cos(theta)) / 111_195.0
        lon = CENTRE[1] + (r * math.sin(theta)) / (111_195.0 * math.cos(math.radians(CENTRE[0])))
        return Location(lat=round(lat, 6), lon=round(lon, 6))

    depots = [PlanningDepot(ref=DepotRef(f"depot-{k}"), location=around(6_000.0)) for k in range(2)]
    lunch = PlanningBreak(
        window=PlanningTimeWindow(start_epoch_s=DAY + 11 * HOUR, end_epoch_s=DAY + 13 * HOUR),
        duration_s=30 * 60,
    )
    vehicles = []
    for v in range(n_vehicles):
        small = v % 5 == 4
        vehicles.append(
            PlanningVehicle(
                ref=VehicleRef(f"van-{v:02d}"),
                start_depot=depots[v % 2].ref,
                shift=PlanningTimeWindow(start_epoch_s=DAY + 7 * HOUR, end_epoch_s=DAY + 18 * HOUR),
                breaks=[lunch],
                max_duration_s=9 * HOUR,
                capacity=[300, 60] if small else [1_000, 150],
                skills=frozenset({"cold"}) if v % 6 == 0 else frozenset(),
                fixed_cost=30.0 if small else 50.0,
                cost_per_km=0.2 if small else 0.35,
                cost_per_hour=25.0,
            )
        )
    orders = []
    for k in range(n_orders):
        windows = []
        if rng.random() < 0.4:
            start = DAY + rng.randrange(8, 16) * HOUR
            windows = [PlanningTimeWindow(start_epoch_s=start, end_epoch_s=start + 2 * HOUR)]
        roll = rng.random()
        orders.append(
            PlanningOrder(
                ref=OrderRef(f"order-{k:04d}"),
                location=around(RADIUS_M),
                time_windows=windows,
                service_s=rng.randrange(120, 301, 30),
                size=[rng.randint(1, 40), rng.randint(1, 4)],
                priority=2 if roll < 0.02 else 1 if roll < 0.12 else 0,
                required_skills=frozenset({"cold"}) if rng.random() < 0.03 else frozenset(),
            )
        )
    return PlanningProblem(
        dimensions=["weight_kg", "parcels"],
        depots=depots,
        vehicles=vehicles,
        orders=orders,
        options=PlanningOptions(time_limit_s=time_limit_s),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m bench.planning", description=__doc__)
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds, all included")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--orders", type=int, default=1_000)
    parser.add_argument("--vehicles", type=int, default=50)
    parser.add_argument("--first-solution", default=SearchTuning().first_solution)
    parser.add_argument("--metaheuristic", default=SearchTuning().metaheuristic)
    parser.add_argument(
        "--processes",
        type=int,
        default=None,
        help="search processes (default: the planner decides; 1: OR-Tools alone on this day)",
    )
    args = parser.parse_args(argv)

    problem = synthetic_day(args.seed, args.orders, args.vehicles, args.time_limit)
    tuning = SearchTuning(
        first_solution=args.first_solution,
        metaheuristic=args.metaheuristic,
        processes=args.processes,
    )
    provider = GreatCircleProvider(speed=ConstantSpeed(7.0), circuity=1.35)
    first: list[Progress] = []
    last: list[Progress] = []

    def progress(p: Progress) -> None:
        if not first:
            first.append(p)
        last[:] = [p]

    began = time.monotonic()
    result = solve(problem, provider, tuning=tuning, on_progress=progress)
    wall = time.monotonic() - began

    served = sum(len(r.stops) for r in result.routes)
    penalty = {o.ref: problem.options.unassigned_penalty[o.priority] for o in problem.orders}
    routes_cost = sum(r.cost for r in result.routes)
    penalties = sum(penalty[u.order_ref] for u in result.unassigned)
    plan_cost = routes_cost + penalties
    codes: dict[str, int] = {}
    for u in result.unassigned:
        codes[u.code] = codes.get(u.code, 0) + 1
    shown = argv if argv is not None else sys.argv[1:]
    print(f"# python -m bench.planning {' '.join(shown)}".rstrip())
    print(f"orders {len(problem.orders)}, vehicles {len(problem.vehicles)}, seed {args.seed}")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start")
    print(f"engine {result.stats.engine} ({result.stats.engine_reason})")
    print(f"search {result.stats.search}; processes {result.stats.processes}")
    if first:
        print(
            f"first solution after {first[0].elapsed_s:.1f} s, objective {first[0].objective:.1f}"
        )
        print(f"best solution after {last[0].elapsed_s:.1f} s, objective {last[0].objective:.1f}")
    print(f"status {result.stats.status}, improving solutions {result.stats.solutions_found}")
    print(f"cost {plan_cost:.1f} (routes {routes_cost:.1f} + unassigned penalties {penalties:.1f})")
    print(f"wall time {wall:.1f} s (limit {args.time_limit:g} s)")
    print(f"served {served} of {len(problem.orders)}; unassigned by reason {codes or 'none'}")
    print(f"vehicles used {len(result.routes)}")
    print(f"distance {sum(r.distance_m for r in result.routes) / 1000:.1f} km")
    print(f"driving+service+waiting {sum(r.duration_s for r in result.routes) / HOUR:.1f} h")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
