"""Great-circle and planar distances."""

from __future__ import annotations

import math

import pytest

from solver.geo import (
    EARTH_RADIUS_M,
    euclidean_m,
    euclidean_matrix_m,
    haversine_m,
    haversine_matrix_m,
)


def test_one_degree_of_latitude_is_an_arc_of_the_mean_earth_radius() -> None:
    """One degree north along a meridian measures R * pi / 180, about 111.2 km."""
    assert haversine_m(52.0, 13.0, 53.0, 13.0) == pytest.approx(EARTH_RADIUS_M * math.pi / 180)


def test_haversine_matches_a_known_city_pair() -> None:
    """Paris to London measures about 343.6 km on the sphere."""
    assert haversine_m(48.8566, 2.3522, 51.5074, -0.1278) == pytest.approx(343_560, rel=2e-3)


def test_haversine_is_symmetric_and_zero_on_the_spot() -> None:
    """The distance does not depend on direction and vanishes between equal points."""
    assert haversine_m(1.0, 2.0, 3.0, 4.0) == haversine_m(3.0, 4.0, 1.0, 2.0)
    assert haversine_m(45.0, 7.0, 45.0, 7.0) == 0.0


def test_antipodes_are_half_a_circumference_apart() -> None:
    """Opposite points are pi * R apart, without a math domain error from rounding."""
    assert haversine_m(0.0, 0.0, 0.0, 180.0) == pytest.approx(math.pi * EARTH_RADIUS_M)


def test_haversine_matrix_agrees_with_the_scalar_function() -> None:
    """Every cell of the vectorised matrix equals the scalar distance of its pair."""
    lats = [52.52, 48.14, 50.11]
    lons = [13.40, 11.58, 8.68]
    matrix = haversine_matrix_m(lats, lons)
    for i in range(3):
        for j in range(3):
            assert matrix[i, j] == pytest.approx(haversine_m(lats[i], lons[i], lats[j], lons[j]))


def test_euclidean_distances_are_exact_for_integer_coordinates() -> None:
    """A 3-4-5 triangle gives exactly 5, scalar and vectorised."""
    assert euclidean_m(0, 0, 3, 4) == 5.0
    assert euclidean_matrix_m([0, 3], [0, 4]).tolist() == [[0.0, 5.0], [5.0, 0.0]]
