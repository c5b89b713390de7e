"""Notification benchmark: from an event on the stream to its arrival at an SMTP server and at a
webhook receiver, and the senders' throughput against a receiver that answers in 50 ms.

    python -m bench.notify [--rate 200] [--seconds 60] [--delay-ms 50] [--messages 2000]
                           [--out FILE]

Against the configured services (``LASTMILE_DATABASE_URL``, ``LASTMILE_REDIS_URL``) or
embedded ones, in a throwaway database. The workers run as they do in production, one process
each (``lastmile worker notify``, ``sender`` and ``webhooks``); the receivers (aiosmtpd and a
Starlette app under uvicorn) run in threads of this process and stamp each arrival.

1. **Latency.** ``--rate`` ``stop_delivered`` events a second for ``--seconds``, each for an order
   of its own with an email address, into an organisation with one webhook endpoint for every
   event type. For each event: the time from its XADD to the mail's arrival at the SMTP server
   (notify worker → outbox → sender → SMTP) and to the POST's arrival at the receiver (webhooks
   fan-out → deliveries → webhook sender → HTTP).
2. **Throughput at 50 ms.** Both receivers answer after ``--delay-ms``. ``--messages`` events
   again, the workers stopped meanwhile, then each channel's workers started alone (``notify``
   and ``sender``, then ``webhooks``): the rate at which messages arrive (first to last
   arrival). Beside it, the ceiling: a raw loop against the same receiver, also alone, with the
   concurrency the sender uses (``httpx`` POSTs of the same body, ``aiosmtplib`` sends
   of a similar mail, over a new connection per mail and over kept connections).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import httpx
import psycopg
import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.webhooks import new_secret
from bench.harness import BenchEnv, Report, bench_env, cpu_seconds, free_port
from realtime.events import emit
from realtime.streams import StreamNames
from schemas.delivery import OrderIn
from schemas.events import StopDelivered
from schemas.ids import DriverId, OrderId, OrgId, RouteId, StopId
from store import tenants, webhooks
from store.orders import import_orders

SENDER_BATCH = 20
"""``LASTMILE_SENDER_BATCH`` (the default): the email sender's concurrency per pass."""
WEBHOOK_BATCH = 50
"""``LASTMILE_WEBHOOK_BATCH`` (the default): the webhook sender's concurrency per pass."""


class Arrivals:
    """When each message of one channel arrived, by order id, as the receivers' process logged
    them (``<channel> <order id> <epoch s>`` lines in a file it appends to)."""

    def __init__(self, channel: str, log: Path) -> None:
        self.channel = channel
        self.log = log
        self.offset = 0
        self.at: dict[int, float] = {}
        self.wanted: frozenset[int] | None = None
        """Only these orders count (None: any), so a phase counts its own messages."""

    def read(self) -> None:
        """Take the lines logged since the last read."""
        with self.log.open("rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        complete = chunk.rfind(b"\n") + 1
        self.offset += complete
        for line in chunk[:complete].decode().splitlines():
            channel, order, at = line.split()
            order_id = int(order)
            if channel == self.channel and (self.wanted is None or order_id in self.wanted):
                self.at.setdefault(order_id, float(at))

    def clear(self, wanted: list[OrderId] | None = None) -> None:
        self.read()
        self.at.clear()
        self.wanted = None if wanted is None else frozenset(wanted)


class _Stamps:
    """The receivers' side: one line per arrival, and the answer delay the bench sets."""

    def __init__(self, log: Path, delay_ms: Any) -> None:
        self.file = log.open("a", buffering=1)
        self.lock = threading.Lock()
        self.delay_ms = delay_ms

    @property
    def delay_s(self) -> float:
        return float(self.delay_ms.value) / 1000

    def stamp(self, channel: str, order_id: int) -> None:
        with self.lock:
            self.file.write(f"{channel} {order_id} {time.time():.6f}\n")


class SmtpReceiver:
    """aiosmtpd's handler: a mail to ``c<order id>@example.com`` stamps that order."""

    def __init__(self, stamps: _Stamps) -> None:
        self.stamps = stamps

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.stamps.delay_s:
            await asyncio.sleep(self.stamps.delay_s)
        for rcpt in envelope.rcpt_tos:
            local = rcpt.split("@", 1)[0]
            if local.startswith("c") and local[1:].isdigit():
                self.stamps.stamp("email", int(local[1:]))
        return "250 OK"


def webhook_app(stamps: _Stamps) -> Starlette:
    """A receiver that stamps the order of each delivery's body (``data.order_id``)."""

    async def receive(request: Request) -> Response:
        body = await request.body()
        if stamps.delay_s:
            await asyncio.sleep(stamps.delay_s)
        order_id = json.loads(body).get("data", {}).get("order_id")
        if isinstance(order_id, int):
            stamps.stamp("webhook", order_id)
        return Response(status_code=204)

    return Starlette(routes=[Route("/hook", receive, methods=["POST"])])


def _receive(smtp_port: int, http_port: int, log: Path, delay_ms: Any) -> None:
    """The receivers' process: aiosmtpd in a thread, the webhook receiver under uvicorn."""
    stamps = _Stamps(log, delay_ms)
    smtp = Controller(SmtpReceiver(stamps), hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    try:
        uvicorn.run(webhook_app(stamps), host="127.0.0.1", port=http_port, log_level="warning")
    finally:
        smtp.stop()


@contextmanager
def receivers(log: Path, delay_ms: Any) -> Iterator[tuple[int, int, int]]:
    """The SMTP server and the webhook receiver in a process of their own (so that their CPU
    is not the load generator's), on free loopback ports; yields both ports and its pid."""
    smtp_port, http_port = free_port(), free_port()
    context = multiprocessing.get_context("spawn")
    proc = context.Process(target=_receive, args=(smtp_port, http_port, log, delay_ms))
    proc.start()
    deadline = time.monotonic() + 60
    while not (_listening(smtp_port) and _listening(http_port)):
        if time.monotonic() > deadline or not proc.is_alive():
            proc.terminate()
            raise RuntimeError("the receivers did not start")
        time.sleep(0.1)
    try:
        yield smtp_port, http_port, proc.pid or 0
    finally:
        proc.terminate()
        proc.join(timeout=10)


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def workers(env: BenchEnv, smtp_port: int, names: tuple[str, ...]) -> Iterator[dict[str, int]]:
    """The named workers, one process each, as ``lastmile worker NAME``; yields their pids."""
    proc_env = {
        **os.environ,
        "LASTMILE_DATABASE_URL": env.database_url,
        "LASTMILE_REDIS_URL": env.redis_url,
        "LASTMILE_REDIS_PREFIX": env.redis_prefix,
        "LASTMILE_DATA_DIR": str(env.data_dir / "workers"),
        "LASTMILE_LOG_LEVEL": "warning",
        "LASTMILE_SMTP_HOST": "127.0.0.1",
        "LASTMILE_SMTP_PORT": str(smtp_port),
        "LASTMILE_SMTP_TLS": "none",
        "LASTMILE_SMTP_FROM": "Bench <bench@example.com>",
        "LASTMILE_WEBHOOK_ALLOW_ADDRESSES": "loopback",
        "LASTMILE_WORKER_BLOCK_MS": "100",
    }
    proc_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = (env.data_dir / "workers.log").open("a")
    procs = [
        subprocess.Popen([sys.executable, "-m", "app", "worker", name], env=proc_env, stderr=log)
        for name in names
    ]
    try:
        yield {name: proc.pid for name, proc in zip(names, procs, strict=True)}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


async def setup(env: BenchEnv, orders: int, hook_url: str) -> tuple[OrgId, list[OrderId]]:
    """An organisation with ``orders`` orders (email only) and one endpoint for every event."""
    async with await psycopg.AsyncConnection.connect(env.database_url, autocommit=True) as conn:
        org = await tenants.create_org(conn, "bench notify")
        rows = [
            (
                n,
                OrderIn(
                    external_ref=f"bench-{n}",
                    address="1 Main St",
                    lat=52.5,
                    lon=13.4,
                    day=date.today(),
                    email=f"placeholder{n}@example.com",
                ),
            )
            for n in range(orders)
        ]
        created, _ = await import_orders(conn, org, rows)
        ids = [OrderId(row.order_id) for row in created]
        # The address names the order, so a receiver can tell which event a mail is for.
        await conn.execute(
            "UPDATE orders SET email = 'c' || id || '@example.com' WHERE org_id = %s", (org,)
        )
        await webhooks.create(
            conn,
            org,
            url=hook_url,
            secret=new_secret(),
            event_types=["*"],
            description="bench",
            enabled=True,
        )
    return org, ids


def delivered(org: OrgId, n: int, order_id: OrderId) -> StopDelivered:
    return StopDelivered(
        org_id=org,
        at=datetime.now(UTC),
        route_id=RouteId(1),
        stop_id=StopId(n + 1),
        order_id=order_id,
        driver_id=DriverId(1),
    )


async def paced(
    redis: Redis, names: StreamNames, org: OrgId, ids: list[OrderId], rate: float
) -> dict[int, float]:
    """Emit one event per order at ``rate`` a second (each 10 ms tick's due events in one round
    trip, so the generator keeps the pace on a busy machine); when each went onto the stream."""
    sent: dict[int, float] = {}
    start = time.monotonic()
    n = 0
    while n < len(ids):
        due = min(len(ids), int((time.monotonic() - start) * rate) + 1)
        if due > n:
            await emit(redis, names, *(delivered(org, k, ids[k]) for k in range(n, due)))
            stamp = time.time()
            for k in range(n, due):
                sent[ids[k]] = stamp
            n = due
        await asyncio.sleep(0.01)
    return sent


async def wait_for(arrivals: list[Arrivals], count: int, timeout_s: float) -> None:
    """Until every receiver has ``count`` arrivals, or ``timeout_s`` passed."""
    for _ in range(int(timeout_s / 0.2)):
        for a in arrivals:
            a.read()
        if all(len(a.at) >= count for a in arrivals):
            return
        await asyncio.sleep(0.2)


def latencies(sent: dict[int, float], arrived: dict[int, float]) -> dict[str, Any]:
    values = sorted(arrived[k] - sent[k] for k in sent if k in arrived)
    if not values:
        return {"arrived": 0, "of": len(sent)}
    return {
        "arrived": len(values),
        "of": len(sent),
        "p50_ms": 1000 * statistics.median(values),
        "p99_ms": 1000 * values[min(len(values) - 1, int(0.99 * len(values)))],
        "max_ms": 1000 * values[-1],
    }


def rate_of(arrived: dict[int, float]) -> float:
    times = sorted(arrived.values())
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0


async def raw_posts(url: str, body: bytes, count: int, concurrency: int) -> float:
    """The ceiling: ``count`` POSTs of ``body``, ``concurrency`` at a time; per second."""
    queue = iter(range(count))
    async with httpx.AsyncClient(timeout=10) as client:

        async def one() -> None:
            for _ in queue:
                await client.post(url, content=body, headers={"content-type": "application/json"})

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(concurrency)))
        return count / (time.perf_counter() - start)


def _raw_mail(n: int) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "bench@example.com"
    message["To"] = f"raw{n}@example.com"
    message["Subject"] = "Your delivery has arrived"
    message.set_content("Your delivery has arrived.")
    return message


async def raw_mails(port: int, count: int, concurrency: int) -> float:
    """The ceiling: ``count`` mails sent with aiosmtplib, ``concurrency`` at a time, a new
    connection for each mail (``aiosmtplib.send``); per second."""
    queue = iter(range(count))

    async def one() -> None:
        for n in queue:
            await aiosmtplib.send(_raw_mail(n), hostname="127.0.0.1", port=port)

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(concurrency)))
    return count / (time.perf_counter() - start)


async def raw_mails_kept(port: int, count: int, concurrency: int) -> float:
    """The same ceiling over ``concurrency`` kept connections, one mail after another on each
    (as the email adapter sends since it keeps connections); per second."""
    queue = iter(range(count))

    async def one() -> None:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port) as client:
            for n in queue:
                await client.send_message(_raw_mail(n))

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(concurrency)))
    return count / (time.perf_counter() - start)


async def run(env: BenchEnv, args: argparse.Namespace, report: Report) -> None:
    log = env.data_dir / "arrivals.log"
    log.touch()
    mail, hooks = Arrivals("email", log), Arrivals("webhook", log)
    delay_ms = multiprocessing.get_context("spawn").Value("d", 0.0)
    names = StreamNames(prefix=env.redis_prefix)
    events = int(args.rate * args.seconds)
    with receivers(log, delay_ms) as (smtp_port, hook_port, receiver_pid):
        hook_url = f"http://127.0.0.1:{hook_port}/hook"
        org, ids = await setup(env, events + args.messages + 1, hook_url)
        redis = Redis.from_url(env.redis_url)
        try:
            all_workers = ("notify", "sender", "webhooks")
            with workers(env, smtp_port, all_workers) as pids:
                # Warm-up: one event through both paths, so that the workers' start is not
                # measured; then the measured events.
                await emit(redis, names, delivered(org, events + args.messages, ids[-1]))
                await wait_for([mail, hooks], 1, timeout_s=120)
                mail.clear(ids[:events])
                hooks.clear(ids[:events])
                pids = {**pids, "receivers": receiver_pid, "generator": os.getpid()}
                cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
                sent = await paced(redis, names, org, ids[:events], args.rate)
                emitted_s = max(sent.values()) - min(sent.values())
                await wait_for([mail, hooks], events, timeout_s=args.drain_s)
                handled = max(1, min(len(mail.at), len(hooks.at)))
                cpu = {
                    f"{name}_cpu_ms_per_event": 1000
                    * (cpu_seconds(pid) - cpu_before[name])
                    / handled
                    for name, pid in pids.items()
                }
            report.add(
                phase="latency",
                channel="email",
                rate=args.rate,
                seconds=args.seconds,
                emitted_per_s=events / emitted_s if emitted_s else 0.0,
                **latencies(sent, mail.at),
            )
            report.add(phase="cpu", **cpu)
            report.add(
                phase="latency",
                channel="webhook",
                rate=args.rate,
                seconds=args.seconds,
                **latencies(sent, hooks.at),
            )

            batch = ids[events:-1]
            mail.clear(batch)
            hooks.clear(batch)
            delay_ms.value = args.delay_ms
            for n, order_id in enumerate(batch):  # queued while no worker runs
                await emit(redis, names, delivered(org, events + n, order_id))
            # Each channel's workers alone, as its raw loop runs alone: on two cores the other
            # channel's pipeline would take half the machine from it.
            with workers(env, smtp_port, ("notify", "sender")):
                await wait_for([mail], len(batch), timeout_s=600)
            with workers(env, smtp_port, ("webhooks",)):
                await wait_for([hooks], len(batch), timeout_s=600)
            body = json.dumps({"type": "stop_delivered", "data": {"order_id": -1}}).encode()
            report.add(
                phase="throughput",
                channel="email",
                delay_ms=args.delay_ms,
                messages=len(mail.at),
                per_s=rate_of(mail.at),
                raw_per_s=await raw_mails(smtp_port, len(batch), SENDER_BATCH),
                raw_kept_per_s=await raw_mails_kept(smtp_port, len(batch), SENDER_BATCH),
                concurrency=SENDER_BATCH,
            )
            report.add(
                phase="throughput",
                channel="webhook",
                delay_ms=args.delay_ms,
                messages=len(hooks.at),
                per_s=rate_of(hooks.at),
                raw_per_s=await raw_posts(hook_url, body, len(batch), WEBHOOK_BATCH),
                concurrency=WEBHOOK_BATCH,
            )
        finally:
            await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="events per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to emit")
    parser.add_argument("--delay-ms", type=float, default=50.0, help="receivers' answer time")
    parser.add_argument("--messages", type=int, default=2000, help="for the throughput phase")
    parser.add_argument(
        "--drain-s", type=float, default=180.0, help="how long to wait for late arrivals"
    )
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    report = Report("notifications: event to SMTP and webhook receiver")
    with bench_env() as env:
        asyncio.run(run(env, args, report))
    report.write(args.out)


if __name__ == "__main__":
    main()
