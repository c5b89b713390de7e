"""Analytics benchmark: each report over a month of a fleet's days, through the real API.

    python -m bench.analytics [--days 30] [--drivers 50] [--stops 25] [--positions-per-day 0]
                              [--repeat 5] [--no-learn] [--out FILE]

Seeds one organisation with ``days`` days of ``drivers`` routes of ``stops`` closed stops each:
orders, routes and stops, their facts (``stop_facts`` with four ETA errors per stop,
``route_facts``), ratings on one stop in five, four customer messages per stop in the
notification outbox, a learned model, and optionally
``positions-per-day`` positions a day (the reports never read them, but they share the
database's cache). Then, against ``lastmile serve``, it asks every report for the whole month
``repeat`` times and prints the median and the slowest answer, beside the raw ceiling measured
in the same run: one ``count(*)`` over the month's stop facts, the least any report must read.
Last (unless ``--no-learn``) it times the learner over the month twice: the first run reads
and cuts every route's positions, the second reuses what the first kept, beside the raw
ceiling of the first, the month's positions fetched into Python in one query. The seeded
drivers drive north at about 9 m/s from 07:00, one fix a second.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import h3
import httpx
import msgspec
import psycopg

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
from solver.learning import SpeedTable
from store.partitions import ensure_window
from workers.learner import learn

REPORTS = [
    "deliveries?by=day",
    "deliveries?by=driver",
    "deliveries?by=carrier",
    "deliveries?by=zone",
    "deliveries?by=reason",
    "deliveries?by=driver&format=csv",
    "routes?by=day",
    "routes?by=driver",
    "patterns",
    "learned",
    "weekly-summary",
]
"""The reports asked for, each over the whole range; the weekly summary (its last complete
week beside the week before, with the week's patterns) takes no range."""


def zones(count: int) -> list[str]:
    """``count`` H3 cells (resolution 8) around Berlin's centre."""
    centre = h3.latlng_to_cell(52.52, 13.405, 8)
    ring = 1
    cells: list[str] = [centre]
    while len(cells) < count:
        cells += sorted(h3.grid_ring(centre, ring))
        ring += 1
    return cells[:count]


async def seed(
    database_url: str, tenant: BenchTenant, days: int, stops: int, positions_per_day: int
) -> dict[str, int]:
    """The month's rows (see the module docstring); how many of each were stored."""
    org: OrgId = tenant.org_id
    last = datetime.now(UTC).date()
    first = last - timedelta(days=days - 1)
    cells = zones(400)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("UPDATE orgs SET timezone = 'Europe/Berlin' WHERE id = %s", (org,))
        vehicles = []
        for n, _ in enumerate(tenant.drivers):
            row = await (
                await conn.execute(
                    "INSERT INTO vehicles (org_id, name, energy, consumption_per_km)"
                    " VALUES (%s, %s, 'diesel', 0.09) RETURNING id",
                    (org, f"van {n}"),
                )
            ).fetchone()
            assert row is not None
            vehicles.append(row[0])
        for d in range(days):
            day = first + timedelta(days=d)
            start = datetime(day.year, day.month, day.day, 7, tzinfo=UTC)
            plan = await (
                await conn.execute(
                    "INSERT INTO plans (org_id, day, status) VALUES (%s, %s, 'done') RETURNING id",
                    (org, day),
                )
            ).fetchone()
            assert plan is not None
            for (driver, _), vehicle in zip(tenant.drivers, vehicles, strict=True):
                await conn.execute(
                    "WITH s AS (INSERT INTO shifts (org_id, driver_id, vehicle_id, day,"
                    "  start_lat, start_lon, work_start, work_end)"
                    "  VALUES (%s, %s, %s, %s, 52.52, 13.405, %s, %s) RETURNING id)"
                    " INSERT INTO routes (org_id, plan_id, shift_id, driver_id, vehicle_id, day,"
                    "  status, planned_start, planned_end, distance_m, started_at, completed_at)"
                    " SELECT %s, %s, s.id, %s, %s, %s, 'completed', %s, %s, 60000, %s, %s FROM s",
                    (
                        org, driver, vehicle, day, start, start + timedelta(hours=10),
                        org, plan[0], driver, vehicle, day, start, start + timedelta(hours=8),
                        start, start + timedelta(hours=8, minutes=20),
                    ),
                )  # fmt: skip
        await conn.execute(
            "INSERT INTO orders (org_id, external_ref, address, lat, lon, day, window_starts,"
            " window_ends, service_s, status, email)"
            " SELECT r.org_id, 'b-' || r.id || '-' || n,"
            "  (n * 7 + r.driver_id) %% 900 || ' Bench St',"
            "  52.45 + random() * 0.14, 13.3 + random() * 0.2, r.day,"
            "  ARRAY[r.planned_start + (n * interval '18 min')],"
            "  ARRAY[r.planned_start + (n * interval '18 min') + interval '2 hours'], 120,"
            "  'delivered', 'c' || ((n * 13 + r.driver_id) %% 3000) || '@example.com'"
            " FROM routes r, generate_series(1, %s) n WHERE r.org_id = %s",
            (stops, org),
        )
        await conn.execute(
            "INSERT INTO stops (org_id, route_id, order_id, seq, status, planned_arrival,"
            " planned_departure, arrived_at, completed_at)"
            " SELECT o.org_id, split_part(o.external_ref, '-', 2)::bigint, o.id,"
            "  split_part(o.external_ref, '-', 3)::int, 'delivered', o.window_starts[1],"
            "  o.window_starts[1] + interval '2 min',"
            "  o.window_starts[1] + (random() * 40 - 10) * interval '1 min',"
            "  o.window_starts[1] + (random() * 40 - 7) * interval '1 min'"
            " FROM orders o WHERE o.org_id = %s",
            (org,),
        )
        await conn.execute(
            "UPDATE stops SET status = 'failed', failure_code = 'not_home',"
            " completed_at = arrived_at + interval '1 min'"
            " WHERE org_id = %s AND random() < 0.04",
            (org,),
        )
        await conn.execute(
            "INSERT INTO stop_facts (stop_id, org_id, day, route_id, order_id, driver_id,"
            " carrier_id, zone, address_key, outcome, failure_code, attempt, planned_arrival,"
            " arrived_at, arrival_source, completed_at, window_start, window_end, punctuality,"
            " lateness_s, wait_s, service_s, planned_service_s, arrival_error_s)"
            " SELECT s.id, s.org_id, r.day, s.route_id, s.order_id, r.driver_id, NULL,"
            "  (%s::text[])[1 + (s.order_id %% 400)], lower(o.address), s.status, s.failure_code,"
            "  1, s.planned_arrival, least(s.arrived_at, s.completed_at), 'reported',"
            "  s.completed_at, o.window_starts[1], o.window_ends[1],"
            "  CASE WHEN s.arrived_at > o.window_ends[1] THEN 'late'"
            "   WHEN s.completed_at < o.window_starts[1] THEN 'early' ELSE 'on_time' END,"
            "  greatest(0, extract(epoch FROM s.arrived_at - o.window_ends[1]))::int,"
            "  0, greatest(0, extract(epoch FROM s.completed_at - s.arrived_at))::int, 120,"
            "  extract(epoch FROM s.arrived_at - s.planned_arrival)::int"
            " FROM stops s JOIN routes r ON r.id = s.route_id JOIN orders o ON o.id = s.order_id"
            " WHERE s.org_id = %s",
            (cells, org),
        )
        await conn.execute(
            "INSERT INTO stop_eta_errors (stop_id, horizon_min, error_s, inside)"
            " SELECT f.stop_id, h, ((random() - 0.5) * h * 40)::int, random() < 0.8"
            " FROM stop_facts f, unnest(ARRAY[5, 15, 30, 60]) h WHERE f.org_id = %s",
            (org,),
        )
        await conn.execute(
            "INSERT INTO route_facts (route_id, org_id, day, driver_id, carrier_id, vehicle_id,"
            " stops, delivered, failed, planned_m, driven_m, planned_s, actual_s, moving_s,"
            " idle_s, fixes, jumps, energy, energy_used, co2_kg, started_at, completed_at)"
            " SELECT r.id, r.org_id, r.day, r.driver_id, NULL, r.vehicle_id, %s, %s, 0, 60000,"
            "  60000 * (1 + random() * 0.2), 28800, 30000, 18000, 900, 5760, 2, 'diesel', 5.9,"
            "  15.7, r.started_at, r.completed_at FROM routes r WHERE r.org_id = %s",
            (stops, stops, org),
        )
        await conn.execute(
            "INSERT INTO ratings (order_id, org_id, driver_id, route_id, stars)"
            " SELECT f.order_id, f.org_id, f.driver_id, f.route_id, 3 + (f.stop_id %% 3)"
            " FROM stop_facts f WHERE f.org_id = %s AND f.stop_id %% 5 = 0",
            (org,),
        )
        # Four customer messages per stop, on the stop's day: two texts and two emails, one
        # in thirty failed and one in fifty still on its way.
        await conn.execute(
            "INSERT INTO outbox (org_id, order_id, event_id, kind, recipient_kind, channel,"
            " address, template, language, idempotency_key, state, created_at)"
            " SELECT f.org_id, f.order_id, 'bench', k.kind, 'customer', k.channel,"
            "  'c@example.com', k.kind || '.' || k.channel, 'en',"
            "  'bench:' || f.stop_id || ':' || k.kind || ':' || k.channel,"
            "  CASE WHEN random() < 1.0 / 30 THEN 'failed' WHEN random() < 0.02 THEN 'pending'"
            "   ELSE 'sent' END,"
            "  f.arrived_at - k.ahead * interval '1 min'"
            " FROM stop_facts f, (VALUES ('en_route', 'sms', 30), ('approaching', 'sms', 10),"
            "  ('en_route', 'email', 30), ('delivered', 'email', -3)) k(kind, channel, ahead)"
            " WHERE f.org_id = %s",
            (org,),
        )
        table = SpeedTable(
            res=8,
            city_mps=7.5,
            by_cell={c: 5 + (n % 10) for n, c in enumerate(cells)},
            cell_samples=dict.fromkeys(cells, 40),
            by_hour={h: 6.0 + (h % 24) / 10 for h in range(168)},
        )
        await conn.execute(
            "INSERT INTO learned_models (org_id, day_from, day_to, routes, speeds)"
            " VALUES (%s, %s, %s, %s, %s)",
            (org, first, last, days * len(tenant.drivers), msgspec.json.encode(table).decode()),
        )
        if positions_per_day:
            await ensure_window(conn, datetime.now(UTC), days_back=days + 1, days_ahead=1)
            per_driver = positions_per_day // len(tenant.drivers)
            for d in range(days):
                day = first + timedelta(days=d)
                start = datetime(day.year, day.month, day.day, 7, tzinfo=UTC)
                await conn.execute(
                    "INSERT INTO positions (driver_id, time, lat, lon, speed_mps, accuracy_m,"
                    " source, received_at)"
                    " SELECT d, %s + n * interval '1 second', 52.5 + n * 8e-5, 13.4, 8, 5,"
                    "  'bench', %s FROM unnest(%s::bigint[]) d, generate_series(1, %s) n",
                    (start, start, [d for d, _ in tenant.drivers], per_driver),
                )
        counts: dict[str, int] = {}
        for table_name in ("stop_facts", "stop_eta_errors", "route_facts", "outbox", "positions"):
            row = await (await conn.execute(f"SELECT count(*) FROM {table_name}")).fetchone()
            counts[table_name] = int(row[0]) if row else 0
        await conn.execute("VACUUM ANALYZE")
    return counts


async def raw_ceiling(database_url: str, org: OrgId, first: date, last: date) -> float:
    """Seconds for the least any report reads: the month's stop facts, counted."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            await conn.execute(
                "SELECT count(*), avg(service_s) FROM stop_facts"
                " WHERE org_id = %s AND day BETWEEN %s AND %s",
                (org, first, last),
            )
            times.append(time.perf_counter() - started)
    return statistics.median(times)


async def time_learning(database_url: str, org: OrgId, days: int) -> list[dict[str, object]]:
    """The learner over the range twice: first every route's positions are read and cut, then
    the kept passes are reused; beside the raw ceiling of the first, the range's positions
    fetched into Python in one query."""
    rows: list[dict[str, object]] = []
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        started = time.perf_counter()
        async with conn.cursor() as cursor:
            await cursor.execute(
                "SELECT driver_id, time, lat, lon, accuracy_m FROM positions"
                " WHERE driver_id IN (SELECT id FROM drivers WHERE org_id = %s)",
                (org,),
            )
            fetched = len(await cursor.fetchall())
        raw_s = time.perf_counter() - started
        for run in ("first: every route's positions read and cut", "again: the kept passes"):
            started = time.perf_counter()
            learned = await learn(conn, org, days=days)
            spent = time.perf_counter() - started
            rows.append(
                {
                    "report": f"learn ({run})",
                    "median_s": spent,
                    "slowest_s": spent,
                    "first_s": spent,
                    "bytes": 0,
                    "routes_read": learned.routes_read,
                    "speed_samples": learned.speed_samples,
                    "raw_fetch_positions_s": raw_s,
                    "positions_fetched": fetched,
                }
            )
    return rows


async def ask(port: int, key: str, first: date, last: date, repeat: int) -> list[dict[str, object]]:
    """Each report ``repeat`` times over the range: median and slowest seconds, bytes."""
    rows: list[dict[str, object]] = []
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", headers={"authorization": f"Bearer {key}"}
    ) as http:
        for report in REPORTS:
            joiner = "&" if "?" in report else "?"
            url = f"/v1/analytics/{report}{joiner}from={first}&to={last}"
            if report == "weekly-summary":
                url = f"/v1/analytics/{report}"
            times, size = [], 0
            for _ in range(repeat + 1):  # the first warms the caches
                started = time.perf_counter()
                answer = await http.get(url, timeout=60)
                times.append(time.perf_counter() - started)
                answer.raise_for_status()
                size = len(answer.content)
            rows.append(
                {
                    "report": report,
                    "median_s": statistics.median(times[1:]),
                    "slowest_s": max(times[1:]),
                    "first_s": times[0],
                    "bytes": size,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--drivers", type=int, default=50)
    parser.add_argument("--stops", type=int, default=25, help="closed stops per route")
    parser.add_argument("--positions-per-day", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--no-learn",
        dest="learn",
        action="store_false",
        help="do not time the learner over the range (twice: reading positions, then not)",
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report = Report("analytics")
    with bench_env() as env:
        run(args, report, env)
    report.write(args.out)


def run(args: argparse.Namespace, report: Report, env: BenchEnv) -> None:
    tenant = make_tenant(env.database_url, args.drivers)
    started = time.perf_counter()
    counts = asyncio.run(
        seed(env.database_url, tenant, args.days, args.stops, args.positions_per_day)
    )
    print(f"  seeded in {time.perf_counter() - started:.0f} s: {counts}", flush=True)
    last = datetime.now(UTC).date()
    first = last - timedelta(days=args.days - 1)
    ceiling = asyncio.run(raw_ceiling(env.database_url, tenant.org_id, first, last))
    port = free_port()
    with server_process(env, port):
        answers = asyncio.run(ask(port, tenant.api_key, first, last, args.repeat))
    if args.learn:
        answers += asyncio.run(time_learning(env.database_url, tenant.org_id, args.days))
    for row in answers:
        report.add(
            **row,
            days=args.days,
            drivers=args.drivers,
            stop_facts=counts["stop_facts"],
            outbox=counts["outbox"],
            positions=counts["positions"],
            raw_count_s=ceiling,
        )


if __name__ == "__main__":
    main()
