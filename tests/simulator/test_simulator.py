"""The fleet simulator against the real server: a small day created, planned, driven and closed."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import msgspec
import numpy as np
import psycopg
import pytest
from redis.asyncio import Redis

from realtime.streams import StreamNames
from schemas.codecs import EVENT_DECODER
from schemas.ids import DriverId
from simulator.driving import Point, distance_m
from simulator.fleet import BERLIN, DaySpec, day_orders
from simulator.simulation import SimulationConfig, Summary, default_start, simulate
from simulator.streets import StreetMap, berlin
from tests.conftest import LiveServer, Tenant, WorkerHandle
from tests.helpers import stream_entries, wait_for_positions

DIMENSIONS = ("weight_kg", "volume_l", "parcels")


def small_day(server: LiveServer, tenant: Tenant, **overrides: object) -> SimulationConfig:
    """Two drivers, six orders, a two-hour day at 1,200× (about 6 s of wall time at most)."""
    values: dict[str, object] = {
        "url": server.url,
        "api_key": tenant.api_key,
        "drivers": 2,
        "orders": 6,
        "speedup": 1200.0,
        "delay_share": 0.5,
        "fail_share": 1 / 3,
        "seed": 3,
        "ping_interval_s": 60.0,
        "day_hours": 2.0,
        "window_hours": 1.0,
        "plan_time_limit_s": 0.5,
        **overrides,
    }
    return SimulationConfig(**values)  # type: ignore[arg-type]


async def event_types(redis: Redis, server: LiveServer, tenant: Tenant) -> Counter[str]:
    names = StreamNames(prefix=server.settings.redis_prefix, shards=server.settings.ping_shards)
    entries = stream_entries(await redis.xrange(names.events))
    decoded = [EVENT_DECODER.decode(fields[b"e"]) for _, fields in entries]
    return Counter(type(e).__name__ for e in decoded if e.org_id == tenant.org_id)


def key(tenant: Tenant) -> dict[str, str]:
    return {"authorization": f"Bearer {tenant.api_key}"}


async def test_a_small_day_is_driven_to_the_end_through_the_api(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    planner: None,
    persist_worker: WorkerHandle,
    redis: Redis,
    db: psycopg.AsyncConnection,
) -> None:
    """Every stop ends delivered or failed, both tracks are stored, and every step is an event."""
    lines: list[str] = []
    summary = await asyncio.wait_for(
        simulate(small_day(server, tenant), say=lines.append), timeout=90
    )

    assert summary.stopped_early is False
    assert (summary.routes, summary.unassigned, summary.elsewhere, summary.other_shifts) == (
        2,
        0,
        0,
        0,
    )
    assert (summary.delivered, summary.failed) == (4, 2)
    assert [d.finished for d in summary.drivers] == [True, True]
    assert [(d.refused, d.pings_rejected, d.pings_lost, d.error) for d in summary.drivers] == [
        (0, 0, 0, None)
    ] * 2

    routes = (await http.get(f"/v1/routes?day={summary.day}", headers=key(tenant))).json()
    assert [r["status"] for r in routes["routes"]] == ["completed", "completed"]
    outcomes = Counter(s["status"] for r in routes["routes"] for s in r["stops"])
    assert outcomes == Counter({"delivered": 4, "failed": 2})

    for report in summary.drivers:
        assert report.pings_accepted > 10
        stored = await wait_for_positions(db, DriverId(report.driver_id), report.pings_accepted)
        assert stored == report.pings_accepted

    assert await event_types(redis, server, tenant) == Counter(
        {
            "RouteDispatched": 2,
            "RouteStarted": 2,
            "StopArrived": 6,
            "StopDelivered": 4,
            "StopFailed": 2,
        }
    )
    drivers = (await http.get("/v1/drivers", headers=key(tenant))).json()["drivers"]
    simulated = [d for d in drivers if (d["external_ref"] or "").startswith("sim-")]
    assert [d["active"] for d in simulated] == [False, False]

    # One customer page per route was printed, and each now shows its end state.
    pages = [line.split()[2] for line in lines if line.lstrip().startswith("customer page")]
    assert len(pages) == 2
    for page in pages:
        token = page.rsplit("/t/", 1)[1]
        shown = (await http.get(f"/v1/track/{token}")).json()
        assert shown["status"] in ("delivered", "failed")


async def test_setting_stop_ends_the_run_early_and_retires_the_drivers(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    planner: None,
) -> None:
    """A stop request mid-day ends every driver's loop at once and still retires the drivers."""
    stop = asyncio.Event()
    lines: list[str] = []
    config = small_day(server, tenant, speedup=5.0, progress_every_s=0.5)
    run = asyncio.create_task(simulate(config, say=lines.append, stop=stop))
    for _ in range(300):
        if any(line.lstrip().startswith("driving") for line in lines):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)
    stop.set()
    summary: Summary = await asyncio.wait_for(run, timeout=15)

    assert summary.stopped_early is True
    assert [d.finished for d in summary.drivers] == [False, False]
    assert summary.delivered + summary.failed == 0
    assert lines[-1] == summary.describe()
    drivers = (await http.get("/v1/drivers", headers=key(tenant))).json()["drivers"]
    simulated = [d for d in drivers if (d["external_ref"] or "").startswith("sim-")]
    assert [d["active"] for d in simulated] == [False, False]


async def test_a_cancelled_order_leaves_the_drivers_route_and_the_day_still_ends(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    planner: None,
) -> None:
    """A dispatcher's cancellation reaches the driver's socket; it re-plans and skips the stop."""
    lines: list[str] = []
    start = default_start(datetime.now(UTC))
    config = small_day(server, tenant, speedup=600.0, delay_share=0.0, fail_share=0.0, start=start)
    run = asyncio.create_task(simulate(config, say=lines.append))
    for _ in range(300):
        if any(line.lstrip().startswith("driving") for line in lines):
            break
        await asyncio.sleep(0.05)
    routes = (await http.get(f"/v1/routes?day={start.date()}", headers=key(tenant))).json()
    # The stop planned latest of the day: the drivers are seconds of wall time away from it.
    route, victim = max(
        ((r, s) for r in routes["routes"] for s in r["stops"]),
        key=lambda pair: pair[1]["planned_arrival"],
    )
    cancelled = await http.post(
        f"/v1/orders/{victim['order_id']}/cancel", json={"reason": "test"}, headers=key(tenant)
    )
    assert cancelled.status_code == 200, cancelled.text
    summary = await asyncio.wait_for(run, timeout=90)

    assert (summary.delivered, summary.failed) == (5, 0)
    changed = next(d for d in summary.drivers if d.route_id == route["id"])
    assert (changed.replans, changed.refused, changed.finished) == (1, 0, True)
    after = (await http.get(f"/v1/routes/{route['id']}", headers=key(tenant))).json()
    assert after["status"] == "completed"
    assert victim["id"] not in [s["id"] for s in after["stops"] if s["status"] != "removed"]


def test_the_days_orders_are_seeded_and_lie_in_the_city_and_the_day() -> None:
    """The same seed gives the same orders; windows lie inside the shifts; failures are exact."""
    start = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
    spec = DaySpec(drivers=3, orders=40, start=start, seed=5, fail_share=0.1)
    first, again = day_orders(spec, "abc", DIMENSIONS), day_orders(spec, "abc", DIMENSIONS)
    assert first == again
    assert (
        day_orders(DaySpec(drivers=3, orders=40, start=start, seed=6), "abc", DIMENSIONS) != first
    )
    assert len(first.fail_reasons) == 4
    assert len({b.external_ref for b in first.bodies}) == 40
    for body in first.bodies:
        assert body.day == start.date()
        assert distance_m(Point(body.lat, body.lon), BERLIN.depot) < 15_000
        for window in body.time_windows:
            assert start <= window.start < window.end <= start + timedelta(hours=8)
            assert window.end - window.start == timedelta(hours=2)
        assert body.service_s is not None
        assert 120 <= body.service_s <= 420


def test_orders_can_keep_their_service_time_to_the_simulator() -> None:
    """Without ``service_given`` the same seeded day tells the server no service time, and the
    simulator keeps the ones it would have told."""
    start = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
    spec = DaySpec(drivers=2, orders=12, start=start, seed=5)
    told = day_orders(spec, "abc", DIMENSIONS)
    kept = day_orders(replace(spec, service_given=False), "abc", DIMENSIONS)
    assert {b.external_ref: b.service_s for b in told.bodies} == kept.service_s == told.service_s
    assert {b.service_s for b in kept.bodies} == {None}
    assert [msgspec.structs.replace(b, service_s=None) for b in told.bodies] == kept.bodies


def test_orders_are_sized_only_in_the_organisations_dimensions() -> None:
    """An organisation counting only pallets gets orders with no size it does not know."""
    spec = DaySpec(drivers=1, orders=5, start=datetime(2026, 11, 24, 7, tzinfo=UTC))
    assert [b.size for b in day_orders(spec, "x", ["pallets"]).bodies] == [{}] * 5


def test_the_configuration_refuses_values_out_of_range() -> None:
    """A share above 1 is refused with the field, the range and the value."""
    with pytest.raises(ValueError, match=r"expected fail_share in \[0, 1\], got 1.5"):
        SimulationConfig(url="http://127.0.0.1:8000", api_key="k", fail_share=1.5)
    assert "api_key" not in repr(SimulationConfig(url="http://127.0.0.1:8000", api_key="secret"))


async def test_a_day_under_way_replays_its_past_at_once_with_its_own_times(
    server: LiveServer,
    http: httpx.AsyncClient,
    tenant: Tenant,
    planner: None,
) -> None:
    """A day begun 75 minutes ago runs on the server's clock: within seconds what was due
    before now is done, with the times it was due (not when the simulator caught up), and what
    is due later is still open."""
    stop = asyncio.Event()
    lines: list[str] = []
    config = small_day(
        server, tenant, speedup=1.0, under_way_h=1.25, day_hours=3.0, ping_interval_s=30.0
    )
    run = asyncio.create_task(simulate(config, say=lines.append, stop=stop))
    for _ in range(600):
        if any(line.lstrip().startswith("driving") for line in lines):
            break
        await asyncio.sleep(0.05)
    driving = next(line for line in lines if line.lstrip().startswith("driving"))
    assert "at 1×" in driving
    assert "(the first 1.25 h replayed in seconds)" in driving
    began = datetime.now(UTC)
    await asyncio.sleep(12.0)  # 75 simulated minutes at 600x: 7.5 s, and the commands
    stop.set()
    summary: Summary = await asyncio.wait_for(run, timeout=30)
    assert summary.stopped_early is True

    routes = (await http.get(f"/v1/routes?day={summary.day}", headers=key(tenant))).json()
    stops = [s for r in routes["routes"] for s in r["stops"]]
    closed = [s for s in stops if s["status"] in ("delivered", "failed")]
    assert closed, "some stops of the past hour are done"
    assert len(closed) < len(stops), "some stops are still ahead"
    for stop_row in closed:
        done_at = datetime.fromisoformat(stop_row["completed_at"])
        assert done_at < began - timedelta(minutes=2), stop_row  # its own, past time
        assert done_at >= datetime.fromisoformat(stop_row["arrived_at"])
    assert sum(d.pings_accepted for d in summary.drivers) > 0


def metres_off_the_streets(streets: StreetMap, points: list[tuple[float, float]]) -> list[float]:
    """How far each (lat, lon) is from the nearest piece of street, in metres (every piece of
    the map measured, not only the nearest corner's)."""
    starts, ends = [], []
    for way in streets.ways:
        corners = list(zip(way.xs, way.ys, strict=True))
        starts += corners[:-1]
        ends += corners[1:]
    a, b = np.array(starts), np.array(ends)
    span = b - a
    length2 = np.maximum((span**2).sum(axis=1), 1e-9)
    out = []
    for lat, lon in points:
        p = np.array(streets.flat.xy(lat, lon))
        share = np.clip(((p - a) * span).sum(axis=1) / length2, 0.0, 1.0)
        nearest = a + share[:, None] * span
        out.append(float(np.sqrt(((nearest - p) ** 2).sum(axis=1)).min()))
    return out


async def test_a_day_on_the_streets_is_driven_along_them(
    server: LiveServer,
    tenant: Tenant,
    planner: None,
    persist_worker: WorkerHandle,
    db: psycopg.AsyncConnection,
) -> None:
    """With the city's streets (as the demo drives), every stored position of the day lies on
    a street of the map, give or take the phone's GPS error, and so does every customer."""
    config = small_day(server, tenant, streets=True, ping_interval_s=20.0)
    summary = await asyncio.wait_for(simulate(config, say=lambda _: None), timeout=90)
    assert (summary.delivered + summary.failed, summary.unassigned) == (6, 0)

    streets = berlin()
    fixes: list[tuple[float, float]] = []
    for report in summary.drivers:
        assert report.pings_accepted > 10
        driver = DriverId(report.driver_id)
        assert await wait_for_positions(db, driver, report.pings_accepted) == report.pings_accepted
        cur = await db.execute("SELECT lat, lon FROM positions WHERE driver_id = %s", (driver,))
        fixes += [(float(lat), float(lon)) for lat, lon in await cur.fetchall()]
    off = metres_off_the_streets(streets, fixes)
    # GPS error is 4 m a side: 25 m is more than five of it; the depot stands 68 m off its street.
    depot_m = distance_m(BERLIN.depot, streets.snap(BERLIN.depot))
    assert sum(m <= 25.0 for m in off) >= 0.9 * len(off), sorted(off)[-20:]
    assert max(off) <= depot_m + 25.0
    cur = await db.execute("SELECT lat, lon FROM orders WHERE org_id = %s", (tenant.org_id,))
    places = [(float(lat), float(lon)) for lat, lon in await cur.fetchall()]
    assert len(places) == 6
    assert max(metres_off_the_streets(streets, places)) < 1.0
