"""Arrival detection follows the route's order (issue #12): only the next stop is arrived from
positions; a stay at another stop is an ``out_of_sequence`` alert until the driver app reports it.

The routes, the driver and the exact (spread-free) configuration are those of
:mod:`tests.solver.test_eta`: stops along the x axis, 10 m/s, 60 s of service, ``approaching``
two minutes ahead, so every instant below is worked out by hand.
"""

from __future__ import annotations

import msgspec

from schemas.eta import ArrivalDetected, EtaRoute, EtaStop, OutOfSequence
from schemas.ids import DriverId, RouteId, StopId
from solver.eta import on_stop_completed
from tests.solver.test_eta import TYPE_OF, Driver, Event, line, of, stop

TYPES: dict[type, str] = {**TYPE_OF, OutOfSequence: "out_of_sequence"}
NOT_WINDOWS = ("en_route", "approaching", "arrived", "departed", "out_of_sequence")


def route_of(*stops: EtaStop, version: int = 1) -> EtaRoute:
    """Route 7 of driver 1 with the given stops, in that order."""
    return EtaRoute(driver_id=DriverId(1), route_id=RouteId(7), version=version, stops=list(stops))


def told(d: Driver) -> list[Event]:
    """Every event but moved windows, as (type, stop, instant)."""
    return [
        (TYPES[type(e)], e.stop_id, e.at_epoch_s) for e in d.events if TYPES[type(e)] in NOT_WINDOWS
    ]


def wait_at_s2_first(d: Driver) -> None:
    """A detour that never comes near s1 and ends at s2 (x = 6000) at 700, waiting until 900."""
    d.fix(0, 0.0)
    d.move(3000, 400, y=2000)
    d.move(6000, 700, y=0)
    d.stay(900)


def report_arrived(d: Driver, stop_id: int, at_epoch_s: int) -> None:
    """The driver app marks the stop arrived: the worker reads a new route version saying so."""
    d.route = msgspec.structs.replace(
        d.route,
        version=d.route.version + 1,
        stops=[
            msgspec.structs.replace(s, arrived_epoch_s=at_epoch_s) if s.stop_id == stop_id else s
            for s in d.route.stops
        ],
    )


def test_waiting_at_a_later_stop_is_out_of_sequence_and_never_arrives_there() -> None:
    """Three minutes at s2 with s1 pending give one out_of_sequence naming s1, nothing more."""
    d = Driver(line())
    wait_at_s2_first(d)
    assert told(d) == [("en_route", 1, 0), ("out_of_sequence", 2, 730)]
    (flag,) = of(d.events, OutOfSequence)
    assert (flag.expected_stop_id, flag.stay_start_epoch_s, flag.dwell_s) == (1, 700, 30)
    assert [d.status(n) for n in (1, 2, 3)] == ["pending", "pending", "pending"]
    assert d.state is not None
    assert d.state.next_stop_id == 1  # the tracking page of s2 does not turn "en route"


def test_the_next_stop_still_gets_its_events_after_a_wait_elsewhere() -> None:
    """Back from s2 to s1, s1 is approached, arrived and departed, then s2 in turn as usual."""
    d = Driver(line())
    wait_at_s2_first(d)
    d.move(3000, 1200)
    d.stay(1260)
    d.move(6000, 1560)
    d.stay(1600)
    assert told(d) == [
        ("en_route", 1, 0),
        ("out_of_sequence", 2, 730),
        ("approaching", 1, 1080),
        ("arrived", 1, 1230),
        ("departed", 1, 1280),
        ("en_route", 2, 1280),
        ("approaching", 2, 1440),
        ("arrived", 2, 1590),
    ]


def test_a_later_stop_the_driver_app_marks_arrived_is_served_and_its_events_follow() -> None:
    """Marked arrived at 745, s2 is arrived (reported, from its stay at 700), departed on the
    way back to s1, and s1 then gets its arrival and s3 its en_route, in that order."""
    d = Driver(line())
    d.fix(0, 0.0)
    d.move(3000, 400, y=2000)
    d.move(6000, 700, y=0)
    d.stay(740)
    report_arrived(d, 2, 745)
    d.stay(800)
    d.move(3000, 1100)
    d.stay(1160)
    d.move(4000, 1260)
    assert told(d) == [
        ("en_route", 1, 0),
        ("out_of_sequence", 2, 730),
        ("arrived", 2, 750),
        ("departed", 2, 820),
        ("approaching", 1, 980),
        ("arrived", 1, 1130),
        ("departed", 1, 1180),
        ("en_route", 3, 1180),
    ]
    arrivals = of(d.events, ArrivalDetected)
    assert [(a.stop_id, a.arrived_epoch_s, a.reported) for a in arrivals] == [
        (2, 700, True),
        (1, 1100, False),
    ]
    assert [d.status(n) for n in (1, 2, 3)] == ["departed", "departed", "pending"]


def test_a_later_stop_completed_out_of_order_leaves_the_earlier_ones_next() -> None:
    """The app closing s2 while s1 is pending keeps s1 pending and next: nothing is skipped."""
    d = Driver(line())
    wait_at_s2_first(d)
    assert d.state is not None
    done = on_stop_completed(d.state, StopId(2), 900)
    assert [t.status for t in done.stops] == ["pending", "completed", "pending"]
    d.state = done
    d.move(3000, 1200)
    d.stay(1240)
    assert ("arrived", 1, 1230) in told(d)


def test_two_consecutive_stops_at_one_address_are_served_one_after_the_other() -> None:
    """s1 and s2 at the same spot: s1 hands over to s2 after its 60 s, and no alert is raised."""
    d = Driver(route_of(stop(1, 3000), stop(2, 3000), stop(3, 9000)))
    d.fix(0, 0.0)
    d.move(3000, 300)
    d.stay(480)
    d.move(3500, 530)
    assert told(d) == [
        ("en_route", 1, 0),
        ("approaching", 1, 180),
        ("arrived", 1, 330),
        ("departed", 1, 360),
        ("arrived", 2, 360),
        ("departed", 2, 500),
        ("en_route", 3, 500),
    ]


def test_driving_past_a_later_stop_without_dwelling_tells_nobody_anything() -> None:
    """s2 lies on the way to s1: through it at speed and 20 s at a red light inside its radius,
    the driver raises no event for s2, which stays pending, and arrives at s1 as usual."""
    d = Driver(route_of(stop(1, 6000), stop(2, 3000)))
    d.fix(0, 0.0)
    d.move(3000, 300)
    d.stay(320)
    d.move(6000, 620)
    d.stay(660)
    assert told(d) == [("en_route", 1, 0), ("approaching", 1, 500), ("arrived", 1, 650)]
    assert d.status(2) == "pending"
