"""Webhooks benchmark: the delivery loop's throughput beside a raw POST loop, and an event's way
from the stream to a receiver.

    python -m bench.webhooks [--deliveries 3000] [--delay-ms 50] [--batch 50]
                             [--rate 200] [--seconds 60] [--workers 1] [--out FILE]

The receiver is a Starlette app under uvicorn in a process of its own, on loopback; it records
each request's arrival time and ``webhook-id`` and answers 204 after ``--delay-ms``.

1. **Ceiling**: ``--batch`` concurrent tasks POST the same signed-size body with one
   ``httpx.AsyncClient`` until ``--deliveries`` requests are answered.
2. **Delivery loop**: ``--deliveries`` stored deliveries of one endpoint, drained by one
   :class:`workers.hooks.HookSender` (claim ``--batch`` with SKIP LOCKED, sign, POST
   concurrently, record each attempt) until every one is delivered.
3. **End to end**: ``lastmile worker webhooks`` runs as ``--workers`` processes of its own;
   events are put on the events stream at ``--rate`` per second for ``--seconds``; the latency
   of each is its arrival at the receiver (answering at once) minus the event's time, both this
   machine's clock.

``--deliveries 0`` leaves out parts 1 and 2, ``--seconds 0`` part 3.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing
import os
import signal
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import psycopg
import uvicorn
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.webhooks import WebhookConfig, WebhookSender, envelope
from bench.harness import BenchEnv, Report, bench_env, free_port, make_tenant
from realtime.events import emit
from realtime.streams import StreamNames
from schemas.events import StopDelivered
from schemas.ids import DriverId, OrderId, OrgId, RouteId, StopId
from store import webhooks as store
from store.webhook_deliveries import NewDelivery, insert_deliveries
from workers.hooks import HookSender, HookSenderConfig

SECRET = "whsec_" + base64.b64encode(b"b" * 32).decode()


def _receiver_main(port: int, delay_s: float) -> None:
    """The receiver process: records arrivals, answers 204 after ``delay_s``."""
    arrivals: list[tuple[float, str, str]] = []

    async def hook(request: Request) -> Response:
        arrived = time.time()
        body = await request.body()
        sent_at = msgspec.json.decode(body).get("timestamp", "")
        arrivals.append((arrived, request.headers.get("webhook-id", ""), sent_at))
        if delay_s:
            await asyncio.sleep(delay_s)
        return Response(status_code=204)

    async def stats(request: Request) -> Response:
        if request.method == "DELETE":
            arrivals.clear()
            return Response(status_code=204)
        return JSONResponse(arrivals)

    app = Starlette(
        routes=[
            Route("/hook", hook, methods=["POST"]),
            Route("/stats", stats, methods=["GET", "DELETE"]),
        ]
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


class Receiver:
    """A receiver process answering after ``delay_s``."""

    def __init__(self, delay_s: float) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        context = multiprocessing.get_context("spawn")
        self.process = context.Process(target=_receiver_main, args=(self.port, delay_s))

    def __enter__(self) -> Receiver:
        self.process.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/stats", timeout=1).raise_for_status()
                return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the receiver did not start")

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.join(10)

    def arrivals(self) -> list[tuple[float, str, str]]:
        return [tuple(a) for a in httpx.get(f"{self.url}/stats", timeout=30).json()]

    def clear(self) -> None:
        httpx.delete(f"{self.url}/stats", timeout=10).raise_for_status()


def _body(org_id: OrgId, n: int) -> bytes:
    event = _event(org_id, n)
    return envelope("stop_delivered", event.at, msgspec.to_builtins(event))


def _event(org_id: OrgId, n: int) -> StopDelivered:
    return StopDelivered(
        org_id=org_id,
        at=datetime.now(UTC),
        route_id=RouteId(1),
        stop_id=StopId(n + 1),
        order_id=OrderId(n + 1),
        driver_id=DriverId(1),
    )


async def ceiling(url: str, total: int, concurrency: int, body: bytes) -> tuple[float, float]:
    """Requests per second of ``concurrency`` tasks POSTing ``body`` until ``total`` answered,
    and this process's CPU milliseconds per request."""
    left = total
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                reply = await client.post(
                    f"{url}/hook", content=body, headers={"content-type": "application/json"}
                )
                reply.raise_for_status()

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        per_s = total / (time.perf_counter() - started)
        return per_s, (time.process_time() - cpu) * 1000 / total


async def delivery_loop(
    env: BenchEnv, org_id: OrgId, url: str, total: int, batch: int
) -> tuple[float, float, int]:
    """Deliveries per second of one delivery loop draining ``total`` stored deliveries, its
    process's CPU milliseconds per delivery (PostgreSQL's own not counted), and how many
    attempts failed (and were retried)."""
    async with await psycopg.AsyncConnection.connect(env.database_url, autocommit=True) as conn:
        endpoint = await store.create(
            conn, org_id, url=f"{url}/hook", secret=SECRET, event_types=["*"],
            description="bench", enabled=True,
        )  # fmt: skip
        now = datetime.now(UTC)
        rows = [
            NewDelivery(
                org_id=org_id,
                endpoint_id=endpoint.id,
                event_id=f"{n}-0",
                event_type="stop_delivered",
                event_at=now,
                webhook_id=f"msg_{n}-0_{endpoint.id}",
                body=_body(org_id, n),
            )
            for n in range(total)
        ]
        await insert_deliveries(conn, rows)
        redis = Redis.from_url(env.redis_url)
        sender = HookSender(
            env.database_url,
            WebhookSender(WebhookConfig(allowed_address_classes=frozenset({"loopback"}))),
            HookSenderConfig(batch=batch),
            redis=redis,
            names=StreamNames(prefix=env.redis_prefix),
        )
        try:
            started, cpu = time.perf_counter(), time.process_time()
            while await _delivered(conn, endpoint.id) < total:
                if not await sender.run_once():
                    await asyncio.sleep(0.05)  # a retry waits for its backoff
            elapsed = time.perf_counter() - started
            cpu_ms = (time.process_time() - cpu) * 1000 / total
        finally:
            await sender.close()
            await redis.aclose()
        cursor = await conn.execute(
            "SELECT count(*) FROM webhook_attempts a JOIN webhook_deliveries d"
            " ON d.id = a.delivery_id WHERE d.endpoint_id = %s AND a.outcome <> 'delivered'",
            (endpoint.id,),
        )
        retried = (await cursor.fetchone() or (0,))[0]
        cursor = await conn.execute(
            "SELECT DISTINCT a.error FROM webhook_attempts a JOIN webhook_deliveries d"
            " ON d.id = a.delivery_id WHERE d.endpoint_id = %s AND a.outcome <> 'delivered'",
            (endpoint.id,),
        )
        for (error,) in await cursor.fetchall():
            print(f"  a failed attempt: {error}", flush=True)
        await store.delete(conn, org_id, endpoint.id)
        return total / elapsed, cpu_ms, retried


async def _delivered(conn: psycopg.AsyncConnection[Any], endpoint_id: int) -> int:
    cursor = await conn.execute(
        "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = %s AND state = 'delivered'",
        (endpoint_id,),
    )
    return int((await cursor.fetchone() or (0,))[0])


async def end_to_end(
    env: BenchEnv, org_id: OrgId, receiver: Receiver, rate: float, seconds: float, workers: int
) -> dict[str, Any]:
    """Latency of events from the stream to the receiver at ``rate`` events/s, with
    ``workers`` webhooks worker processes."""
    async with await psycopg.AsyncConnection.connect(env.database_url, autocommit=True) as conn:
        await store.create(
            conn, org_id, url=f"{receiver.url}/hook", secret=SECRET, event_types=["*"],
            description="bench", enabled=True,
        )  # fmt: skip
    names = StreamNames(prefix=env.redis_prefix)
    worker_env = {
        **os.environ,
        "LASTMILE_DATABASE_URL": env.database_url,
        "LASTMILE_REDIS_URL": env.redis_url,
        "LASTMILE_REDIS_PREFIX": env.redis_prefix,
        "LASTMILE_WEBHOOK_ALLOW_ADDRESSES": "loopback",
        "LASTMILE_LOG_LEVEL": "warning",
    }
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "app", "worker", "webhooks", "--consumer", f"bench-{n}"),
            env=worker_env,
        )
        for n in range(workers)
    ]
    redis = Redis.from_url(env.redis_url)
    try:
        receiver.clear()
        await asyncio.sleep(3.0)  # the worker connects and creates its group
        total = int(rate * seconds)
        started = time.monotonic()
        for n in range(total):
            due = started + n / rate
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            await emit(redis, names, _event(org_id, n))
        deadline = time.monotonic() + 60
        arrivals = receiver.arrivals()
        while len({a[1] for a in arrivals}) < total and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            arrivals = receiver.arrivals()
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            await process.wait()
        await redis.aclose()
    first: dict[str, float] = {}
    for arrived, webhook_id, sent_at in arrivals:
        latency = arrived - datetime.fromisoformat(sent_at).timestamp()
        first[webhook_id] = min(latency, first.get(webhook_id, latency))
    latencies = sorted(first.values())
    cut = statistics.quantiles(latencies, n=100)
    return {
        "events": total,
        "arrived": len(latencies),
        "p50_ms": cut[49] * 1000,
        "p99_ms": cut[98] * 1000,
        "max_ms": latencies[-1] * 1000,
    }


def throughput(env: BenchEnv, org_id: OrgId, args: argparse.Namespace, report: Report) -> None:
    """The raw POST loop and the delivery loop against one receiver answering after
    ``--delay-ms``."""
    with Receiver(args.delay_ms / 1000) as slow:
        body = _body(org_id, 0)
        raw, raw_cpu = asyncio.run(ceiling(slow.url, args.deliveries, args.batch, body))
        report.add(what="raw httpx POST loop", concurrency=args.batch,
                   delay_ms=args.delay_ms, per_s=raw, cpu_ms_each=raw_cpu)  # fmt: skip
        loop, loop_cpu, retried = asyncio.run(
            delivery_loop(env, org_id, slow.url, args.deliveries, args.batch)
        )
        report.add(what="delivery loop (1 process)", batch=args.batch,
                   delay_ms=args.delay_ms, per_s=loop, share=loop / raw,
                   cpu_ms_each=loop_cpu, failed_attempts=retried)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--deliveries", type=int, default=3000)
    parser.add_argument("--delay-ms", type=float, default=50.0)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=1, help="webhooks worker processes")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    report = Report("webhooks")
    with bench_env() as env:
        tenant = make_tenant(env.database_url, drivers=0)
        if args.deliveries > 0:
            throughput(env, tenant.org_id, args, report)
        if args.seconds > 0:
            with Receiver(0.0) as quick:
                figures = asyncio.run(
                    end_to_end(env, tenant.org_id, quick, args.rate, args.seconds, args.workers)
                )
                report.add(what="event → receiver", workers=args.workers, rate_per_s=args.rate,
                           seconds=args.seconds, **figures)  # fmt: skip
    report.write(args.out)


if __name__ == "__main__":
    main()
