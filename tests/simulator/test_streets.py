"""The simulator's streets: a map built from lines, routes along it, drivers and customers on it."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

from simulator.driving import (
    Drive,
    DriverModel,
    DriverProfile,
    Point,
    Stop,
    cumulative_m,
    distance_m,
)
from simulator.fleet import BERLIN, DaySpec, day_orders
from simulator.streetbuild import Box, build, is_street_line
from simulator.streets import Flat, StreetMap, berlin
from tests.simulator.test_driving import T0

FLAT = Flat(52.5, 13.4)
BOX = Box(52.45, 13.3, 52.55, 13.5)
STREETS_AT = (0.0, 500.0, 1000.0)


def place(x: float, y: float) -> Point:
    """The place ``x`` metres east and ``y`` north of the grid's corner."""
    return Point(*FLAT.latlon(x, y))


def grid_lines() -> list[list[tuple[float, float]]]:
    """Three streets east–west and three north–south, 500 m apart, each one line of two ends:
    where they cross, no line has a point."""
    lines = []
    for at in STREETS_AT:
        lines.append([FLAT.latlon(0.0, at), FLAT.latlon(1000.0, at)])
        lines.append([FLAT.latlon(at, 0.0), FLAT.latlon(at, 1000.0)])
    return lines


@pytest.fixture(scope="module")
def grid() -> StreetMap:
    return StreetMap(build(grid_lines(), BOX, min_turns=0, turns_per_km=0.0))


def on_a_street(p: Point, tolerance_m: float = 1.0) -> bool:
    x, y = FLAT.xy(p.lat, p.lon)
    inside = -tolerance_m <= x <= 1000 + tolerance_m and -tolerance_m <= y <= 1000 + tolerance_m
    near = min(abs(x - s) for s in STREETS_AT) <= tolerance_m
    near = near or min(abs(y - s) for s in STREETS_AT) <= tolerance_m
    return inside and near


def length_m(path: Sequence[Point]) -> float:
    return cumulative_m(path)[-1]


def test_lines_that_cross_become_streets_that_meet(grid: StreetMap) -> None:
    """Across the grid, corner to corner, is 2 km along the streets, through the crossings,
    though no line had a point where it crossed another."""
    path = grid.route(place(0, 0), place(1000, 1000))
    assert length_m(path) == pytest.approx(2000.0, abs=15.0)
    assert all(on_a_street(p) for p in path)
    # From the middle of the west street to the middle of the east one: straight through.
    across = grid.route(place(0, 500), place(1000, 500))
    assert length_m(across) == pytest.approx(1000.0, abs=15.0)
    assert all(abs(FLAT.xy(p.lat, p.lon)[1] - 500.0) < 1.0 for p in across)


def test_a_place_off_the_streets_joins_them_at_the_nearest_corner(grid: StreetMap) -> None:
    """Forty metres off the south street, the way starts at the place, steps onto the street
    and follows it; a place on the same street is reached along it."""
    start, end = place(260, -40), place(740, 0)
    path = grid.route(start, end)
    assert path[0] == start
    assert path[-1] == end
    assert distance_m(path[0], path[1]) == pytest.approx(40.0, abs=8.0)
    assert all(on_a_street(p) for p in path[1:])
    assert length_m(path) == pytest.approx(40.0 + 480.0, abs=15.0)
    snapped = grid.snap(start)
    assert on_a_street(snapped)
    assert distance_m(snapped, start) == pytest.approx(40.0, abs=8.0)


def test_the_map_is_the_same_each_build_and_says_what_it_holds() -> None:
    first = build(grid_lines(), BOX, min_turns=0, turns_per_km=0.0, about={"name": "grid"})
    assert first == build(grid_lines(), BOX, min_turns=0, turns_per_km=0.0, about={"name": "grid"})
    # Four T-junctions and the centre cross: the grid's corners are bends, not junctions; the
    # ways are the four spokes and the four sides of the ring, each round a corner.
    assert first["about"] == {"name": "grid", "lines_kept": 6, "junctions": 5, "ways": 8}


def test_lines_that_turn_like_a_bus_are_kept_and_smooth_ones_like_a_railway_are_not() -> None:
    """A line around four blocks (right angles) is a street; a long gentle curve is a track."""
    blocks = [(0.0, 0.0), (300.0, 0.0), (300.0, 300.0), (600.0, 300.0), (600.0, 600.0)]
    assert is_street_line(blocks, min_turns=2, turns_per_km=0.4)
    curve = [(3000.0 * math.sin(a / 100), 3000.0 * (1 - math.cos(a / 100))) for a in range(150)]
    assert not is_street_line(curve, min_turns=2, turns_per_km=0.4)
    railway = [FLAT.latlon(x, y) for x, y in curve]
    street = [FLAT.latlon(x, y) for x, y in blocks]
    kept = build([railway, street], BOX)
    assert kept["about"]["lines_kept"] == 1


def test_a_driver_on_the_streets_drives_them_at_road_speed(grid: StreetMap) -> None:
    """Each leg follows the streets from place to place: every position on the way is on a
    street, the course runs along it, and the leg takes its street length at road speed."""
    depot = place(0, 0)
    far = Stop(1, place(1000, 1000), service_s=120)
    model = DriverModel(7, DriverProfile(), streets=grid)
    itinerary = model.itinerary(depot, T0, T0, [far], depot)
    leg = next(p for p in itinerary.phases if isinstance(p, Drive))
    assert leg.path[0] == depot
    assert leg.path[-1] == far.point
    road = leg.segments[0].road_speed_mps
    assert (leg.end_s - leg.start_s) * road == pytest.approx(leg.path_m[-1], rel=1e-6)
    assert leg.path_m[-1] == pytest.approx(2000.0, abs=15.0)
    t, courses = leg.start_s, []
    while t <= leg.end_s:
        motion = leg.at(t)
        assert on_a_street(motion.point), motion
        assert motion.heading_deg is not None
        courses.append(min(abs(motion.heading_deg - c) for c in (0, 90, 180, 270, 360)))
        t += 10.0
    # Along the streets; where lines were merged at a crossing, a few metres askew.
    assert sum(c < 1.0 for c in courses) >= 0.8 * len(courses)
    assert max(courses) < 45.0
    assert distance_m(leg.at(leg.end_s).point, far.point) < 0.01


def test_a_jam_on_the_streets_still_costs_exactly_its_time(grid: StreetMap) -> None:
    depot, far = place(0, 0), Stop(1, place(1000, 1000), service_s=120)
    calm = DriverModel(7, DriverProfile(), streets=grid).itinerary(depot, T0, T0, [far], depot)
    jam = DriverProfile(jam_s=600.0, jam_at=0.0, jam_fraction=0.5)
    jammed = DriverModel(7, jam, streets=grid).itinerary(depot, T0, T0, [far], depot)
    assert jammed.end_s - calm.end_s == pytest.approx(600.0, abs=1e-6)
    legs = [p for p in jammed.phases if isinstance(p, Drive)]
    assert all(on_a_street(legs[0].at(t).point) for t in range(int(T0), int(legs[0].end_s), 30))


def test_a_driver_turned_round_on_the_way_goes_on_from_where_it_is(grid: StreetMap) -> None:
    depot = place(0, 0)
    first, other = Stop(1, place(1000, 1000), 60), Stop(2, place(0, 1000), 60)
    model = DriverModel(3, DriverProfile(), streets=grid)
    itinerary = model.itinerary(depot, T0, T0, [first], depot)
    leg = next(p for p in itinerary.phases if isinstance(p, Drive))
    now = (leg.start_s + leg.end_s) / 2
    here = itinerary.at(now).point
    after = model.replan(itinerary, now, [other], depot)
    legs = [p for p in after.phases if isinstance(p, Drive)]
    assert legs[1].origin == here
    assert legs[1].path[0] == here
    assert all(on_a_street(p) for p in legs[1].path)


def test_customers_live_on_the_streets_of_the_day() -> None:
    """With the city's streets, each order lies at a street corner; the rest of the day is
    the same draw as without them."""
    from datetime import UTC, datetime

    start = datetime(2026, 12, 7, 8, tzinfo=UTC)
    streets = berlin()
    plain = day_orders(DaySpec(drivers=2, orders=30, start=start, seed=5), "r", ("parcels",))
    on = day_orders(
        DaySpec(drivers=2, orders=30, start=start, seed=5, streets=streets), "r", ("parcels",)
    )
    for before, after in zip(plain.bodies, on.bodies, strict=True):
        spot = Point(after.lat, after.lon)
        assert distance_m(streets.snap(spot), spot) < 1.0
        assert distance_m(spot, Point(before.lat, before.lon)) < 1500.0
        assert (after.external_ref, after.time_windows) == (
            before.external_ref,
            before.time_windows,
        )
    assert on.fail_reasons == plain.fail_reasons


def test_the_packaged_map_covers_the_demo_city() -> None:
    """Berlin's map names its source and licence; the depot and every district have a street
    with a bus line near them, and a way across town is longer than the straight line but not
    absurdly so."""
    streets = berlin()
    assert "VBB" in streets.about["source"]
    assert "CC BY" in streets.about["licence"]
    for spot in (BERLIN.depot, *(d.centre for d in BERLIN.districts)):
        assert distance_m(streets.snap(spot), spot) < 500.0, spot
    wedding = next(d.centre for d in BERLIN.districts if d.name == "Wedding")
    path = streets.route(BERLIN.depot, wedding)
    straight = distance_m(BERLIN.depot, wedding)
    assert straight < length_m(path) < 1.8 * straight
