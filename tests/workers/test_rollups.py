"""The rollups worker on a constructed day whose answers are known: each stop's and the route's
fact, and the reports over them, in the organisation's time zone (Auckland, a day ahead of UTC
in the morning)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest

from realtime.streams import StreamNames
from schemas.eta import ArrivalDetected, ArrivalWindow, EtaChanged
from schemas.events import DeliveryUpdate, Event, StopDelivered, StopFailed
from schemas.ids import DriverId, OrderId, OrgId, RouteId, StopId
from solver.geo import haversine_m
from store import routes as route_store
from store.positions import write_positions
from tests.conftest import Tenant, make_tenant
from tests.facts import one
from workers.rollups import RollupsConsumer, Rules
from workers.runner import Entry

ZONE = ZoneInfo("Pacific/Auckland")
DAY = date(2026, 11, 24)
START = (-36.85, 174.76)


def local(hour: int, minute: int = 0) -> datetime:
    """An instant of the day, Auckland time (UTC+13 in November: the UTC date is the 23rd)."""
    return datetime(DAY.year, DAY.month, DAY.day, hour, minute, tzinfo=ZONE)


@dataclass(frozen=True)
class Built:
    org_id: OrgId
    driver_id: DriverId
    route_id: RouteId
    stops: dict[str, StopId]
    orders: dict[str, OrderId]


# name: (window or None, planned arrival, attempt)
PLAN: dict[str, tuple[tuple[datetime, datetime] | None, datetime, int]] = {
    "on_time": ((local(9), local(10)), local(9, 10), 1),
    "late": ((local(10), local(11)), local(10, 5), 1),
    "waited": ((local(12), local(13)), local(12), 1),
    "second_attempt": ((local(13), local(14)), local(13, 20), 2),
    "no_window": (None, local(14, 30), 1),
}


async def build_day(db: psycopg.AsyncConnection, tenant: Tenant) -> Built:
    """An Auckland organisation's route of five stops, planned from 08:00."""
    org_id, driver_id = tenant.org_id, tenant.drivers[0].id
    await db.execute("UPDATE orgs SET timezone = 'Pacific/Auckland' WHERE id = %s", (org_id,))
    vehicle = await one(
        db,
        "INSERT INTO vehicles (org_id, name, energy, consumption_per_km)"
        " VALUES (%s, 'Van', 'diesel', 0.1) RETURNING id",
        (org_id,),
    )
    shift = await one(
        db,
        "INSERT INTO shifts (org_id, driver_id, vehicle_id, day, start_lat, start_lon,"
        " work_start, work_end) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (org_id, driver_id, vehicle, DAY, *START, local(8), local(18)),
    )
    plan = await one(
        db,
        "INSERT INTO plans (org_id, day, status) VALUES (%s, %s, 'done') RETURNING id",
        (org_id, DAY),
    )
    route = await one(
        db,
        "INSERT INTO routes (org_id, plan_id, shift_id, driver_id, vehicle_id, day,"
        " planned_start, planned_end, distance_m, started_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 4000, %s) RETURNING id",
        (org_id, plan, shift, driver_id, vehicle, DAY, local(8), local(15), local(8)),
    )
    stops: dict[str, StopId] = {}
    orders: dict[str, OrderId] = {}
    for seq, (name, (window, planned, attempt)) in enumerate(PLAN.items()):
        starts = [] if window is None else [window[0]]
        ends = [] if window is None else [window[1]]
        orders[name] = await one(
            db,
            "INSERT INTO orders (org_id, external_ref, address, lat, lon, day, window_starts,"
            " window_ends, service_s, attempt, status)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 300, %s, 'dispatched') RETURNING id",
            (org_id, name, f"{seq + 1}  Queen   St", *START, DAY, starts, ends, attempt),
        )
        stops[name] = await one(
            db,
            "INSERT INTO stops (org_id, route_id, order_id, seq, planned_arrival,"
            " planned_departure, attempt) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (org_id, route, orders[name], seq, planned, planned + timedelta(minutes=5), attempt),
        )
    return Built(org_id, driver_id, route, stops, orders)


async def drive(db: psycopg.AsyncConnection, built: Built) -> None:
    """The driver's day: ten fixes 500 m apart a minute apart going north, one 20 km GPS jump
    among them; the stops reported, detected and closed at known times."""
    rows = []
    for minute in range(10):
        rows.append(_fix(built.driver_id, local(8, minute), START[0] + minute * 0.0045, START[1]))
    rows.append(
        _fix(
            built.driver_id,
            local(
                8,
                4,
            )
            + timedelta(seconds=30),
            -36.67,
            174.76,
        )
    )
    await write_positions(db, rows)
    s = built.stops
    arrivals = {
        "on_time": local(9, 20),
        "late": local(11, 10),
        "waited": local(11, 40),
    }
    closes = {
        "on_time": local(9, 25),
        "late": local(11, 14),
        "waited": local(12, 5),
        "second_attempt": local(13, 33),
        "no_window": local(14, 40),
    }
    for name, at in arrivals.items():
        assert await route_store.arrive(db, s[name], at)
    for name, at in closes.items():
        ref = route_store.StopRef(s[name], built.route_id, built.orders[name], "pending")
        failed = name == "second_attempt"
        assert await route_store.complete(
            db,
            built.org_id,
            ref,
            delivered=not failed,
            reason="nobody home" if failed else None,
            at=at,
        )
    await db.execute(
        "UPDATE stops SET failure_code = 'not_home' WHERE id = %s", (s["second_attempt"],)
    )
    await db.execute(
        "INSERT INTO ratings (order_id, org_id, driver_id, route_id, stars)"
        " VALUES (%s, %s, %s, %s, 4)",
        (built.orders["on_time"], built.org_id, built.driver_id, built.route_id),
    )


def epoch(instant: datetime) -> int:
    return int(instant.timestamp())


def _fix(driver: DriverId, time: datetime, lat: float, lon: float) -> tuple[Any, ...]:
    return (driver, time, lat, lon, None, None, 5.0, None, None, None, "test", time)


def _window(
    built: Built, at: datetime, likely: datetime, lower: datetime, upper: datetime
) -> ArrivalWindow:
    return ArrivalWindow(
        stop_id=built.stops["on_time"],
        order_id=built.orders["on_time"],
        computed_epoch_s=epoch(at),
        likely_epoch_s=epoch(likely),
        lower_epoch_s=epoch(lower),
        upper_epoch_s=epoch(upper),
    )


def events_of(built: Built) -> list[Event]:
    """What the ETA worker and the driver's app said that day."""
    s, o = built.stops, built.orders
    head: dict[str, Any] = {
        "driver_id": built.driver_id,
        "route_id": built.route_id,
        "route_version": 1,
    }
    changed = EtaChanged(
        **head,
        stop_id=s["on_time"],
        order_id=o["on_time"],
        at_epoch_s=epoch(local(8, 30)),
        previous=_window(built, local(8), local(9), local(8, 50), local(9, 10)),
        window=_window(built, local(8, 30), local(9, 15), local(9, 5), local(9, 30)),
    )
    detected = ArrivalDetected(
        **head,
        stop_id=s["second_attempt"],
        order_id=o["second_attempt"],
        at_epoch_s=epoch(local(13, 31)),
        arrived_epoch_s=epoch(local(13, 30)),
    )
    at = local(15)
    common: dict[str, Any] = {
        "org_id": built.org_id,
        "at": at,
        "route_id": built.route_id,
        "driver_id": built.driver_id,
    }
    closed: list[Event] = [
        StopDelivered(**common, stop_id=s[n], order_id=o[n])
        for n in ("on_time", "late", "waited", "no_window")
    ]
    return [
        DeliveryUpdate(org_id=built.org_id, at=at, detail=changed),
        DeliveryUpdate(org_id=built.org_id, at=at, detail=detected),
        *closed,
        StopFailed(
            **common,
            stop_id=s["second_attempt"],
            order_id=o["second_attempt"],
            reason="nobody home",
        ),
    ]


@pytest.fixture
async def day_done(db: psycopg.AsyncConnection, database_url: str) -> tuple[Built, RollupsConsumer]:
    """The constructed day, driven and rolled up (twice: the second as a redelivery)."""
    tenant = await make_tenant(db, drivers=1)
    built = await build_day(db, tenant)
    await drive(db, built)
    consumer = RollupsConsumer(
        names=StreamNames(prefix="t"), database_url=database_url, rules=Rules()
    )
    entries = [Entry("events", f"{n}-0", e) for n, e in enumerate(events_of(built))]
    try:
        await consumer.handle(entries)
        await consumer.handle(entries)
    finally:
        await consumer.close()
    return built, consumer


async def _facts(db: psycopg.AsyncConnection, built: Built) -> dict[str, dict[str, Any]]:
    cursor = db.cursor(row_factory=psycopg.rows.dict_row)
    await cursor.execute("SELECT * FROM stop_facts WHERE route_id = %s", (built.route_id,))
    by_stop = {row["stop_id"]: row for row in await cursor.fetchall()}
    return {name: by_stop[stop] for name, stop in built.stops.items()}


async def test_each_stop_fact_has_the_known_answer(
    db: psycopg.AsyncConnection, day_done: tuple[Built, RollupsConsumer]
) -> None:
    """On time, late (by ten minutes), an early arrival that waited twenty minutes, a second
    attempt whose arrival was only detected, and a stop without a window each get their fact."""
    built, _ = day_done
    f = await _facts(db, built)
    assert {n: r["punctuality"] for n, r in f.items()} == {
        "on_time": "on_time",
        "late": "late",
        "waited": "on_time",
        "second_attempt": "on_time",
        "no_window": None,
    }
    assert (f["on_time"]["service_s"], f["on_time"]["arrival_error_s"]) == (300, 600)
    assert (f["late"]["lateness_s"], f["late"]["service_s"]) == (600, 240)
    assert (f["waited"]["wait_s"], f["waited"]["service_s"]) == (1200, 300)
    assert f["waited"]["arrival_error_s"] == -1200
    second = f["second_attempt"]
    assert (second["arrival_source"], second["service_s"], second["attempt"]) == (
        "detected",
        180,
        2,
    )
    assert (second["outcome"], second["failure_code"]) == ("failed", "not_home")
    assert f["no_window"]["arrival_source"] == "completion"
    assert f["no_window"]["arrived_at"] == local(14, 35)
    assert {r["day"] for r in f.values()} == {DAY}
    assert f["on_time"]["address_key"] == "1 queen st"


async def test_eta_errors_score_the_window_in_force_at_each_horizon(
    db: psycopg.AsyncConnection, day_done: tuple[Built, RollupsConsumer]
) -> None:
    """The arrival at 09:20 scores the window published at 08:30 at 5, 15 and 30 minutes and the
    one in force before it at 60 minutes."""
    built, _ = day_done
    rows = await (
        await db.execute(
            "SELECT horizon_min, error_s, inside FROM stop_eta_errors WHERE stop_id = %s"
            " ORDER BY horizon_min",
            (built.stops["on_time"],),
        )
    ).fetchall()
    assert rows == [(5, 300, True), (15, 300, True), (30, 300, True), (60, 1200, False)]


async def test_the_route_fact_leaves_the_gps_jump_out(
    db: psycopg.AsyncConnection, day_done: tuple[Built, RollupsConsumer]
) -> None:
    """Nine 500 m steps are driven (the 20 km jump adds nothing), and the diesel van's CO₂
    follows from 0.1 l per km."""
    built, _ = day_done
    cursor = db.cursor(row_factory=psycopg.rows.dict_row)
    await cursor.execute("SELECT * FROM route_facts WHERE route_id = %s", (built.route_id,))
    fact = await cursor.fetchone()
    assert fact is not None
    step = haversine_m(START[0], START[1], START[0] + 0.0045, START[1])
    assert fact["driven_m"] == pytest.approx(9 * step, abs=1.0)
    assert (fact["jumps"], fact["fixes"]) == (1, 11)
    assert (fact["stops"], fact["delivered"], fact["failed"]) == (5, 4, 1)
    assert fact["energy_used"] == pytest.approx(9 * step / 1000 * 0.1, abs=0.001)
    assert fact["co2_kg"] == pytest.approx(fact["energy_used"] * 2.66, abs=0.001)
    assert fact["actual_s"] == (local(14, 40) - local(8)).total_seconds()


async def test_a_redelivered_batch_stores_nothing_twice(
    db: psycopg.AsyncConnection, day_done: tuple[Built, RollupsConsumer]
) -> None:
    """The batch handled twice leaves one fact per stop, one per route and one ETA window each."""
    built, _ = day_done
    counts = await (
        await db.execute(
            "SELECT (SELECT count(*) FROM stop_facts WHERE route_id = %s),"
            " (SELECT count(*) FROM route_facts WHERE route_id = %s),"
            " (SELECT count(*) FROM eta_publications WHERE stop_id = %s)",
            (built.route_id, built.route_id, built.stops["on_time"]),
        )
    ).fetchone()
    assert counts == (5, 1, 2)


def _auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def test_reports_group_by_the_organisations_day_and_by_reason(
    db: psycopg.AsyncConnection, http: httpx.AsyncClient, day_done: tuple[Built, RollupsConsumer]
) -> None:
    """The day is the 24th in Auckland (the 23rd in UTC): its report has the known rates, the
    failure reasons and the rating, and the UTC day has nothing."""
    built, _ = day_done
    key = await _key(db, built.org_id)
    answer = await http.get(
        "/v1/analytics/deliveries",
        params={"from": "2026-11-24", "to": "2026-11-24"},
        headers=_auth(key),
    )
    assert answer.status_code == 200, answer.text
    (row,) = answer.json()["rows"]
    assert row["key"] == "2026-11-24"
    assert (row["stops"], row["delivered"], row["failed"]) == (5, 4, 1)
    assert (row["first_attempts"], row["first_attempt_success_rate"]) == (4, 1.0)
    assert (row["with_window"], row["on_time"], row["late"]) == (4, 3, 1)
    assert (row["on_time_rate"], row["mean_lateness_s"]) == (0.75, 600)
    assert (row["ratings"], row["rating_mean"]) == (1, 4.0)
    assert {e["horizon_min"]: e["mae_s"] for e in row["eta"]} == {
        5: 300,
        15: 300,
        30: 300,
        60: 1200,
    }
    utc_day = await http.get(
        "/v1/analytics/deliveries",
        params={"from": "2026-11-23", "to": "2026-11-23"},
        headers=_auth(key),
    )
    assert utc_day.json()["rows"] == []
    reasons = await http.get(
        "/v1/analytics/deliveries",
        params={"from": "2026-11-24", "to": "2026-11-24", "by": "reason"},
        headers=_auth(key),
    )
    assert [(r["key"], r["stops"]) for r in reasons.json()["rows"]] == [("not_home", 1)]
    routes = await http.get(
        "/v1/analytics/routes", params={"from": "2026-11-24", "by": "driver"}, headers=_auth(key)
    )
    (route,) = routes.json()["rows"]
    assert (route["key"], route["routes"], route["planned_km"]) == (str(built.driver_id), 1, 4.0)
    assert route["route_efficiency"] == pytest.approx(4000 / (9 * 500.4), abs=0.01)


async def test_reports_export_csv_with_formulas_neutralised(
    db: psycopg.AsyncConnection, http: httpx.AsyncClient, day_done: tuple[Built, RollupsConsumer]
) -> None:
    """A driver named like a spreadsheet formula comes out as text in the CSV export."""
    built, _ = day_done
    await db.execute("UPDATE drivers SET name = '=HYPERLINK(1)' WHERE id = %s", (built.driver_id,))
    key = await _key(db, built.org_id)
    answer = await http.get(
        "/v1/analytics/deliveries",
        params={"from": "2026-11-24", "to": "2026-11-24", "by": "driver"},
        headers={**_auth(key), "accept": "text/csv"},
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["cache-control"] == "no-store"
    (row,) = list(csv.DictReader(io.StringIO(answer.text)))
    assert row["label"] == "'=HYPERLINK(1)"
    assert (row["stops"], row["on_time_rate"], row["eta_30min_mae_s"]) == ("5", "0.75", "300.0")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-11-24", "to": "2026-11-20"}, "to"),
        ({"from": "2025-01-01", "to": "2026-11-24"}, "to"),
        ({"from": "24.11.2026"}, "from"),
        ({"by": "weather"}, "by"),
        ({"format": "xlsx"}, "format"),
    ],
)
async def test_a_bad_report_request_names_its_parameter(
    http: httpx.AsyncClient, tenant: Tenant, params: dict[str, str], field: str
) -> None:
    """A backwards or too long range, a malformed day, an unknown grouping or format is a 400
    that names the parameter."""
    answer = await http.get(
        "/v1/analytics/deliveries", params=params, headers=_auth(tenant.api_key)
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == field


async def _key(db: psycopg.AsyncConnection, org_id: OrgId) -> str:
    from app.auth import issue_api_key

    return await issue_api_key(db, org_id, role="dispatcher", name="reports")
