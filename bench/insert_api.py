"""Urgent-order insertion end to end: ``POST /v1/routes/insert`` on a running 100-stop day.

    python -m bench.insert_api [--drivers 10] [--orders 100] [--urgent 20]

Starts one server process (with its planner worker) against the configured or embedded
services, creates a day through the API (a depot, ``drivers`` vans and shifts, ``orders``
orders), plans and dispatches it, starts every route, then times the insertion of ``urgent``
new orders one by one, each a separate request: state read from PostgreSQL and Redis, the
re-optimiser, the write and the push to the driver.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench.harness import bench_env, make_tenant, server_process

CENTRE = (52.52, 13.405)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drivers", type=int, default=10)
    parser.add_argument("--orders", type=int, default=100)
    parser.add_argument("--urgent", type=int, default=20)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--port", type=int, default=18090)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with bench_env() as env:
        tenant = make_tenant(env.database_url, args.drivers)
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
                        "lat": CENTRE[0] + rng.uniform(-0.08, 0.08),
                        "lon": CENTRE[1] + rng.uniform(-0.12, 0.12),
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
            print(f"# python -m bench.insert_api --drivers {args.drivers} --orders {args.orders}")
            print(f"day: {args.drivers} drivers, {routes} stops dispatched and started")
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
