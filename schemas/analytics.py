"""Analytics reports: ``GET /v1/analytics/deliveries`` and ``GET /v1/analytics/routes``; the
weekly summary.

Each report covers a range of the organisation's days (its own time zone: a day is the day the
routes ran) and has one row per group. Rates are shares in ``[0, 1]`` and None where nothing
was there to measure (no stop with a window, no rating). Times are seconds, distances
kilometres, CO₂ kilograms.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

import msgspec

from schemas.notifications import Channel

DeliveryGroup = Literal["day", "driver", "carrier", "zone", "reason"]
RouteGroup = Literal["day", "driver", "carrier"]


class EtaAccuracy(msgspec.Struct, frozen=True, kw_only=True):
    """How right the arrival windows in force ``horizon_min`` minutes before arrivals were."""

    horizon_min: int
    arrivals: int
    mae_s: float
    """Mean absolute error of the likely arrival."""
    inside_rate: float
    """Share of arrivals inside the window (the windows promise 80 %)."""


class ChannelMessages(msgspec.Struct, frozen=True, kw_only=True):
    """The messages about a group's stops on one channel (customers' and dispatchers' alike):
    ``sent`` the provider took (or reported delivered), ``failed`` it refused or that were
    given up after their retries. Messages still on their way are in neither."""

    channel: Channel
    sent: int
    failed: int


class DeliveryRow(msgspec.Struct, frozen=True, kw_only=True):
    """The stops closed in one group: ``key`` identifies it (a day, a driver's or carrier's id,
    ``own`` for the organisation's own fleet, an H3 cell, a failure code), ``label`` names it."""

    key: str
    label: str
    stops: int
    delivered: int
    failed: int
    first_attempts: int
    first_attempt_success_rate: float | None
    with_window: int
    """Stops whose customer gave a time window (the ones punctuality is measured on)."""
    on_time: int
    early: int
    late: int
    on_time_rate: float | None
    mean_lateness_s: float | None
    """Over the late stops."""
    mean_wait_s: float | None
    mean_service_s: float | None
    """Over the stops whose arrival was reported or detected."""
    arrival_mae_s: float | None
    """Planned against actual arrival: mean absolute error."""
    ratings: int
    rating_mean: float | None
    eta: list[EtaAccuracy] = []
    boundary: list[tuple[float, float]] | None = None
    """Grouped by zone: the cell's outline, ``[lat, lon]`` corners (not in the CSV)."""
    notifications: list[ChannelMessages] = []
    """Every channel, in the order of :data:`~schemas.notifications.Channel`: a message counts
    for its order's stop on the organisation's day it was created."""


class DeliveryReport(msgspec.Struct, frozen=True, kw_only=True):
    from_day: date
    to_day: date
    by: DeliveryGroup
    rows: list[DeliveryRow]


class RouteRow(msgspec.Struct, frozen=True, kw_only=True):
    """The routes completed in one group."""

    key: str
    label: str
    routes: int
    stops: int
    delivered: int
    planned_km: float
    driven_km: float
    route_efficiency: float | None
    """Planned over driven distance (1: drove the plan; below 1: drove more)."""
    stops_per_hour: float | None
    planned_h: float
    actual_h: float
    idle_h: float
    """Standing still away from stops."""
    fuel_l: float
    electricity_kwh: float
    co2_kg: float
    gps_jumps: int


class RouteReport(msgspec.Struct, frozen=True, kw_only=True):
    from_day: date
    to_day: date
    by: RouteGroup
    rows: list[RouteRow]


class LearnedCell(msgspec.Struct, frozen=True, kw_only=True):
    """A cell's learned driving speed over all hours; ``lat``/``lon`` its centre."""

    cell: str
    lat: float
    lon: float
    speed_kmh: float
    samples: int
    boundary: list[tuple[float, float]] = []
    """The cell's outline, ``[lat, lon]`` corners."""


class LearnedHour(msgspec.Struct, frozen=True, kw_only=True):
    """The city's learned speed in one hour of the week (0: Monday 00:00-01:00, local)."""

    hour_of_week: int
    speed_kmh: float


class LearnedModel(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /v1/analytics/learned``: the organisation's model in use, as people read it.

    None of the speeds when there were too few passes; none of the service times when too few
    stops had a known arrival.
    """

    id: int
    learned_at: datetime
    day_from: date
    day_to: date
    routes: int
    city_speed_kmh: float | None
    observed_circuity: float | None
    """Driven over straight-line distance between stops (the planner's model assumes its
    configured circuity)."""
    route_pace_sd: float | None = None
    """How far whole routes' driving strayed from the learned speeds (a robust standard
    deviation of the log ratio): the live ETA's prior on a driver's pace. None: too few
    routes."""
    speed_samples: int
    cells: list[LearnedCell]
    hours: list[LearnedHour]
    cell_hours: int
    """Cell and hour pairs with a figure of their own."""
    service_overall_s: float | None
    service_by_size: dict[str, float]
    service_addresses: int
    service_customers: int
    service_samples: int


PatternKind = Literal[
    "late_zone", "failing_address", "failing_zone", "slow_service", "fast_service"
]


class Pattern(msgspec.Struct, frozen=True, kw_only=True):
    """Something worth acting on, with its evidence.

    ``late_zone``: a zone (H3 cell) with late stops day after day. ``failing_address`` and
    ``failing_zone``: repeated failed first attempts, with their reasons. ``slow_service`` and
    ``fast_service``: a driver whose median service time stands out from the fleet's.
    """

    kind: PatternKind
    key: str
    """The zone's cell, the address (without case or spacing), or the driver's id."""
    label: str
    """The address as entered (customer text: escape it where it is shown), or the driver's
    name."""
    summary: str
    zone: str | None = None
    days: int | None = None
    """Days of the range it showed on."""
    stops: int | None = None
    late: int | None = None
    mean_lateness_s: float | None = None
    failed: int | None = None
    first_attempts: int | None = None
    reasons: dict[str, int] = {}
    median_service_s: float | None = None
    fleet_median_service_s: float | None = None


class PatternReport(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /v1/analytics/patterns``: most telling first within each kind."""

    from_day: date
    to_day: date
    patterns: list[Pattern]


# --- the weekly summary ------------------------------------------------------------------------


class ReasonCount(msgspec.Struct, frozen=True, kw_only=True):
    """How many stops failed for one reason (a failure code, ``unspecified`` for none)."""

    code: str
    failed: int


class WeekFigures(msgspec.Struct, frozen=True, kw_only=True):
    """One week (Monday to Sunday, the organisation's days) of deliveries and routes."""

    week_start: date
    """The Monday."""
    week_end: date
    """The Sunday."""
    stops: int
    delivered: int
    failed: int
    on_time_rate: float | None
    """Over the stops whose customer gave a window."""
    first_attempt_success_rate: float | None
    failures_by_reason: list[ReasonCount]
    """Most failures first."""
    planned_km: float
    driven_km: float
    route_efficiency: float | None
    """Planned over driven distance of the completed routes."""
    stops_per_hour: float | None
    eta_30min_arrivals: int
    eta_30min_mae_s: float | None
    """The arrival windows in force 30 minutes before arrivals: mean absolute error."""
    eta_30min_inside_rate: float | None
    notifications: list[ChannelMessages]


class WeeklySummary(msgspec.Struct, frozen=True, kw_only=True):
    """An organisation's last complete week in figures, with the week before to compare with,
    and the patterns worth acting on that week (the first few of
    ``GET /v1/analytics/patterns``). Labels of patterns are customer or driver text."""

    org_name: str
    time_zone: str
    locale: str
    composed_at: datetime
    week: WeekFigures
    previous: WeekFigures
    patterns: list[Pattern]
    more_patterns: int
    """Patterns of the week beyond those listed."""


class WeeklySummaryPreview(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /v1/analytics/weekly-summary``: the figures and the email as it would be sent."""

    summary: WeeklySummary
    recipients: list[str]
    """The organisation's ``summary_emails``; empty: no summary is sent on schedule."""
    subject: str
    text: str
    html: str


class WeeklySummarySent(msgspec.Struct, frozen=True, kw_only=True):
    """``POST /v1/analytics/weekly-summary/send``: one email per recipient, queued in the
    notification outbox (the email sender delivers them, with its retries)."""

    week_start: date
    recipients: list[str]
    queued: int
