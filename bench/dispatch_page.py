"""The dispatcher's map at fleet scale, in headless Chromium: 300 drivers pinging every second
beside 3,000 stops.

    python -m bench.dispatch_page [--drivers 300] [--stops 3000] [--minutes 10] [--out FILE]

Starts one server process with its workers against the configured or embedded services,
creates a day through the API (a depot, one van and shift per driver, the orders by one CSV
import), plans it (``--plan-s``) and dispatches it. Then every driver pings once a second
(``POST /v1/pings``, one request per driver per second, each driver on a keep-alive
connection of its own, moving along a line) while Chromium
(the system's, ``/usr/bin/chromium``) shows ``/dispatch`` and reports (the pings come from a
process of their own, so that the harness's waits are not held up by them):

- the snapshot a dispatcher gets on connect (read on a socket of its own): its messages, their
  bytes in all and the largest message;
- connect to first paint: from the page's navigation until every route line is drawn, timed in
  the page;
- frame times: the gaps between animation frames, p50/p99/max, over the run;
- the page's main thread over the run (the DevTools protocol's ``Performance`` metrics): its CPU
  time per second of wall time, and how much of it went to script, style and layout — what
  the page itself costs, apart from the frames the shared machine's load delays;
- the page's JavaScript heap after the first minute and at the end, each after a full garbage
  collection (what stays, not what the collector has not got to yet);
- that every driver's marker reached its latest position.

With ``--profile DIR``, Chromium's CPU profiles of the first paint and of the first minute after
it are written there (``first_paint.cpuprofile``, ``running.cpuprofile``: open them in the
browser's developer tools, Performance panel) and their heaviest functions are printed.

Figures go to stdout and, with ``--out``, to a JSON file. Nothing is asserted: these machines are
shared, and the figures are for docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import h11
import httpx
import websockets

from bench.harness import bench_env, free_port, machine, make_tenant, server_process

CENTRE = (52.52, 13.405)
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--enable-precise-memory-info",
]
FRAMES_JS = """
() => {
  window.__frames = [];
  let last = performance.now();
  const tick = (now) => {
    window.__frames.push(now - last);
    last = now;
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}
"""


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


async def build_day(
    client: httpx.AsyncClient, drivers: list[Any], stops: int, plan_s: float
) -> tuple[str, int]:
    """A day with one van and shift per driver and ``stops`` orders, planned and dispatched."""
    day = datetime.now(UTC).date()
    start = datetime.now(UTC) - timedelta(hours=1)
    depot = (
        await client.post("/v1/depots", json={"name": "Hub", "lat": CENTRE[0], "lon": CENTRE[1]})
    ).json()["id"]
    for n, (driver_id, _token) in enumerate(drivers):
        van = (
            await client.post(
                "/v1/vehicles", json={"name": f"Van {n}", "capacity": {"parcels": 1000}}
            )
        ).json()["id"]
        shift = {
            "driver_id": driver_id,
            "vehicle_id": van,
            "day": day.isoformat(),
            "start_place": {"depot_id": depot},
            "working_window": {
                "start": start.isoformat(),
                "end": (start + timedelta(hours=12)).isoformat(),
            },
        }
        (await client.post("/v1/shifts", json=shift)).raise_for_status()
    rng = random.Random(7)
    rows = ["ref,address,lat,lon,day,service_s,parcels"]
    for i in range(stops):
        lat = CENTRE[0] + rng.uniform(-0.12, 0.12)
        lon = CENTRE[1] + rng.uniform(-0.2, 0.2)
        rows.append(f"b{i},{i} Bench St,{lat:.5f},{lon:.5f},{day},120,1")
    imported = await client.post(
        "/v1/orders/import", content="\n".join(rows), headers={"content-type": "text/csv"}
    )
    imported.raise_for_status()
    plan = (
        await client.post("/v1/plans", json={"day": day.isoformat(), "time_limit_s": plan_s})
    ).json()
    while plan["status"] not in ("done", "failed", "cancelled"):
        await asyncio.sleep(1)
        plan = (await client.get(f"/v1/plans/{plan['id']}")).json()
    if plan["status"] != "done":
        raise RuntimeError(f"the plan ended {plan['status']}: {plan.get('error')}")
    dispatched = await client.post(f"/v1/plans/{plan['id']}/dispatch", json={})
    dispatched.raise_for_status()
    return day.isoformat(), len(dispatched.json()["route_ids"])


class Phone:
    """One driver's phone: its own keep-alive HTTP/1.1 connection, one request at a time.

    h11 speaks the protocol; no client library's layers sit on top, so that the harness can
    send 300 requests a second beside the server on a small machine (a general-purpose client
    reached about a third of that here).
    """

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port = host, port
        self.headers = [
            ("host", f"{host}:{port}"),
            ("authorization", f"Bearer {token}"),
            ("content-type", "application/json"),
        ]
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.protocol = h11.Connection(h11.CLIENT)

    async def post(self, target: str, body: bytes) -> int:
        """The status of a POST; the connection is closed (and opened again next time) when
        anything goes wrong."""
        try:
            return await asyncio.wait_for(self._post(target, body), timeout=10)
        except (OSError, TimeoutError, h11.ProtocolError):
            await self.close()
            raise

    async def _post(self, target: str, body: bytes) -> int:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
            self.protocol = h11.Connection(h11.CLIENT)
        reader, writer = self.streams
        protocol = self.protocol
        headers = [*self.headers, ("content-length", str(len(body)))]
        writer.write(
            (protocol.send(h11.Request(method="POST", target=target, headers=headers)) or b"")
            + (protocol.send(h11.Data(data=body)) or b"")
            + (protocol.send(h11.EndOfMessage()) or b"")
        )
        status = 0
        while True:
            event = protocol.next_event()
            if event is h11.NEED_DATA:
                protocol.receive_data(await reader.read(65_536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionResetError("the server closed the connection")
        protocol.start_next_cycle()
        return status

    async def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


class Pinger:
    """Every driver pings once a second, moving outwards, until stopped."""

    def __init__(self, base: str, drivers: list[Any]) -> None:
        self.base = base
        self.drivers = drivers
        self.requests = 0
        self.failed = 0
        self.last: dict[int, tuple[float, float]] = {}
        """Each driver's last accepted position."""

    async def run(self, stop: asyncio.Event) -> None:
        address = httpx.URL(self.base)
        host, port = address.host, address.port or 80
        phones = [Phone(host, port, token) for _, token in self.drivers]
        step = 0
        try:
            while not stop.is_set():
                began = time.monotonic()
                step += 1
                now = datetime.now(UTC).isoformat()
                await asyncio.gather(
                    *(
                        self._one(phone, n, driver_id, step, now)
                        for n, (phone, (driver_id, _)) in enumerate(
                            zip(phones, self.drivers, strict=True)
                        )
                    )
                )
                await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - began)))
        finally:
            for phone in phones:
                await phone.close()

    async def _one(self, phone: Phone, n: int, driver_id: int, step: int, now: str) -> None:
        angle = n * 2 * math.pi / len(self.drivers)
        reach = 0.02 + 0.0002 * step
        lat = round(CENTRE[0] + reach * math.sin(angle), 6)
        lon = round(CENTRE[1] + 1.6 * reach * math.cos(angle), 6)
        body = {"pings": [{"time": now, "lat": lat, "lon": lon, "accuracy_m": 5.0}]}
        self.requests += 1
        try:
            status = await phone.post("/v1/pings", json.dumps(body).encode())
        except (OSError, TimeoutError, h11.ProtocolError):
            self.failed += 1
            return
        if status == 200:
            self.last[driver_id] = (lat, lon)
        else:
            self.failed += 1


METRICS = ("ThreadTime", "TaskDuration", "ScriptDuration", "RecalcStyleDuration", "LayoutDuration")
"""Chromium's cumulative main-thread figures (seconds) read at the start and end of the run."""


class Inspector:
    """The page's own costs over the DevTools protocol: main-thread metrics and its heap."""

    def __init__(self, session: Any) -> None:
        self.session = session

    @classmethod
    async def attach(cls, page: Any) -> Inspector:
        session = await page.context.new_cdp_session(page)
        await session.send("Performance.enable", {"timeDomain": "threadTicks"})
        await session.send("HeapProfiler.enable")
        return cls(session)

    async def metrics(self) -> dict[str, float]:
        """The cumulative figures of :data:`METRICS`, and the wall clock, now."""
        reply = await self.session.send("Performance.getMetrics")
        found = {m["name"]: float(m["value"]) for m in reply["metrics"]}
        return {**{name: found.get(name, 0.0) for name in METRICS}, "wall": time.monotonic()}

    async def heap_mb(self) -> float:
        """The JavaScript heap in use after a full garbage collection, in MiB."""
        await self.session.send("HeapProfiler.collectGarbage")
        reply = await self.session.send("Runtime.getHeapUsage")
        return round(float(reply["usedSize"]) / 2**20, 1)


def main_thread(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Per second of wall time between two :meth:`Inspector.metrics`: the main thread's CPU time
    and the time of its tasks, script, style and layout, in milliseconds."""
    wall = max(after["wall"] - before["wall"], 1e-9)

    def per_s(name: str) -> float:
        return round(1000 * (after[name] - before[name]) / wall, 1)

    return {
        "main_thread_cpu_ms_per_s": per_s("ThreadTime"),
        "tasks_ms_per_s": per_s("TaskDuration"),
        "script_ms_per_s": per_s("ScriptDuration"),
        "style_ms_per_s": per_s("RecalcStyleDuration"),
        "layout_ms_per_s": per_s("LayoutDuration"),
    }


class Profiler:
    """Chromium's sampling CPU profiler over the DevTools protocol, if asked for (``--profile``)."""

    def __init__(self, session: Any, folder: Path | None) -> None:
        self.session = session
        self.folder = folder

    @classmethod
    async def start(cls, page: Any, folder: Path | None) -> Profiler:
        if folder is None:
            return cls(None, None)
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        session = await page.context.new_cdp_session(page)
        await session.send("Profiler.enable")
        await session.send("Profiler.setSamplingInterval", {"interval": 500})
        await session.send("Profiler.start")
        return cls(session, folder)

    async def take(self, name: str, *, again: bool = True) -> None:
        """Write what was sampled since the start (or the last take) and start again."""
        if self.session is None or self.folder is None:
            return
        profile = (await self.session.send("Profiler.stop"))["profile"]
        await asyncio.to_thread(
            (self.folder / f"{name}.cpuprofile").write_text, json.dumps(profile)
        )
        print(f"{name}: heaviest functions (self time)")
        for line in heaviest(profile):
            print(f"  {line}")
        if again:
            await self.session.send("Profiler.start")


def heaviest(profile: dict[str, Any], count: int = 15) -> list[str]:
    """The functions with the most self time in a CPU profile, as "ms name url:line"."""
    gaps = profile.get("timeDeltas", [])
    self_us: dict[int, float] = {}
    for node_id, gap in zip(profile.get("samples", []), [*gaps[1:], 0], strict=True):
        self_us[node_id] = self_us.get(node_id, 0.0) + gap
    by_function: dict[str, float] = {}
    for node in profile["nodes"]:
        frame = node["callFrame"]
        where = frame["url"].rsplit("/", 2)[-2:] if frame["url"] else [""]
        function = frame["functionName"] or "(anonymous)"
        name = f"{function} {'/'.join(where)}:{frame['lineNumber'] + 1}"
        by_function[name] = by_function.get(name, 0.0) + self_us.get(node["id"], 0.0)
    top = sorted(by_function.items(), key=lambda item: item[1], reverse=True)[:count]
    return [f"{us / 1000:8.0f} ms  {name}" for name, us in top]


def ping_elsewhere(base: str, drivers: list[Any], stop: Any, out: Any) -> None:
    """A process's work: ping as :class:`Pinger` until ``stop`` is set, then put its counts and
    the drivers' last positions on ``out``."""

    async def pinging() -> Pinger:
        pinger, done = Pinger(base, drivers), asyncio.Event()
        task = asyncio.create_task(pinger.run(done))
        await asyncio.to_thread(stop.wait)
        done.set()
        await task
        return pinger

    began = time.monotonic()
    pinger = asyncio.run(pinging())
    out.put(
        {
            "requests": pinger.requests,
            "failed": pinger.failed,
            "last": pinger.last,
            "seconds": time.monotonic() - began,
        }
    )


async def snapshot_sizes(base: str, ws_base: str, key: str) -> list[int]:
    """The sizes in bytes of the messages of the snapshot a dispatcher gets on connect: the
    snapshot, then the ``routes`` parts that follow it, if any."""
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        ticket = (
            await client.post("/v1/socket-tickets", headers={"authorization": f"Bearer {key}"})
        ).json()["ticket"]
    sizes = []
    async with websockets.connect(f"{ws_base}/v1/live/ws?ticket={ticket}", max_size=None) as socket:
        while True:
            raw = await socket.recv()
            data = raw if isinstance(raw, bytes) else raw.encode()
            message = json.loads(data)
            if message["type"] not in ("snapshot", "routes"):
                continue
            sizes.append(len(data))
            if message.get("following") == [] or message.get("last") is True:
                return sizes


def run(args: argparse.Namespace) -> dict[str, Any]:
    with bench_env() as env:
        tenant = make_tenant(env.database_url, args.drivers)
        port = free_port()
        with server_process(env, port, workers=True):
            return asyncio.run(measure(args, port, tenant.api_key, tenant.drivers))


async def measure(
    args: argparse.Namespace, port: int, api_key: str, drivers: list[Any]
) -> dict[str, Any]:
    """Build the day on the running server, then watch it in Chromium while drivers ping."""
    from playwright.async_api import async_playwright

    base, ws_base = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
    async with httpx.AsyncClient(
        base_url=base, timeout=600, headers={"authorization": f"Bearer {api_key}"}
    ) as client:
        day, routes = await build_day(client, drivers, args.stops, args.plan_s)
    spawn = multiprocessing.get_context("spawn")
    stop, out = spawn.Event(), spawn.Queue()
    pinging = spawn.Process(target=ping_elsewhere, args=(base, list(drivers), stop, out))
    pinging.start()
    await asyncio.sleep(5)  # every driver on the map
    sizes = await snapshot_sizes(base, ws_base, api_key)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        # The harness's own waits evaluate their conditions, which the page's CSP would refuse.
        page = await browser.new_page(viewport={"width": 1440, "height": 900}, bypass_csp=True)
        page.on("pageerror", lambda error: print(f"page error: {error}"))
        profiler = await Profiler.start(page, args.profile)
        inspector = await Inspector.attach(page)
        await page.goto(f"{base}/dispatch?day={day}#key={api_key}")
        await page.wait_for_function(
            f"document.querySelectorAll('path.route-line').length >= {routes}"
            " && window.lastmileDispatch.connected"
            " && (window.__firstPaint = window.__firstPaint || performance.now())",
            timeout=120_000,
            polling=50,
        )
        first_paint_ms = await page.evaluate("window.__firstPaint")
        await profiler.take("first_paint")
        await page.evaluate(FRAMES_JS)
        started = await inspector.metrics()
        await asyncio.sleep(60)
        await profiler.take("running", again=False)
        heap_1 = await inspector.heap_mb()
        await asyncio.sleep(max(0.0, args.minutes * 60 - 60))
        frames: list[float] = await page.evaluate("window.__frames")
        ended = await inspector.metrics()
        heap_end = await inspector.heap_mb()
        stop.set()
        pinged = await asyncio.to_thread(out.get, timeout=120)
        await asyncio.to_thread(pinging.join)
        await asyncio.sleep(3)
        shown = await page.evaluate(
            "window.lastmileDispatch.drivers().map(d => [d.id, d.lat, d.lon])"
        )
        await browser.close()
    at_latest = sum(
        1
        for driver_id, lat, lon in shown
        if tuple(pinged["last"].get(driver_id, ())) == (round(lat, 6), round(lon, 6))
    )
    return {
        "drivers": args.drivers,
        "stops": args.stops,
        "routes": routes,
        "minutes": args.minutes,
        "snapshot_messages": len(sizes),
        "snapshot_bytes": sum(sizes),
        "snapshot_largest_message_bytes": max(sizes),
        "first_paint_ms": round(first_paint_ms),
        "frames": len(frames),
        "frame_p50_ms": round(statistics.median(frames), 1),
        "frame_p99_ms": round(percentile(frames, 0.99), 1),
        "frame_max_ms": round(max(frames), 1),
        **main_thread(started, ended),
        "heap_after_1_min_mb": heap_1,
        "heap_at_end_mb": heap_end,
        "pings_sent": pinged["requests"],
        "pings_per_s": round(pinged["requests"] / max(pinged["seconds"], 1e-9)),
        "pings_failed": pinged["failed"],
        "markers_at_latest_position": at_latest,
        "machine": machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drivers", type=int, default=300)
    parser.add_argument("--stops", type=int, default=3000)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--plan-s", type=float, default=60.0)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--profile", type=Path, help="write Chromium CPU profiles to this folder")
    args = parser.parse_args()
    figures = run(args)
    print(json.dumps(figures, indent=2))
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
