"""The benchmark's day: drivers on started routes, written through the store."""

from __future__ import annotations

import asyncio
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import psycopg

from app.settings import Settings
from bench.harness import (
    BenchTenant,
)
from schemas.delivery import OrderIn, Place, ShiftIn, TimeWindow, VehicleIn
from store import fleet, orders
from store import plans as plan_store
from store import routes as route_store

CENTRE = (52.52, 13.405)
M_PER_DEG = 111_195.0
DETOUR_CYCLE_S = 60.0
DETOUR_TOWARD_S = 30.0
DETOUR_AWAY_SPEEDUP = 3.0
STOP_SPACING_M = 1_500.0
SERVICE_S = 120


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
            plan = await plan_store.create_plan(conn, org, now.date(), {}, None)
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
