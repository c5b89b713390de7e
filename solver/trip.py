"""What a route really did, from one driver's GPS fixes over it: distance, moving, standing, idling.

:func:`trip_of` is pure: fixes (and the stop visits) in, a :class:`Trip` out. The rules, in the
order they are applied (thresholds from :class:`TripRules`):

1. **Order.** Fixes are sorted by time; of several with the same time the first given is kept.
2. **Accuracy.** A fix reporting ``accuracy_m`` above ``max_accuracy_m`` is not used
   (``inaccurate``); a fix without an accuracy is trusted.
3. **Jumps.** A fix whose implied speed (great-circle distance over time) from the last accepted
   fix exceeds ``max_speed_mps`` is rejected. Three consecutive rejected fixes each within
   ``max_speed_mps`` of the previous one outvote the track: they are accepted from the first of
   them on, as a *relocation* the trace continues from. If the track before them was a single
   fix, that fix was the outlier and is dropped instead (a bad first fix). Every rejected fix not
   taken back this way is a ``jump``.
4. **Distance.** An accepted fix adds its great-circle distance from the last *counted point*
   only when that distance is at least ``max(min_step_m, accuracy_m or 0)``, and then becomes the
   counted point; so jitter while parked adds nothing and a slow steady drive still adds up.
5. **Time.** Each interval between consecutive accepted fixes of at most ``max_gap_s`` is
   *stationary* when its implied speed is below ``stationary_speed_mps``, else *moving*; a longer
   interval (signal lost) counts as neither.
6. **Relocations** break the trace: the step onto a relocation's first fix adds no distance (its
   implied speed says at least one end of it is wrong) and its interval counts as neither; the
   relocation's first fix becomes the counted point.
7. **Idle** is the stationary time outside the stop visits, merged first so overlapping visits
   are not subtracted twice.

Fixes given = ``used + jumps + inaccurate`` + fixes dropped as same-time duplicates.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from itertools import pairwise

import msgspec

from solver.errors import ProblemError
from solver.geo import haversine_m

RELOCATION_RUN = 3
"""Consecutive mutually consistent rejected fixes that are taken as a real relocation."""


class Fix(msgspec.Struct, frozen=True, kw_only=True):
    """One GPS position of the driver; ``time`` is timezone-aware UTC."""

    time: datetime
    lat: float
    lon: float
    accuracy_m: float | None = None


class Trip(msgspec.Struct, frozen=True, kw_only=True):
    """What the fixes say the route did; times in seconds, distance in metres."""

    driven_m: float
    """Distance driven, GPS jumps and stationary jitter left out."""
    moving_s: float
    """Time between accepted fixes spent moving."""
    stationary_s: float
    """Time between accepted fixes spent standing still."""
    idle_s: float
    """Stationary time outside the stop visits given."""
    fixes: int
    """Fixes given."""
    used: int
    """Fixes accepted."""
    jumps: int
    """Fixes dropped as GPS jumps."""
    inaccurate: int
    """Fixes dropped for accuracy worse than ``max_accuracy_m``."""


class TripRules(msgspec.Struct, frozen=True, kw_only=True):
    """Thresholds of :func:`trip_of`; the defaults suit a car in town."""

    max_speed_mps: float = 55.0
    """Implied speed above this from the last accepted fix makes a fix a jump."""
    max_accuracy_m: float = 100.0
    """Fixes reporting a worse accuracy are not used."""
    min_step_m: float = 15.0
    """Movement below this from the last counted point is jitter."""
    stationary_speed_mps: float = 1.0
    """Implied speed below this over an interval is standing still."""
    max_gap_s: float = 300.0
    """An interval longer than this counts as neither moving nor stationary (signal lost)."""


DEFAULT_RULES = TripRules()

Interval = tuple[datetime, datetime]


def trip_of(
    fixes: Sequence[Fix], visits: Sequence[Interval] = (), rules: TripRules = DEFAULT_RULES
) -> Trip:
    """Measure one driver's fixes over a route by the rules in this module's docstring.

    ``visits`` are the (start, end) instants the driver spent at stops, in any order and possibly
    overlapping; a visit ending before it starts raises :class:`~solver.errors.ProblemError`.
    Fewer than two accepted fixes give zero distance and times, with the counts still right.
    """
    for start, end in visits:
        if end < start:
            raise ProblemError("visit", f"expected an end at or after {start}, got {end}")
    unique, accurate, segments = _cleaned(fixes, rules)
    used = sum(len(s) for s in segments)

    driven_m = moving_s = stationary_s = 0.0
    still: list[Interval] = []
    for segment in segments:
        counted = segment[0]
        for a, b in pairwise(segment):
            step_m = _distance_m(counted, b)
            if step_m >= max(rules.min_step_m, b.accuracy_m or 0.0):
                driven_m += step_m
                counted = b
            dt_s = _seconds(a, b)
            if dt_s > rules.max_gap_s:
                continue
            if _distance_m(a, b) / dt_s < rules.stationary_speed_mps:
                stationary_s += dt_s
                still.append((a.time, b.time))
            else:
                moving_s += dt_s

    stops = _merged(visits)
    visited_s = sum(_overlap_s(s, v) for s in still for v in stops)
    return Trip(
        driven_m=driven_m,
        moving_s=moving_s,
        stationary_s=stationary_s,
        idle_s=stationary_s - visited_s,
        fixes=len(fixes),
        used=used,
        jumps=len(accurate) - used,
        inaccurate=len(unique) - len(accurate),
    )


def clean_track(fixes: Sequence[Fix], rules: TripRules = DEFAULT_RULES) -> list[list[Fix]]:
    """The fixes :func:`trip_of` trusts (rules 1 to 3), in time order, split where a relocation
    breaks the trace (rule 6)."""
    return _cleaned(fixes, rules)[2]


def _cleaned(
    fixes: Sequence[Fix], rules: TripRules
) -> tuple[list[Fix], list[Fix], list[list[Fix]]]:
    """The fixes without same-time duplicates, those of them accurate enough, and the accepted
    ones by segment."""
    ordered = sorted(fixes, key=lambda f: f.time)
    unique = [f for i, f in enumerate(ordered) if i == 0 or f.time != ordered[i - 1].time]
    accurate = [f for f in unique if f.accuracy_m is None or f.accuracy_m <= rules.max_accuracy_m]
    return unique, accurate, _segments(accurate, rules.max_speed_mps)


def _segments(fixes: Sequence[Fix], max_speed_mps: float) -> list[list[Fix]]:
    """The accepted fixes, split where a relocation breaks the trace (rules 3 and 6)."""
    segments: list[list[Fix]] = []
    rejected: list[Fix] = []
    for fix in fixes:
        if not segments:
            segments.append([fix])
        elif _speed_mps(segments[-1][-1], fix) <= max_speed_mps:
            segments[-1].append(fix)
            rejected = []
        elif rejected and _speed_mps(rejected[-1], fix) <= max_speed_mps:
            rejected.append(fix)
        else:
            rejected = [fix]
        if len(rejected) == RELOCATION_RUN:
            if len(segments) == 1 and len(segments[0]) == 1:
                segments = []  # an uncorroborated first fix loses to three that agree
            segments.append(rejected)
            rejected = []
    return segments


def _merged(intervals: Sequence[Interval]) -> list[Interval]:
    """Sorted intervals, with those that overlap or touch merged into one."""
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _overlap_s(a: Interval, b: Interval) -> float:
    """Seconds two intervals share; 0 when they are disjoint."""
    return max(0.0, (min(a[1], b[1]) - max(a[0], b[0])).total_seconds())


def _distance_m(a: Fix, b: Fix) -> float:
    return haversine_m(a.lat, a.lon, b.lat, b.lon)


def _seconds(a: Fix, b: Fix) -> float:
    return (b.time - a.time).total_seconds()


def _speed_mps(a: Fix, b: Fix) -> float:
    """Implied speed from ``a`` to the later ``b``; the fixes never share a time here."""
    return _distance_m(a, b) / _seconds(a, b)
