"""Learning from what the fleet really did: driving speeds per H3 cell and hour of the week,
and service times per address, customer and order size.

Speeds. A route's cleaned GPS track (:func:`solver.trip.clean_track`), outside its stop visits,
is cut into *passes*: for each (cell, hour of week) the route drove in, the metres and seconds
of its steps there (a step counts in the cell of its midpoint and the local hour it began;
waiting at a red light is part of driving, a gap longer than ``max_gap_s`` is not). Each pass
of at least ``min_pass_s`` is one sample, its speed ``metres / seconds``. Estimates are
**mean paces** (seconds per metre) of the passes that are not outliers (:func:`mean_pace`: a
driver stuck behind a crash, or racing an empty street, is left out), not median speeds: a
plan adds travel times up, and the median speed of passes that vary is faster than the one
that gives their mean time, so every leg would be planned a little short. Estimates are kept
only for groups of at least ``min_samples`` passes, and **shrunk** towards the broader figure
by ``prior_weight`` pseudo-samples, in pace: ``(n * pace + k * prior pace) / (n + k)``. The
levels: the city-wide figure; the city per hour of week (shrunk towards the city); each cell
over all hours, from its passes' speeds relative to their hour's (shrunk towards 1, so a cell
driven mostly at rush hour is not taken for a slow one); each cell per hour of week (shrunk
towards what the two above predict together, ``cell * hour / city``). A lookup falls back
level by level, so a cell never seen drives at the city's speed of that hour.

The planner's model is great-circle distance x its configured circuity over a speed. GPS steps
measure the road actually driven, so :class:`LearnedSpeeds` also scales by the *observed*
circuity (the median over legs between stops of GPS-driven over straight-line distance, the
ends from and to the stops included): with
``configured / observed`` the model's distances and the learned road speeds give the observed
driving times.

Service times. Samples are the closed stops whose arrival was reported or detected. The mean
without outliers (:func:`robust_mean`; not the median, nor a trimmed mean: a plan adds service
times up, and both sit below the mean of a right-skewed service time, so every stop would be
planned a little short), with the same shrinkage, gives a figure per order size (parcels: 1,
2, 3-5, 6+), per customer and per address, each shrunk towards the overall one;
:meth:`ServiceTable.estimate` answers with the most specific one known (address, then
customer, then size, then overall).

Pure: the learner (:mod:`workers.learner`) reads positions and facts and stores the tables.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from itertools import pairwise
from typing import Final
from zoneinfo import ZoneInfo

import h3
import msgspec
import numpy as np
from numpy.typing import NDArray

from schemas.planning import Location
from solver.geo import haversine_m
from solver.trip import Fix

HOURS_OF_WEEK: Final = 168
MAD_TO_SD: Final = 1.4826
"""The median absolute deviation of normal data times this is its standard deviation."""
OUTLIER_SDS: Final = 5.0
"""A value (a pass's pace, a service time) whose logarithm is this many robust standard
deviations from its group's median one is an outlier: wide, because the figures are skewed and
their spread must count (three cut a tight group's eight-minute stops among three-minute ones)."""


class LearningRules(msgspec.Struct, frozen=True, kw_only=True):
    """How much evidence the learning wants before it believes a figure."""

    res: int = 8
    """H3 resolution of the speed cells (8: about 0.7 km²)."""
    max_gap_s: float = 120.0
    """A step over a longer gap between fixes is not counted (signal lost, phone off)."""
    min_pass_s: float = 30.0
    """A pass shorter than this in a cell and hour is too little to time."""
    min_samples: int = 5
    """Groups with fewer samples are not kept (the lookup falls back to the broader figure)."""
    prior_weight: float = 5.0
    """Pseudo-samples of the broader figure each estimate is shrunk towards."""
    min_speed_mps: float = 0.5
    max_speed_mps: float = 40.0


DEFAULT_RULES: Final = LearningRules()


class SpeedPass(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """One route's driving in one cell during one hour of the week."""

    cell: str
    hour_of_week: int
    metres: float
    seconds: float


class SpeedTable(msgspec.Struct, frozen=True, kw_only=True):
    """Learned driving speeds (m/s): ``by_cell_hour`` keys are ``"{cell}/{hour_of_week}"``."""

    res: int
    city_mps: float
    by_hour: dict[int, float] = {}
    by_cell: dict[str, float] = {}
    by_cell_hour: dict[str, float] = {}
    samples: int = 0
    cell_samples: dict[str, int] = {}
    observed_circuity: float | None = None
    """Median GPS-driven over straight-line distance of the legs between stops."""
    route_pace_sd: float | None = None
    """How far a whole route's driving strays from learned speeds: a robust standard deviation
    of the log of a route's driving time over the time the speeds give its passes, around 0 (a
    table wrong on the whole counts too), measured on routes the speeds were not learned from
    (:func:`route_pace_sd`). The ETA model's prior on a driver's pace; None: too few routes."""

    def speed_mps(self, cell: str, hour_of_week: int) -> float:
        """The speed in ``cell`` at ``hour_of_week``, falling back level by level."""
        exact = self.by_cell_hour.get(f"{cell}/{hour_of_week}")
        if exact is not None:
            return exact
        hour = self.by_hour.get(hour_of_week, self.city_mps)
        return self.by_cell.get(cell, self.city_mps) * hour / self.city_mps


class ServiceSample(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    address_key: str
    customer_key: str | None
    size_key: str
    service_s: float


class ServiceTable(msgspec.Struct, frozen=True, kw_only=True):
    """Learned service times (seconds) and how many samples each rests on."""

    overall_s: float
    by_size: dict[str, float] = {}
    by_customer: dict[str, float] = {}
    by_address: dict[str, float] = {}
    samples: int = 0

    def estimate(
        self, address_key: str, customer_key: str | None, size_key: str
    ) -> tuple[float, str]:
        """The most specific learned figure and what it is for (``address``, ``customer``,
        ``size`` or ``overall``)."""
        if address_key in self.by_address:
            return self.by_address[address_key], "address"
        if customer_key is not None and customer_key in self.by_customer:
            return self.by_customer[customer_key], "customer"
        if size_key in self.by_size:
            return self.by_size[size_key], "size"
        return self.overall_s, "overall"


def hour_of_week(instant: datetime, zone: ZoneInfo) -> int:
    """Hours since Monday 00:00 local time (0-167)."""
    local = instant.astimezone(zone)
    return local.weekday() * 24 + local.hour


_SPACES: Final = re.compile(r"\s+")
_PHONE_NOISE: Final = re.compile(r"[^0-9+]")


def address_key(address: str) -> str:
    """An address as learned service times and repeated failures are kept by: case and spacing
    left out."""
    return _SPACES.sub(" ", address).strip().casefold()


def customer_key(email_or_phone: str | None) -> str | None:
    """A customer as learned service times are kept by: an email without case, or a phone's
    digits (and leading ``+``)."""
    if not email_or_phone or not email_or_phone.strip():
        return None
    text = email_or_phone.strip()
    return text.casefold() if "@" in text else _PHONE_NOISE.sub("", text) or None


def size_key(parcels: int) -> str:
    """The order-size bucket of a parcel count."""
    if parcels <= 1:
        return "1"
    if parcels == 2:
        return "2"
    return "3-5" if parcels <= 5 else "6+"


def speed_passes(
    segments: Sequence[Sequence[Fix]],
    visits: Sequence[tuple[datetime, datetime]],
    zone: ZoneInfo,
    rules: LearningRules = DEFAULT_RULES,
) -> list[SpeedPass]:
    """One route's passes (see the module docstring); steps that touch a stop visit are the
    stop's, not driving."""
    totals: dict[tuple[str, int], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for segment in segments:
        for a, b in pairwise(segment):
            dt_s = (b.time - a.time).total_seconds()
            if dt_s <= 0 or dt_s > rules.max_gap_s:
                continue
            if any(start < b.time and a.time < end for start, end in visits):
                continue
            cell = h3.latlng_to_cell((a.lat + b.lat) / 2, (a.lon + b.lon) / 2, rules.res)
            total = totals[(cell, hour_of_week(a.time, zone))]
            total[0] += haversine_m(a.lat, a.lon, b.lat, b.lon)
            total[1] += dt_s
    return [
        SpeedPass(cell=cell, hour_of_week=how, metres=m, seconds=s)
        for (cell, how), (m, s) in totals.items()
        if s >= rules.min_pass_s
    ]


def robust_mean(values: Sequence[float]) -> float:
    """The mean of ``values`` without their outliers: those whose logarithm lies more than
    ``OUTLIER_SDS`` robust standard deviations (from the median absolute deviation) from the
    median one are left out, so a crash, an empty street or a two-hour stop moves it little,
    while the ordinary spread of a right-skewed figure (a travel pace, a service time) still
    counts in full: a trimmed mean or a median would sit below the mean that sums need.
    Values under 1 count as 1 in the outlier test."""
    logs = [math.log(max(v, 1.0)) for v in values]
    middle = statistics.median(logs)
    limit = OUTLIER_SDS * MAD_TO_SD * statistics.median(abs(x - middle) for x in logs)
    return statistics.fmean(
        v for v, x in zip(values, logs, strict=True) if abs(x - middle) <= limit
    )


def mean_pace(speeds: Sequence[float]) -> float:
    """The speed of the mean pace (seconds per metre) of ``speeds`` without their outliers
    (:func:`robust_mean`; paces in seconds per kilometre, so that the outlier test sees them
    above 1)."""
    return 1000.0 / robust_mean([1000.0 / s for s in speeds])


def _shrunk_speed(speeds: Sequence[float], prior: float, weight: float) -> float:
    """The mean pace of ``speeds`` shrunk towards ``prior``'s by ``weight`` pseudo-samples, as
    a speed: ``(n + k) / (n / mean_pace_speed + k / prior)``."""
    n = len(speeds)
    return (n + weight) / (n / mean_pace(speeds) + weight / prior)


def _shrunk_mean(values: Sequence[float], prior: float, weight: float) -> float:
    n = len(values)
    return (n * robust_mean(values) + weight * prior) / (n + weight)


def _usable(speed_pass: SpeedPass, rules: LearningRules) -> bool:
    """A pass timed, at a speed the rules believe."""
    seconds = speed_pass.seconds
    return seconds > 0 and rules.min_speed_mps <= speed_pass.metres / seconds <= rules.max_speed_mps


def learn_speeds(
    passes: Iterable[SpeedPass],
    rules: LearningRules = DEFAULT_RULES,
    observed_circuity: float | None = None,
) -> SpeedTable | None:
    """The speed table the passes support, or None when there are fewer than ``min_samples``."""
    kept = [(p.cell, p.hour_of_week, p.metres / p.seconds) for p in passes if _usable(p, rules)]
    if len(kept) < rules.min_samples:
        return None
    city = mean_pace([s for _, _, s in kept])
    hours: dict[int, list[float]] = defaultdict(list)
    cell_hours: dict[tuple[str, int], list[float]] = defaultdict(list)
    for cell, how, speed in kept:
        hours[how].append(speed)
        cell_hours[(cell, how)].append(speed)
    k, enough = rules.prior_weight, rules.min_samples
    by_hour = {h: _shrunk_speed(v, city, k) for h, v in hours.items() if len(v) >= enough}
    # A cell's figure over all hours is its samples' speed relative to their hour's, so that
    # a cell driven mostly at rush hour is not taken for a slow one.
    relative: dict[str, list[float]] = defaultdict(list)
    for cell, how, speed in kept:
        relative[cell].append(speed / by_hour.get(how, city))
    by_cell = {c: city * _shrunk_speed(v, 1.0, k) for c, v in relative.items() if len(v) >= enough}
    table = SpeedTable(res=rules.res, city_mps=city, by_hour=by_hour, by_cell=by_cell)
    by_cell_hour = {
        f"{c}/{h}": _shrunk_speed(v, table.speed_mps(c, h), k)
        for (c, h), v in cell_hours.items()
        if len(v) >= enough
    }
    return msgspec.structs.replace(
        table,
        by_cell_hour=by_cell_hour,
        samples=len(kept),
        cell_samples={c: len(v) for c, v in relative.items() if c in by_cell},
        observed_circuity=observed_circuity,
    )


def learn_service(
    samples: Iterable[ServiceSample], min_samples: int = 3, prior_weight: float = 3.0
) -> ServiceTable | None:
    """The service-time table the samples support, or None with fewer than ``min_samples``."""
    kept = [s for s in samples if math.isfinite(s.service_s) and s.service_s >= 0]
    if len(kept) < min_samples:
        return None
    overall = robust_mean([s.service_s for s in kept])
    groups: dict[str, dict[str, list[float]]] = {
        "size": defaultdict(list),
        "customer": defaultdict(list),
        "address": defaultdict(list),
    }
    for s in kept:
        groups["size"][s.size_key].append(s.service_s)
        groups["address"][s.address_key].append(s.service_s)
        if s.customer_key is not None:
            groups["customer"][s.customer_key].append(s.service_s)

    def table(kind: str) -> dict[str, float]:
        return {
            key: round(_shrunk_mean(v, overall, prior_weight), 1)
            for key, v in groups[kind].items()
            if len(v) >= min_samples
        }

    return ServiceTable(
        overall_s=round(overall, 1),
        by_size=table("size"),
        by_customer=table("customer"),
        by_address=table("address"),
        samples=len(kept),
    )


def route_log_ratios(
    table: SpeedTable,
    routes: Iterable[Sequence[SpeedPass]],
    rules: LearningRules = DEFAULT_RULES,
    min_route_s: float = 600.0,
) -> list[float]:
    """For each route with at least ``min_route_s`` of passes, the log of its driving time over
    the time ``table`` gives the same passes."""
    logs = []
    for passes in routes:
        kept = [p for p in passes if _usable(p, rules)]
        driven = sum(p.seconds for p in kept)
        if driven < min_route_s:
            continue
        modelled = sum(p.metres / table.speed_mps(p.cell, p.hour_of_week) for p in kept)
        logs.append(math.log(driven / modelled))
    return logs


def route_pace_sd(
    routes: Sequence[tuple[date, Sequence[SpeedPass]]],
    rules: LearningRules = DEFAULT_RULES,
    days: int = 3,
    min_routes: int = 5,
) -> float | None:
    """How far whole routes stray from learned speeds they were not learned from (see
    :attr:`SpeedTable.route_pace_sd`): each of the last ``days`` days' routes against the
    speeds learned from the other days (measured against speeds that had seen them, the
    spread came out 40 % narrower on the loop benchmark, and the ETA's windows too tight),
    ``MAD_TO_SD`` times the median absolute log ratio (:func:`route_log_ratios`); None with
    fewer than ``min_routes`` routes measured."""
    logs: list[float] = []
    for day in sorted({d for d, _ in routes})[-days:]:
        others = learn_speeds((p for d, passes in routes if d != day for p in passes), rules)
        if others is not None:
            logs += route_log_ratios(others, [ps for d, ps in routes if d == day], rules)
    if len(logs) < min_routes:
        return None
    return MAD_TO_SD * statistics.median(abs(x) for x in logs)


def leg_circuity(driven_m: float, straight_m: float) -> float | None:
    """GPS-driven over straight-line distance of one leg; None for legs too short to say."""
    if straight_m < 200 or driven_m <= 0:
        return None
    return driven_m / straight_m


class LearnedSpeeds:
    """A :class:`~solver.matrix.SpeedModel` from a :class:`SpeedTable`, in the organisation's
    time zone; ``circuity`` is the planner's configured factor (see the module docstring)."""

    def __init__(self, table: SpeedTable, zone: ZoneInfo, circuity: float, span_h: int = 1) -> None:
        self.table = table
        self.zone = zone
        self.span_h = max(1, span_h)
        observed = table.observed_circuity
        self.scale = circuity / observed if observed else 1.0

    def __repr__(self) -> str:
        return f"LearnedSpeeds(city_mps={self.table.city_mps:.2f}, scale={self.scale:.3f})"

    def speed_matrix_mps(
        self, points: Sequence[Location], depart_epoch_s: int
    ) -> NDArray[np.float64]:
        """The speed of each pair: the harmonic mean of the two ends' cells (half the way in
        each), each over the ``span_h`` hours of week from the departure's (a plan's one matrix
        serves the whole day: its legs are driven at every hour of it), times the circuity
        scale."""
        first = hour_of_week(datetime.fromtimestamp(depart_epoch_s, UTC), self.zone)
        hours = [(first + h) % HOURS_OF_WEEK for h in range(self.span_h)]
        speeds = np.array(
            [
                self._over_hours(h3.latlng_to_cell(p.lat, p.lon, self.table.res), hours)
                if p.lat is not None and p.lon is not None
                else self.table.city_mps
                for p in points
            ],
            dtype=np.float64,
        )
        pace = 1.0 / speeds
        return np.asarray(2.0 / (pace[:, None] + pace[None, :]) * self.scale, dtype=np.float64)

    def _over_hours(self, cell: str, hours: Sequence[int]) -> float:
        """The cell's speed over ``hours``: the harmonic mean (equal time in each hour)."""
        return len(hours) / sum(1.0 / self.table.speed_mps(cell, h) for h in hours)
