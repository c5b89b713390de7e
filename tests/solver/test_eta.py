"""Live arrival windows and delivery events, on routes laid out along a line.

Stops s1, s2, s3 sit at x = 3000, 6000 and 9000 m; the provider drives straight lines at
10 m/s, so legs take 300 s and a driver at x reaches x' after |x' - x| / 10 seconds. Each stop
takes 60 s of service. Unless a test says otherwise, windows collapse onto the likely arrival
(no spread: the travel model is taken as exact, so no leg moves the driver's travel factor
either), the driver's pace on the current leg is not blended in, and ``approaching`` means
two minutes away, so every expected instant below is worked out by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import msgspec
import pytest

from schemas.eta import (
    Approaching,
    ArrivalDetected,
    ArrivalWindow,
    DeliveryEvent,
    DepartureDetected,
    DriverPace,
    EnRoute,
    EtaChanged,
    EtaConfig,
    EtaRoute,
    EtaStop,
    Fix,
    RunningLate,
    StopTrack,
    TrackerState,
)
from schemas.ids import DriverId, OrderId, PlanId, RouteId, ShiftId, StopId, VehicleId
from schemas.ping import Ping
from schemas.planning import Location, PlanningTimeWindow
from schemas.route import RouteStop, RouteView, StopStatus, Window
from solver.eta import (
    EtaUpdate,
    on_route_changed,
    on_stop_completed,
    refresh,
    route_from_view,
    update,
)
from solver.matrix import ConstantSpeed, EuclideanProvider, GreatCircleProvider

PLANE = EuclideanProvider(speed_mps=10.0)
EXACT = EtaConfig(
    approach_s=120,
    approach_m=None,
    leg_pace_weight=0.0,
    pace_prior_sd=0.0,
    pace_drift_sd=0.0,
    spread_base_s=0.0,
    spread_leg_ratio=0.0,
    spread_service_ratio=0.0,
    spread_delay_ratio=0.0,
)
"""Windows with no spread, no in-leg pace, and ``approaching`` two minutes ahead."""

E = TypeVar("E")
TYPE_OF: dict[type, str] = {
    EnRoute: "en_route",
    Approaching: "approaching",
    ArrivalDetected: "arrived",
    DepartureDetected: "departed",
    RunningLate: "running_late",
    EtaChanged: "eta_changed",
}
Event = tuple[str, int, int]
"""An event as (type, stop id, instant it was revealed)."""


def stop(n: int, x_m: float, *, window: tuple[int, int] | None = None) -> EtaStop:
    """Stop s<n> at (x_m, 0) with 60 s of service, planned as if driven on time from 0."""
    return EtaStop(
        stop_id=StopId(n),
        order_id=OrderId(100 + n),
        location=Location(x_m=x_m, y_m=0.0),
        time_windows=[]
        if window is None
        else [PlanningTimeWindow(start_epoch_s=window[0], end_epoch_s=window[1])],
        service_s=60,
        planned_arrival_epoch_s=round(x_m / 10) + 60 * (n - 1),
    )


def line(*, s2_window: tuple[int, int] | None = None, **extra: Any) -> EtaRoute:
    """Route 7 (version 1) of driver 1: s1, s2, s3 along the x axis."""
    stops = [stop(1, 3000), stop(2, 6000, window=s2_window), stop(3, 9000)]
    return EtaRoute(driver_id=DriverId(1), route_id=RouteId(7), version=1, stops=stops, **extra)


class Driver:
    """Feeds a driver's fixes, one every ``step_s``, to :func:`update` and keeps what it answers."""

    def __init__(self, route: EtaRoute, config: EtaConfig = EXACT, *, step_s: int = 10) -> None:
        self.route = route
        self.config = config
        self.step_s = step_s
        self.state: TrackerState | None = None
        self.t = 0
        self.x = 0.0
        self.y = 0.0
        self.events: list[DeliveryEvent] = []
        self.published: list[tuple[int, ArrivalWindow]] = []

    def fix(
        self, t: int, x: float, y: float = 0.0, *, accuracy_m: float | None = None
    ) -> EtaUpdate:
        """One fix at (x, y) at instant t."""
        answer = update(
            self.state,
            self.route,
            Fix(epoch_s=t, location=Location(x_m=x, y_m=y), accuracy_m=accuracy_m),
            PLANE,
            self.config,
        )
        self.state = answer.state
        self.t, self.x, self.y = t, x, y
        self.events += answer.events
        self.published += [(t, w) for w in answer.windows]
        return answer

    def move(self, x: float, until: int, y: float | None = None) -> None:
        """Drive in a straight line from the last fix to (x, y), arriving at ``until``."""
        t0, x0, y0 = self.t, self.x, self.y
        y1 = y0 if y is None else y
        for t in range(t0 + self.step_s, until + 1, self.step_s):
            u = (t - t0) / (until - t0)
            self.fix(t, x0 + u * (x - x0), y0 + u * (y1 - y0))

    def stay(self, until: int) -> None:
        """Stand still at the last fix's place until ``until``."""
        self.move(self.x, until)

    def window(self, stop_id: int) -> ArrivalWindow:
        """The stop's latest computed window (failing the test when it has none)."""
        assert self.state is not None, "no fix yet"
        return _window(self.state, stop_id)

    def likely(self, stop_id: int) -> int:
        """The stop's latest likely arrival."""
        return self.window(stop_id).likely_epoch_s

    def status(self, stop_id: int) -> str:
        """The stop's status as the tracker sees it."""
        return _track(self.state, stop_id).status


def _track(state: TrackerState | None, stop_id: int) -> StopTrack:
    assert state is not None, "no fix yet"
    return next(t for t in state.stops if t.stop_id == stop_id)


def _window(state: TrackerState, stop_id: int) -> ArrivalWindow:
    window = _track(state, stop_id).window
    assert window is not None, f"stop {stop_id} has no window"
    return window


def of(events: list[DeliveryEvent], kind: type[E]) -> list[E]:
    """The events of one type, in order."""
    return [e for e in events if isinstance(e, kind)]


def kinds(events: list[DeliveryEvent], *only: str) -> list[Event]:
    """The events as (type, stop, instant), keeping only the given types when some are named."""
    out = [(TYPE_OF[type(e)], e.stop_id, e.at_epoch_s) for e in events]
    return [e for e in out if not only or e[0] in only]


def likely(windows: list[ArrivalWindow]) -> dict[int, int]:
    """Each window's likely arrival by stop id."""
    return {w.stop_id: w.likely_epoch_s for w in windows}


def drive_on_time(d: Driver) -> None:
    """The planned day: 300 s legs at 10 m/s, 60 s at each stop, then away from s3."""
    d.fix(0, 0.0)
    d.move(3000, 300)
    d.stay(360)
    d.move(6000, 660)
    d.stay(720)
    d.move(9000, 1020)
    d.stay(1080)
    d.move(9300, 1110)


def test_an_on_time_driver_gets_the_planned_windows_once_and_every_event_in_order() -> None:
    """Driving to plan publishes the planned arrivals at the first fix and never again."""
    d = Driver(line())
    drive_on_time(d)
    assert [(t, w.stop_id, w.likely_epoch_s) for t, w in d.published] == [
        (0, 1, 300),
        (0, 2, 660),
        (0, 3, 1020),
    ]
    assert kinds(d.events) == [
        ("en_route", 1, 0),
        ("approaching", 1, 180),
        ("arrived", 1, 330),
        ("departed", 1, 380),
        ("en_route", 2, 380),
        ("approaching", 2, 540),
        ("arrived", 2, 690),
        ("departed", 2, 740),
        ("en_route", 3, 740),
        ("approaching", 3, 900),
        ("arrived", 3, 1050),
        ("departed", 3, 1100),
    ]
    assert [e.arrived_epoch_s for e in of(d.events, ArrivalDetected)] == [300, 660, 1020]
    assert [(e.arrived_epoch_s, e.departed_epoch_s) for e in of(d.events, DepartureDetected)] == [
        (300, 360),
        (660, 720),
        (1020, 1080),
    ]
    assert d.state is not None
    assert d.state.pace == DriverPace(
        travel_factor=1.0, travel_legs=3, travel_var=0.0, service_factor=1.0, service_stops=3
    )


def test_each_event_fires_once_however_many_fixes_repeat_its_condition() -> None:
    """With a fix every 2 s and ten minutes at each stop, every once-only event still fires once."""
    d = Driver(line(), step_s=2)
    d.fix(0, 0.0)
    d.move(3000, 300)
    d.stay(900)
    d.move(6000, 1200)
    d.stay(1800)
    counts: dict[tuple[str, int], int] = {}
    for kind, stop_id, _ in kinds(d.events, "en_route", "approaching", "arrived", "departed"):
        counts[kind, stop_id] = counts.get((kind, stop_id), 0) + 1
    assert counts == {
        ("en_route", 1): 1,
        ("approaching", 1): 1,
        ("arrived", 1): 1,
        ("departed", 1): 1,
        ("en_route", 2): 1,
        ("approaching", 2): 1,
        ("arrived", 2): 1,
    }


def test_a_fix_no_later_than_the_last_one_changes_nothing() -> None:
    """A re-sent or reordered fix answers the same state, no windows and no events."""
    d = Driver(line())
    d.fix(0, 0.0)
    d.move(3000, 300)
    before = d.state
    assert before is not None
    for t in (300, 250):
        again = Fix(epoch_s=t, location=Location(x_m=0.0, y_m=0.0))
        assert update(before, d.route, again, PLANE, EXACT) == EtaUpdate(before, [], [])


def test_waiting_for_a_window_start_delays_the_stops_after_it() -> None:
    """s2 is reached at 660 but opens at 900, so s3 is due at 900 + 60 + 300 = 1260."""
    d = Driver(line(s2_window=(900, 2000)))
    assert likely(d.fix(0, 0.0).windows) == {1: 300, 2: 660, 3: 1260}


def test_a_driver_early_at_a_stop_waits_there_and_the_next_window_does_not_move() -> None:
    """Standing at s2 from 660 through its window's opening at 900 keeps s3 due at 1260."""
    d = Driver(line(s2_window=(900, 2000)))
    d.fix(0, 0.0)
    d.move(3000, 300)
    d.stay(360)
    d.move(6000, 660)
    d.stay(940)
    assert d.status(2) == "arrived"
    assert [w.likely_epoch_s for _, w in d.published if w.stop_id == 3] == [1260]
    assert d.window(3) == ArrivalWindow(
        stop_id=StopId(3),
        order_id=OrderId(103),
        likely_epoch_s=1260,
        lower_epoch_s=1260,
        upper_epoch_s=1260,
        computed_epoch_s=940,
    )


def test_a_late_driver_raises_running_late_once_and_only_once() -> None:
    """Stuck at x = 1000 from 100, s2 (window until 700) is predicted late from 150, once."""
    d = Driver(line(s2_window=(0, 700)))
    d.fix(0, 0.0)
    d.move(1000, 100)
    d.stay(800)
    late = of(d.events, RunningLate)
    assert kinds(list(late)) == [("running_late", 2, 150)]
    assert (late[0].window.late_s, late[0].customer_end_epoch_s) == (10, 700)
    assert d.window(2).late_s == 800 + 200 + 60 + 300 - 700


def test_a_window_only_at_risk_raises_no_running_late_and_a_likely_late_one_does() -> None:
    """With spread, s2 (window until 700, planned at 660) is at risk from the first fix (its
    upper bound passes 700), yet a driver on plan is on time: no running_late. Stuck at
    x = 1000 from 100, its likely arrival (now + 200 + 60 + 300) passes 700 at the fix of 150."""
    spread = msgspec.structs.replace(EXACT, spread_base_s=120.0)
    d = Driver(line(s2_window=(0, 700)), spread)
    drive_on_time(d)
    first = next(w for t, w in d.published if w.stop_id == 2)
    assert (first.likely_epoch_s, first.late_s > 0) == (660, True)
    assert of(d.events, RunningLate) == []

    stuck = Driver(line(s2_window=(0, 700)), spread)
    stuck.fix(0, 0.0)
    stuck.move(1000, 100)
    stuck.stay(800)
    late = of(stuck.events, RunningLate)
    assert kinds(list(late)) == [("running_late", 2, 150)]
    assert (late[0].window.likely_epoch_s, late[0].customer_end_epoch_s) == (710, 700)


def test_small_moves_are_not_published_and_a_large_one_is_with_eta_changed() -> None:
    """Standing still from 100 moves every window 1 s per s: republished once past 120 s, at 230."""
    d = Driver(line())
    d.fix(0, 0.0)
    d.move(1000, 100)
    d.stay(229)
    assert [t for t, _ in d.published] == [0, 0, 0]
    d.fix(230, 1000.0)
    assert [(t, w.stop_id, w.likely_epoch_s) for t, w in d.published[3:]] == [
        (230, 1, 430),
        (230, 2, 790),
        (230, 3, 1150),
    ]
    changed = of(d.events, EtaChanged)
    assert [(c.stop_id, c.previous.likely_epoch_s, c.window.likely_epoch_s) for c in changed] == [
        (1, 300, 430),
        (2, 660, 790),
        (3, 1020, 1150),
    ]


def test_a_dwell_shorter_than_the_threshold_is_not_an_arrival() -> None:
    """Twenty seconds inside s1's radius, then driving on, arrives nowhere."""
    d = Driver(line())
    d.fix(0, 0.0)
    d.move(3000, 300)
    d.stay(320)
    d.move(3500, 370)
    assert kinds(d.events, "arrived") == []
    assert d.status(1) == "pending"


def test_a_stop_driven_past_is_skipped_once_the_driver_is_nearer_the_next_one() -> None:
    """Passing s1 at speed, the driver is nearer s2 at x = 4600 (t = 460): s1 is skipped there."""
    d = Driver(line())
    d.fix(0, 0.0)
    d.move(4500, 450)
    assert d.status(1) == "pending"
    d.fix(460, 4600.0)
    assert d.status(1) == "skipped"
    assert kinds(d.events, "en_route") == [("en_route", 1, 0), ("en_route", 2, 460)]
    # s2 is now 140 s away, no longer 150 s back to s1, 60 s there and 300 s on: 360 s sooner.
    assert [(w.stop_id, w.likely_epoch_s) for t, w in d.published if t == 460] == [
        (2, 600),
        (3, 960),
    ]
    d.move(6000, 600)
    d.stay(630)
    assert kinds(d.events, "arrived") == [("arrived", 2, 630)]


def test_a_driver_nearer_the_next_stop_a_few_doors_on_departs_and_arrives_there() -> None:
    """With s2 90 m past s1, dwelling at s2 departs s1 (at its last fix there) and arrives at s2."""
    route = EtaRoute(
        driver_id=DriverId(1),
        route_id=RouteId(7),
        version=1,
        stops=[stop(1, 3000), stop(2, 3090), stop(3, 9000)],
    )
    d = Driver(route)
    d.fix(0, 0.0)
    d.move(3000, 300)
    d.stay(360)
    d.fix(370, 3090.0)
    d.stay(430)
    assert kinds(d.events, "arrived", "departed") == [
        ("arrived", 1, 330),
        ("departed", 1, 400),
        ("arrived", 2, 400),
    ]
    assert [e.departed_epoch_s for e in of(d.events, DepartureDetected)] == [360]


def test_two_stops_in_one_building_are_served_one_after_the_other() -> None:
    """Inside both radii, s1 hands over to s2 once its 60 s of service are spent, at 360."""
    route = EtaRoute(
        driver_id=DriverId(1),
        route_id=RouteId(7),
        version=1,
        stops=[stop(1, 3000), stop(2, 3030), stop(3, 9000)],
    )
    d = Driver(route)
    d.fix(0, 0.0)
    d.move(3000, 300)
    d.fix(310, 3010.0)
    d.stay(480)
    d.move(3500, 530)
    assert kinds(d.events, "arrived", "departed") == [
        ("arrived", 1, 330),
        ("departed", 1, 360),
        ("arrived", 2, 360),
        ("departed", 2, 500),
    ]
    assert [e.departed_epoch_s for e in of(d.events, DepartureDetected)] == [360, 480]


def test_fixes_less_accurate_than_allowed_never_arrive() -> None:
    """Ten minutes at s1 with a 500 m accuracy detect no arrival; the windows still move."""
    d = Driver(line())
    d.fix(0, 0.0)
    d.move(3000, 300)
    for t in range(310, 910, 10):
        d.fix(t, 3000.0, accuracy_m=500.0)
    assert kinds(d.events, "arrived") == []
    assert d.likely(2) == 900 + 60 + 300


def test_a_slow_driver_learns_a_travel_factor_that_makes_later_windows_later() -> None:
    """Taking 600 s for a 300 s leg, with a prior sd of 0.45 and a leg noise of 0.2 (log space):
    the gain is 0.2025 / 0.2425, so the factor becomes 2 ** 0.835 = 1.78392, and the variance
    0.2025 * 0.04 / 0.2425 = 0.0334."""
    config = msgspec.structs.replace(EXACT, pace_prior_sd=0.45, pace_leg_sd=0.2)
    d = Driver(line(), config)
    d.fix(0, 0.0)
    d.move(3000, 600)
    d.stay(660)
    d.fix(680, 3200.0)
    assert d.state is not None
    assert d.state.pace.travel_factor == pytest.approx(1.78392, abs=1e-5)
    assert d.state.pace.travel_var == pytest.approx(0.033402, abs=1e-6)
    assert d.state.pace.travel_legs == 1
    # From x = 3200 at 680: 280 s of driving becomes 499.5 s, where a nominal driver takes 280.
    assert d.likely(2) == 1179


def fast_legs(d: Driver, legs: int, ratio: float) -> None:
    """Drive ``legs`` legs of 3000 m along the line, each in ``ratio`` of the model's 300 s
    (rounded to the driver's fix interval, so a fix lands on each stop), with a 60 s stop at
    the end of each (the route ``long_line`` lays out)."""
    d.fix(0, 0.0)
    for _ in range(legs):
        d.move(d.x + 3000, d.t + d.step_s * round(300 * ratio / d.step_s))
        d.stay(d.t + 60)


def long_line(n: int) -> EtaRoute:
    """Route 7 of driver 1 with ``n`` stops every 3000 m along the x axis."""
    stops = [stop(k, 3000 * k) for k in range(1, n + 1)]
    return EtaRoute(driver_id=DriverId(1), route_id=RouteId(7), version=1, stops=stops)


@pytest.mark.parametrize("ratio", [0.45, 2.0])
def test_consistent_legs_pull_a_badly_wrong_pace_in_within_three_legs(ratio: float) -> None:
    """The model is wrong by x 0.45 (or x 2) for the whole city: with the default learning,
    three legs at that pace bring the factor within 10 % of it (the earlier rule, a ratio
    counted at most 1.25 times off the factor and a 30 % step, needed about ten legs to move
    it by x 2)."""
    d = Driver(long_line(6), EtaConfig(leg_pace_weight=0.0), step_s=5)
    fast_legs(d, 3, ratio)
    assert d.state is not None
    assert d.state.pace.travel_legs == 3
    assert d.state.pace.travel_factor == pytest.approx(ratio, rel=0.10)


def test_windows_are_wide_while_the_pace_is_unknown_and_narrow_as_legs_agree() -> None:
    """Before any leg, s6's window spans the prior's doubt about 1,500 s of driving ahead;
    after three legs driven at the model's pace it is less than half as wide, and it holds
    the arrival the driver keeps to."""
    config = EtaConfig(leg_pace_weight=0.0)
    d = Driver(long_line(6), config)
    d.fix(0, 0.0)
    before = d.window(6)
    fast_legs(d, 3, 1.0)
    after = d.window(6)
    width_before = before.upper_epoch_s - before.lower_epoch_s
    width_after = after.upper_epoch_s - after.lower_epoch_s
    assert width_after < width_before / 2
    # The late side stretches more than the early one: the factor is log-normal.
    assert (
        before.upper_epoch_s - before.likely_epoch_s > before.likely_epoch_s - before.lower_epoch_s
    )
    # Leaving s3 at 1080: three legs of 300 s and two services of 60 s to s6.
    assert after.lower_epoch_s <= 1080 + 3 * 300 + 2 * 60 <= after.upper_epoch_s


def test_one_jammed_leg_after_consistent_ones_moves_the_factor_a_bounded_step() -> None:
    """Five legs on the model's pace, then one four times as long: the residual counts as at
    most two of its standard deviations, so the factor grows by less than x 1.25."""
    config = EtaConfig(leg_pace_weight=0.0)
    d = Driver(long_line(7), config)
    fast_legs(d, 5, 1.0)
    assert d.state is not None
    settled = d.state.pace
    d.move(d.x + 3000, d.t + 1200)
    d.stay(d.t + 60)
    assert d.state.pace.travel_legs == settled.travel_legs + 1
    assert 1.0 < d.state.pace.travel_factor / settled.travel_factor < 1.25


def test_windows_count_from_the_planned_start_until_the_driver_moves() -> None:
    """Idle at the depot at 0 with a 1000 start, s1 is due at 1300; once moving, from now."""
    d = Driver(line(start_epoch_s=1000))
    assert likely(d.fix(0, 0.0).windows)[1] == 1300
    d.fix(500, 10.0)  # still within the arrival radius of where tracking began: not moving
    assert d.likely(1) == 1000 + 299
    d.fix(510, 100.0)
    assert d.likely(1) == 510 + 290


def test_the_late_bound_widens_with_the_driving_ahead_and_shrinks_at_a_wait() -> None:
    """Half the driving ahead on the late side: s2 +300 s, and s3 only +210 s after s2's wait."""
    config = msgspec.structs.replace(EXACT, spread_delay_ratio=0.5)
    d = Driver(line(s2_window=(900, 2000)), config)
    bounds = {
        w.stop_id: (w.lower_epoch_s, w.likely_epoch_s, w.upper_epoch_s)
        for w in d.fix(0, 0.0).windows
    }
    # s2 late by 300 s starts service at 960 rather than 900: 60 s of the 300 s survive the wait,
    # so the 600 s of driving behind it count as 120 s, plus 300 s of leg to s3: 0.5 * 420.
    assert bounds == {1: (300, 300, 450), 2: (660, 660, 960), 3: (1260, 1260, 1470)}


def test_the_base_spread_becomes_bounds_at_the_configured_quantiles() -> None:
    """A 100 s standard deviation puts the 10 % and 90 % bounds 128 s either side."""
    config = msgspec.structs.replace(EXACT, spread_base_s=100.0)
    first = Driver(line(), config).fix(0, 0.0).windows[0]
    assert (first.lower_epoch_s, first.likely_epoch_s, first.upper_epoch_s) == (172, 300, 428)
    wider = msgspec.structs.replace(config, window_quantiles=(0.05, 0.95))
    first = Driver(line(), wider).fix(0, 0.0).windows[0]
    assert (first.lower_epoch_s, first.upper_epoch_s) == (136, 464)


def test_a_completed_stop_moves_the_driver_on_and_a_repeat_is_harmless() -> None:
    """The app closing s1 at 350 makes s2 next, due 300 s later; closing it again does nothing."""
    d = Driver(line())
    d.fix(0, 0.0)
    d.move(3000, 300)
    d.stay(340)
    assert d.state is not None
    done = on_stop_completed(d.state, StopId(1), 350, EXACT)
    assert _track(done, 1).status == "completed"
    assert done.pace.service_factor == pytest.approx((50 / 60) ** 0.5)
    assert on_stop_completed(done, StopId(1), 360, EXACT) is done
    answer = refresh(done, d.route, PLANE, EXACT, now_epoch_s=350)
    assert kinds(answer.events, "en_route") == [("en_route", 2, 350)]
    # s2 is 300 s away; s3 300 s after s2's service, now expected to last 60 s x 0.913.
    assert [_window(answer.state, n).likely_epoch_s for n in (2, 3)] == [650, 1005]
    assert answer.windows == []  # both moved by 10 s only: below the publication threshold


def test_a_new_route_version_keeps_what_still_holds_and_times_the_new_stop() -> None:
    """Version 2 drops s2 and adds s4: s1 keeps its events, s4 is published, s2 is forgotten."""
    d = Driver(line())
    d.fix(0, 0.0)
    d.move(3000, 300)
    d.stay(340)
    assert d.state is not None
    v2 = EtaRoute(
        driver_id=DriverId(1),
        route_id=RouteId(7),
        version=2,
        stops=[stop(1, 3000), stop(3, 9000), stop(4, 7500)],
    )
    moved = on_route_changed(d.state, v2)
    assert [t.stop_id for t in moved.stops] == [1, 3, 4]
    assert _track(moved, 1) == _track(d.state, 1)
    assert (_track(moved, 4).status, _track(moved, 4).published) == ("pending", None)
    answer = refresh(moved, v2, PLANE, EXACT, now_epoch_s=340)
    # s1 is served until 360; then 600 s to s3, 60 s there, 150 s back to s4. s3 moved by 60 s
    # only (it was due at 1020), so only s4, never published, is.
    assert likely(answer.windows) == {4: 1170}
    assert _window(answer.state, 3).likely_epoch_s == 960
    with pytest.raises(ValueError, match="expected a route of driver 1, got driver 2"):
        on_route_changed(moved, msgspec.structs.replace(v2, driver_id=DriverId(2)))


def test_pings_on_a_geographic_route_arrive_by_great_circle_distance() -> None:
    """A driver standing 20 m from a Berlin address for 40 s has arrived there."""
    here = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
    route = EtaRoute(
        driver_id=DriverId(1),
        route_id=RouteId(7),
        version=1,
        stops=[
            EtaStop(
                stop_id=StopId(1),
                order_id=OrderId(101),
                location=Location(lat=52.5200, lon=13.4050),
                planned_arrival_epoch_s=int(here.timestamp()),
            )
        ],
    )
    roads = GreatCircleProvider(speed=ConstantSpeed(10.0))
    state = None
    events: list[DeliveryEvent] = []
    for k in range(5):
        ping = Ping(
            time=here + timedelta(seconds=10 * k), lat=52.52018, lon=13.4050, accuracy_m=5.0
        )
        state, _, new = update(state, route, ping, roads)
        events += new
    assert kinds(events, "arrived") == [("arrived", 1, int(here.timestamp()) + 30)]


def test_a_dispatched_route_view_becomes_the_open_stops_in_sequence() -> None:
    """Delivered stops are left out, arrived and pending ones kept in order, times in epoch s,
    and a stop the driver marked arrived carries when."""
    t0 = datetime(2025, 6, 2, 8, 0, tzinfo=UTC)

    def view_stop(n: int, seq: int, status: StopStatus) -> RouteStop:
        return RouteStop(
            id=StopId(n),
            seq=seq,
            status=status,
            order_id=OrderId(100 + n),
            order_ref=f"o{n}",
            address="somewhere",
            lat=52.5,
            lon=13.4,
            service_s=90,
            windows=[Window(start=t0, end=t0 + timedelta(hours=2))],
            planned_arrival=t0 + timedelta(minutes=n),
            planned_departure=t0 + timedelta(minutes=n + 2),
            arrived_at=t0 + timedelta(minutes=n + 1) if status == "arrived" else None,
        )

    view = RouteView(
        id=RouteId(7),
        plan_id=PlanId(1),
        driver_id=DriverId(1),
        vehicle_id=VehicleId(1),
        shift_id=ShiftId(1),
        day="2025-06-02",
        status="started",
        version=3,
        planned_start=t0,
        planned_end=t0 + timedelta(hours=8),
        distance_m=1000,
        stops=[
            view_stop(3, 2, "pending"),
            view_stop(1, 0, "delivered"),
            view_stop(2, 1, "arrived"),
        ],
    )
    route = route_from_view(view)
    start = int(t0.timestamp())
    assert (route.route_id, route.version, route.start_epoch_s) == (7, 3, start)
    assert [(s.stop_id, s.planned_arrival_epoch_s, s.arrived_epoch_s) for s in route.stops] == [
        (2, start + 120, start + 180),
        (3, start + 180, None),
    ]
    assert route.stops[0].time_windows == [
        PlanningTimeWindow(start_epoch_s=start, end_epoch_s=start + 7200)
    ]


def test_the_state_survives_a_messagepack_round_trip() -> None:
    """A worker can keep the tracker state in Redis: encoded and decoded, it is equal."""
    d = Driver(line(s2_window=(900, 2000)))
    drive_on_time(d)
    assert d.state is not None
    encoded = msgspec.msgpack.encode(d.state)
    assert msgspec.msgpack.decode(encoded, type=TrackerState) == d.state


def test_a_config_with_inverted_quantiles_is_refused_with_what_came() -> None:
    """Window quantiles must straddle the median."""
    with pytest.raises(
        ValueError, match=r"expected window_quantiles with 0 < low < 0.5 < high < 1, got 0.6, 0.9"
    ):
        EtaConfig(window_quantiles=(0.6, 0.9))
