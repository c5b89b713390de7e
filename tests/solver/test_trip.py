"""What a route really did, from constructed GPS traces whose answers are known.

Every trace runs along the meridian at 13° E from 52° N, so a fix ``m`` metres north is exactly
``m`` great-circle metres from the start; times are seconds after 08:00 UTC.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from solver.errors import ProblemError
from solver.geo import EARTH_RADIUS_M
from solver.trip import Fix, Trip, TripRules, trip_of

LAT0 = 52.0
LON0 = 13.0
M_PER_DEG = EARTH_RADIUS_M * math.pi / 180
"""Great-circle metres per degree of latitude, about 111.2 km."""
T0 = datetime(2024, 5, 6, 8, 0, tzinfo=UTC)


def at(t_s: float) -> datetime:
    """The instant ``t_s`` seconds after the trace starts."""
    return T0 + timedelta(seconds=t_s)


def fix(t_s: float, north_m: float, accuracy_m: float | None = None) -> Fix:
    """A fix at ``t_s`` seconds, ``north_m`` metres north of the start along the meridian."""
    return Fix(time=at(t_s), lat=LAT0 + north_m / M_PER_DEG, lon=LON0, accuracy_m=accuracy_m)


def drive(start_s: float, start_m: float, step_s: float, step_m: float, n: int) -> list[Fix]:
    """``n`` fixes ``step_s`` apart, each ``step_m`` metres north of the one before."""
    return [fix(start_s + i * step_s, start_m + i * step_m) for i in range(n)]


def parked(start_s: float, north_m: float, minutes: int, jitter_m: float = 5.0) -> list[Fix]:
    """Fixes every 30 s for ``minutes`` minutes, alternately ``jitter_m`` north and south."""
    return [
        fix(start_s + 30 * i, north_m + (jitter_m if i % 2 else -jitter_m))
        for i in range(2 * minutes + 1)
    ]


def test_no_fixes_and_one_fix_give_zeros_with_the_counts_right() -> None:
    """An empty trace measures nothing, and a single fix is used but measures nothing either."""
    zero = Trip(
        driven_m=0.0, moving_s=0.0, stationary_s=0.0, idle_s=0.0,
        fixes=0, used=0, jumps=0, inaccurate=0,
    )  # fmt: skip
    assert trip_of([]) == zero
    assert trip_of([fix(0, 0)]) == msgspec.structs.replace(zero, fixes=1, used=1)


def test_a_straight_drive_measures_its_length_and_is_all_moving() -> None:
    """Eleven fixes 100 m and 10 s apart give 1000 m driven in 100 s of moving."""
    trip = trip_of(drive(0, 0, 10, 100, 11))
    assert trip.driven_m == pytest.approx(1000.0, abs=1e-6)
    assert (trip.moving_s, trip.stationary_s, trip.idle_s) == (100.0, 0.0, 0.0)
    assert (trip.fixes, trip.used, trip.jumps, trip.inaccurate) == (11, 11, 0, 0)


def test_a_slow_steady_drive_still_adds_up_although_each_step_is_below_min_step() -> None:
    """Steps of 10 m (below the 15 m minimum) are counted in pairs, so 200 m measures 200 m."""
    trip = trip_of(drive(0, 0, 5, 10, 21))
    assert trip.driven_m == pytest.approx(200.0, abs=1e-6)
    assert trip.moving_s == 100.0


def test_a_step_smaller_than_the_fixs_own_accuracy_adds_nothing() -> None:
    """A 30 m step reported with 40 m accuracy is not distance; the next clear step covers it."""
    trip = trip_of([fix(0, 0), fix(10, 30, accuracy_m=40), fix(20, 130)])
    assert trip.driven_m == pytest.approx(130.0, abs=1e-6)


def test_a_single_gps_jump_adds_no_distance_and_counts_one_jump() -> None:
    """A fix 5 km away between two close fixes is dropped; only the 100 m between them counts."""
    trip = trip_of([fix(0, 0), fix(30, 5000), fix(60, 100)])
    assert trip.driven_m == pytest.approx(100.0, abs=1e-6)
    assert (trip.used, trip.jumps) == (2, 1)
    assert trip.moving_s == 60.0


def test_two_agreeing_far_fixes_are_still_jumps_when_the_track_comes_back() -> None:
    """Two consistent outliers are fewer than three, so the track carries on past them."""
    trip = trip_of([fix(0, 0), fix(10, 5000), fix(20, 5010), fix(30, 100)])
    assert trip.driven_m == pytest.approx(100.0, abs=1e-6)
    assert (trip.used, trip.jumps) == (2, 2)


def test_a_bad_first_fix_is_the_one_counted_as_a_jump() -> None:
    """A first fix 10 km off loses to the three agreeing fixes after it, which are all used."""
    trip = trip_of([fix(0, 10_000), *drive(30, 0, 30, 100, 3)])
    assert trip.driven_m == pytest.approx(200.0, abs=1e-6)
    assert (trip.used, trip.jumps) == (3, 1)
    assert trip.moving_s == 60.0


def test_a_relocation_after_a_long_gap_at_a_plausible_speed_is_accepted() -> None:
    """10 km in 20 minutes is 8.3 m/s: driven, not a jump, and the gap counts as no time."""
    fixes = [*drive(0, 0, 10, 100, 3), *drive(1220, 10_200, 10, 100, 3)]
    trip = trip_of(fixes)
    assert trip.driven_m == pytest.approx(10_400.0, abs=1e-6)
    assert (trip.used, trip.jumps) == (6, 0)
    assert (trip.moving_s, trip.stationary_s) == (40.0, 0.0)


def test_a_fast_consistent_run_after_a_teleport_is_accepted_as_a_relocation() -> None:
    """Three fixes 300 m and 10 s apart, 20 km off the track, are used; the teleport is not."""
    before = drive(0, 0, 10, 100, 3)
    after = drive(30, 20_000, 10, 300, 3)
    trip = trip_of([*before, *after])
    assert (trip.used, trip.jumps) == (6, 0)
    assert trip.driven_m == pytest.approx(200.0 + 600.0, abs=1e-6)
    # 20 s before and 20 s after; the 10 s of the teleport count as neither.
    assert (trip.moving_s, trip.stationary_s) == (40.0, 0.0)


def test_jitter_while_parked_for_ten_minutes_adds_nothing_and_is_stationary() -> None:
    """±5 m of jitter every 30 s for 10 minutes is 0 m driven and 600 s standing still."""
    trip = trip_of(parked(0, 0, minutes=10))
    assert trip.driven_m == 0.0
    assert (trip.moving_s, trip.stationary_s, trip.idle_s) == (0.0, 600.0, 600.0)
    assert (trip.used, trip.jumps) == (21, 0)


def test_idle_leaves_out_the_time_inside_visits_counting_overlaps_once() -> None:
    """Visits 60–240 s and 180–300 s merge to 240 s, so 600 s parked leave 360 s idle."""
    visits = [(at(60), at(240)), (at(180), at(300)), (at(-900), at(-600))]
    trip = trip_of(parked(0, 0, minutes=10), visits)
    assert trip.stationary_s == 600.0
    assert trip.idle_s == 360.0


def test_a_visit_over_a_drive_subtracts_only_its_stationary_part() -> None:
    """A 60 s drive then 150 s parked, with a visit 0–75 s, leave 150 - 15 = 135 s idle."""
    fixes = [*drive(0, 0, 10, 100, 7), *parked(90, 600, minutes=2, jitter_m=0.0)]
    trip = trip_of(fixes, [(at(0), at(75))])
    assert (trip.moving_s, trip.stationary_s, trip.idle_s) == (60.0, 150.0, 135.0)


def test_a_visit_ending_before_it_starts_is_refused() -> None:
    """A backwards visit raises a ProblemError instead of lowering idle time."""
    with pytest.raises(ProblemError, match="expected an end"):
        trip_of(parked(0, 0, minutes=1), [(at(60), at(0))])


def test_inaccurate_fixes_are_dropped_and_counted() -> None:
    """Fixes reporting 500 m accuracy are not used, however far off they are."""
    fixes = [fix(0, 0), fix(10, 3000, accuracy_m=500), fix(20, 200, accuracy_m=20)]
    trip = trip_of(fixes)
    assert trip.driven_m == pytest.approx(200.0, abs=1e-6)
    assert (trip.fixes, trip.used, trip.jumps, trip.inaccurate) == (3, 2, 0, 1)


def test_a_gap_above_max_gap_counts_as_neither_moving_nor_stationary() -> None:
    """Ten silent minutes between two fixes add their distance but no time."""
    trip = trip_of([fix(0, 0), fix(600, 3000)])
    assert trip.driven_m == pytest.approx(3000.0, abs=1e-6)
    assert (trip.moving_s, trip.stationary_s) == (0.0, 0.0)
    assert trip_of([fix(0, 0), fix(600, 0)], rules=TripRules(max_gap_s=900)).stationary_s == 600


def test_unsorted_input_is_sorted_and_same_time_duplicates_keep_the_first() -> None:
    """A shuffled drive measures as the ordered one; a second fix at a taken time is ignored."""
    ordered = drive(0, 0, 10, 100, 11)
    shuffled = [ordered[i] for i in (3, 0, 10, 7, 1, 9, 2, 5, 8, 4, 6)]
    assert trip_of(shuffled) == trip_of(ordered)
    trip = trip_of([*ordered, fix(50, 9000)])
    assert trip.driven_m == pytest.approx(1000.0, abs=1e-6)
    assert (trip.fixes, trip.used, trip.jumps, trip.inaccurate) == (12, 11, 0, 0)
