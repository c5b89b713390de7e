"""The delivery-day store: tenancy in the schema, the day as the planner reads it, imports,
cancellation rules, dimensions and idempotency keys under concurrency."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest

from schemas.delivery import (
    Break,
    CarrierIn,
    DepotIn,
    DriverIn,
    OrderIn,
    Parcel,
    Place,
    ShiftIn,
    TimeWindow,
    VehicleIn,
)
from schemas.ids import OrderId, OrgId
from store import fleet, idempotency, orders
from store.delivery import (
    UNLIMITED_AMOUNT,
    Duplicate,
    Missing,
    WrongState,
    load_day,
    org_settings,
    set_dimensions,
)
from tests.conftest import make_tenant

DAY = date(2026, 12, 1)


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, 1, hour, minute, tzinfo=UTC)


def order(ref: str, **changes: object) -> OrderIn:
    fields: dict[str, object] = {
        "external_ref": ref,
        "address": "Alexanderplatz 1, Berlin",
        "lat": 52.52,
        "lon": 13.41,
        "day": DAY,
    }
    return OrderIn(**(fields | changes))  # type: ignore[arg-type]


async def new_org(db: psycopg.AsyncConnection) -> OrgId:
    return (await make_tenant(db, drivers=0)).org_id


async def test_load_day_aligns_amounts_and_resolves_places(db: psycopg.AsyncConnection) -> None:
    """load_day gives capacities and sizes in dimension order and shifts' places as coordinates."""
    org = await new_org(db)
    depot = await fleet.create(db, fleet.DEPOTS, org, DepotIn(name="Hub", lat=52.5, lon=13.3))
    carrier = await fleet.create(db, fleet.CARRIERS, org, CarrierIn(name="Own", kind="own"))
    van = await fleet.create(
        db,
        fleet.VEHICLES,
        org,
        VehicleIn(
            name="Van 1",
            capacity={"parcels": 80, "weight_kg": 900},
            skills=["cooling", "adr", "cooling"],
            cost_per_km=0.4,
            carrier_id=carrier.id,
        ),
    )
    driver = await fleet.create(db, fleet.DRIVERS, org, DriverIn(name="Ana", carrier_id=carrier.id))
    pause = Break(earliest_start=at(11), latest_start=at(13), duration_s=1800)
    shift = await fleet.create(
        db,
        fleet.SHIFTS,
        org,
        ShiftIn(
            driver_id=driver.id,
            vehicle_id=van.id,
            day=DAY,
            start_place=Place(depot_id=depot.id),
            end_place=Place(lat=52.6, lon=13.5),
            working_window=TimeWindow(start=at(8), end=at(17)),
            breaks=[pause],
            max_duration_s=28_800,
        ),
    )
    first = await orders.create_order(
        db,
        org,
        order(
            "A-1",
            size={"volume_l": 30, "weight_kg": 12},
            time_windows=[TimeWindow(start=at(9), end=at(11))],
            priority=2,
        ),
    )
    await orders.create_order(db, org, order("A-2", day=date(2026, 12, 2)))
    cancelled = await orders.create_order(db, org, order("A-3"))
    await orders.cancel_order(db, org, cancelled.id, "customer moved")

    day = await load_day(db, org, DAY)

    assert day.dimensions == ["weight_kg", "volume_l", "parcels"]
    assert [d.depot_id for d in day.depots] == [depot.id]
    [planned] = day.shifts
    assert planned.shift_id == shift.id
    assert (planned.start.depot_id, planned.start.lat, planned.start.lon) == (depot.id, 52.5, 13.3)
    assert (planned.end.depot_id, planned.end.lat, planned.end.lon) == (None, 52.6, 13.5)
    assert planned.capacity == [900, UNLIMITED_AMOUNT, 80]
    assert planned.skills == ["adr", "cooling"]
    assert planned.carrier_id == carrier.id
    assert planned.breaks == [pause]
    assert planned.cost_per_km == 0.4
    assert [o.external_ref for o in day.orders] == ["A-1"]
    assert day.orders[0].order_id == first.id
    assert day.orders[0].size == [12, 30, 0]
    assert day.orders[0].time_windows == [TimeWindow(start=at(9), end=at(11))]


async def test_a_shift_without_end_place_ends_where_it_starts(db: psycopg.AsyncConnection) -> None:
    """A shift with no end place is read by the planner as returning to its start."""
    org = await new_org(db)
    van = await fleet.create(db, fleet.VEHICLES, org, VehicleIn(name="Bike", type="cargo_bike"))
    driver = await fleet.create(db, fleet.DRIVERS, org, DriverIn(name="Ben"))
    await fleet.create(
        db,
        fleet.SHIFTS,
        org,
        ShiftIn(
            driver_id=driver.id,
            vehicle_id=van.id,
            day=DAY,
            start_place=Place(lat=52.4, lon=13.2),
            working_window=TimeWindow(start=at(8), end=at(12)),
        ),
    )
    [planned] = (await load_day(db, org, DAY)).shifts
    assert planned.end == planned.start
    assert planned.vehicle_type == "cargo_bike"
    assert planned.capacity == [UNLIMITED_AMOUNT] * 3


async def test_load_day_reads_inside_the_callers_transaction(
    db: psycopg.AsyncConnection,
) -> None:
    """load_day works inside a transaction that already ran queries, and sees its writes."""
    org = await new_org(db)
    async with db.transaction():
        await orders.create_order(db, org, order("T-1"))
        day = await load_day(db, org, DAY)
    assert [o.external_ref for o in day.orders] == ["T-1"]


async def test_references_to_another_organisation_are_missing(
    db: psycopg.AsyncConnection,
) -> None:
    """A vehicle of one organisation cannot name another organisation's carrier."""
    org, other = await new_org(db), await new_org(db)
    foreign = await fleet.create(db, fleet.CARRIERS, other, CarrierIn(name="P", kind="partner"))
    with pytest.raises(Missing) as caught:
        await fleet.create(db, fleet.VEHICLES, org, VehicleIn(name="Van", carrier_id=foreign.id))
    assert caught.value.field == "carrier_id"
    assert caught.value.reason == (
        f"expected the id of a carrier of this organisation, got {foreign.id}"
    )
    assert await fleet.get(db, fleet.CARRIERS, org, foreign.id) is None


async def test_an_external_ref_is_unique_per_organisation(db: psycopg.AsyncConnection) -> None:
    """The same order ref twice in one organisation is a Duplicate; in two organisations, fine."""
    org, other = await new_org(db), await new_org(db)
    await orders.create_order(db, org, order("R-1"))
    await orders.create_order(db, other, order("R-1"))
    with pytest.raises(Duplicate) as caught:
        await orders.create_order(db, org, order("R-1"))
    assert caught.value.field == "external_ref"


async def test_importing_twice_creates_each_order_once(db: psycopg.AsyncConnection) -> None:
    """A second import of the same rows reports every one as a duplicate of the first."""
    org = await new_org(db)
    rows = [
        (2, order("I-1", parcels=[Parcel(barcode="B1"), Parcel(barcode="B2")])),
        (3, order("I-2")),
    ]
    created, duplicates = await orders.import_orders(db, org, rows)
    assert [(r.line, r.external_ref) for r in created] == [(2, "I-1"), (3, "I-2")]
    assert duplicates == []
    again, repeated = await orders.import_orders(db, org, rows)
    assert again == []
    assert repeated == created
    stored = await orders.get_order(db, org, created[0].order_id)
    assert stored is not None
    assert [p.barcode for p in stored.parcels] == ["B1", "B2"]


async def test_cancel_is_idempotent_but_not_after_delivery(db: psycopg.AsyncConnection) -> None:
    """Cancelling twice keeps the first reason; a delivered order cannot be cancelled."""
    org = await new_org(db)
    first = await orders.create_order(db, org, order("C-1"))
    cancelled = await orders.cancel_order(db, org, first.id, "first")
    again = await orders.cancel_order(db, org, first.id, "second")
    assert cancelled is not None
    assert again is not None
    assert (again.status, again.cancel_reason) == ("cancelled", "first")
    assert again.cancelled_at == cancelled.cancelled_at
    delivered = await orders.create_order(db, org, order("C-2"))
    assert await orders.set_status(db, org, [delivered.id], "delivered") == 1
    with pytest.raises(WrongState) as caught:
        await orders.cancel_order(db, org, delivered.id, None)
    assert (
        caught.value.reason == "expected an order that is not yet delivered, got status delivered"
    )
    assert await orders.cancel_order(db, org, OrderId(first.id + 10_000), None) is None


async def test_a_dimension_in_use_cannot_be_dropped(db: psycopg.AsyncConnection) -> None:
    """Dropping a dimension an open order's size uses is refused; unused ones can go."""
    org = await new_org(db)
    await orders.create_order(db, org, order("D-1", size={"volume_l": 5}))
    with pytest.raises(WrongState) as caught:
        await set_dimensions(db, org, ["weight_kg", "parcels"])
    assert caught.value.field == "dimensions"
    assert caught.value.reason.startswith("volume_l is still used")
    assert await set_dimensions(db, org, ["volume_l", "pallets"]) == ["volume_l", "pallets"]
    assert (await org_settings(db, org)).dimensions == ["volume_l", "pallets"]


async def test_concurrent_claims_of_a_key_see_one_winner(database_url: str) -> None:
    """A second claim of a key waits for the first transaction and then reads its answer."""
    async with (
        await psycopg.AsyncConnection.connect(database_url, autocommit=True) as setup,
        await psycopg.AsyncConnection.connect(database_url, autocommit=True) as first,
        await psycopg.AsyncConnection.connect(database_url, autocommit=True) as second,
    ):
        org = await new_org(setup)
        async with first.transaction():
            assert await idempotency.claim(first, org, "k-1", b"hash") is None

            async def claim_second() -> idempotency.Recorded | None:
                async with second.transaction():
                    return await idempotency.claim(second, org, "k-1", b"hash")

            waiting = asyncio.create_task(claim_second())
            await asyncio.sleep(0.3)
            assert not waiting.done()  # blocked on the first transaction's row
            await idempotency.record(first, org, "k-1", 201, b'{"id":1}')
        assert await asyncio.wait_for(waiting, 10) == idempotency.Recorded(
            b"hash", 201, b'{"id":1}'
        )


async def test_an_expired_key_can_be_claimed_again(db: psycopg.AsyncConnection) -> None:
    """A key older than 24 hours is deleted when claimed, and the claim succeeds."""
    org = await new_org(db)
    async with db.transaction():
        assert await idempotency.claim(db, org, "old", b"a") is None
        await idempotency.record(db, org, "old", 201, b"{}")
    await db.execute(
        "UPDATE idempotency_keys SET created_at = created_at - %s WHERE org_id = %s",
        (idempotency.KEY_TTL + timedelta(minutes=1), org),
    )
    async with db.transaction():
        assert await idempotency.claim(db, org, "old", b"b") is None
