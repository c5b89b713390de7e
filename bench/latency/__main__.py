"""Live latency end to end: a ping's acceptance → dispatcher screens and customer pages.

    python -m bench.latency [--drivers 200] [--customers N] [--dispatchers 10] [--seconds 60]

Issue 4's figure. ``--drivers`` simulated drivers each send one ping a second over the driver
WebSocket (``/v1/driver/ws``, one fix per message, ack awaited); ``--dispatchers`` sockets
follow the organisation on ``/v1/live/ws``; ``--customers`` sockets (default: one per driver)
follow one order each on ``/v1/track/{token}/ws``. The server is ``lastmile serve`` with its
workers (persist, planner, eta) against the configured or embedded services; drivers,
dispatchers and customers run in processes of their own, with a minimal raw-socket WebSocket
client so that they spend their CPU on I/O.

The day is written through the store functions, not planned: per driver a vehicle, a shift,
``--stops`` orders and a dispatched, started route whose first stop lies 8-12 km ahead on a
straight bearing, planned with the server's own travel model (great circle x circuity at the
configured speed), so a driver keeping to plan hardly moves its window. ``--detour-share`` of
the drivers keep turning back, 30 s towards the stop at plan speed and 30 s away at three times
that, so their windows move past the 120 s publication threshold about once a minute.

Definitions (one machine, one wall clock):

* acceptance: when the driver's client has read the ack; the ping's device time = its send time;
* position latency: a ``positions`` (dispatcher) or ``position`` (customer) message's arrival −
  acceptance of the ping with that driver and ``time``; delivered share: distinct pings a
  dispatcher socket saw ÷ pings accepted (positions are coalesced per driver: a busy screen may
  skip one);
* ETA latency: a customer ``window`` message's arrival (or a dispatcher's ``windows`` change)
  − acceptance of the driver's first ping in the second ``estimate.as_of`` names (the fix the
  window was computed from).

Order of events: drivers and customers connect; drivers start; dispatchers connect a third into
``--warmup`` (after the first fixes' burst of ``en_route`` events); pings accepted in the
``--seconds`` after the warm-up count, and receivers listen 5 s longer. In the same run: the
ceiling, plain redis-py PUBLISH → SUBSCRIBE at the same message rate, and CPU per process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import random
import sys
import time
from pathlib import Path

from bench.harness import (
    BenchEnv,
    Report,
    bench_env,
    machine,
    make_tenant,
    server_process,
)
from bench.latency.clients import (
    Timeline,
    children,
    customers_process,
    dispatchers_process,
    drivers_process,
    publisher_process,
    subscriber_process,
)
from bench.latency.day import seed_day, tracking_tokens
from bench.latency.figures import cpu_by_process, joined, spread_ms, summarise

# --- running ----------------------------------------------------------------------------------

_STARTED = time.monotonic()


def note(what: str) -> None:
    """A progress line with the seconds since the start."""
    print(f"# [{time.monotonic() - _STARTED:4.0f} s] {what}", flush=True)


def measure(env: BenchEnv, args: argparse.Namespace, report: Report) -> None:
    """Set up the day, run the server and the clients, and report."""
    tenant = make_tenant(env.database_url, args.drivers)
    plans = seed_day(
        env.database_url, tenant, args.stops, args.detour_share, random.Random(args.seed)
    )
    note(f"day written: {len(plans):,} drivers on started routes of {args.stops} stops")
    followed = plans[: len(plans) if args.customers is None else args.customers]
    log = args.server_log or env.data_dir / "server.log"
    with server_process(env, args.port, workers=True, log=log) as api_pid, children() as kids:
        tokens = asyncio.run(
            tracking_tokens(args.port, tenant.api_key, [p.order_id for p in followed])
        )
        note(f"server up; {len(tokens):,} tracking links issued")
        for k in range(args.driver_procs):
            kids.start("drivers", drivers_process(args.port, plans[k :: args.driver_procs]))
        pages = [(t, p.driver_id) for t, p in zip(tokens, followed, strict=True)]
        for k in range(args.customer_procs if pages else 0):
            kids.start("customers", customers_process(args.port, pages[k :: args.customer_procs]))
        if args.dispatchers:
            kids.start(
                "dispatchers", dispatchers_process(args.port, tenant.api_key, args.dispatchers)
            )

        def timeline() -> Timeline:
            start = time.time() + 1.0
            warm = start + args.warmup
            return Timeline(start, start + args.warmup / 3, warm, warm + args.seconds)

        line = kids.go(timeline)
        note(f"drivers and customers connected; {args.warmup:.0f} s warm-up, then measuring")
        time.sleep(max(0.0, line.measure_from - time.time()))
        load, cpu0 = os.getloadavg()[0], cpu_by_process(api_pid, env.redis_url)
        time.sleep(max(0.0, line.measure_to - time.time()))
        cpu1 = cpu_by_process(api_pid, env.redis_url)
        got = kids.results()
    note(f"done; load average {load:.1f} at the start of measuring")
    if args.dump is not None:
        args.dump.write_bytes(pickle.dumps((got, line, plans)))
    cpu = {k: (cpu1[k] - v) / args.seconds for k, v in cpu0.items() if k in cpu1}
    summarise(got, line, args, report, cpu)
    ceiling(env, args, report)


def ceiling(env: BenchEnv, args: argparse.Namespace, report: Report) -> None:
    """Plain redis-py PUBLISH → SUBSCRIBE at the drivers' rate, no lastmile code in between."""
    channel = f"{env.redis_prefix}ceiling"
    with children() as kids:
        kids.start("subscriber", subscriber_process(env.redis_url, channel))
        kids.start("publisher", publisher_process(env.redis_url, channel, args.drivers, 180))

        def timeline() -> Timeline:
            start = time.time() + 0.5
            return Timeline(start, start, start + 2.0, start + 2.0 + args.ceiling_seconds)

        line = kids.go(timeline)
        got = kids.results()
    sent, recv = joined(got["subscriber"], "sent"), joined(got["subscriber"], "recv")
    inside = (sent >= line.measure_from) & (sent < line.measure_to)
    report.add(
        figure="ceiling: redis-py PUBLISH → SUBSCRIBE",
        per_s=int(inside.sum()) / args.ceiling_seconds,
        **spread_ms((recv - sent)[inside]),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drivers", type=int, default=200)
    parser.add_argument("--customers", type=int, help="customer sockets (default: one per driver)")
    parser.add_argument("--dispatchers", type=int, default=10)
    parser.add_argument("--stops", type=int, default=1, help="stops per route")
    parser.add_argument("--detour-share", type=float, default=0.5)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=30.0)
    parser.add_argument("--ceiling-seconds", type=float, default=20.0)
    parser.add_argument("--driver-procs", type=int, default=2)
    parser.add_argument("--customer-procs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--port", type=int, default=18100)
    parser.add_argument("--server-log", type=Path, help="keep the server's log here")
    parser.add_argument("--dump", type=Path, help="pickle the raw records here")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    report = Report("latency")
    print(f"# python -m bench.latency {' '.join(sys.argv[1:])}  {machine()}", flush=True)
    with bench_env() as env:
        measure(env, args, report)
    report.write(args.out)


if __name__ == "__main__":
    main()
