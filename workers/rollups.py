"""Rollups worker: domain events → the analytics facts of stops and routes.

Its group ``rollups`` reads the shared events stream. From the ETA worker's events it keeps what
the facts need later: detected arrivals and departures (``stop_signals``; many driver apps
never report arriving) and the arrival windows published for each stop
(``eta_publications``). A closed stop (``stop_delivered``, ``stop_failed``, or a detected
arrival at a stop already closed) gets its fact (:func:`solver.facts.stop_fact`, with the ETA
errors of the windows in force 5, 15, 30 and 60 minutes before the arrival); a route completed
by that stop gets its fact, with the distance its driver really drove from the stored
positions (:func:`solver.trip.trip_of`: GPS jumps and parked jitter left out).

Everything of a batch is written in one transaction and facts are replaced whole, so a
redelivered entry computes the same facts again and stores nothing twice. A stop closed before
its detected arrival reached this worker is computed again when it does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, cast

import h3
import msgspec
import psycopg
import structlog
from prometheus_client import Counter

from realtime.events import event_of
from realtime.streams import StreamNames
from schemas.eta import (
    Approaching,
    ArrivalDetected,
    ArrivalWindow,
    DepartureDetected,
    EnRoute,
    EtaChanged,
)
from schemas.events import DeliveryUpdate, Event, StopDelivered, StopFailed
from schemas.ids import RouteId, StopId
from solver import facts, learning, trip
from store.facts import (
    ClosedStop,
    PublicationRow,
    Signal,
    StopFactRow,
    closed_stops,
    completed_routes,
    fixes_of,
    publications_of,
    record_publications,
    record_signals,
    visits_of,
    write_route_facts,
    write_stop_facts,
)
from workers.connection import OwnConnection
from workers.runner import Entry

log = structlog.get_logger(__name__)

GROUP = "rollups"

STOP_FACTS = Counter("lastmile_rollups_stop_facts_total", "Stop facts computed (again included)")
ROUTE_FACTS = Counter("lastmile_rollups_route_facts_total", "Route facts computed")


@dataclass(frozen=True)
class Rules:
    """How facts are judged: ``on_time_tolerance_s`` around each window, zones as H3 cells of
    ``zone_res``, electricity's CO₂ per kWh."""

    on_time_tolerance_s: float = 0.0
    zone_res: int = 8
    grid_co2_kg_per_kwh: float = 0.4
    trip: trip.TripRules = trip.DEFAULT_RULES


@dataclass(frozen=True)
class Observed:
    """What a batch of events says: signals and windows to keep, stops and routes to compute."""

    signals: list[Signal]
    publications: list[PublicationRow]
    stops: set[StopId]
    routes: set[RouteId]


def _instant(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def _publication(window: ArrivalWindow) -> PublicationRow:
    return PublicationRow(
        stop_id=window.stop_id,
        at=_instant(window.computed_epoch_s),
        likely_at=_instant(window.likely_epoch_s),
        lower_at=_instant(window.lower_epoch_s),
        upper_at=_instant(window.upper_epoch_s),
    )


def observe(events: Sequence[Event]) -> Observed:
    """What ``events`` ask of the facts (pure)."""
    seen = Observed(signals=[], publications=[], stops=set(), routes=set())
    for event in events:
        if isinstance(event, StopDelivered | StopFailed):
            seen.stops.add(event.stop_id)
            seen.routes.add(event.route_id)
        elif isinstance(event, DeliveryUpdate):
            d = event.detail
            if isinstance(d, ArrivalDetected):
                arrived = _instant(d.arrived_epoch_s)
                seen.signals.append(Signal(event.org_id, d.stop_id, arrived_at=arrived))
                seen.stops.add(d.stop_id)
                seen.routes.add(d.route_id)
            elif isinstance(d, DepartureDetected):
                departed = _instant(d.departed_epoch_s)
                seen.signals.append(Signal(event.org_id, d.stop_id, departed_at=departed))
            elif isinstance(d, EtaChanged):
                # ``previous`` is the window published before: for the first change of a stop,
                # the one in force since the route's first fix (kept once per instant).
                seen.publications.append(_publication(d.previous))
                seen.publications.append(_publication(d.window))
            elif isinstance(d, EnRoute | Approaching) and d.window is not None:
                seen.publications.append(_publication(d.window))
    return seen


def stop_fact_row(
    stop: ClosedStop, published: Sequence[PublicationRow], rules: Rules
) -> tuple[StopFactRow, list[tuple[StopId, int, int, bool]]]:
    """A closed stop's fact row and its ETA errors (pure)."""
    windows = [
        facts.Window(start=s, end=e)
        for s, e in zip(stop.window_starts, stop.window_ends, strict=True)
    ]
    fact = facts.stop_fact(
        facts.StopInputs(
            outcome=cast("Literal['delivered', 'failed']", stop.outcome),
            planned_arrival=stop.planned_arrival,
            planned_service_s=stop.planned_service_s,
            completed_at=stop.completed_at,
            reported_arrival=stop.arrived_at,
            detected_arrival=stop.detected_arrival,
            windows=windows,
            lat=stop.lat,
            lon=stop.lon,
            proof_lat=stop.proof_lat,
            proof_lon=stop.proof_lon,
        ),
        rules.on_time_tolerance_s,
    )
    errors = facts.eta_errors(
        fact.arrived_at,
        [
            facts.Publication(
                at=p.at, likely_at=p.likely_at, lower_at=p.lower_at, upper_at=p.upper_at
            )
            for p in published
        ],
    )
    row = StopFactRow(
        stop_id=stop.stop_id,
        org_id=stop.org_id,
        day=stop.day,
        route_id=stop.route_id,
        order_id=stop.order_id,
        driver_id=stop.driver_id,
        carrier_id=stop.carrier_id,
        zone=h3.latlng_to_cell(stop.lat, stop.lon, rules.zone_res),
        address_key=learning.address_key(stop.address),
        outcome=stop.outcome,
        failure_code=stop.failure_code if stop.outcome == "failed" else None,
        attempt=stop.attempt,
        planned_arrival=stop.planned_arrival,
        arrived_at=fact.arrived_at,
        arrival_source=fact.arrival_source,
        completed_at=stop.completed_at,
        window_start=None if fact.window is None else fact.window.start,
        window_end=None if fact.window is None else fact.window.end,
        punctuality=fact.punctuality,
        lateness_s=fact.lateness_s,
        wait_s=fact.wait_s,
        service_s=fact.service_s,
        planned_service_s=stop.planned_service_s,
        arrival_error_s=fact.arrival_error_s,
        completion_m=fact.completion_m,
    )
    return row, [(stop.stop_id, e.horizon_min, e.error_s, e.inside) for e in errors]


async def compute_facts(
    conn: psycopg.AsyncConnection,
    stop_ids: Sequence[StopId],
    route_ids: Sequence[RouteId],
    rules: Rules,
) -> tuple[int, int]:
    """Compute and store the facts of those of ``stop_ids`` that are closed and of those of
    ``route_ids`` (and of the closed stops' routes) that are completed, in the caller's
    transaction; how many of each were written."""
    closed = await closed_stops(conn, stop_ids)
    by_stop: dict[StopId, list[PublicationRow]] = {}
    for p in await publications_of(conn, [s.stop_id for s in closed]):
        by_stop.setdefault(p.stop_id, []).append(p)
    rows: list[StopFactRow] = []
    errors: list[tuple[StopId, int, int, bool]] = []
    for stop in closed:
        row, errs = stop_fact_row(stop, by_stop.get(stop.stop_id, []), rules)
        rows.append(row)
        errors.extend(errs)
    await write_stop_facts(conn, rows, errors)
    wanted = set(route_ids) | {s.route_id for s in closed if s.route_status == "completed"}
    routes = await completed_routes(conn, sorted(wanted))
    visits: dict[RouteId, list[tuple[datetime, datetime]]] = {}
    for v in await visits_of(conn, [r.route_id for r in routes]):
        visits.setdefault(v.route_id, []).append((v.arrived_at, v.completed_at))
    done = []
    for route in routes:
        fixes = [
            trip.Fix(time=f.time, lat=f.lat, lon=f.lon, accuracy_m=f.accuracy_m)
            for f in await fixes_of(conn, route.driver_id, route.started_at, route.completed_at)
        ]
        driven = trip.trip_of(fixes, visits.get(route.route_id, []), rules.trip)
        fact = facts.route_fact(
            facts.RouteInputs(
                planned_m=route.planned_m,
                planned_start=route.planned_start,
                planned_end=route.planned_end,
                started_at=route.started_at,
                completed_at=route.completed_at,
                delivered=route.delivered,
                failed=route.failed,
                energy=cast("facts.Energy | None", route.energy),
                consumption_per_km=route.consumption_per_km,
            ),
            driven,
            rules.grid_co2_kg_per_kwh,
        )
        done.append((route, msgspec.structs.asdict(fact)))
    await write_route_facts(conn, done)
    return len(rows), len(done)


@dataclass
class RollupsConsumer(OwnConnection):
    """Keeps the analytics facts from the events stream; one connection, reopened after a
    failure."""

    names: StreamNames
    database_url: str
    rules: Rules = field(default_factory=Rules)
    group: str = GROUP
    _conn: psycopg.AsyncConnection | None = field(default=None, repr=False)

    def streams(self) -> Sequence[str]:
        return [self.names.events]

    def decode(self, fields: dict[bytes, bytes]) -> Event:
        return event_of(fields)

    async def handle(self, entries: Sequence[Entry[Event]]) -> None:
        seen = observe([e.value for e in entries])
        if not (seen.signals or seen.publications or seen.stops or seen.routes):
            return
        async with self.connected() as conn, conn.transaction():
            await record_signals(conn, seen.signals)
            await record_publications(conn, seen.publications)
            stops, routes = await compute_facts(
                conn, sorted(seen.stops), sorted(seen.routes), self.rules
            )
        STOP_FACTS.inc(stops)
        ROUTE_FACTS.inc(routes)
        if routes:
            log.debug("route facts stored", routes=routes, stops=stops)
