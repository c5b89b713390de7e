"""The learner on rolled-up days whose answers are known, and the planner using what it learned:
learned speeds and service times when a model exists, the configured speed when none does."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import msgspec
import psycopg
import pytest
from redis.asyncio import Redis

from realtime.streams import StreamNames
from schemas.eta import EtaConfig
from schemas.ids import DriverId, OrgId, RouteId, StopId
from schemas.planning import Location
from solver.geo import haversine_m
from solver.learning import LearnedSpeeds, LearningRules
from solver.matrix import ConstantSpeed, GreatCircleProvider, MatrixProvider
from store import learning as learning_store
from store import routes as route_store
from store.delivery import load_day
from store.positions import write_positions
from tests.conftest import Tenant
from tests.days import DEPOT, Day, key, make_day, plan_and_dispatch
from tests.facts import one
from workers.eta import EtaConsumer
from workers.learner import learn, planning_model, tables_of
from workers.rollups import Rules, compute_facts

START = (52.40, 13.05)
SPEED_MPS = 9.0
LEG_S = 300
SERVICE_S = 120
DAYS = 3
STOPS = 6
METRES_PER_DEGREE = haversine_m(52.0, 13.0, 53.0, 13.0)


async def driven_day(
    db: psycopg.AsyncConnection, org_id: OrgId, driver: DriverId, day: date, offset_s: int = 0
) -> None:
    """A route north in a straight line at 9 m/s: five minutes of driving (a fix every 10 s)
    to each of six stops, two minutes at each, closed and rolled up. With ``offset_s``, the
    phone sends only while driving, its fixes ``offset_s`` after each ten seconds of the leg
    (none at the stops)."""
    vehicle = await one(
        db, "INSERT INTO vehicles (org_id, name) VALUES (%s, 'Van') RETURNING id", (org_id,)
    )
    t0 = datetime(day.year, day.month, day.day, 7, tzinfo=UTC)
    shift = await one(
        db,
        "INSERT INTO shifts (org_id, driver_id, vehicle_id, day, start_lat, start_lon,"
        " work_start, work_end) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (org_id, driver, vehicle, day, *START, t0, t0 + timedelta(hours=10)),
    )
    plan = await one(
        db, "INSERT INTO plans (org_id, day, status) VALUES (%s, %s, 'done') RETURNING id",
        (org_id, day),
    )  # fmt: skip
    route = RouteId(await one(
        db,
        "INSERT INTO routes (org_id, plan_id, shift_id, driver_id, vehicle_id, day,"
        " planned_start, planned_end, started_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " RETURNING id",
        (org_id, plan, shift, driver, vehicle, day, t0, t0 + timedelta(hours=2), t0),
    ))  # fmt: skip
    fixes: list[tuple[Any, ...]] = []
    lat, t = START[0], t0
    stops: list[tuple[StopId, Any, datetime, datetime]] = []
    for n in range(STOPS):
        for _ in range(LEG_S // 10):
            ahead = SPEED_MPS * offset_s / METRES_PER_DEGREE
            fixes.append(_fix(driver, t + timedelta(seconds=offset_s), lat + ahead, START[1]))
            lat += SPEED_MPS * 10 / METRES_PER_DEGREE
            t += timedelta(seconds=10)
        arrived = t
        for step in range(SERVICE_S // 10 if not offset_s else 0):
            fixes.append(_fix(driver, t + timedelta(seconds=10 * step), lat, START[1]))
        t += timedelta(seconds=SERVICE_S)
        order = await one(
            db,
            "INSERT INTO orders (org_id, external_ref, address, lat, lon, day, service_s,"
            " status, email) VALUES (%s, %s, %s, %s, %s, %s, 0, 'dispatched', %s) RETURNING id",
            (
                org_id,
                f"{day}-{driver}-{n}",
                f"{n} North Rd",
                lat,
                START[1],
                day,
                f"c{n}@example.com",
            ),
        )
        stop = await one(
            db,
            "INSERT INTO stops (org_id, route_id, order_id, seq, planned_arrival,"
            " planned_departure) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
            (org_id, route, order, n, arrived, t),
        )
        stops.append((StopId(stop), order, arrived, t))
    fixes.append(_fix(driver, t, lat, START[1]))
    await write_positions(db, fixes)
    for stop_id, order, arrived, done in stops:
        assert await route_store.arrive(db, stop_id, arrived)
        ref = route_store.StopRef(stop_id, route, order, "arrived")
        assert await route_store.complete(db, org_id, ref, delivered=True, reason=None, at=done)
    await compute_facts(db, [s[0] for s in stops], [route], Rules())


def _fix(driver: DriverId, time: datetime, lat: float, lon: float) -> tuple[Any, ...]:
    return (driver, time, lat, lon, None, None, 5.0, None, None, None, "test", time)


@pytest.fixture
async def learned(db: psycopg.AsyncConnection, tenant: Tenant) -> learning_store.ModelRow:
    """Three driven days of the tenant, learned from."""
    last = date(2026, 11, 20)
    for n in range(DAYS):
        await driven_day(db, tenant.org_id, tenant.drivers[0].id, last - timedelta(days=n))
    summary = await learn(db, tenant.org_id, days=28, today=last)
    assert summary.routes == DAYS
    model = await learning_store.latest_model(db, tenant.org_id)
    assert model is not None
    assert model.id == summary.model_id
    return model


async def test_the_learner_finds_the_speed_the_circuity_and_the_service_time(
    learned: learning_store.ModelRow,
) -> None:
    """Drives at 9 m/s in straight lines with two minutes at each stop learn a city speed of
    9 m/s, an observed circuity of 1 and a service time of 120 s, for every order size."""
    speeds = learned.speeds
    assert speeds["city_mps"] == pytest.approx(SPEED_MPS, rel=0.01)
    assert speeds["observed_circuity"] == pytest.approx(1.0, abs=0.01)
    assert learned.service["overall_s"] == SERVICE_S
    assert learned.service["by_size"] == {"1": SERVICE_S}


async def test_legs_count_the_way_from_a_stop_to_the_first_fix_and_from_the_last(
    db: psycopg.AsyncConnection, tenant: Tenant
) -> None:
    """A phone that sends only while driving, its first fix 5 s after leaving a stop and its
    last 5 s before the next (90 of each leg's 2,700 m between fixes and stops), still gives an
    observed circuity of 1: counted from the fixes alone, 0.97, and every learned leg would be
    planned 3 % short."""
    last = date(2026, 11, 20)
    for n in range(DAYS):
        day = last - timedelta(days=n)
        await driven_day(db, tenant.org_id, tenant.drivers[0].id, day, offset_s=5)
    learned = await learn(db, tenant.org_id, days=28, today=last)
    assert learned.observed_circuity == pytest.approx(1.0, abs=0.005)
    assert learned.city_speed_mps == pytest.approx(SPEED_MPS, rel=0.01)


async def test_routes_driven_alike_give_the_eta_a_narrow_pace_prior(
    db: psycopg.AsyncConnection, tenant: Tenant, http: httpx.AsyncClient
) -> None:
    """Two drivers' four days driven at the same speed: each of the last three days strays
    nothing from what the other days taught, so the model's spread is 0 (the ETA's narrowest
    prior), where three routes said nothing; the learned-model report shows it."""
    last = date(2026, 11, 20)
    for n in range(4):
        for driver in tenant.drivers[:2]:
            await driven_day(db, tenant.org_id, driver.id, last - timedelta(days=n))
    await learn(db, tenant.org_id, days=28, today=last)
    model = await learning_store.latest_model(db, tenant.org_id)
    assert model is not None
    speeds, _service = tables_of(model)
    assert speeds is not None
    assert speeds.route_pace_sd == pytest.approx(0.0, abs=0.01)
    report = await http.get("/v1/analytics/learned", headers=key(tenant))
    assert report.status_code == 200, report.text
    assert report.json()["route_pace_sd"] == pytest.approx(0.0, abs=0.01)


async def test_a_routes_track_is_read_once_and_again_only_when_what_it_was_cut_by_changed(
    db: psycopg.AsyncConnection, tenant: Tenant, learned: learning_store.ModelRow
) -> None:
    """Learning again reads no positions: with the driver's positions gone, the kept passes
    still give 9 m/s. A route whose fact was recomputed is read again; new rules (H3
    resolution 7) read every route again, and find nothing where the positions are gone."""
    last = date(2026, 11, 20)
    again = await learn(db, tenant.org_id, days=28, today=last)
    assert (again.routes, again.routes_read) == (DAYS, 0)
    await db.execute("DELETE FROM positions WHERE driver_id = %s", (tenant.drivers[0].id,))
    kept = await learn(db, tenant.org_id, days=28, today=last)
    assert (kept.routes_read, kept.cells, kept.speed_samples) == (
        0,
        again.cells,
        again.speed_samples,
    )
    assert kept.city_speed_mps == pytest.approx(SPEED_MPS, rel=0.01)
    assert kept.observed_circuity == pytest.approx(1.0, abs=0.01)

    await db.execute(
        "UPDATE route_facts SET computed_at = now() WHERE route_id = (SELECT min(route_id)"
        " FROM route_facts WHERE org_id = %s)",
        (tenant.org_id,),
    )
    recomputed = await learn(db, tenant.org_id, days=28, today=last)
    assert recomputed.routes_read == 1
    # Read again with its positions gone, that route has no passes left: two routes' remain.
    assert 0 < recomputed.speed_samples < again.speed_samples
    assert recomputed.city_speed_mps == pytest.approx(SPEED_MPS, rel=0.01)

    coarser = LearningRules(res=7)
    other = await learn(db, tenant.org_id, days=28, today=last, rules=coarser)
    assert (other.routes_read, other.city_speed_mps) == (DAYS, None)


async def test_a_route_completed_lately_is_read_again_until_it_settles(
    db: psycopg.AsyncConnection, tenant: Tenant
) -> None:
    """Routes completed within the settling time are read on every run and kept from none
    (a phone may still send positions it could not send on the road); once settled, kept."""
    last = date(2026, 11, 20)
    for n in range(DAYS):
        await driven_day(db, tenant.org_id, tenant.drivers[0].id, last - timedelta(days=n))
    recent = timedelta(days=36_500)  # every route completed within it
    for _ in range(2):
        run = await learn(db, tenant.org_id, days=28, today=last, settle=recent)
        assert run.routes_read == DAYS
        assert run.city_speed_mps == pytest.approx(SPEED_MPS, rel=0.01)
    settled = await learn(db, tenant.org_id, days=28, today=last)
    assert settled.routes_read == DAYS
    assert (await learn(db, tenant.org_id, days=28, today=last)).routes_read == 0


async def test_the_planner_uses_learned_speeds_and_service_times_when_they_exist(
    db: psycopg.AsyncConnection, tenant: Tenant, learned: learning_store.ModelRow
) -> None:
    """With a model, a 1 km leg takes what the fleet drove it in (1000 / 9 s, the configured
    circuity cancelled by the observed one) and orders without a service time of their own get
    the learned one; without a model, the configured 8 m/s and the orders' own."""
    configured = GreatCircleProvider(speed=ConstantSpeed(8.0), circuity=1.3)
    await db.execute(
        "INSERT INTO orders (org_id, external_ref, address, lat, lon, day, service_s,"
        " service_s_given) VALUES (%s, 'given', 'x', 52.5, 13.4, '2026-11-30', 45, true),"
        " (%s, 'default', 'y', 52.5, 13.4, '2026-11-30', 45, false)",
        (tenant.org_id, tenant.org_id),
    )
    day = await load_day(db, tenant.org_id, date(2026, 11, 30))
    a = Location(lat=52.5, lon=13.4)
    b = Location(lat=52.5 + 1000 / METRES_PER_DEGREE, lon=13.4)
    chosen = planning_model(day, configured, learned)
    assert isinstance(chosen.provider, GreatCircleProvider)
    assert isinstance(chosen.provider.speed, LearnedSpeeds)
    (leg,) = chosen.provider.durations([(a, b)], depart_epoch_s=1_764_000_000)
    assert leg == pytest.approx(1000 / SPEED_MPS, abs=2)
    assert {o.external_ref: o.service_s for o in chosen.day.orders} == {
        "given": 45,
        "default": SERVICE_S,
    }
    assert chosen.model_id == learned.id
    assert chosen.note.startswith(f"learned model {learned.id} ")
    plain = planning_model(day, configured, None)
    assert isinstance(plain.provider, GreatCircleProvider)
    (leg,) = plain.provider.durations([(a, b)], depart_epoch_s=1_764_000_000)
    assert leg == round(round(1000 * 1.3) / 8.0)
    assert {o.external_ref: o.service_s for o in plain.day.orders} == {"given": 45, "default": 45}
    assert (plain.model_id, plain.note.startswith("configured: ")) == (None, True)


async def test_a_plan_names_the_learned_model_it_used(
    http: httpx.AsyncClient,
    tenant: Tenant,
    planner: None,
    learned: learning_store.ModelRow,
) -> None:
    """A plan computed after learning says which model it travelled by, and so does the
    learned-model report. Dispatched, an order that named no service time takes the learned
    one its stop was planned with (on the order and the driver's route); one that named its
    own keeps it."""
    day = await make_day(
        http, tenant, date(2026, 12, 1), shift_window={"start": "2026-12-01T07:00:00Z",
                                                       "end": "2026-12-01T19:00:00Z"}
    )  # fmt: skip
    unnamed = await http.post(
        "/v1/orders",
        json={"external_ref": "unnamed", "address": "x", "lat": DEPOT[0], "lon": DEPOT[1] + 0.01,
              "day": "2026-12-01", "size": {"parcels": 1}},
        headers=key(tenant),
    )  # fmt: skip
    assert unnamed.status_code == 201, unnamed.text
    unnamed_id = unnamed.json()["id"]
    assert unnamed.json()["service_s"] != SERVICE_S  # the organisation's default
    orders = day.orders | {"unnamed": unnamed_id}
    plan = await plan_and_dispatch(http, tenant, Day(day.day, day.shift_ids, orders))
    assert plan["outcome"]["model_id"] == learned.id, plan["outcome"]
    assert plan["outcome"]["model"].startswith(f"learned model {learned.id} ")
    services = {
        ref: (await http.get(f"/v1/orders/{order_id}", headers=key(tenant))).json()["service_s"]
        for ref, order_id in orders.items()
    }
    assert services == dict.fromkeys(day.orders, 300) | {"unnamed": SERVICE_S}
    routes = (await http.get("/v1/routes?day=2026-12-01", headers=key(tenant))).json()["routes"]
    stops = {s["order_id"]: s["service_s"] for r in routes for s in r["stops"]}
    assert stops[unnamed_id] == SERVICE_S
    report = await http.get("/v1/analytics/learned", headers=key(tenant))
    assert report.status_code == 200, report.text
    body = report.json()
    assert (body["id"], body["routes"]) == (learned.id, DAYS)
    assert body["city_speed_kmh"] == pytest.approx(SPEED_MPS * 3.6, abs=0.5)


async def test_nothing_learned_is_a_404(http: httpx.AsyncClient, tenant: Tenant) -> None:
    """An organisation that has learned nothing yet gets 404 from the learned-model report."""
    report = await http.get("/v1/analytics/learned", headers=key(tenant))
    assert report.status_code == 404, report.text


def test_the_model_row_round_trips() -> None:
    """What the learner stores reads back as the tables it learned (int hour keys included)."""
    from solver.learning import SpeedTable

    table = SpeedTable(res=8, city_mps=8.0, by_hour={3: 7.0})
    row = learning_store.ModelRow(
        id=1, org_id=OrgId(1), learned_at=datetime.now(UTC), day_from=date(2026, 1, 1),
        day_to=date(2026, 1, 2), routes=1, service=None,
        speeds=msgspec.json.decode(msgspec.json.encode(table)),
    )  # fmt: skip
    assert tables_of(row) == (table, None)


async def test_the_eta_worker_predicts_with_the_learned_speeds_when_learning_is_on(
    tenant: Tenant, learned: learning_store.ModelRow, database_url: str, redis: Redis
) -> None:
    """With learning on, the ETA worker times a 1 km leg of the organisation's drivers as the
    fleet drove it, and takes its pace prior from how far the model's routes strayed from it
    (three routes cannot say: the configured prior); with learning off, the configured speed
    and prior."""
    configured = GreatCircleProvider(speed=ConstantSpeed(8.0), circuity=1.3)
    a = Location(lat=52.5, lon=13.4)
    b = Location(lat=52.5 + 1000 / METRES_PER_DEGREE, lon=13.4)

    async def model_of(learning: bool) -> tuple[MatrixProvider, EtaConfig]:
        """The organisation's travel model and configuration, as a fresh ETA worker reads them."""
        consumer = EtaConsumer(
            names=StreamNames(prefix="t-eta"),
            database_url=database_url,
            provider=configured,
            redis=redis,
            learning=learning,
        )
        try:
            return await consumer._model_of(tenant.org_id)
        finally:
            await consumer.close()

    for learning, expected in ((True, 1000 / SPEED_MPS), (False, round(1300 / 8.0))):
        provider, config = await model_of(learning)
        assert isinstance(provider, GreatCircleProvider), learning
        (leg,) = provider.durations([(a, b)], depart_epoch_s=1_764_000_000)
        assert leg == pytest.approx(expected, abs=2), learning
        assert config == EtaConfig()
    speeds, _service = tables_of(learned)
    assert speeds is not None
    assert speeds.route_pace_sd is None
    spread = msgspec.structs.replace(speeds, route_pace_sd=0.15)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as db:
        await learning_store.store_model(
            db, tenant.org_id, learned.day_from, learned.day_to, 12,
            msgspec.to_builtins(spread), learned.service,
        )  # fmt: skip
    _provider, config = await model_of(True)
    assert config.pace_prior_sd == pytest.approx(0.15)
    _provider, config = await model_of(False)
    assert config.pace_prior_sd == pytest.approx(0.45)
