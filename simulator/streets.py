"""Streets for the simulated drivers: a small street graph, the nearest street to a place, and
the shortest way along the streets from one place to another.

Pure: no I/O beyond reading the map once. The map is a list of junctions and of the ways
between them, each way a polyline (``simulator/data/berlin-streets.json.gz``, built by
:mod:`simulator.streetbuild` from the shapes of Berlin's bus and tram lines; its ``about``
names the source and the licence). Distances are measured on a local flat projection around
the map's centre: within a city of 20 km that is off by less than a metre in a thousand.

A place off the streets joins them at the nearest point of a way's polyline (a corner of it):
the way from there runs along that way to one of its ends, on through the graph (Dijkstra with
the straight-line distance as the A* bound), and off the last way at the corner nearest the
destination.
"""

from __future__ import annotations

import gzip
import heapq
import itertools
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Final

from simulator.driving import EARTH_RADIUS_M, Point

E5: Final = 100_000
"""Coordinates are stored as integers of 1e-5 degrees (about a metre)."""
GRID_M: Final = 150.0
"""The side of the cells corners are looked up in."""
CORNER_M: Final = 40.0
"""Straight pieces longer than this get corners in between: a place joins the streets at a
corner, so no more than half this from where the nearest street really is."""
ROUTE_CACHE: Final = 4096
"""Ways between corners remembered: a re-plan asks for the same legs again."""


class Flat:
    """A local flat projection around (``lat0``, ``lon0``), in metres east and north."""

    def __init__(self, lat0: float, lon0: float) -> None:
        self.lat0, self.lon0 = lat0, lon0
        self.kx = math.radians(1.0) * EARTH_RADIUS_M * math.cos(math.radians(lat0))
        self.ky = math.radians(1.0) * EARTH_RADIUS_M

    def xy(self, lat: float, lon: float) -> tuple[float, float]:
        return ((lon - self.lon0) * self.kx, (lat - self.lat0) * self.ky)

    def latlon(self, x: float, y: float) -> tuple[float, float]:
        return (self.lat0 + y / self.ky, self.lon0 + x / self.kx)


@dataclass(frozen=True, slots=True)
class Corner:
    """Corner ``index`` of way ``way``'s polyline, ``from_start_m`` along it from its start."""

    way: int
    index: int
    from_start_m: float


@dataclass(frozen=True, slots=True)
class Way:
    """A street between junctions ``start`` and ``end``, its polyline's corners in metres
    (``xs``, ``ys``, both ends included) and the distance of each from the start."""

    start: int
    end: int
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    along_m: tuple[float, ...]

    @property
    def length_m(self) -> float:
        return self.along_m[-1]


class StreetMap:
    """A street graph to route simulated drivers on (see the module docstring).

    ``data`` is the map file's content: ``origin`` (the projection's centre, degrees),
    ``nodes`` (junctions, flat ``[lat, lon, …]`` in 1e-5 degrees) and ``ways`` (``[start,
    end, lat, lon, …]``: the junction numbers and the interior corners in 1e-5 degrees).
    """

    def __init__(self, data: dict[str, Any]) -> None:
        self.about: dict[str, Any] = dict(data.get("about", {}))
        lat0, lon0 = data["origin"]
        self.flat = Flat(float(lat0), float(lon0))
        """The projection the ways' corners are in (metres east and north of ``origin``)."""
        flat = data["nodes"]
        self.nodes: list[tuple[float, float]] = [
            self.flat.xy(flat[i] / E5, flat[i + 1] / E5) for i in range(0, len(flat), 2)
        ]
        self.ways: list[Way] = []
        self.links: list[list[tuple[int, int, float]]] = [[] for _ in self.nodes]
        for raw in data["ways"]:
            start, end = int(raw[0]), int(raw[1])
            inner = [self.flat.xy(raw[i] / E5, raw[i + 1] / E5) for i in range(2, len(raw), 2)]
            points = dense([self.nodes[start], *inner, self.nodes[end]], CORNER_M)
            along = [0.0]
            for (x0, y0), (x1, y1) in itertools.pairwise(points):
                along.append(along[-1] + math.hypot(x1 - x0, y1 - y0))
            way = Way(
                start,
                end,
                tuple(p[0] for p in points),
                tuple(p[1] for p in points),
                tuple(along),
            )
            number = len(self.ways)
            self.ways.append(way)
            if start != end:
                self.links[start].append((end, number, way.length_m))
                self.links[end].append((start, number, way.length_m))
        if not self.ways:
            raise ValueError("the street map has no streets")
        self._grid: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for number, way in enumerate(self.ways):
            for index, (x, y) in enumerate(zip(way.xs, way.ys, strict=True)):
                self._grid.setdefault(self._cell(x, y), []).append((number, index))
        self._routes: dict[tuple[int, int, int, int], tuple[tuple[float, float], ...]] = {}

    @classmethod
    def read(cls, path: Path) -> StreetMap:
        """The map in the gzipped JSON file at ``path``."""
        with gzip.open(path, "rt", encoding="utf-8") as f:
            return cls(json.load(f))

    # --- projection -------------------------------------------------------------------------

    def _point(self, x: float, y: float) -> Point:
        return Point(*self.flat.latlon(x, y))

    def _cell(self, x: float, y: float) -> tuple[int, int]:
        return (math.floor(x / GRID_M), math.floor(y / GRID_M))

    # --- lookups ----------------------------------------------------------------------------

    def nearest(self, point: Point) -> Corner:
        """The corner of a street nearest ``point`` (searching outwards ring by ring)."""
        x, y = self.flat.xy(point.lat, point.lon)
        cx, cy = self._cell(x, y)
        best: tuple[float, int, int] | None = None
        ring = 0
        while True:
            for key in _ring(cx, cy, ring):
                for number, index in self._grid.get(key, ()):
                    way = self.ways[number]
                    d = math.hypot(way.xs[index] - x, way.ys[index] - y)
                    if best is None or d < best[0]:
                        best = (d, number, index)
            # Every corner not yet seen is at least ``ring`` whole cells away.
            if best is not None and best[0] <= ring * GRID_M:
                break
            ring += 1
        _, number, index = best
        return Corner(number, index, self.ways[number].along_m[index])

    def snap(self, point: Point) -> Point:
        """The street corner nearest ``point``: where an address on this map really is."""
        corner = self.nearest(point)
        way = self.ways[corner.way]
        return self._point(way.xs[corner.index], way.ys[corner.index])

    def route(self, origin: Point, destination: Point) -> tuple[Point, ...]:
        """The shortest way along the streets from ``origin`` to ``destination``, as a polyline
        that begins at ``origin`` and ends at ``destination`` (each joined to its nearest
        street corner by a straight piece)."""
        a, b = self.nearest(origin), self.nearest(destination)
        key = (a.way, a.index, b.way, b.index)
        path = self._routes.get(key)
        if path is None:
            path = self._shortest(a, b)
            if len(self._routes) >= ROUTE_CACHE:
                self._routes.pop(next(iter(self._routes)))
            self._routes[key] = path
        points = [origin, *(self._point(x, y) for x, y in path), destination]
        kept = [points[0]]
        for p in points[1:]:
            if p != kept[-1]:
                kept.append(p)
        return tuple(kept)

    # --- the search -------------------------------------------------------------------------

    def _piece(self, number: int, first: int, last: int) -> list[tuple[float, float]]:
        """Way ``number``'s corners from index ``first`` to ``last`` (either direction)."""
        way = self.ways[number]
        step = 1 if last >= first else -1
        return [(way.xs[i], way.ys[i]) for i in range(first, last + step, step)]

    def _shortest(self, a: Corner, b: Corner) -> tuple[tuple[float, float], ...]:
        way_a, way_b = self.ways[a.way], self.ways[b.way]
        tx, ty = way_b.xs[b.index], way_b.ys[b.index]
        # Leaving corner a: along its way to either end. Arriving at corner b: from either end.
        sources = {way_a.start: a.from_start_m, way_a.end: way_a.length_m - a.from_start_m}
        if way_a.start == way_a.end:
            sources = {way_a.start: min(sources.values())}
        exits = {way_b.start: b.from_start_m, way_b.end: way_b.length_m - b.from_start_m}
        if way_b.start == way_b.end:
            exits = {way_b.start: min(exits.values())}
        best_m = math.inf
        leave: int | None = None  # the junction the path leaves the graph at
        if a.way == b.way:
            best_m = abs(a.from_start_m - b.from_start_m)
        cost: dict[int, float] = {}
        came: dict[int, tuple[int, int] | None] = {}
        heap: list[tuple[float, float, int]] = []
        for node, metres in sources.items():
            if metres < cost.get(node, math.inf):
                cost[node], came[node] = metres, None
                heapq.heappush(heap, (metres + self._to(node, tx, ty), metres, node))
        done: set[int] = set()
        while heap:
            bound, metres, node = heapq.heappop(heap)
            if bound >= best_m:
                break
            if node in done or metres > cost[node]:
                continue
            done.add(node)
            if node in exits and metres + exits[node] < best_m:
                best_m, leave = metres + exits[node], node
            for other, number, length in self.links[node]:
                total = metres + length
                if total < cost.get(other, math.inf):
                    cost[other], came[other] = total, (node, number)
                    heapq.heappush(heap, (total + self._to(other, tx, ty), total, other))
        if leave is None:  # the same way, or no way through: along the way or straight
            if a.way == b.way:
                return tuple(self._piece(a.way, a.index, b.index))
            return ((way_a.xs[a.index], way_a.ys[a.index]), (tx, ty))
        # Back from the exit junction to the source one, way by way.
        node = leave
        tail = self._piece(b.way, 0 if node == way_b.start else len(way_b.xs) - 1, b.index)
        middle: list[tuple[float, float]] = []
        while (step := came[node]) is not None:
            previous, number = step
            way = self.ways[number]
            forward = way.start == previous and way.end == node
            piece = self._piece(number, 0, len(way.xs) - 1)
            middle = (piece if forward else piece[::-1]) + middle
            node = previous
        head = self._piece(a.way, a.index, 0 if node == way_a.start else len(way_a.xs) - 1)
        return tuple(head + middle + tail)

    def _to(self, node: int, x: float, y: float) -> float:
        nx, ny = self.nodes[node]
        return math.hypot(nx - x, ny - y)


def dense(points: Sequence[tuple[float, float]], step_m: float) -> list[tuple[float, float]]:
    """``points`` with corners added so that none is more than ``step_m`` from the next."""
    out = [points[0]]
    for (ax, ay), (bx, by) in itertools.pairwise(points):
        pieces = max(1, math.ceil(math.hypot(bx - ax, by - ay) / step_m))
        for k in range(1, pieces + 1):
            out.append((ax + (bx - ax) * k / pieces, ay + (by - ay) * k / pieces))
    return out


def _ring(cx: int, cy: int, ring: int) -> Iterator[tuple[int, int]]:
    """The grid cells at Chebyshev distance ``ring`` from (cx, cy)."""
    if ring == 0:
        yield (cx, cy)
        return
    for dx in range(-ring, ring + 1):
        yield (cx + dx, cy - ring)
        yield (cx + dx, cy + ring)
    for dy in range(-ring + 1, ring):
        yield (cx - ring, cy + dy)
        yield (cx + ring, cy + dy)


BERLIN_STREETS: Final = "berlin-streets.json.gz"


@cache
def berlin() -> StreetMap:
    """The packaged street map of central Berlin (read once per process)."""
    source = resources.files("simulator") / "data" / BERLIN_STREETS
    with resources.as_file(source) as path:
        return StreetMap.read(path)
