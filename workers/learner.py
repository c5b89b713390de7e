"""The learner: an organisation's recent days → its learned speeds and service times.

:func:`learn` reads the routes rolled up over the last ``days`` of the organisation's days
(their GPS tracks, their stops in the order served) and the closed stops' service times, learns
the tables of :mod:`solver.learning` and keeps them as the organisation's newest model, which
plans use from then on. A settled route's track is read once: what is cut from it (its speed
passes and leg circuities) is kept in ``route_passes`` and reused by the next runs, unless the
rules or the organisation's time zone changed or the route's fact was recomputed since.
:func:`run_learner` runs it on a schedule beside the rollups worker: every ``check_every_s`` it
looks for organisations whose newest model is older than ``interval_s`` and that have routes
rolled up since. ``lastmile learn`` runs it at once.
"""

from __future__ import annotations

import asyncio
import math
import statistics
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import msgspec
import psycopg
import structlog
from prometheus_client import Counter

from schemas.ids import OrgId, RouteId
from solver import learning, trip
from solver.geo import haversine_m
from solver.matrix import GreatCircleProvider, MatrixProvider
from store import learning as store
from store import tenants
from store.delivery import DeliveryDay
from store.facts import fixes_of
from workers.schedule import every

log = structlog.get_logger(__name__)

RUNS = Counter("lastmile_learner_runs_total", "Models learned")
ROUTES_READ = Counter(
    "lastmile_learner_routes_read_total", "Routes whose positions the learner read and cut"
)
PASSES_ENCODER = msgspec.msgpack.Encoder()
PASSES_DECODER = msgspec.msgpack.Decoder(list[learning.SpeedPass])
MIN_LEGS = 5
"""Legs needed before the observed circuity is believed."""
SETTLE = timedelta(hours=24)
"""How long after a route's completion what is cut from its track is kept (see :func:`learn`)."""


@dataclass(frozen=True)
class Learned:
    """What one run learned, in short."""

    model_id: int
    org_id: OrgId
    day_from: date
    day_to: date
    routes: int
    routes_read: int
    """Routes whose positions were read this run (the others' passes were kept)."""
    speed_samples: int
    cells: int
    city_speed_mps: float | None
    observed_circuity: float | None
    service_samples: int
    service_overall_s: float | None

    def describe(self) -> str:
        """One line for people."""
        speed = (
            "no speeds (too few passes)"
            if self.city_speed_mps is None
            else f"{self.speed_samples} passes, {self.cells} cells, city"
            f" {self.city_speed_mps * 3.6:.1f} km/h"
        )
        circuity = (
            "" if self.observed_circuity is None else f", circuity {self.observed_circuity:.2f}"
        )
        service = (
            "no service times"
            if self.service_overall_s is None
            else f"{self.service_samples} service times, median {self.service_overall_s:.0f} s"
        )
        return (
            f"org {self.org_id}: model {self.model_id} from {self.day_from} to {self.day_to},"
            f" {self.routes} routes ({self.routes_read} read from positions); {speed}{circuity};"
            f" {service}"
        )


async def learn(
    conn: psycopg.AsyncConnection,
    org_id: OrgId,
    *,
    days: int = 28,
    rules: learning.LearningRules = learning.DEFAULT_RULES,
    today: date | None = None,
    settle: timedelta = SETTLE,
) -> Learned:
    """Learn from the organisation's last ``days`` days (up to ``today``, by default today in
    its time zone) and keep the result as its newest model.

    What is cut from a route completed at least ``settle`` ago is kept for the next runs; a
    more recent route is read again next time, since positions a phone sent late (after a
    stretch without signal) may still arrive."""
    org = await tenants.organisation(conn, org_id)
    zone = ZoneInfo(org.time_zone if org is not None else "UTC")
    day_to = today or datetime.now(zone).date()
    day_from = day_to - timedelta(days=days - 1)
    routes = await store.routes_to_learn(conn, org_id, day_from, day_to)
    basis = basis_of(rules, zone)
    kept = await store.kept_passes(conn, [r.route_id for r in routes], basis)
    fresh = [
        r
        for r in routes
        if r.route_id not in kept or kept[r.route_id].facts_computed_at < r.computed_at
    ]
    visits: dict[RouteId, list[store.StopVisit]] = {}
    for v in await store.visits_in_order(conn, [r.route_id for r in fresh]):
        visits.setdefault(v.route_id, []).append(v)
    by_route: list[tuple[date, list[learning.SpeedPass]]] = []
    day_of = {r.route_id: r.day for r in routes}
    circuities: list[float] = []
    cut: list[store.CutPasses] = []
    settled = datetime.now(UTC) - settle
    for route in fresh:
        route_passes, legs = await _cut(conn, route, visits.get(route.route_id, []), zone, rules)
        by_route.append((route.day, route_passes))
        circuities += legs
        if route.completed_at > settled:
            continue
        cut.append(
            store.CutPasses(
                route_id=route.route_id,
                org_id=org_id,
                day=route.day,
                facts_computed_at=route.computed_at,
                passes=PASSES_ENCODER.encode(route_passes),
                circuities=legs,
            )
        )
    await store.keep_passes(conn, basis, cut)
    ROUTES_READ.inc(len(fresh))
    read_now = {r.route_id for r in fresh}
    for route_id, earlier in kept.items():
        if route_id not in read_now:
            by_route.append((day_of[route_id], PASSES_DECODER.decode(earlier.passes)))
            circuities += earlier.circuities
    observed = statistics.median(circuities) if len(circuities) >= MIN_LEGS else None
    passes = [p for _day, of_route in by_route for p in of_route]
    speeds = learning.learn_speeds(passes, rules, observed)
    if speeds is not None:
        spread = learning.route_pace_sd(by_route, rules)
        speeds = msgspec.structs.replace(speeds, route_pace_sd=spread)
    service = learning.learn_service(
        learning.ServiceSample(
            address_key=r.address_key,
            customer_key=learning.customer_key(r.customer),
            size_key=learning.size_key(r.parcels),
            service_s=float(r.service_s),
        )
        for r in await store.service_rows(conn, org_id, day_from, day_to)
    )
    model_id = await store.store_model(
        conn,
        org_id,
        day_from,
        day_to,
        len(routes),
        None if speeds is None else msgspec.to_builtins(speeds),
        None if service is None else msgspec.to_builtins(service),
    )
    RUNS.inc()
    return Learned(
        model_id=model_id,
        org_id=org_id,
        day_from=day_from,
        day_to=day_to,
        routes=len(routes),
        routes_read=len(fresh),
        speed_samples=0 if speeds is None else speeds.samples,
        cells=0 if speeds is None else len(speeds.by_cell),
        city_speed_mps=None if speeds is None else speeds.city_mps,
        observed_circuity=observed,
        service_samples=0 if service is None else service.samples,
        service_overall_s=None if service is None else service.overall_s,
    )


def tables_of(
    model: store.ModelRow,
) -> tuple[learning.SpeedTable | None, learning.ServiceTable | None]:
    """A stored model's tables."""
    speeds = (
        None
        if model.speeds is None
        else msgspec.convert(model.speeds, learning.SpeedTable, strict=False)
    )
    service = (
        None
        if model.service is None
        else msgspec.convert(model.service, learning.ServiceTable, strict=False)
    )
    return speeds, service


async def run_learner(
    database_url: str,
    stop: asyncio.Event,
    *,
    days: int,
    interval_s: float,
    check_every_s: float = 600.0,
) -> None:
    """Learn for every organisation that is due, every ``check_every_s``, until ``stop``."""

    async def learn_due(conn: psycopg.AsyncConnection) -> None:
        older_than = datetime.now(UTC) - timedelta(seconds=interval_s)
        for org_id in await store.orgs_due(conn, older_than):
            if stop.is_set():
                break
            learned = await learn(conn, org_id, days=days)
            log.info("learned", summary=learned.describe())

    await every(check_every_s, stop, database_url, "learning", learn_due)


def basis_of(rules: learning.LearningRules, zone: ZoneInfo) -> str:
    """What passes are cut by: the rules and the time zone (hours of the week are local)."""
    return f"{zone.key} {msgspec.json.encode(rules).decode()}"


async def _cut(
    conn: psycopg.AsyncConnection,
    route: store.RouteToLearn,
    stops: list[store.StopVisit],
    zone: ZoneInfo,
    rules: learning.LearningRules,
) -> tuple[list[learning.SpeedPass], list[float]]:
    """A route's speed passes (its cleaned track outside its stop visits) and the circuity of
    each leg between its stops, from its positions."""
    fixes = [
        trip.Fix(time=f.time, lat=f.lat, lon=f.lon, accuracy_m=f.accuracy_m)
        for f in await fixes_of(conn, route.driver_id, route.started_at, route.completed_at)
    ]
    passes = learning.speed_passes(
        trip.clean_track(fixes), [(s.arrived_at, s.completed_at) for s in stops], zone, rules
    )
    circuities: list[float] = []
    times = [f.time for f in fixes]  # in time order, as read
    for a, b in pairwise(stops):
        leg = fixes[bisect_left(times, a.completed_at) : bisect_right(times, b.arrived_at)]
        if not leg:
            continue
        # The leg's first fix comes up to a ping interval after leaving, its last up to one
        # before arriving: the pieces from the stop and to the next are driven too.
        ends_m = haversine_m(a.lat, a.lon, leg[0].lat, leg[0].lon) + haversine_m(
            leg[-1].lat, leg[-1].lon, b.lat, b.lon
        )
        ratio = learning.leg_circuity(
            trip.trip_of(leg).driven_m + ends_m, haversine_m(a.lat, a.lon, b.lat, b.lon)
        )
        if ratio is not None:
            circuities.append(ratio)
    return passes, circuities


@dataclass(frozen=True)
class PlanningModel:
    """What a plan travels and serves by: the provider, the day with learned service times
    where its orders gave none, and a note naming the model for the plan's outcome."""

    provider: MatrixProvider
    day: DeliveryDay
    model_id: int | None
    note: str


def planning_model(
    day: DeliveryDay, provider: MatrixProvider, model: store.ModelRow | None
) -> PlanningModel:
    """Plan ``day`` with ``model`` where it knows something: learned speeds replace a
    great-circle provider's speed model (a road router's times are kept), learned service times
    replace the organisation's default on orders that gave none. Without a model (or with
    learning off), the configured provider and the orders' own service times."""
    if model is None:
        return PlanningModel(provider, day, None, f"configured: {_describe(provider)}")
    speeds, service = tables_of(model)
    used: list[str] = []
    span_h = _span_h(day)
    learned = with_speeds(provider, speeds, day.timezone, span_h)
    if learned is not provider and speeds is not None:
        provider = learned
        used.append(
            f"speeds of {len(speeds.by_cell)} cells (city {speeds.city_mps * 3.6:.1f} km/h)"
        )
    if service is not None:
        orders = []
        replaced = 0
        for order in day.orders:
            if order.service_s_given:
                orders.append(order)
                continue
            estimate, _level = service.estimate(
                learning.address_key(order.address),
                learning.customer_key(order.customer),
                learning.size_key(order.parcels),
            )
            orders.append(msgspec.structs.replace(order, service_s=round(estimate)))
            replaced += 1
        day = msgspec.structs.replace(day, orders=orders)
        used.append(f"service times of {replaced} orders")
    what = ", ".join(used) if used else "nothing usable"
    return PlanningModel(
        provider,
        day,
        model.id,
        f"learned model {model.id} ({model.day_from} to {model.day_to}): {what}",
    )


def with_speeds(
    provider: MatrixProvider,
    speeds: learning.SpeedTable | None,
    timezone: str,
    span_h: int = 1,
) -> MatrixProvider:
    """``provider`` driven at learned ``speeds`` when it is the great-circle model (a road
    router's times are kept, and so is everything without speeds); ``span_h`` hours from the
    departure are averaged (a plan's matrix serves its whole day)."""
    if speeds is None or not isinstance(provider, GreatCircleProvider):
        return provider
    model = learning.LearnedSpeeds(speeds, ZoneInfo(timezone), provider.circuity, span_h)
    return GreatCircleProvider(speed=model, circuity=provider.circuity)


def _span_h(day: DeliveryDay) -> int:
    """The hours from the day's first shift start to its last shift end (at least 1)."""
    if not day.shifts:
        return 1
    start = min(s.working_window.start for s in day.shifts)
    end = max(s.working_window.end for s in day.shifts)
    return max(1, math.ceil((end - start).total_seconds() / 3600))


def _describe(provider: MatrixProvider) -> str:
    if isinstance(provider, GreatCircleProvider):
        return f"great circle x {provider.circuity} at {provider.speed!r}"
    return type(provider).__name__
