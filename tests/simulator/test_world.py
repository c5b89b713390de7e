"""The simulated city's hidden truth: the same everywhere it is asked, and what the drivers of a
world really do against the same drivers without it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from simulator.driving import Drive, DriverModel, DriverProfile, Hold, Point, Stop, along
from simulator.world import RUSH, World

DEPOT = Point(52.4755, 13.3650)
EAST = Stop(1, Point(52.4810, 13.4350), service_s=300)
RUSH_HOUR = datetime(2026, 11, 23, 8, 15, tzinfo=UTC).timestamp()
NIGHT = datetime(2026, 11, 23, 22, 15, tzinfo=UTC).timestamp()


def test_a_world_is_the_same_in_every_process_and_differs_by_seed() -> None:
    """Zone and service factors depend only on the seed and the place; another seed is another
    city; the hour factor is the rush table's."""
    a, b = World(seed=7), World(seed=7)
    assert a.zone_factor(52.52, 13.40) == b.zone_factor(52.52, 13.40)
    assert a.service_factor(52.52, 13.40) == b.service_factor(52.52, 13.40)
    others = {World(seed=s).zone_factor(52.52, 13.40) for s in range(8)}
    assert len(others) == 8
    assert a.hour_factor(RUSH_HOUR) == RUSH[8]
    assert a.hour_factor(NIGHT) == 1.0
    assert World(city_factor=0.45).speed_factor(52.52, 13.40, NIGHT) == pytest.approx(
        0.45 * World().zone_factor(52.52, 13.40)
    )
    with pytest.raises(ValueError, match="city_factor"):
        World(city_factor=0.0)


def test_drivers_of_a_world_drive_and_serve_by_its_factors() -> None:
    """The same seeded driver takes 1 / speed factor as long on the leg (at its midpoint, at
    rush hour) and the customer's service factor as long at the stop."""
    world = World(seed=3, city_factor=0.8)
    plain = DriverModel(1, DriverProfile()).itinerary(DEPOT, RUSH_HOUR, RUSH_HOUR, [EAST], DEPOT)
    lived = DriverModel(1, DriverProfile(), world=world).itinerary(
        DEPOT, RUSH_HOUR, RUSH_HOUR, [EAST], DEPOT
    )
    leg = next(p for p in plain.phases if isinstance(p, Drive))
    slow = next(p for p in lived.phases if isinstance(p, Drive))
    middle = along(DEPOT, EAST.point, 0.5)
    factor = world.speed_factor(middle.lat, middle.lon, RUSH_HOUR)
    assert (slow.end_s - slow.start_s) == pytest.approx((leg.end_s - leg.start_s) / factor)
    served = next(p for p in plain.phases if isinstance(p, Hold) and p.stop_id == 1)
    lived_served = next(p for p in lived.phases if isinstance(p, Hold) and p.stop_id == 1)
    ratio = (lived_served.end_s - lived_served.start_s) / (served.end_s - served.start_s)
    assert ratio == pytest.approx(world.service_factor(EAST.point.lat, EAST.point.lon))
