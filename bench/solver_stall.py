"""How long the API's event loop stalls while a route is re-sequenced: inline and through the
solver pool (``app/solving.py``).

    python -m bench.solver_stall [--stops 40] [--seconds 1.0]

A ticker task sleeps 1 ms at a time and records the gaps between its wake-ups; the longest gap
while ``resequence`` searches for ``--seconds`` is how long every socket of an API process
would have waited. The raw ceiling is the same ticker with nothing else to do.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import Awaitable, Callable

from app.process.solver_pool import SolverPool
from app.settings import Settings
from schemas.planning import Location, OrderRef, PlanningTimeWindow, VehicleRef
from schemas.reoptimize import RemainingStop, RunningRoute
from solver.matrix import GreatCircleProvider
from solver.resequence import resequence

START_S = 1_800_000_000
CENTRE = Location(lat=52.52, lon=13.405)


def late_route(stops: int, seed: int) -> RunningRoute:
    """A driver in the city centre with ``stops`` stops around it, in random order."""
    rng = random.Random(seed)
    remaining = [
        RemainingStop(
            order_ref=OrderRef(f"o{i}"),
            location=Location(
                lat=52.52 + rng.uniform(-0.05, 0.05), lon=13.405 + rng.uniform(-0.08, 0.08)
            ),
            time_windows=[
                PlanningTimeWindow(
                    start_epoch_s=START_S, end_epoch_s=START_S + rng.randint(2_000, 20_000)
                )
            ],
            service_s=120,
        )
        for i in range(stops)
    ]
    return RunningRoute(
        vehicle_ref=VehicleRef("v1"),
        position=CENTRE,
        now_epoch_s=START_S,
        stops=remaining,
        end_location=CENTRE,
        shift_end_epoch_s=START_S + 12 * 3600,
        route_start_epoch_s=START_S,
    )


async def longest_stall_ms(work: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """(longest gap between 1 ms ticks while ``work`` runs, how long ``work`` took), in ms."""
    gaps: list[float] = []

    async def tick() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.05)
    began = time.perf_counter()
    await work()
    took = time.perf_counter() - began
    await asyncio.sleep(0.05)  # the gap that spans an inline call ends only after it
    ticker.cancel()
    return max(gaps) * 1000, took * 1000


async def measure(stops: int, seconds: float, seed: int) -> None:
    route = late_route(stops, seed)
    settings = Settings()
    pool = SolverPool(settings, 1)
    try:
        await pool.run(resequence, route, time_limit_s=0.1)  # started and warm

        async def idle() -> None:
            await asyncio.sleep(seconds)

        async def inline() -> None:
            resequence(route, GreatCircleProvider(), time_limit_s=seconds)

        async def pooled() -> None:
            await pool.run(resequence, route, time_limit_s=seconds)

        for name, work in (
            ("ceiling: nothing running", idle),
            ("inline", inline),
            ("pool", pooled),
        ):
            stall, took = await longest_stall_ms(work)
            print(f"  {name:<26} call {took:8,.0f} ms   longest event-loop stall {stall:8,.1f} ms")
    finally:
        pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stops", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(f"$ python -m bench.solver_stall --stops {args.stops} --seconds {args.seconds}")
    asyncio.run(measure(args.stops, args.seconds, args.seed))


if __name__ == "__main__":
    main()
