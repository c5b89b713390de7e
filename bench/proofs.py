"""Proof uploads with 3 MB photos, many at a time, beside raw writes of the same bytes.

    python -m bench.proofs [--uploads 200] [--concurrency 20] [--photo-mb 3] [--json PATH]

Starts one API process (``lastmile serve --no-workers``, the local blob store) against the
configured or embedded services, dispatches one open stop per upload (orders through the API,
routes written straight to the database: planning is not what is measured), then:

1. **API**: ``uploads`` captures (``POST /v1/driver/stops/{id}/proof``: one ~3 MB JPEG, a
   stroke signature, scans, position), ``concurrency`` at a time; uploads/s, MB/s of request
   bodies, p50 and p99 latency, and the API process's CPU time per upload (on a shared machine,
   the figure that does not depend on what else runs). The API process's resident memory
   (RSS) is sampled every 100 ms from before the first upload to after the last, with 1 upload
   at a time, with ``concurrency`` and with twice that, so its growth with concurrency is on
   the table.
2. **Raw**: the same upload bytes written to the same store (``LocalBlobs.put_bytes``,
   ``concurrency`` at a time), as the floor the API's figures stand beside.

Photos are noise (they compress as badly as real ones). ``distinct`` noise photos are made once;
each upload's copy gets its own JPEG comment, so every upload is different bytes (nothing is
skipped as already stored) while the served copies of one base photo are the same blob.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import psycopg
from PIL import Image

from adapters.blobs import LocalBlobs, local_signing_key
from bench.harness import (
    BenchEnv,
    BenchTenant,
    Report,
    bench_env,
    cpu_seconds,
    make_tenant,
    server_process,
)
from schemas.ids import DriverId, OrderId, OrgId, ShiftId, VehicleId
from store import plans, routes

CENTRE = (52.52, 13.405)
STROKES = '{"width": 300, "height": 120, "strokes": [[[10, 60], [150, 20], [290, 100]]]}'


def noise_photo(seed: int, target_mb: float) -> bytes:
    """A JPEG of random noise of about ``target_mb`` megabytes."""
    rng = np.random.default_rng(seed)
    side = int((target_mb * 1_000_000 / 0.9) ** 0.5)  # noise at q90: ~0.9 bytes per pixel
    pixels = rng.integers(0, 256, size=(side * 3 // 4, side * 4 // 3, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=90)
    return out.getvalue()


def with_comment(photo: bytes, text: str) -> bytes:
    """``photo`` with a JPEG COM segment holding ``text`` right after its SOI marker."""
    payload = text.encode()
    segment = b"\xff\xfe" + (len(payload) + 2).to_bytes(2, "big") + payload
    return photo[:2] + segment + photo[2:]


def open_stops(
    env: BenchEnv, tenant: BenchTenant, client: httpx.Client, count: int
) -> list[tuple[int, str]]:
    """``count`` dispatched stops spread over the tenant's drivers: ``(stop id, token)``."""
    day = datetime.now(UTC).date()
    start = datetime(day.year, day.month, day.day, 6, tzinfo=UTC)
    depot = client.post(
        "/v1/depots", json={"name": "Hub", "lat": CENTRE[0], "lon": CENTRE[1]}
    ).json()["id"]
    shifts: list[tuple[DriverId, ShiftId, VehicleId]] = []
    for n, (driver_id, _) in enumerate(tenant.drivers):
        vehicle = client.post("/v1/vehicles", json={"name": f"Van {n}"}).json()["id"]
        shift = client.post(
            "/v1/shifts",
            json={
                "driver_id": driver_id,
                "vehicle_id": vehicle,
                "day": day.isoformat(),
                "start_place": {"depot_id": depot},
                "working_window": {
                    "start": start.isoformat(),
                    "end": (start + timedelta(hours=14)).isoformat(),
                },
            },
        )
        shift.raise_for_status()
        shifts.append((driver_id, ShiftId(shift.json()["id"]), VehicleId(vehicle)))
    orders = [
        {
            "external_ref": f"P{i}",
            "customer_name": f"Customer {i}",
            "address": f"Street {i}",
            "lat": CENTRE[0] + (i % 50) * 0.001,
            "lon": CENTRE[1] + (i // 50) * 0.001,
            "day": day.isoformat(),
            "parcels": [{"barcode": f"PKG-{i}"}],
        }
        for i in range(count)
    ]
    imported = client.post("/v1/orders/import", json=orders, timeout=120)
    imported.raise_for_status()
    order_ids = [OrderId(row["order_id"]) for row in imported.json()["created"]]
    return asyncio.run(_dispatch(env, tenant.org_id, day, shifts, order_ids, start))


async def _dispatch(
    env: BenchEnv,
    org_id: OrgId,
    day: Any,
    shifts: list[tuple[DriverId, ShiftId, VehicleId]],
    order_ids: list[OrderId],
    start: datetime,
) -> list[tuple[int, str]]:
    async with await psycopg.AsyncConnection.connect(env.database_url, autocommit=True) as conn:
        plan = await plans.create_plan(conn, org_id, day, {}, None)
        new = []
        for n, (driver_id, shift_id, vehicle_id) in enumerate(shifts):
            mine = order_ids[n :: len(shifts)]
            stops = [
                routes.NewStop(
                    order_id,
                    start + timedelta(minutes=5 * k),
                    start + timedelta(minutes=5 * k + 2),
                )
                for k, order_id in enumerate(mine)
            ]
            new.append(
                routes.NewRoute(
                    shift_id=shift_id,
                    driver_id=driver_id,
                    vehicle_id=vehicle_id,
                    planned_start=start,
                    planned_end=start + timedelta(hours=12),
                    distance_m=1000,
                    stops=stops,
                )
            )
        await routes.dispatch_routes(conn, org_id, plan.id, day, new)
        cursor = await conn.execute(
            "SELECT s.id, r.driver_id FROM stops s JOIN routes r ON r.id = s.route_id"
            " WHERE r.org_id = %s ORDER BY s.id",
            (org_id,),
        )
        rows = await cursor.fetchall()
    return [(int(stop_id), str(driver_id)) for stop_id, driver_id in rows]


class RssSampler:
    """Samples a process's resident memory every 100 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self._process.memory_info().rss)
            self._stop.wait(0.1)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def upload_all(
    port: int,
    jobs: list[tuple[int, str, bytes]],
    concurrency: int,
) -> tuple[float, list[float], int]:
    """Upload every job, ``concurrency`` at a time: wall seconds, latencies, bytes sent."""
    slots = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    sent = 0
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", timeout=300, limits=limits
    ) as client:

        async def one(n: int, stop_id: int, token: str, photo: bytes) -> None:
            nonlocal sent
            files: list[tuple[str, Any]] = [
                ("outcome", (None, "delivered")),
                ("recipient_name", (None, f"Recipient {n}")),
                ("signature_strokes", (None, STROKES)),
                ("scan", (None, f"SCAN-{n}")),
                ("lat", (None, "52.52")),
                ("lon", (None, "13.405")),
                ("photo", (f"door-{n}.jpg", photo, "image/jpeg")),
            ]
            async with slots:
                began = time.perf_counter()
                reply = await client.post(
                    f"/v1/driver/stops/{stop_id}/proof",
                    files=files,
                    headers={"authorization": f"Bearer {token}", "idempotency-key": f"b-{stop_id}"},
                )
                latencies.append(time.perf_counter() - began)
            if reply.status_code != 201:
                raise RuntimeError(f"upload {n}: {reply.status_code} {reply.text[:300]}")
            sent += int(reply.request.headers["content-length"])

        began = time.perf_counter()
        await asyncio.gather(
            *(one(n, stop_id, token, photo) for n, (stop_id, token, photo) in enumerate(jobs))
        )
        return time.perf_counter() - began, latencies, sent


async def raw_writes(store: LocalBlobs, photos: list[bytes], concurrency: int) -> float:
    """Write every photo to ``store``, ``concurrency`` at a time; wall seconds."""
    slots = asyncio.Semaphore(concurrency)

    async def one(photo: bytes) -> None:
        async with slots:
            await store.put_bytes(photo, "image/jpeg")

    began = time.perf_counter()
    await asyncio.gather(*(one(photo) for photo in photos))
    return time.perf_counter() - began


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--photo-mb", type=float, default=3.0)
    parser.add_argument("--distinct", type=int, default=20)
    parser.add_argument("--port", type=int, default=18093)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report = Report("proof uploads")
    bases = [noise_photo(seed, args.photo_mb) for seed in range(args.distinct)]
    print(f"photos: {len(bases)} bases of {statistics.mean(map(len, bases)) / 1e6:.2f} MB")
    serial = max(10, args.uploads // 10)
    with bench_env() as env:
        tenant = make_tenant(env.database_url, args.concurrency)
        with server_process(env, args.port) as pid:
            client = httpx.Client(
                base_url=f"http://127.0.0.1:{args.port}",
                headers={"authorization": f"Bearer {tenant.api_key}"},
                timeout=120,
            )
            stops = open_stops(env, tenant, client, serial + 2 * args.uploads)
            tokens = {str(driver_id): token for driver_id, token in tenant.drivers}
            jobs = [
                (stop_id, tokens[driver], with_comment(bases[n % len(bases)], f"upload {n}"))
                for n, (stop_id, driver) in enumerate(stops)
            ]
            middle = serial + args.uploads
            for label, batch, concurrency in (
                ("api, 1 at a time", jobs[:serial], 1),
                (f"api, {args.concurrency} at a time", jobs[serial:middle], args.concurrency),
                (f"api, {2 * args.concurrency} at a time", jobs[middle:], 2 * args.concurrency),
            ):
                before = psutil.Process(pid).memory_info().rss
                cpu_before = cpu_seconds(pid)
                with RssSampler(pid) as rss:
                    wall, latencies, sent = asyncio.run(upload_all(args.port, batch, concurrency))
                after = psutil.Process(pid).memory_info().rss
                cpu = cpu_seconds(pid) - cpu_before
                report.add(
                    run=label,
                    uploads=len(batch),
                    uploads_per_s=len(batch) / wall,
                    mb_per_s=sent / wall / 1e6,
                    p50_ms=p(latencies, 0.50) * 1000,
                    p99_ms=p(latencies, 0.99) * 1000,
                    api_cpu_ms_per_upload=cpu / len(batch) * 1000,
                    rss_before_mb=before / 1e6,
                    rss_peak_mb=max(rss.samples, default=after) / 1e6,
                    rss_after_mb=after / 1e6,
                )
            server_dir = env.data_dir / "server"
            store = LocalBlobs(env.data_dir / "raw-blobs", local_signing_key(server_dir, None))
            # The same folder's file system as the API's store, a sibling folder, so the raw
            # writes store every upload's bytes rather than finding the API's blobs.
            photos = [photo for _, _, photo in jobs[serial:middle]]
            wall = asyncio.run(raw_writes(store, photos, args.concurrency))
            report.add(
                run=f"raw put_bytes, {args.concurrency} at a time",
                uploads=len(photos),
                uploads_per_s=len(photos) / wall,
                mb_per_s=sum(map(len, photos)) / wall / 1e6,
            )
    report.write(args.json)


if __name__ == "__main__":
    main()
