"""Travel matrices: how far and how long from every point to every other.

A :class:`MatrixProvider` turns a list of points into a :class:`TravelMatrix` of integer metres
and seconds. The protocol is a plain synchronous call with no I/O behind it in this package:

* :class:`GreatCircleProvider` — great-circle distance times a circuity factor (roads are not
  straight), driven at the speed a :class:`SpeedModel` gives. The default :class:`ConstantSpeed`
  is one configured speed; a model learned per H3 cell and hour of week implements the same
  protocol (it receives the points and the departure instant, and returns a speed for every
  pair). Distances are cached per point pair, so repeated points are never recomputed.
* :class:`EuclideanProvider` — straight lines in the plane, for benchmarks and tests.
* :class:`PrecomputedProvider` — a matrix fetched elsewhere (say, from an OSRM server by async
  code at the edge of the system) for a known list of points, served to the pure solver.

A provider that must do I/O does it before the solver runs and hands over a
:class:`PrecomputedProvider`; that is what keeps this protocol free of ``async``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

import msgspec
import numpy as np
from cachetools import LRUCache
from numpy.typing import NDArray

from schemas.planning import Location
from solver.errors import MatrixError
from solver.geo import euclidean_matrix_m, haversine_m, haversine_pairs_m

Rounding = Literal["round", "floor"]


class TravelMatrix(msgspec.Struct, frozen=True, kw_only=True):
    """Square matrices over n points: ``distance_m[i][j]`` and ``duration_s[i][j]`` from i to j.

    Values are non-negative integers; the diagonal is 0. Build one through a provider or check a
    hand-made one with :func:`check_matrix`.
    """

    distance_m: list[list[int]]
    duration_s: list[list[int]]

    @property
    def size(self) -> int:
        """Number of points the matrix covers."""
        return len(self.distance_m)


class MatrixProvider(Protocol):
    """Anything that can give a travel matrix for a list of points.

    ``matrix(points, depart_epoch_s=t)`` returns a :class:`TravelMatrix` whose row and column
    ``i`` is ``points[i]``; ``t`` is when the trips start (about), for time-dependent speeds.
    It raises :class:`~solver.errors.MatrixError` for points it cannot handle.
    """

    def matrix(self, points: Sequence[Location], *, depart_epoch_s: int) -> TravelMatrix:
        """Return distances and durations between every pair of ``points``."""
        ...


@runtime_checkable
class TripProvider(MatrixProvider, Protocol):
    """A provider with a cheaper answer for a few separate trips than a whole matrix.

    ``durations(pairs, depart_epoch_s=t)`` returns the driving seconds of each ``(from, to)``
    pair, what :meth:`matrix` would give for it (up to a last rounding step). The live ETA
    model asks for a chain of legs on every fix; a matrix would compute n² trips to use n.
    """

    def durations(
        self, pairs: Sequence[tuple[Location, Location]], *, depart_epoch_s: int
    ) -> list[int]:
        """Return the driving seconds of each pair, in order."""
        ...


def trip_durations(
    provider: MatrixProvider,
    pairs: Sequence[tuple[Location, Location]],
    *,
    depart_epoch_s: int,
) -> list[int]:
    """Driving seconds of each ``(from, to)`` pair: the provider's own :meth:`durations` where
    it has one, else read from one matrix over the pairs' points."""
    if isinstance(provider, TripProvider):
        return provider.durations(pairs, depart_epoch_s=depart_epoch_s)
    unique, index_of = _deduplicate([p for pair in pairs for p in pair])
    duration = provider.matrix(unique, depart_epoch_s=depart_epoch_s).duration_s
    return [duration[index_of[2 * k]][index_of[2 * k + 1]] for k in range(len(pairs))]


class SpeedModel(Protocol):
    """Average driving speed between points, which may depend on place and time of departure.

    ``speed_matrix_mps(points, depart_epoch_s)`` returns an ``n x n`` array of speeds in m/s,
    all finite and positive (the diagonal is ignored). A learned model would look up the H3
    cells of the points and the hour of week of ``depart_epoch_s``.
    """

    def speed_matrix_mps(
        self, points: Sequence[Location], depart_epoch_s: int
    ) -> NDArray[np.float64]:
        """Return the speed of the trip from ``points[i]`` to ``points[j]`` at ``[i, j]``."""
        ...


class ConstantSpeed:
    """The same speed everywhere at every hour: the fallback when nothing has been learned."""

    def __init__(self, speed_mps: float = 8.0) -> None:
        if not (math.isfinite(speed_mps) and speed_mps > 0.0):
            raise MatrixError(f"expected a positive finite speed_mps, got {speed_mps}")
        self.speed_mps = speed_mps

    def __repr__(self) -> str:
        return f"ConstantSpeed(speed_mps={self.speed_mps})"

    def speed_matrix_mps(
        self, points: Sequence[Location], depart_epoch_s: int
    ) -> NDArray[np.float64]:
        """Return ``speed_mps`` for every pair."""
        return np.full((len(points), len(points)), self.speed_mps, dtype=np.float64)


class CacheStats(msgspec.Struct, kw_only=True):
    """How often the pair cache answered (``hits``) or a distance had to be computed."""

    hits: int = 0
    misses: int = 0


class GreatCircleProvider:
    """Road distances estimated as great-circle distance x ``circuity``, timed by a speed model.

    ``distance_m = round(haversine * circuity)`` and ``duration_s = round(distance_m / speed)``.
    Great-circle distances are kept in a least-recently-used cache of at most
    ``max_cached_pairs`` point pairs; a request larger than the cache bypasses it and computes
    the whole matrix at once, which is faster than churning the cache.
    """

    def __init__(
        self,
        *,
        speed: SpeedModel | None = None,
        circuity: float = 1.3,
        max_cached_pairs: int = 250_000,
    ) -> None:
        if not (math.isfinite(circuity) and circuity >= 1.0):
            raise MatrixError(f"expected circuity >= 1 (roads are never shorter), got {circuity}")
        if max_cached_pairs < 0:
            raise MatrixError(f"expected max_cached_pairs >= 0, got {max_cached_pairs}")
        self.speed: SpeedModel = speed if speed is not None else ConstantSpeed()
        self.circuity = circuity
        self.max_cached_pairs = max_cached_pairs
        self.cache_stats = CacheStats()
        self._cache: LRUCache[tuple[Location, Location], float] = LRUCache(
            maxsize=max(max_cached_pairs, 1)
        )

    def matrix(self, points: Sequence[Location], *, depart_epoch_s: int) -> TravelMatrix:
        """Return the travel matrix over ``points``, which must all be geographic."""
        for i, point in enumerate(points):
            if not point.is_geographic:
                raise MatrixError(
                    f"expected geographic points (lat/lon), got planar x_m/y_m at index {i}"
                )
        unique, index_of = _deduplicate(points)
        arc_m = self._great_circle(unique)
        distance = np.rint(arc_m * self.circuity)
        # A copy: the diagonal is overwritten below, and the model's array is not ours to change.
        speed = np.array(self.speed.speed_matrix_mps(unique, depart_epoch_s), dtype=np.float64)
        _check_speeds(speed, len(unique))
        np.fill_diagonal(speed, 1.0)
        duration = np.rint(distance / speed)
        return _expand(distance, duration, index_of)

    def durations(
        self, pairs: Sequence[tuple[Location, Location]], *, depart_epoch_s: int
    ) -> list[int]:
        """Return the driving seconds of each ``(from, to)`` pair, as :meth:`matrix` would."""
        unique, index_of = _deduplicate([p for pair in pairs for p in pair])
        speed = self.speed.speed_matrix_mps(unique, depart_epoch_s)
        _check_speeds(speed, len(unique))
        out: list[int] = []
        for k, (a, b) in enumerate(pairs):
            if a.lat is None or a.lon is None or b.lat is None or b.lon is None:
                raise MatrixError(f"expected geographic points (lat/lon), got planar in pair {k}")
            i, j = index_of[2 * k], index_of[2 * k + 1]
            if i == j:
                out.append(0)
                continue
            distance = round(haversine_m(a.lat, a.lon, b.lat, b.lon) * self.circuity)
            out.append(round(distance / float(speed[i, j])))
        return out

    def _great_circle(self, unique: Sequence[Location]) -> NDArray[np.float64]:
        n = len(unique)
        lat = np.array([p.lat for p in unique], dtype=np.float64)
        lon = np.array([p.lon for p in unique], dtype=np.float64)
        if n * n > self.max_cached_pairs:
            return haversine_pairs_m(lat[:, None], lon[:, None], lat[None, :], lon[None, :])
        out = np.zeros((n, n), dtype=np.float64)
        missing_i: list[int] = []
        missing_j: list[int] = []
        for i, a in enumerate(unique):
            for j, b in enumerate(unique):
                if i == j:
                    continue
                cached = self._cache.get((a, b))
                if cached is None:
                    missing_i.append(i)
                    missing_j.append(j)
                else:
                    out[i, j] = cached
        self.cache_stats.hits += n * (n - 1) - len(missing_i)
        self.cache_stats.misses += len(missing_i)
        if missing_i:
            mi = np.array(missing_i)
            mj = np.array(missing_j)
            computed = haversine_pairs_m(lat[mi], lon[mi], lat[mj], lon[mj])
            out[mi, mj] = computed
            for i, j, d in zip(missing_i, missing_j, computed.tolist(), strict=True):
                self._cache[(unique[i], unique[j])] = d
        return out


class EuclideanProvider:
    """Straight-line distances between planar points, driven at one constant speed.

    ``distance_m`` is the Euclidean distance rounded by ``rounding`` (``"floor"`` truncates,
    as the DIMACS benchmark convention needs); ``duration_s`` is ``distance_m / speed_mps``
    rounded the same way, so with ``speed_mps=1`` durations equal distances exactly.
    """

    def __init__(self, *, speed_mps: float = 1.0, rounding: Rounding = "round") -> None:
        if not (math.isfinite(speed_mps) and speed_mps > 0.0):
            raise MatrixError(f"expected a positive finite speed_mps, got {speed_mps}")
        self.speed_mps = speed_mps
        self.rounding: Rounding = rounding

    def matrix(self, points: Sequence[Location], *, depart_epoch_s: int) -> TravelMatrix:
        """Return the travel matrix over ``points``, which must all be planar."""
        for i, point in enumerate(points):
            if point.x_m is None or point.y_m is None:
                raise MatrixError(f"expected planar points (x_m/y_m), got lat/lon at index {i}")
        unique, index_of = _deduplicate(points)
        xs = [p.x_m for p in unique if p.x_m is not None]
        ys = [p.y_m for p in unique if p.y_m is not None]
        round_ = np.floor if self.rounding == "floor" else np.rint
        distance = round_(euclidean_matrix_m(xs, ys))
        duration = round_(distance / self.speed_mps)
        return _expand(distance, duration, index_of)


class PrecomputedProvider:
    """Serves a matrix computed elsewhere for a fixed list of points.

    Asked for any sub-list (in any order, with repeats) of the points it was built with, it
    returns the matching rows and columns; ``depart_epoch_s`` is ignored. Asking for a point it
    does not know raises :class:`~solver.errors.MatrixError`.
    """

    def __init__(self, points: Sequence[Location], matrix: TravelMatrix) -> None:
        check_matrix(matrix, len(points))
        self._index = {p: i for i, p in enumerate(points)}
        self._matrix = matrix

    def matrix(self, points: Sequence[Location], *, depart_epoch_s: int) -> TravelMatrix:
        """Return the stored values for ``points``."""
        rows: list[int] = []
        for k, point in enumerate(points):
            i = self._index.get(point)
            if i is None:
                raise MatrixError(f"expected a point the matrix was built for, got {point} at {k}")
            rows.append(i)
        dist = self._matrix.distance_m
        dur = self._matrix.duration_s
        return TravelMatrix(
            distance_m=[[dist[i][j] for j in rows] for i in rows],
            duration_s=[[dur[i][j] for j in rows] for i in rows],
        )


def check_matrix(matrix: TravelMatrix, n: int) -> None:
    """Raise :class:`MatrixError` unless ``matrix`` is ``n x n`` with non-negative values."""
    for name, rows in (("distance_m", matrix.distance_m), ("duration_s", matrix.duration_s)):
        if len(rows) != n:
            raise MatrixError(f"expected {name} with {n} rows, got {len(rows)}")
        for i, row in enumerate(rows):
            if len(row) != n:
                raise MatrixError(f"expected {name} row {i} with {n} values, got {len(row)}")
            low = min(row, default=0)
            if low < 0:
                raise MatrixError(f"expected non-negative {name}, got {low} in row {i}")


def _deduplicate(points: Sequence[Location]) -> tuple[list[Location], list[int]]:
    """Return the distinct points, and for every input point the index of its distinct twin."""
    position: dict[Location, int] = {}
    unique: list[Location] = []
    index_of: list[int] = []
    for point in points:
        k = position.get(point)
        if k is None:
            k = position[point] = len(unique)
            unique.append(point)
        index_of.append(k)
    return unique, index_of


def _check_speeds(speed: NDArray[np.float64], n: int) -> None:
    if speed.shape != (n, n):
        raise MatrixError(f"expected a {n}x{n} speed matrix, got shape {speed.shape}")
    off_diagonal = speed[~np.eye(n, dtype=bool)]
    if off_diagonal.size and not (np.all(np.isfinite(off_diagonal)) and off_diagonal.min() > 0):
        raise MatrixError(
            f"expected positive finite speeds, got a minimum of {off_diagonal.min()} m/s"
        )


def _expand(
    distance: NDArray[np.float64], duration: NDArray[np.float64], index_of: list[int]
) -> TravelMatrix:
    """Spread a matrix over distinct points back onto the (possibly repeating) input points."""
    idx = np.asarray(index_of, dtype=np.intp)
    grid = np.ix_(idx, idx)
    return TravelMatrix(
        distance_m=distance[grid].astype(np.int64).tolist(),
        duration_s=duration[grid].astype(np.int64).tolist(),
    )
