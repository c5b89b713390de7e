"""What a closed stop and a completed route really did: the pure part of the analytics facts.

:func:`stop_fact` takes what is known of one stop (when it was planned, when the driver said
or was seen to arrive, when it was closed, the customer's windows, where the proof was taken)
and returns its fact: the arrival used and where it came from, the window it is judged
against, early, on time or late (with a tolerance), waiting, service time and the planned
versus actual arrival error. :func:`eta_errors` scores the arrival windows that were in force
some minutes before the arrival. :func:`route_fact` adds up a route from its stops and its
driver's trip (:mod:`solver.trip`) with its vehicle's energy use and CO₂.

No I/O: the rollups worker (:mod:`workers.rollups`) loads the inputs and stores the results.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final, Literal

import msgspec

from solver.geo import haversine_m
from solver.trip import Trip

Punctuality = Literal["early", "on_time", "late"]
ArrivalSource = Literal["reported", "detected", "completion"]
Energy = Literal["diesel", "petrol", "electric", "none"]

HORIZONS_MIN: Final = (5, 15, 30, 60)
"""How long before an arrival the window in force is scored (minutes)."""

CO2_KG_PER_UNIT: Final[dict[str, float]] = {"diesel": 2.66, "petrol": 2.35, "none": 0.0}
"""Tank-to-wheel CO₂ per litre of mineral diesel and petrol (about what the UK's DEFRA
conversion factors give); electricity's depends on the grid and is a setting."""


class Window(msgspec.Struct, frozen=True, kw_only=True):
    start: datetime
    end: datetime


class StopInputs(msgspec.Struct, frozen=True, kw_only=True):
    """What is known of a closed stop. ``reported_arrival`` is the driver app's, and
    ``detected_arrival`` the ETA worker's; ``proof_lat``/``proof_lon`` where the proof was taken."""

    outcome: Literal["delivered", "failed"]
    planned_arrival: datetime
    planned_service_s: int
    completed_at: datetime
    reported_arrival: datetime | None = None
    detected_arrival: datetime | None = None
    windows: Sequence[Window] = ()
    lat: float
    lon: float
    proof_lat: float | None = None
    proof_lon: float | None = None


class StopFact(msgspec.Struct, frozen=True, kw_only=True):
    """A closed stop as it really went; times in seconds, distance in metres."""

    arrived_at: datetime
    arrival_source: ArrivalSource
    window: Window | None
    punctuality: Punctuality | None
    """None when the customer gave no window."""
    lateness_s: int
    """How long after the window's end (plus tolerance) service began; 0 when not late."""
    wait_s: int
    """How long the driver waited for the window to open."""
    service_s: int
    """Arrival to completion, waiting left out; the planned service time when the arrival is
    only known from the completion."""
    arrival_error_s: int
    """Actual minus planned arrival (positive: later than planned)."""
    completion_m: float | None
    """How far from the address the proof was taken, when it says where."""


class Publication(msgspec.Struct, frozen=True, kw_only=True):
    """An arrival window as published at ``at``."""

    at: datetime
    likely_at: datetime
    lower_at: datetime
    upper_at: datetime


class EtaError(msgspec.Struct, frozen=True, kw_only=True):
    horizon_min: int
    error_s: int
    """Actual arrival minus the likely arrival then published (positive: it came later)."""
    inside: bool
    """Whether the actual arrival fell inside that window."""


def arrival_of(inputs: StopInputs) -> tuple[datetime, ArrivalSource]:
    """The arrival a stop's fact uses: the one reported, else the one detected (unless it is
    after the completion), else the completion less the planned service time."""
    if inputs.reported_arrival is not None and inputs.reported_arrival <= inputs.completed_at:
        return inputs.reported_arrival, "reported"
    if inputs.detected_arrival is not None and inputs.detected_arrival <= inputs.completed_at:
        return inputs.detected_arrival, "detected"
    return inputs.completed_at - timedelta(seconds=inputs.planned_service_s), "completion"


def window_for(windows: Sequence[Window], at: datetime) -> Window | None:
    """The window an arrival at ``at`` is judged against: the one it falls in, else the next
    one to open, else the last one to close."""
    ordered = sorted(windows, key=lambda w: w.start)
    for window in ordered:
        if window.start <= at <= window.end:
            return window
    for window in ordered:
        if at < window.start:
            return window
    return ordered[-1] if ordered else None


def stop_fact(inputs: StopInputs, tolerance_s: float = 0.0) -> StopFact:
    """The fact of a closed stop; ``tolerance_s`` widens each window on both sides when judging
    punctuality. Service begins at the arrival, or when the window opens if the driver was still
    there then (it waited: the time from arrival to completion covers both); a stop closed
    before its window opened was served early, without waiting."""
    arrived, source = arrival_of(inputs)
    tolerance = timedelta(seconds=tolerance_s)
    window = window_for(inputs.windows, arrived)
    wait_s = 0.0
    if window is not None and arrived < window.start <= inputs.completed_at:
        wait_s = (window.start - arrived).total_seconds()
    begun = arrived + timedelta(seconds=wait_s)
    punctuality: Punctuality | None = None
    lateness_s = 0.0
    if window is not None:
        if begun < window.start - tolerance:
            punctuality = "early"
        elif begun > window.end + tolerance:
            punctuality = "late"
            lateness_s = (begun - window.end - tolerance).total_seconds()
        else:
            punctuality = "on_time"
    if source == "completion":
        service_s = float(inputs.planned_service_s)
    else:
        service_s = max(0.0, (inputs.completed_at - arrived).total_seconds() - wait_s)
    completion_m = None
    if inputs.proof_lat is not None and inputs.proof_lon is not None:
        completion_m = round(
            haversine_m(inputs.lat, inputs.lon, inputs.proof_lat, inputs.proof_lon), 1
        )
    return StopFact(
        arrived_at=arrived,
        arrival_source=source,
        window=window,
        punctuality=punctuality,
        lateness_s=round(lateness_s),
        wait_s=round(wait_s),
        service_s=round(service_s),
        arrival_error_s=round((arrived - inputs.planned_arrival).total_seconds()),
        completion_m=completion_m,
    )


def eta_errors(
    arrived: datetime,
    published: Sequence[Publication],
    horizons_min: Sequence[int] = HORIZONS_MIN,
) -> list[EtaError]:
    """For each horizon ``h``, the window in force ``h`` minutes before ``arrived`` (the last
    published at or before then) scored against the arrival; a horizon with no window in force
    then is left out, not guessed."""
    timed = sorted(published, key=lambda p: p.at)
    errors: list[EtaError] = []
    for horizon in horizons_min:
        then = arrived - timedelta(minutes=horizon)
        in_force = next((p for p in reversed(timed) if p.at <= then), None)
        if in_force is None:
            continue
        errors.append(
            EtaError(
                horizon_min=horizon,
                error_s=round((arrived - in_force.likely_at).total_seconds()),
                inside=in_force.lower_at <= arrived <= in_force.upper_at,
            )
        )
    return errors


class RouteInputs(msgspec.Struct, frozen=True, kw_only=True):
    """A completed route: its plan, its closed stops' outcomes, its vehicle."""

    planned_m: float
    planned_start: datetime
    planned_end: datetime
    started_at: datetime
    completed_at: datetime
    delivered: int
    failed: int
    energy: Energy | None = None
    consumption_per_km: float | None = None


class RouteFact(msgspec.Struct, frozen=True, kw_only=True):
    stops: int
    delivered: int
    failed: int
    planned_m: float
    driven_m: float
    planned_s: int
    actual_s: int
    moving_s: int
    idle_s: int
    fixes: int
    jumps: int
    energy: Energy | None
    energy_used: float | None
    """Litres (kWh when electric) for the distance driven, when the vehicle's consumption is
    known."""
    co2_kg: float | None


def route_fact(inputs: RouteInputs, trip: Trip, grid_co2_kg_per_kwh: float) -> RouteFact:
    """A completed route's fact from its inputs and its driver's trip over the route's time."""
    used = None
    co2 = None
    if inputs.energy is not None and inputs.consumption_per_km is not None:
        used = round(trip.driven_m / 1000 * inputs.consumption_per_km, 3)
        per_unit = (
            grid_co2_kg_per_kwh if inputs.energy == "electric" else CO2_KG_PER_UNIT[inputs.energy]
        )
        co2 = round(used * per_unit, 3)
    return RouteFact(
        stops=inputs.delivered + inputs.failed,
        delivered=inputs.delivered,
        failed=inputs.failed,
        planned_m=inputs.planned_m,
        driven_m=round(trip.driven_m, 1),
        planned_s=round((inputs.planned_end - inputs.planned_start).total_seconds()),
        actual_s=max(0, round((inputs.completed_at - inputs.started_at).total_seconds())),
        moving_s=round(trip.moving_s),
        idle_s=round(trip.idle_s),
        fixes=trip.fixes,
        jumps=trip.jumps,
        energy=inputs.energy,
        energy_used=used,
        co2_kg=co2,
    )
