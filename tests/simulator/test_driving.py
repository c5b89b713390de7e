"""The simulator's pure motion model: legs, dwell, jams, re-plans, GPS noise and clocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from simulator.driving import (
    CIRCUITY,
    DeviceClock,
    Drive,
    DriverModel,
    DriverProfile,
    Hold,
    Itinerary,
    Point,
    SimClock,
    Stop,
    along,
    bearing_deg,
    distance_m,
    draw_profiles,
    round_share,
    service_start,
)

DEPOT = Point(52.4755, 13.3650)
EAST = Stop(1, Point(52.4810, 13.4350), service_s=300)
NORTH = Stop(2, Point(52.5390, 13.4240), service_s=200)
WEST = Stop(3, Point(52.5160, 13.3040), service_s=100)
T0 = 1_800_000_000.0


def day(model: DriverModel, stops: list[Stop], *, depart_s: float = T0) -> Itinerary:
    """``model``'s itinerary from the depot at T0 through ``stops`` and back."""
    return model.itinerary(DEPOT, T0, depart_s, stops, DEPOT)


def drives(itinerary: Itinerary) -> list[Drive]:
    return [p for p in itinerary.phases if isinstance(p, Drive)]


def test_distances_courses_and_midpoints_on_the_sphere() -> None:
    """A degree of longitude on the equator is 111,195 m, due east, halved at 0.5°."""
    a, b = Point(0.0, 0.0), Point(0.0, 1.0)
    assert round(distance_m(a, b)) == 111_195
    assert bearing_deg(a, b) == pytest.approx(90.0)
    assert bearing_deg(b, a) == pytest.approx(270.0)
    middle = along(a, b, 0.5)
    assert middle.lat == pytest.approx(0.0, abs=1e-12)
    assert middle.lon == pytest.approx(0.5)


def test_a_leg_runs_from_origin_to_destination_at_road_speed_over_circuity() -> None:
    """Halfway in time is halfway in distance; the fix's speed is the road speed, 1.3× progress."""
    leg = drives(day(DriverModel(1, DriverProfile()), [EAST]))[0]
    length = distance_m(DEPOT, EAST.point)
    assert leg.at(leg.start_s).point == DEPOT
    assert distance_m(leg.at(leg.end_s).point, EAST.point) == pytest.approx(0.0, abs=1e-6)
    middle = leg.at((leg.start_s + leg.end_s) / 2)
    assert distance_m(DEPOT, middle.point) == pytest.approx(length / 2, rel=1e-9)
    assert length / (leg.end_s - leg.start_s) == pytest.approx(middle.speed_mps / CIRCUITY)
    assert middle.heading_deg == pytest.approx(bearing_deg(middle.point, EAST.point))


def test_the_driver_waits_for_departure_and_for_the_window_then_dwells() -> None:
    """Commands come in order; service starts when the window opens; the driver stands still."""
    window = (T0 + 3 * 3600, T0 + 5 * 3600)
    stop = Stop(1, EAST.point, service_s=300, windows=(window,))
    it = day(DriverModel(2, DriverProfile()), [stop, NORTH], depart_s=T0 + 600)
    kinds = [(a.kind, a.stop_id) for a in it.actions]
    assert kinds == [("start", None), ("arrive", 1), ("deliver", 1), ("arrive", 2), ("deliver", 2)]
    assert it.actions[0].at_s == T0 + 600
    assert it.at(T0 + 300).point == DEPOT
    dwell = it.actions[2].at_s - window[0]
    assert 150 <= dwell <= 600
    waiting = [p for p in it.phases if isinstance(p, Hold) and p.stop_id == 1]
    assert [(h.start_s, h.end_s) for h in waiting] == [(it.actions[1].at_s, it.actions[2].at_s)]
    for t in (it.actions[1].at_s, window[0], it.actions[2].at_s - 1):
        assert it.at(t).point == EAST.point
        assert it.at(t).speed_mps == 0.0
    assert it.at(it.end_s + 3600).point == DEPOT


def test_a_customer_who_is_out_makes_the_stop_fail_with_the_reason() -> None:
    """A stop with a failure reason ends with a fail command carrying it."""
    out = Stop(1, EAST.point, service_s=60, fail_reason="nobody home")
    it = day(DriverModel(3, DriverProfile()), [out])
    assert [(a.kind, a.reason) for a in it.actions][-1] == ("fail", "nobody home")


def test_a_jam_delays_the_rest_of_the_day_by_exactly_its_length() -> None:
    """The jammed driver ends jam_s later than the same driver without the jam, crawling."""
    free = day(DriverModel(4, DriverProfile()), [EAST, NORTH, WEST])
    jammed_model = DriverModel(4, DriverProfile(jam_s=1200.0, jam_at=0.5, jam_fraction=0.4))
    jammed = day(jammed_model, [EAST, NORTH, WEST])
    assert jammed.end_s - free.end_s == pytest.approx(1200.0)
    leg = drives(jammed)[1]
    assert [round(s.end_fraction, 2) for s in leg.segments][0::2] == [0.4, 1.0]
    crawl = leg.segments[1]
    assert 0 < crawl.road_speed_mps <= 1.0
    assert [len(d.segments) for d in drives(jammed)] == [1, 3, 1, 1]


def test_the_same_seed_gives_the_same_day_and_the_same_fixes() -> None:
    """Two models with one seed agree on every phase and fix; the repr names the seed."""
    one, two = DriverModel(9, DriverProfile()), DriverModel(9, DriverProfile())
    first, second = day(one, [EAST, NORTH]), day(two, [EAST, NORTH])
    assert first == second
    times = [T0 + 60 * k for k in range(50)]
    assert [one.fix(first, t) for t in times] == [two.fix(second, t) for t in times]
    assert repr(one) == "DriverModel(seed=9, speed_factor=1.00, jam_s=0)"
    assert day(DriverModel(10, DriverProfile()), [EAST, NORTH]) != first


def test_fixes_scatter_a_few_metres_and_report_course_accuracy_and_battery() -> None:
    """Noise stays within 5 sigma; standing fixes have no course; the battery drains 6 %/h."""
    model = DriverModel(11, DriverProfile(battery_start_pct=80.0))
    it = day(model, [EAST], depart_s=T0 + 3600)
    leg = drives(it)[0]
    moving_at = (leg.start_s + leg.end_s) / 2
    truth = it.at(moving_at)
    for _ in range(200):
        fix = model.fix(it, moving_at)
        assert distance_m(Point(fix.lat, fix.lon), truth.point) < 20.0
        assert 2.0 <= fix.accuracy_m <= 50.0
        assert fix.heading_deg is not None
        assert abs((fix.heading_deg - (truth.heading_deg or 0) + 180) % 360 - 180) < 25
    standing = model.fix(it, T0 + 1800)
    assert standing.heading_deg is None
    assert standing.speed_mps < 1.0
    assert model.fix(it, T0).battery_pct == 80.0
    assert model.fix(it, T0 + 5 * 3600).battery_pct == 50.0


def test_a_replan_mid_leg_turns_where_the_driver_is_and_drops_a_removed_stop() -> None:
    """The past stays; the new leg starts at the current position; the removed stop is gone."""
    model = DriverModel(12, DriverProfile())
    it = day(model, [EAST, NORTH, WEST])
    second_leg = drives(it)[1]
    now = (second_leg.start_s + second_leg.end_s) / 2
    here = it.at(now).point
    after = model.replan(it, now, [WEST], DEPOT)
    assert after.phases[:2] == it.phases[:2]
    assert drives(after)[1].end_s == now
    assert drives(after)[2].origin == here
    assert drives(after)[2].destination == WEST.point
    assert [(a.kind, a.stop_id) for a in after.actions] == [
        ("start", None),
        ("arrive", 1),
        ("deliver", 1),
        ("arrive", 3),
        ("deliver", 3),
    ]
    assert after.stop_ids == (1, 3)
    assert distance_m(after.at(now).point, here) == pytest.approx(0.0, abs=1e-6)


def test_a_replan_while_serving_finishes_the_stop_first() -> None:
    """A stop being served keeps its outcome time; an inserted stop is visited after it."""
    model = DriverModel(13, DriverProfile())
    it = day(model, [EAST, WEST])
    arrive, deliver = it.actions[1].at_s, it.actions[2].at_s
    after = model.replan(it, (arrive + deliver) / 2, [EAST, NORTH, WEST], DEPOT)
    assert [(a.kind, a.stop_id) for a in after.actions] == [
        ("start", None),
        ("arrive", 1),
        ("deliver", 1),
        ("arrive", 2),
        ("deliver", 2),
        ("arrive", 3),
        ("deliver", 3),
    ]
    assert after.actions[2].at_s == deliver
    assert drives(after)[1].start_s == deliver
    assert drives(after)[1].destination == NORTH.point


def test_a_replan_before_departure_still_leaves_at_the_planned_time() -> None:
    """The route is started at the planned departure even when it changed before it."""
    model = DriverModel(14, DriverProfile())
    it = day(model, [EAST, NORTH], depart_s=T0 + 1800)
    after = model.replan(it, T0 + 600, [NORTH], DEPOT)
    assert [(a.kind, a.stop_id, a.at_s) for a in after.actions][:2] == [
        ("start", None, T0 + 1800),
        ("arrive", 2, pytest.approx(drives(after)[0].end_s)),
    ]
    assert after.at(T0 + 1200).point == DEPOT


def test_service_starts_inside_a_window_or_late_after_the_last() -> None:
    """Early waits for the next window, inside starts at once, after the last starts at once."""
    windows = [(100.0, 200.0), (400.0, 500.0)]
    assert [service_start(t, windows) for t in (50, 150, 300, 450, 600)] == [
        100,
        150,
        400,
        450,
        600,
    ]
    assert service_start(42.0, []) == 42.0


def test_profiles_jam_exactly_the_chosen_share_of_drivers() -> None:
    """A fifth of ten drivers is two jammed drivers, the same two for the same seed."""
    profiles = draw_profiles(seed=1, count=10, delay_share=0.2)
    assert sum(p.jam_s > 0 for p in profiles) == 2
    assert draw_profiles(seed=1, count=10, delay_share=0.2) == profiles
    assert all(0.75 <= p.speed_factor <= 1.25 for p in profiles)
    assert [round_share(6, 1 / 3), round_share(100, 0.05), round_share(5, 0.5)] == [2, 5, 3]


def test_simulated_time_runs_speedup_times_faster_and_device_times_never_repeat() -> None:
    """Ten wall seconds are a hundred simulated at 10×; equal or earlier wall times step 1 ms."""
    clock = SimClock(wall_start_s=1000.0, sim_start_s=T0, speedup=10.0)
    assert clock.sim(1010.0) == T0 + 100.0
    assert clock.wall(T0 + 100.0) == 1010.0
    device = DeviceClock()
    stamps = [device.stamp(t) for t in (T0, T0, T0 - 5, T0 + 1)]
    start = datetime.fromtimestamp(T0, UTC)
    assert stamps == [
        start,
        start + timedelta(milliseconds=1),
        start + timedelta(milliseconds=2),
        start + timedelta(seconds=1),
    ]
