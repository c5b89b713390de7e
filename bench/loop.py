"""The loop, measured: consecutive simulated days of one fleet in one city whose real speeds and
service times the planner does not know, each planned with what was learned from the days
before, driven, rolled up and learned from.

    python -m bench.loop [--days 10] [--drivers 8] [--orders 80] [--city-factor 0.7]
                         [--seed 1] [--out FILE]

Through the real system: ``lastmile serve`` with its workers (planner, ETA, rollups, ...), the
fleet simulator driving in a :class:`~simulator.world.World` (speeds by H3 zone and hour, a
city-wide error of ``city-factor`` against the planner's model, per-customer service times).
Each day is a simulated day whose shifts ended ``SLACK_H`` hours ago (a day already under way,
``under_way_h``), so it is replayed within a minute or two with its own times, however late it
runs, on today's date: the days are runs, each with its own routes and orders (a new seed
each, in the same world), driven by one fleet (the same drivers, each with their own pace,
every day: ``fleet_seed``). After each day the benchmark waits for the rollups worker to
have read every event, then learns (as the nightly job does) from every day so far, so the
next plan and the next ETAs use it. Per day it reports:

* the planned-versus-actual arrival MAE (the plan's arrival against the real one);
* the on-time rate (stops with a window);
* the ETA MAE 30 minutes before arrival;
* the driven km per delivered stop.

Orders give no service time of their own (the simulator alone knows each one's): the
organisation's default (``DEFAULT_SERVICE_S``) stands in on day 1, what was learned (by order
size, customer and address) after. Jams (the simulator's ``delay_share``) are off by default:
a jam is a random delay no learning can foresee, and the benchmark is about what can be learned.

Day 1 is planned and predicted with the configured speed: nothing has been learned yet.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from redis.asyncio import Redis

from bench.harness import (
    BenchEnv,
    BenchTenant,
    Report,
    bench_env,
    free_port,
    make_tenant,
    server_process,
)
from schemas.ids import OrgId
from simulator.simulation import SimulationConfig, simulate
from simulator.world import World
from workers.learner import learn

DAY_HOURS = 8.0
UNDER_WAY_H = 7.98
SLACK_H = 4.0
DEFAULT_SERVICE_S = 180


async def _rolled_up(redis: Redis, stream: str, timeout_s: float = 300.0) -> None:
    """Wait until the rollups group has read and acknowledged every event."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        groups = await redis.xinfo_groups(stream)
        rollups = next((g for g in groups if g["name"] == b"rollups"), None)
        if rollups is not None and not rollups["pending"] and not rollups.get("lag"):
            return
        await asyncio.sleep(1.0)
    raise RuntimeError("the rollups worker did not catch up within five minutes")


async def _figures(conn: psycopg.AsyncConnection, routes: list[int]) -> dict[str, Any]:
    """The day's figures over its routes' facts."""
    stops = await (
        await conn.execute(
            "SELECT count(*), avg(abs(arrival_error_s)), avg(arrival_error_s),"
            " avg((punctuality = 'on_time')::int) FILTER (WHERE punctuality IS NOT NULL),"
            " count(*) FILTER (WHERE outcome = 'delivered'),"
            " avg(service_s) FILTER (WHERE arrival_source <> 'completion')"
            " FROM stop_facts WHERE route_id = ANY(%s)",
            (routes,),
        )
    ).fetchone()
    eta = await (
        await conn.execute(
            "SELECT count(*), avg(abs(e.error_s)), avg(e.inside::int) FROM stop_eta_errors e"
            " JOIN stop_facts f ON f.stop_id = e.stop_id"
            " WHERE f.route_id = ANY(%s) AND e.horizon_min = 30",
            (routes,),
        )
    ).fetchone()
    driven = await (
        await conn.execute(
            "SELECT count(*), sum(driven_m) FROM route_facts WHERE route_id = ANY(%s)", (routes,)
        )
    ).fetchone()
    if stops is None or eta is None or driven is None:
        raise RuntimeError("an aggregate query gave no row")
    plan = await (
        await conn.execute(
            "SELECT p.result->>'model' FROM plans p JOIN routes r ON r.plan_id = p.id"
            " WHERE r.id = ANY(%s) LIMIT 1",
            (routes,),
        )
    ).fetchone()
    delivered = stops[4] or 0
    return {
        "stops": stops[0],
        "arrival_mae_min": None if stops[1] is None else float(stops[1]) / 60,
        "arrival_bias_min": None if stops[2] is None else float(stops[2]) / 60,
        "on_time_rate": None if stops[3] is None else float(stops[3]),
        "service_mean_s": None if stops[5] is None else float(stops[5]),
        "plan_model": None if plan is None else plan[0],
        "eta_30min_arrivals": eta[0],
        "eta_30min_mae_min": None if eta[1] is None else float(eta[1]) / 60,
        "eta_30min_inside": None if eta[2] is None else float(eta[2]),
        "route_facts": driven[0],
        "km_per_delivered": None if not delivered else float(driven[1] or 0) / 1000 / delivered,
    }


async def _days(
    args: argparse.Namespace, report: Report, env: BenchEnv, port: int, tenant: BenchTenant
) -> None:
    org: OrgId = tenant.org_id
    world = World(seed=args.seed, city_factor=args.city_factor)
    redis = Redis.from_url(env.redis_url)
    events = f"{env.redis_prefix}events"
    try:
        async with await psycopg.AsyncConnection.connect(env.database_url, autocommit=True) as db:
            # Orders give no service time: the organisation's default, then what was learned.
            await db.execute(
                "UPDATE orgs SET default_service_s = %s WHERE id = %s", (DEFAULT_SERVICE_S, org)
            )
            for day in range(1, args.days + 1):
                began = time.monotonic()
                model = await (
                    await db.execute(
                        "SELECT id FROM learned_models WHERE org_id = %s ORDER BY id DESC LIMIT 1",
                        (org,),
                    )
                ).fetchone()
                summary = await simulate(
                    SimulationConfig(
                        url=f"http://127.0.0.1:{port}",
                        api_key=tenant.api_key,
                        drivers=args.drivers,
                        orders=args.orders,
                        speedup=1.0,
                        seed=args.seed * 1000 + day,
                        ping_interval_s=args.ping_interval_s,
                        day_hours=DAY_HOURS,
                        under_way_h=UNDER_WAY_H,
                        # Shifts end hours before now: a day running over its plan (as day 1
                        # does, planned at the configured speed) is still all in the past.
                        start=datetime.now(UTC) - timedelta(hours=SLACK_H),
                        tracking_links=0,
                        world=world,
                        delay_share=args.delay_share,
                        service_given=False,
                        fleet_seed=args.seed,  # one fleet: the same drivers every day
                    )
                )
                routes = [d.route_id for d in summary.drivers if d.route_id is not None]
                await _rolled_up(redis, events)
                figures = await _figures(db, routes)
                learned = await learn(db, org, days=28)
                report.add(
                    day=day,
                    model=None if model is None else model[0],
                    routes=len(routes),
                    delivered=summary.delivered,
                    **figures,
                    learned_cells=learned.cells,
                    learned_city_kmh=None
                    if learned.city_speed_mps is None
                    else learned.city_speed_mps * 3.6,
                    wall_s=time.monotonic() - began,
                )
    finally:
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--drivers", type=int, default=8)
    parser.add_argument("--orders", type=int, default=80)
    parser.add_argument("--city-factor", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--delay-share", type=float, default=0.0, help="drivers caught in a jam (none learnable)"
    )
    parser.add_argument("--ping-interval-s", type=float, default=10.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report = Report("loop")
    started = datetime.now(UTC)
    with bench_env() as env:
        os.environ["LASTMILE_PING_MAX_AGE_S"] = str(2 * 86_400)
        # A simulated day passes in a minute: the ETA worker reads each night's model at once.
        os.environ["LASTMILE_LEARNED_MODEL_TTL_S"] = "1"
        tenant = make_tenant(env.database_url, 0)
        port = free_port()
        with server_process(env, port, workers=True):
            asyncio.run(_days(args, report, env, port, tenant))
    print(f"  {args.days} days in {(datetime.now(UTC) - started).total_seconds():.0f} s")
    report.write(args.out)


if __name__ == "__main__":
    main()
