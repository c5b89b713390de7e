"""The client processes: drivers, dispatcher screens, customer pages, the PUBLISH ceiling."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing as mp
import resource
import time
from array import array
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from multiprocessing.connection import Connection
from typing import Any

from redis.asyncio import Redis

from bench.latency.day import DriverPlan
from bench.latency.wire import (
    ACK,
    EPOCH,
    LIVE,
    PING_OUT,
    TRACK,
    Closed,
    PingOut,
    PositionMessage,
    Positions,
    Snapshot,
    Socket,
    WindowChanges,
    WindowMessage,
    epoch_us,
)

DRAIN_S = 5.0
CONNECTING = 32
"""Sockets a client process opens at a time."""


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
                    ping = PingOut(
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
                        if isinstance(message, Positions):
                            rec.counts["positions messages"] += 1
                            for d in message.drivers:
                                p_sock.append(index)
                                p_driver.append(d.driver_id)
                                p_time.append(epoch_us(d.time))
                                p_recv.append(now)
                        elif isinstance(message, Snapshot):
                            rec.counts[f"snapshots ({len(data) // 1000:,} kB)"] += 1
                        elif isinstance(message, WindowChanges):
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
                    if isinstance(message, WindowMessage):
                        w_driver.append(driver)
                        w_fix.append(epoch_us(message.estimate.as_of) // 1_000_000)
                        w_recv.append(now)
                    elif isinstance(message, PositionMessage):
                        p_driver.append(driver)
                        p_time.append(epoch_us(message.driver.time))
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
        await pubsub.aclose()
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
