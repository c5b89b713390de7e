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
import base64
import contextlib
import gc
import math
import multiprocessing as mp
import os
import pickle
import random
import resource
import secrets
import sys
import time
from array import array
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import msgspec
import numpy as np
import psycopg
from redis.asyncio import Redis

from app.settings import Settings
from bench.harness import (
    BenchEnv,
    BenchTenant,
    Report,
    bench_env,
    cpu_seconds,
    machine,
    make_tenant,
    server_process,
)
from bench.ingest import ws_frame
from schemas.delivery import OrderIn, Place, ShiftIn, TimeWindow, VehicleIn
from store import fleet, orders
from store import routes as route_store

CENTRE = (52.52, 13.405)
M_PER_DEG = 111_195.0
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_US = timedelta(microseconds=1)
DETOUR_CYCLE_S = 60.0
DETOUR_TOWARD_S = 30.0
DETOUR_AWAY_SPEEDUP = 3.0
STOP_SPACING_M = 1_500.0
SERVICE_S = 120
DRAIN_S = 5.0
CONNECTING = 32
"""Sockets a client process opens at a time."""

Array = np.ndarray[Any, Any]


# --- the simulated day ------------------------------------------------------------------------


@dataclass(frozen=True)
class DriverPlan:
    """One simulated driver: its route's direction, how it drives, and the order followed."""

    driver_id: int
    token: str
    order_id: int
    start: tuple[float, float]
    east: float
    north: float
    speed_mps: float
    """Straight-line speed that keeps to plan (the server's speed over its circuity)."""
    detour: bool
    phase_s: float
    """When in each second this driver pings."""
    cycle_offset_s: float

    def position(self, elapsed_s: float) -> tuple[float, float]:
        """Where the driver is ``elapsed_s`` after the fleet started."""
        along = self.speed_mps * elapsed_s
        if self.detour:
            along = self._detour_m(elapsed_s + self.cycle_offset_s)
            along -= self._detour_m(self.cycle_offset_s)
        return _moved(self.start, self.east * along, self.north * along)

    def _detour_m(self, t: float) -> float:
        toward, back = self.speed_mps, self.speed_mps * DETOUR_AWAY_SPEEDUP
        cycles, rest = divmod(t, DETOUR_CYCLE_S)
        per_cycle = DETOUR_TOWARD_S * toward - (DETOUR_CYCLE_S - DETOUR_TOWARD_S) * back
        return (
            cycles * per_cycle
            + min(rest, DETOUR_TOWARD_S) * toward
            - max(0.0, rest - DETOUR_TOWARD_S) * back
        )


def _moved(origin: tuple[float, float], east_m: float, north_m: float) -> tuple[float, float]:
    lat = origin[0] + north_m / M_PER_DEG
    return lat, origin[1] + east_m / (M_PER_DEG * math.cos(math.radians(origin[0])))


def seed_day(
    database_url: str, tenant: BenchTenant, stops: int, detour_share: float, rng: random.Random
) -> list[DriverPlan]:
    """Write each driver's vehicle, shift, orders and a dispatched, started route."""
    settings = Settings()
    plan_speed = settings.travel_speed_mps / settings.circuity
    org = tenant.org_id

    async def go() -> list[DriverPlan]:
        now = datetime.now(UTC).replace(microsecond=0)
        hours = TimeWindow(start=now - timedelta(hours=1), end=now + timedelta(hours=12))
        new_routes, plans = [], []
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            plan = await route_store.create_plan(conn, org, now.date(), {}, None)
            for n, (driver_id, token) in enumerate(tenant.drivers):
                radius, angle = 15_000 * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
                start = _moved(CENTRE, radius * math.cos(angle), radius * math.sin(angle))
                bearing, first_m = rng.uniform(0, 2 * math.pi), rng.uniform(8_000, 12_000)
                east, north = math.cos(bearing), math.sin(bearing)
                vehicle = await fleet.create(conn, fleet.VEHICLES, org, VehicleIn(name=f"v{n}"))
                shift = await fleet.create(
                    conn,
                    fleet.SHIFTS,
                    org,
                    ShiftIn(
                        driver_id=driver_id,
                        vehicle_id=vehicle.id,
                        day=now.date(),
                        start_place=Place(lat=start[0], lon=start[1]),
                        working_window=hours,
                    ),
                )
                visits, clock = [], now
                for k in range(stops):
                    at_m = first_m + STOP_SPACING_M * k
                    lat, lon = _moved(start, east * at_m, north * at_m)
                    order = await orders.create_order(
                        conn,
                        org,
                        OrderIn(
                            external_ref=f"bench-{n}-{k}",
                            address=f"{k} bench street",
                            lat=lat,
                            lon=lon,
                            day=now.date(),
                            time_windows=[hours],
                            service_s=SERVICE_S,
                        ),
                    )
                    drive_s = (first_m if k == 0 else STOP_SPACING_M) / plan_speed
                    arrival = clock + timedelta(seconds=round(drive_s))
                    clock = arrival + timedelta(seconds=SERVICE_S)
                    visits.append(route_store.NewStop(order.id, arrival, clock))
                new_routes.append(
                    route_store.NewRoute(
                        shift_id=shift.id,
                        driver_id=driver_id,
                        vehicle_id=vehicle.id,
                        planned_start=now,
                        planned_end=clock,
                        distance_m=round(first_m + STOP_SPACING_M * (stops - 1)),
                        stops=visits,
                    )
                )
                plans.append(
                    DriverPlan(
                        driver_id=driver_id,
                        token=token,
                        order_id=visits[0].order_id,
                        start=start,
                        east=east,
                        north=north,
                        speed_mps=plan_speed,
                        detour=rng.random() < detour_share,
                        phase_s=rng.random(),
                        cycle_offset_s=rng.uniform(0, DETOUR_CYCLE_S),
                    )
                )
            made = await route_store.dispatch_routes(conn, org, plan.id, now.date(), new_routes)
            for route_id, route in zip(made.route_ids, new_routes, strict=True):
                await route_store.start_route(conn, org, route.driver_id, route_id)
        return plans

    return asyncio.run(go())


async def tracking_tokens(port: int, api_key: str, order_ids: list[int]) -> list[str]:
    """``POST /v1/orders/{id}/tracking`` for each order, a few at a time."""
    limit = asyncio.Semaphore(16)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        headers={"authorization": f"Bearer {api_key}"},
        timeout=60,
    ) as client:

        async def one(order_id: int) -> str:
            async with limit:
                reply = await client.post(f"/v1/orders/{order_id}/tracking", json={})
                reply.raise_for_status()
                return str(reply.json()["token"])

        return list(await asyncio.gather(*(one(o) for o in order_ids)))


# --- a minimal WebSocket client ---------------------------------------------------------------


class Closed(Exception):
    """The server closed the socket (or refused the upgrade) with ``code`` and ``reason``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"closed {code}: {reason}")
        self.code = code
        self.reason = reason


class Socket:
    """A client WebSocket over a raw stream: text frames out, whole messages in, pongs."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, path: str) -> Socket:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(secrets.token_bytes(16)).decode()
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        status = (await reader.readuntil(b"\r\n\r\n")).split(b"\r\n", 1)[0]
        if b" 101 " not in status:
            writer.close()
            raise Closed(0, status.decode(errors="replace"))
        return cls(reader, writer)

    def send_text(self, payload: bytes) -> None:
        self.writer.write(ws_frame(payload))

    async def receive(self) -> bytes:
        """The next data message; answers pings; raises :class:`Closed` on a close frame."""
        parts: list[bytes] = []
        while True:
            head = await self.reader.readexactly(2)
            length = head[1] & 0x7F
            if length >= 126:
                length = int.from_bytes(await self.reader.readexactly(2 if length == 126 else 8))
            payload = await self.reader.readexactly(length) if length else b""
            opcode = head[0] & 0x0F
            if opcode == 0x9:
                self.writer.write(ws_frame(payload, 0xA))
            elif opcode == 0x8:
                code = int.from_bytes(payload[:2]) if len(payload) >= 2 else 1005
                raise Closed(code, payload[2:].decode(errors="replace"))
            elif opcode != 0xA:
                parts.append(payload)
                if head[0] & 0x80:
                    return b"".join(parts)

    def close(self) -> None:
        self.writer.close()


# --- what the clients send and read (only the fields measured) --------------------------------


class _PingOut(msgspec.Struct, tag="ping"):
    id: int
    time: datetime
    lat: float
    lon: float
    speed_mps: float
    accuracy_m: float


class _Ack(msgspec.Struct):
    type: str
    accepted: int = 0


class _Stamp(msgspec.Struct):
    driver_id: int
    time: datetime


class _Positions(msgspec.Struct, tag="positions"):
    drivers: list[_Stamp]


class _Snapshot(msgspec.Struct, tag="snapshot"):
    pass


class _Window(msgspec.Struct):
    computed_epoch_s: int


class _Detail(msgspec.Struct):
    type: str
    driver_id: int = 0
    window: _Window | None = None


class _Happening(msgspec.Struct):
    type: str
    detail: _Detail | None = None


class _EventMessage(msgspec.Struct, tag="event"):
    event: _Happening


class _WindowChanges(msgspec.Struct, tag="windows"):
    changes: list[_Detail]


class _Estimate(msgspec.Struct):
    as_of: datetime


class _Track(msgspec.Struct, tag="track"):
    pass


class _WindowMessage(msgspec.Struct, tag="window"):
    estimate: _Estimate


class _Spot(msgspec.Struct):
    time: datetime


class _PositionMessage(msgspec.Struct, tag="position"):
    driver: _Spot


PING_OUT = msgspec.json.Encoder()
ACK = msgspec.json.Decoder(_Ack)
LIVE = msgspec.json.Decoder(_Positions | _Snapshot | _EventMessage | _WindowChanges)
TRACK = msgspec.json.Decoder(_Track | _WindowMessage | _PositionMessage)


def _us(moment: datetime) -> int:
    return (moment - EPOCH) // ONE_US


# --- client processes -------------------------------------------------------------------------


@dataclass(frozen=True)
class Timeline:
    """Wall-clock instants every process works to."""

    start: float
    connect: float
    measure_from: float
    measure_to: float

    @property
    def drain_to(self) -> float:
        return self.measure_to + DRAIN_S


@dataclass
class Records:
    """What one client process saw: columns of numbers, counters, its CPU while measuring."""

    columns: dict[str, array[Any]] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    cpu_s: float = 0.0

    def cols(self, *specs: str) -> list[array[Any]]:
        """Columns by ``name:typecode``, created empty on first use."""
        return [
            self.columns.setdefault(name, array(code))
            for name, code in (s.split(":") for s in specs)
        ]


Ready = Callable[[], Awaitable[Timeline]]
Work = Callable[[Records, Ready], Awaitable[None]]


def child(work: Work) -> Callable[[Connection], None]:
    """A process body: ``work`` on uvloop; its ``ready()`` reports in and waits for the timeline."""

    def main(pipe: Connection) -> None:
        import uvloop

        async def go() -> None:
            records = Records()
            sampling: list[asyncio.Task[None]] = []

            async def ready() -> Timeline:
                # The instrument must not pause on its own: no collection of what exists now,
                # and young collections rarely (the server keeps Python's defaults).
                gc.collect()
                gc.freeze()
                gc.set_threshold(100_000, 50, 1000)
                pipe.send("ready")
                loop = asyncio.get_running_loop()
                timeline: Timeline = await loop.run_in_executor(None, pipe.recv)
                sampling.append(asyncio.create_task(_cpu_while_measuring(timeline, records)))
                return timeline

            await work(records, ready)
            await asyncio.gather(*sampling)
            pipe.send(records)

        uvloop.run(go())

    return main


async def _cpu_while_measuring(timeline: Timeline, records: Records) -> None:
    await asyncio.sleep(max(0.0, timeline.measure_from - time.time()))
    before = resource.getrusage(resource.RUSAGE_SELF)
    await asyncio.sleep(max(0.0, timeline.measure_to - time.time()))
    after = resource.getrusage(resource.RUSAGE_SELF)
    records.cpu_s = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


async def _open_all(port: int, paths: list[str], rec: Records, kind: str) -> list[Socket | None]:
    limit = asyncio.Semaphore(CONNECTING)

    async def one(path: str) -> Socket | None:
        async with limit:
            try:
                return await Socket.open(port, path)
            except (OSError, Closed) as exc:
                rec.counts[f"{kind} could not connect: {str(exc)[:50]}"] += 1
                return None

    return list(await asyncio.gather(*(one(p) for p in paths)))


async def _run_until(moment: float, jobs: Sequence[Awaitable[object]]) -> None:
    tasks = [asyncio.ensure_future(j) for j in jobs]
    await asyncio.sleep(max(0.0, moment - time.time()))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def drivers_process(port: int, plans: list[DriverPlan]) -> Work:
    """Drivers: connect, then ping once a second from ``start`` to ``measure_to``."""

    async def work(rec: Records, ready: Ready) -> None:
        driver, sent_us, acked = rec.cols("driver:q", "time_us:q", "acked:d")
        sockets = await _open_all(
            port, [f"/v1/driver/ws?token={p.token}" for p in plans], rec, "driver"
        )
        timeline = await ready()

        async def drive(plan: DriverPlan, sock: Socket) -> None:
            next_at, k = timeline.start + plan.phase_s, 0
            try:
                while True:
                    await asyncio.sleep(max(0.0, next_at - time.time()))
                    now_us = time.time_ns() // 1000
                    if now_us / 1e6 >= timeline.measure_to:
                        return
                    k += 1
                    lat, lon = plan.position(now_us / 1e6 - timeline.start)
                    moment = EPOCH + timedelta(microseconds=now_us)
                    ping = _PingOut(
                        id=k,
                        time=moment,
                        lat=lat,
                        lon=lon,
                        speed_mps=plan.speed_mps,
                        accuracy_m=5.0,
                    )
                    sock.send_text(PING_OUT.encode(ping))
                    while (reply := ACK.decode(await sock.receive())).type != "ack":
                        pass  # a route push
                    done = time.time()
                    if reply.accepted == 1:
                        driver.append(plan.driver_id)
                        sent_us.append(now_us)
                        acked.append(done)
                    else:
                        rec.counts["pings refused"] += 1
                    next_at = max(next_at + 1.0, time.time())
            except Closed as exc:
                rec.counts[f"driver socket closed {exc.code} {exc.reason[:40]}"] += 1
            finally:
                sock.close()

        jobs = [drive(p, s) for p, s in zip(plans, sockets, strict=True) if s is not None]
        await _run_until(timeline.measure_to + 2.0, jobs)

    return work


def dispatchers_process(port: int, api_key: str, count: int) -> Work:
    """Dispatcher screens: connect at ``connect``, record every position and moved window."""

    async def work(rec: Records, ready: Ready) -> None:
        timeline = await ready()
        await asyncio.sleep(max(0.0, timeline.connect - time.time()))
        p_sock, p_driver, p_time, p_recv = rec.cols("socket:q", "driver:q", "time_us:q", "recv:d")
        e_driver, e_fix, e_recv = rec.cols("ev_driver:q", "ev_fix_s:q", "ev_recv:d")

        async def watch(index: int) -> None:
            while True:  # a screen closed for falling behind reconnects, as a browser would
                try:
                    sock = await Socket.open(port, f"/v1/live/ws?token={api_key}")
                except (OSError, Closed):
                    rec.counts["dispatcher could not connect"] += 1
                    await asyncio.sleep(1.0)
                    continue
                try:
                    while True:
                        data = await sock.receive()
                        now = time.time()
                        message = LIVE.decode(data)
                        if isinstance(message, _Positions):
                            rec.counts["positions messages"] += 1
                            for d in message.drivers:
                                p_sock.append(index)
                                p_driver.append(d.driver_id)
                                p_time.append(_us(d.time))
                                p_recv.append(now)
                        elif isinstance(message, _Snapshot):
                            rec.counts[f"snapshots ({len(data) // 1000:,} kB)"] += 1
                        elif isinstance(message, _WindowChanges):
                            rec.counts["windows messages"] += 1
                            for detail in message.changes:
                                if detail.window is not None:
                                    e_driver.append(detail.driver_id)
                                    e_fix.append(detail.window.computed_epoch_s)
                                    e_recv.append(now)
                        elif (detail := message.event.detail) is not None:
                            rec.counts[f"events {detail.type}"] += 1
                            if detail.type == "eta_changed" and detail.window is not None:
                                e_driver.append(detail.driver_id)
                                e_fix.append(detail.window.computed_epoch_s)
                                e_recv.append(now)
                        else:
                            rec.counts[f"events {message.event.type}"] += 1
                except Closed as exc:
                    rec.counts[f"dispatcher closed {exc.code} {exc.reason[:40]}"] += 1
                finally:
                    sock.close()

        await _run_until(timeline.drain_to, [watch(i) for i in range(count)])

    return work


def customers_process(port: int, follow: list[tuple[str, int]]) -> Work:
    """Customer pages, ``(token, driver)`` each: connect first, record windows and positions."""

    async def work(rec: Records, ready: Ready) -> None:
        w_driver, w_fix, w_recv = rec.cols("driver:q", "fix_s:q", "recv:d")
        p_driver, p_time, p_recv = rec.cols("pos_driver:q", "pos_time_us:q", "pos_recv:d")
        sockets = await _open_all(port, [f"/v1/track/{t}/ws" for t, _ in follow], rec, "customer")

        async def page(sock: Socket, driver: int) -> None:
            try:
                while True:
                    data = await sock.receive()
                    now = time.time()
                    message = TRACK.decode(data)
                    if isinstance(message, _WindowMessage):
                        w_driver.append(driver)
                        w_fix.append(_us(message.estimate.as_of) // 1_000_000)
                        w_recv.append(now)
                    elif isinstance(message, _PositionMessage):
                        p_driver.append(driver)
                        p_time.append(_us(message.driver.time))
                        p_recv.append(now)
                    else:
                        rec.counts["track views"] += 1
            except Closed as exc:
                rec.counts[f"customer closed {exc.code} {exc.reason[:40]}"] += 1
            finally:
                sock.close()

        jobs = [page(s, d) for s, (_, d) in zip(sockets, follow, strict=True) if s is not None]
        rec.counts["customer sockets open"] = len(jobs)
        listening = asyncio.gather(*jobs)
        timeline = await ready()
        await _run_until(timeline.drain_to, [listening])

    return work


def publisher_process(redis_url: str, channel: str, rate: float, pad_bytes: int) -> Work:
    """The ceiling's publisher: ``rate`` stamped messages a second, in 5 ms ticks."""

    async def work(rec: Records, ready: Ready) -> None:
        redis = Redis.from_url(redis_url)
        timeline = await ready()
        await asyncio.sleep(max(0.0, timeline.start - time.time()))
        pad, sent = b"x" * pad_bytes, 0
        while (now := time.time()) < timeline.measure_to:
            due = int((now - timeline.start) * rate) - sent
            if due > 0:
                async with redis.pipeline(transaction=False) as pipe:
                    for _ in range(due):
                        pipe.publish(channel, b"%.6f|" % time.time() + pad)
                    await pipe.execute()
                sent += due
            await asyncio.sleep(0.005)
        await redis.aclose()

    return work


def subscriber_process(redis_url: str, channel: str) -> Work:
    """The ceiling's subscriber: one pub/sub connection read as the hub reads its own."""

    async def work(rec: Records, ready: Ready) -> None:
        sent, recv = rec.cols("sent:d", "recv:d")
        redis = Redis.from_url(redis_url)
        pubsub = redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(channel)
        timeline = await ready()
        while time.time() < timeline.drain_to:
            message = await pubsub.get_message(timeout=1.0)
            if message is not None and message.get("type") == "message":
                recv.append(time.time())
                sent.append(float(message["data"].split(b"|", 1)[0]))
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await redis.aclose()

    return work


class Children:
    """Client processes (forked), each reporting ready before the shared timeline is sent."""

    def __init__(self) -> None:
        self.context = mp.get_context("fork")
        self.running: list[tuple[str, Any, Connection]] = []

    def start(self, name: str, work: Work) -> None:
        mine, theirs = self.context.Pipe()
        proc = self.context.Process(target=child(work), args=(theirs,), name=name, daemon=True)
        proc.start()
        self.running.append((name, proc, mine))

    def go(self, make: Callable[[], Timeline]) -> Timeline:
        for name, _, pipe in self.running:
            if pipe.recv() != "ready":
                raise RuntimeError(f"{name} did not start")
        timeline = make()
        for _, _, pipe in self.running:
            pipe.send(timeline)
        return timeline

    def results(self) -> dict[str, list[Records]]:
        collected: dict[str, list[Records]] = {}
        for name, proc, pipe in self.running:
            collected.setdefault(name, []).append(pipe.recv())
            proc.join(timeout=30)
        return collected

    def stop(self) -> None:
        for _, proc, _ in self.running:
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)


@contextlib.contextmanager
def children() -> Iterator[Children]:
    made = Children()
    try:
        yield made
    finally:
        made.stop()


# --- the server and its CPU -------------------------------------------------------------------


def cpu_by_process(api_pid: int, redis_url: str) -> dict[str, float]:
    """CPU seconds so far: the API, each worker (its children), PostgreSQL, Redis, and the
    whole machine (every core's busy time, interrupts included)."""
    found = {"api": cpu_seconds(api_pid), "postgres": 0.0}
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError):
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
            if not stat:
                continue
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == api_pid:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                if b"worker" in argv:
                    found[f"worker {argv[argv.index(b'worker') + 1].decode()}"] = cpu_seconds(
                        int(entry.name)
                    )
            elif name.startswith("postgres"):
                found["postgres"] += cpu_seconds(int(entry.name))

    async def redis_cpu() -> float:
        redis = Redis.from_url(redis_url)
        info = await redis.info("cpu")
        await redis.aclose()
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])

    found["redis"] = asyncio.run(redis_cpu())
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    found["whole machine"] = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    return found


# --- figures ----------------------------------------------------------------------------------


def joined(parts: list[Records], name: str) -> Array:
    """One column of every part, concatenated."""
    arrays = [np.asarray(p.columns[name]) for p in parts if name in p.columns]
    return np.concatenate(arrays) if arrays else np.zeros(0)


def spread_ms(latencies_s: Array | list[float]) -> dict[str, float]:
    """p50/p90/p99/max in milliseconds."""
    values = np.asarray(latencies_s)
    if values.size == 0:
        return dict.fromkeys(("p50_ms", "p90_ms", "p99_ms", "max_ms"), math.nan)
    q = np.percentile(values, [50, 90, 99, 100]) * 1000
    return {"p50_ms": q[0], "p90_ms": q[1], "p99_ms": q[2], "max_ms": q[3]}


@dataclass
class Accepted:
    """The pings accepted while measuring: by (driver, time µs), and by (driver, second)."""

    exact: dict[tuple[int, int], tuple[float, float]] = field(default_factory=dict)
    first_in_second: dict[tuple[int, int], float] = field(default_factory=dict)

    @classmethod
    def of(cls, drivers: list[Records], line: Timeline) -> Accepted:
        made = cls()
        columns = [joined(drivers, c) for c in ("driver", "time_us", "acked")]
        inside = (columns[2] >= line.measure_from) & (columns[2] < line.measure_to)
        for d, t, acked in zip(*(c[inside].tolist() for c in columns), strict=True):
            made.exact[(d, t)] = (t / 1e6, acked)
            made.first_in_second.setdefault((d, t // 1_000_000), acked)
        return made


def positions_from(accepted: Accepted, parts: list[Records], prefix: str = "") -> Array:
    """Per distinct (socket, ping) seen: [arrival − acceptance, arrival − send], seconds."""
    names = [f"{prefix}{c}" for c in ("driver", "time_us", "recv")]
    sockets = joined(parts, "socket") if not prefix else None
    drivers, times, recv = (joined(parts, n).tolist() for n in names)
    seen: dict[tuple[int, int, int], tuple[float, float]] = {}
    for n, (d, t, r) in enumerate(zip(drivers, times, recv, strict=True)):
        stamp = accepted.exact.get((d, t))
        key = (int(sockets[n]) if sockets is not None else 0, d, t)
        if stamp is not None and key not in seen:
            seen[key] = (r - stamp[1], r - stamp[0])
    return np.array(list(seen.values())).reshape(-1, 2)


def windows_from(accepted: Accepted, parts: list[Records], names: tuple[str, str, str]) -> Array:
    """Arrival − acceptance of the fix each window was computed from, seconds."""
    drivers, fixes, recv = (joined(parts, n).tolist() for n in names)
    found = [
        r - a
        for d, f, r in zip(drivers, fixes, recv, strict=True)
        if (a := accepted.first_in_second.get((d, f))) is not None
    ]
    return np.array(found)


def summarise(
    got: dict[str, list[Records]],
    line: Timeline,
    args: argparse.Namespace,
    report: Report,
    cpu: dict[str, float],
) -> None:
    accepted = Accepted.of(got["drivers"], line)
    sent_acked = np.array(list(accepted.exact.values())).reshape(-1, 2)
    report.add(
        figure="pings accepted (send → ack)",
        per_s=len(accepted.exact) / args.seconds,
        **spread_ms(sent_acked[:, 1] - sent_acked[:, 0]),
    )
    if "dispatchers" in got:
        parts = got["dispatchers"]
        seen = positions_from(accepted, parts)
        messages = sum(p.counts["positions messages"] for p in parts)
        report.add(
            figure="position → dispatcher (from ack)",
            samples=len(seen),
            **spread_ms(seen[:, 0]),
            delivered=f"{100 * len(seen) / max(1, len(accepted.exact) * args.dispatchers):.2f} %",
            drivers_per_message=joined(parts, "driver").size / max(1, messages),
        )
        report.add(figure="position → dispatcher (from send)", **spread_ms(seen[:, 1]))
        events = windows_from(accepted, parts, ("ev_driver", "ev_fix_s", "ev_recv"))
        report.add(figure="moved window → dispatcher", samples=len(events), **spread_ms(events))
    if "customers" in got:
        parts = got["customers"]
        windows = windows_from(accepted, parts, ("driver", "fix_s", "recv"))
        report.add(
            figure="ETA change → customer window",
            samples=len(windows),
            per_s=len(windows) / args.seconds,
            **spread_ms(windows),
        )
        seen = positions_from(accepted, parts, prefix="pos_")
        report.add(
            figure="position → customer (from ack)", samples=len(seen), **spread_ms(seen[:, 0])
        )
    clients = {
        f"{name} x{len(parts)}": sum(p.cpu_s for p in parts) / args.seconds
        for name, parts in got.items()
    }
    ours = {**cpu, **clients}
    whole = ours.pop("whole machine")
    ours["everything else"] = whole - sum(ours.values())  # other work on the machine, kernel
    report.add(
        figure="CPU, cores",
        machine=round(whole, 2),
        **{k: round(v, 2) + 0.0 for k, v in ours.items()},
    )
    for name, parts in got.items():
        counts = sum((p.counts for p in parts), Counter[str]())
        if counts:
            print(f"  {name}: " + "; ".join(f"{k} {v:,}" for k, v in sorted(counts.items())))


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
