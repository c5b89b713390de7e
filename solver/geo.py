"""Distances between points: great-circle on the WGS84 sphere, and Euclidean in the plane.

Pure functions, no I/O. The matrix variants are vectorised with numpy and return float metres;
rounding to integers is the matrix provider's decision, not this module's.

H3 is deliberately absent here: a distance needs no grid. It enters where cells pay off, in
speed models keyed by cell and hour of week (see :mod:`solver.matrix`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

EARTH_RADIUS_M = 6_371_008.8
"""Mean Earth radius (IUGG), metres: the sphere the great-circle distances are measured on."""


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres between two WGS84 points given in degrees."""
    phi1 = math.radians(lat1)
    phi2 = math.radians(lat2)
    dphi = phi2 - phi1
    dlam = math.radians(lon2 - lon1)
    h = math.sin(dphi / 2.0) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlam / 2.0) ** 2
    # min() guards asin against a rounding error that lands h a hair above 1 for antipodes.
    return 2.0 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def haversine_pairs_m(
    lat1: NDArray[np.float64],
    lon1: NDArray[np.float64],
    lat2: NDArray[np.float64],
    lon2: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Element-wise great-circle distances, metres, between equally shaped arrays of degrees."""
    phi1 = np.radians(lat1)
    phi2 = np.radians(lat2)
    dphi = phi2 - phi1
    dlam = np.radians(lon2 - lon1)
    h = np.sin(dphi / 2.0) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(dlam / 2.0) ** 2
    out: NDArray[np.float64] = 2.0 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))
    return out


def haversine_matrix_m(lats: Sequence[float], lons: Sequence[float]) -> NDArray[np.float64]:
    """All pairwise great-circle distances, metres: ``out[i, j]`` from point i to point j.

    ``lats`` and ``lons`` are degrees and must have the same length; the diagonal is 0.
    """
    lat = np.asarray(lats, dtype=np.float64)
    lon = np.asarray(lons, dtype=np.float64)
    return haversine_pairs_m(lat[:, None], lon[:, None], lat[None, :], lon[None, :])


def euclidean_m(x1: float, y1: float, x2: float, y2: float) -> float:
    """Straight-line distance in the plane; coordinates in metres."""
    dx = x2 - x1
    dy = y2 - y1
    # sqrt of the exact sum (not hypot) so integer coordinates give a correctly rounded
    # result, which keeps floor-truncated benchmark distances exact.
    return math.sqrt(dx * dx + dy * dy)


def euclidean_matrix_m(xs: Sequence[float], ys: Sequence[float]) -> NDArray[np.float64]:
    """All pairwise planar distances, metres: ``out[i, j]`` from point i to point j."""
    x = np.asarray(xs, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    dx = x[None, :] - x[:, None]
    dy = y[None, :] - y[:, None]
    out: NDArray[np.float64] = np.sqrt(dx * dx + dy * dy)
    return out
