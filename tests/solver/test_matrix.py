"""Travel matrices from the providers: rounding, speeds, caching and the points they accept."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from numpy.typing import NDArray

from schemas.planning import Location
from solver.errors import MatrixError
from solver.geo import haversine_m
from solver.matrix import (
    ConstantSpeed,
    EuclideanProvider,
    GreatCircleProvider,
    PrecomputedProvider,
    TravelMatrix,
    trip_durations,
)

BERLIN = Location(lat=52.5200, lon=13.4050)
POTSDAM = Location(lat=52.3906, lon=13.0645)
SPANDAU = Location(lat=52.5350, lon=13.1970)


class RushHour:
    """A speed model that halves the speed for departures in the first hour of the day."""

    def __init__(self) -> None:
        self.departures: list[int] = []

    def speed_matrix_mps(
        self, points: Sequence[Location], depart_epoch_s: int
    ) -> NDArray[np.float64]:
        self.departures.append(depart_epoch_s)
        speed = 5.0 if depart_epoch_s % 86_400 < 3_600 else 10.0
        return np.full((len(points), len(points)), speed)


def test_great_circle_distance_is_scaled_by_circuity_and_timed_by_speed() -> None:
    """Distance is round(haversine x circuity) and duration round(distance / speed)."""
    provider = GreatCircleProvider(speed=ConstantSpeed(10.0), circuity=1.3)
    matrix = provider.matrix([BERLIN, POTSDAM], depart_epoch_s=0)
    expected_m = round(
        haversine_m(BERLIN.lat or 0, BERLIN.lon or 0, POTSDAM.lat or 0, POTSDAM.lon or 0) * 1.3
    )
    assert matrix.distance_m == [[0, expected_m], [expected_m, 0]]
    assert matrix.duration_s[0][1] == round(expected_m / 10.0)


def test_speed_model_sees_the_departure_time() -> None:
    """A time-dependent speed model is asked with the departure instant and changes durations."""
    model = RushHour()
    provider = GreatCircleProvider(speed=model)
    early = provider.matrix([BERLIN, POTSDAM], depart_epoch_s=1_800)
    late = provider.matrix([BERLIN, POTSDAM], depart_epoch_s=7_200)
    assert model.departures == [1_800, 7_200]
    assert early.duration_s[0][1] == pytest.approx(2 * late.duration_s[0][1], abs=1)
    assert early.distance_m == late.distance_m


def test_repeated_points_are_computed_once_and_cached_across_calls() -> None:
    """Duplicates share one computation, and a second request is answered from the cache."""
    provider = GreatCircleProvider()
    first = provider.matrix([BERLIN, POTSDAM, BERLIN, SPANDAU], depart_epoch_s=0)
    assert provider.cache_stats.misses == 6  # 3 distinct points, 6 ordered pairs
    assert first.distance_m[0][2] == 0
    assert first.distance_m[2][1] == first.distance_m[0][1]

    again = provider.matrix([SPANDAU, BERLIN], depart_epoch_s=0)

    assert provider.cache_stats.misses == 6
    assert provider.cache_stats.hits == 2
    assert again.distance_m[0][1] == first.distance_m[3][0]


def test_large_requests_bypass_the_cache_with_the_same_answer() -> None:
    """A matrix bigger than the cache is computed whole, identical to the cached path."""
    points = [BERLIN, POTSDAM, SPANDAU]
    cached = GreatCircleProvider().matrix(points, depart_epoch_s=0)
    bypass = GreatCircleProvider(max_cached_pairs=4)
    assert bypass.matrix(points, depart_epoch_s=0) == cached
    assert bypass.cache_stats.misses == 0


def test_euclidean_floor_truncates_as_the_dimacs_convention_needs() -> None:
    """With floor rounding, sqrt(2) x 10 m becomes 14 m, and durations equal distances at 1 m/s."""
    matrix = EuclideanProvider(rounding="floor").matrix(
        [Location(x_m=0, y_m=0), Location(x_m=10, y_m=10)], depart_epoch_s=0
    )
    assert matrix.distance_m == [[0, 14], [14, 0]]
    assert matrix.duration_s == matrix.distance_m


def test_providers_reject_the_other_kind_of_point() -> None:
    """Planar points go to the Euclidean provider and geographic ones to the great-circle one."""
    with pytest.raises(MatrixError, match="expected geographic points"):
        GreatCircleProvider().matrix([BERLIN, Location(x_m=1, y_m=2)], depart_epoch_s=0)
    with pytest.raises(MatrixError, match="expected planar points"):
        EuclideanProvider().matrix([BERLIN], depart_epoch_s=0)


def test_invalid_speeds_and_circuity_are_refused() -> None:
    """A non-positive speed or a circuity below 1 is a configuration error, said plainly."""
    with pytest.raises(MatrixError, match="expected a positive finite speed_mps, got 0"):
        ConstantSpeed(0.0)
    with pytest.raises(MatrixError, match="expected circuity >= 1"):
        GreatCircleProvider(circuity=0.8)


def test_precomputed_provider_serves_any_subset_of_its_points() -> None:
    """A matrix fetched elsewhere is re-indexed for the points asked, in their order."""
    matrix = TravelMatrix(distance_m=[[0, 5], [7, 0]], duration_s=[[0, 50], [70, 0]])
    provider = PrecomputedProvider([BERLIN, POTSDAM], matrix)
    swapped = provider.matrix([POTSDAM, BERLIN], depart_epoch_s=0)
    assert swapped.distance_m == [[0, 7], [5, 0]]
    with pytest.raises(MatrixError, match="expected a point the matrix was built for"):
        provider.matrix([SPANDAU], depart_epoch_s=0)


def test_a_misshapen_matrix_is_refused() -> None:
    """A matrix with a short row is reported with the row and the sizes involved."""
    bad = TravelMatrix(distance_m=[[0, 1], [1]], duration_s=[[0, 1], [1, 0]])
    with pytest.raises(MatrixError, match="expected distance_m row 1 with 2 values, got 1"):
        PrecomputedProvider([BERLIN, POTSDAM], bad)


def test_trips_cost_what_the_matrix_says_whichever_way_they_are_asked() -> None:
    """A chain of legs (with a repeated point and a zero-length trip) costs the matrix's
    durations, from the great-circle provider's own path and from the generic one."""
    chain = [(BERLIN, SPANDAU), (SPANDAU, POTSDAM), (POTSDAM, BERLIN), (BERLIN, BERLIN)]
    model = RushHour()
    great = GreatCircleProvider(speed=model)
    full = great.matrix([BERLIN, SPANDAU, POTSDAM], depart_epoch_s=1_800).duration_s
    expected = [full[0][1], full[1][2], full[2][0], 0]
    own = trip_durations(great, chain, depart_epoch_s=1_800)
    assert own == pytest.approx(expected, abs=1)
    assert own[0] > 0
    assert model.departures[-1] == 1_800
    generic = PrecomputedProvider(
        [BERLIN, SPANDAU, POTSDAM],
        great.matrix([BERLIN, SPANDAU, POTSDAM], depart_epoch_s=1_800),
    )
    assert trip_durations(generic, chain, depart_epoch_s=0) == expected
    planar = Location(x_m=0.0, y_m=0.0)
    with pytest.raises(MatrixError, match="geographic"):
        trip_durations(great, [(BERLIN, planar)], depart_epoch_s=0)
