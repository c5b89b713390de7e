"""Analytics reports: ``GET /v1/analytics/deliveries`` and ``GET /v1/analytics/routes``.

Each report covers a range of the organisation's days (its own time zone: a day is the day the
routes ran) and has one row per group. Rates are shares in ``[0, 1]`` and None where nothing
was there to measure (no stop with a window, no rating). Times are seconds, distances
kilometres, CO₂ kilograms.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

import msgspec

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
