"""Urgent-order insertion end to end: ``POST /v1/routes/insert`` on a running 100-stop day.

    python -m bench.insert_api [--drivers 10] [--orders 100] [--urgent 20] [--learned]

Starts one server process (with its planner worker) against the configured or embedded
services, creates a day through the API (a depot, ``drivers`` vans and shifts, ``orders``
orders), plans and dispatches it, starts every route, then times the insertion of ``urgent``
new orders one by one, each a separate request: state read from PostgreSQL and Redis, the
re-optimiser, the write and the push to the driver.

With ``--learned`` the organisation has a learned model before the day is planned, so the plan
and every insertion drive at its speeds: the plan's model read per call, its speed table sent
to the solver process with each call. The table is dense on purpose (every H3 cell of the area,
each with a figure for every working hour of the week, about 30,000 in all), an upper bound of
what the learner keeps, which only keeps groups with enough samples.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import h3
import httpx
import msgspec
import psycopg

from bench.harness import bench_env, make_tenant, server_process
from schemas.ids import OrgId
from solver.learning import SpeedTable
from store.learning import store_model

CENTRE = (52.52, 13.405)
SPREAD = (0.08, 0.12)
"""How far orders lie from the centre, in degrees of latitude and longitude."""


def learned_table(rng: random.Random) -> SpeedTable:
    """A dense learned table over the orders' area: a city speed of 6 m/s (the configured
    default is 8), slower at rush hours, each cell faster or slower than the city."""
    lat, lon = CENTRE
    d_lat, d_lon = SPREAD
    area = h3.LatLngPoly(
        [
            (lat - d_lat, lon - d_lon),
            (lat - d_lat, lon + d_lon),
            (lat + d_lat, lon + d_lon),
            (lat + d_lat, lon - d_lon),
        ]
    )
    cells = sorted(h3.polygon_to_cells(area, 8))
    city = 6.0
    by_hour = {
        h: city * (0.8 if h % 24 in (8, 9, 17, 18) else 1.0 if 7 <= h % 24 <= 21 else 1.2)
        for h in range(168)
    }
    by_cell = {c: city * rng.uniform(0.7, 1.3) for c in cells}
    working = [d * 24 + h for d in range(7) for h in range(7, 22)]
    by_cell_hour = {
        f"{c}/{h}": by_cell[c] * by_hour[h] / city * rng.uniform(0.9, 1.1)
        for c in cells
        for h in working
    }
    return SpeedTable(
        res=8,
        city_mps=city,
        by_hour=by_hour,
        by_cell=by_cell,
        by_cell_hour=by_cell_hour,
        samples=len(by_cell_hour) * 5,
        cell_samples={c: 5 * len(working) for c in cells},
        observed_circuity=1.3,
    )


def store_learned(database_url: str, org_id: OrgId, table: SpeedTable) -> int:
    """Keep ``table`` as the organisation's newest learned model; its id."""
    import asyncio

    async def go() -> int:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            today = datetime.now(UTC).date()
            speeds = msgspec.to_builtins(table)
            return await store_model(
                conn, org_id, today - timedelta(days=28), today, 200, speeds, None
            )

    return asyncio.run(go())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drivers", type=int, default=10)
    parser.add_argument("--orders", type=int, default=100)
    parser.add_argument("--urgent", type=int, default=20)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--port", type=int, default=18090)
    parser.add_argument(
        "--learned", action="store_true", help="plan and insert with a dense learned model"
    )
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with bench_env() as env:
        tenant = make_tenant(env.database_url, args.drivers)
        table_kb = 0.0
        if args.learned:
            table = learned_table(random.Random(args.seed))
            table_kb = len(msgspec.json.encode(table)) / 1024
            store_learned(env.database_url, tenant.org_id, table)
        with server_process(env, args.port, workers=True):
            client = httpx.Client(
                base_url=f"http://127.0.0.1:{args.port}",
                headers={"authorization": f"Bearer {tenant.api_key}"},
                timeout=120,
            )
            day = datetime.now(UTC).date() + timedelta(days=1)

            def at(hour: float) -> str:
                base = datetime(day.year, day.month, day.day, tzinfo=UTC)
                return (base + timedelta(hours=hour)).isoformat()

            def create(path: str, body: dict[str, Any]) -> int:
                reply = client.post(path, json=body)
                reply.raise_for_status()
                return int(reply.json()["id"])

            def new_order(ref: str) -> int:
                return create(
                    "/v1/orders",
                    {
                        "external_ref": ref,
                        "address": ref,
                        "lat": CENTRE[0] + rng.uniform(-SPREAD[0], SPREAD[0]),
                        "lon": CENTRE[1] + rng.uniform(-SPREAD[1], SPREAD[1]),
                        "day": day.isoformat(),
                        "time_windows": [{"start": at(8), "end": at(20)}],
                        "service_s": 180,
                        "size": {"parcels": 1},
                    },
                )

            depot = create("/v1/depots", {"name": "hub", "lat": CENTRE[0], "lon": CENTRE[1]})
            for n, (driver_id, _token) in enumerate(tenant.drivers):
                vehicle = create("/v1/vehicles", {"name": f"van {n}", "capacity": {"parcels": 14}})
                create(
                    "/v1/shifts",
                    {
                        "driver_id": driver_id,
                        "vehicle_id": vehicle,
                        "day": day.isoformat(),
                        "start_place": {"depot_id": depot},
                        "working_window": {"start": at(7), "end": at(21)},
                    },
                )
            for i in range(args.orders):
                new_order(f"o{i}")
            plan = client.post("/v1/plans", json={"day": day.isoformat(), "time_limit_s": 10})
            plan_id = plan.json()["id"]
            while (status := client.get(f"/v1/plans/{plan_id}").json())["status"] not in (
                "done",
                "failed",
            ):
                time.sleep(0.5)
            routes = sum(len(r["visits"]) for r in status["outcome"]["routes"])
            client.post(f"/v1/plans/{plan_id}/dispatch", json={}).raise_for_status()
            for _, token in tenant.drivers:
                httpx.post(
                    f"http://127.0.0.1:{args.port}/v1/driver/route/start",
                    headers={"authorization": f"Bearer {token}"},
                )
            timings: list[float] = []
            placed_s: list[float] = []
            refused_s: list[float] = []
            for u in range(args.urgent):
                order_id = new_order(f"urgent{u}")
                started = time.perf_counter()
                reply = client.post("/v1/routes/insert", json={"order_id": order_id})
                took = time.perf_counter() - started
                timings.append(took)
                (placed_s if reply.status_code == 200 else refused_s).append(took)
            learned = " --learned" if args.learned else ""
            print(
                f"# python -m bench.insert_api --drivers {args.drivers} --orders {args.orders}"
                f" --urgent {args.urgent}{learned}"
            )
            print(f"day: {args.drivers} drivers, {routes} stops dispatched and started")
            print(f"planned with: {status['outcome'].get('model', '?')}")
            if args.learned:
                print(f"learned speed table: {table_kb:.0f} KiB as JSON")
            print(
                f"POST /v1/routes/insert x{args.urgent}: median"
                f" {1000 * statistics.median(timings):.0f} ms, max {1000 * max(timings):.0f} ms;"
                f" placed {len(placed_s)}, refused with a reason {len(refused_s)}"
            )
            # A placed order is written back and pushed to its driver; a refused one is not:
            # their medians differ, and a plan with more room places more.
            for outcome, taken in (("placed", placed_s), ("refused", refused_s)):
                if taken:
                    print(
                        f"  {outcome}: median {1000 * statistics.median(taken):.0f} ms,"
                        f" max {1000 * max(taken):.0f} ms"
                    )


if __name__ == "__main__":
    main()
