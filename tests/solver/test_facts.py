"""The pure analytics facts: which arrival counts, which window judges it, and what the air
paid for a route."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from solver.facts import (
    Publication,
    RouteInputs,
    StopInputs,
    Window,
    eta_errors,
    route_fact,
    stop_fact,
    window_for,
)
from solver.trip import Trip

T0 = datetime(2026, 11, 24, 8, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def stop(**more: object) -> StopInputs:
    values: dict[str, object] = {
        "outcome": "delivered",
        "planned_arrival": at(60),
        "planned_service_s": 300,
        "completed_at": at(70),
        "lat": 52.5,
        "lon": 13.4,
        "windows": [Window(start=at(60), end=at(120))],
    }
    values.update(more)
    return StopInputs(**values)  # type: ignore[arg-type]


def test_the_tolerance_widens_the_window_on_both_sides() -> None:
    """Three minutes after the window's end is late without tolerance, on time with five."""
    late = stop(reported_arrival=at(123), completed_at=at(125))
    assert stop_fact(late).punctuality == "late"
    assert stop_fact(late).lateness_s == 180
    assert stop_fact(late, tolerance_s=300).punctuality == "on_time"
    assert stop_fact(late, tolerance_s=300).lateness_s == 0


def test_an_early_delivery_that_did_not_wait_is_early() -> None:
    """Delivered before the window opened (the driver did not wait for it): early, no waiting."""
    fact = stop_fact(stop(reported_arrival=at(30), completed_at=at(34)))
    assert (fact.punctuality, fact.wait_s, fact.service_s) == ("early", 0, 240)


def test_a_detected_arrival_after_the_completion_is_not_used() -> None:
    """An arrival detected after the stop was closed falls back to the completion less the
    planned service time."""
    fact = stop_fact(stop(detected_arrival=at(80)))
    assert (fact.arrival_source, fact.arrived_at, fact.service_s) == ("completion", at(65), 300)


def test_the_window_judging_an_arrival_is_the_one_it_falls_in_else_the_next() -> None:
    """Of two windows, an arrival between them is judged against the next one, one after both
    against the last."""
    windows = [Window(start=at(0), end=at(60)), Window(start=at(180), end=at(240))]
    assert window_for(windows, at(30)) == windows[0]
    assert window_for(windows, at(100)) == windows[1]
    assert window_for(windows, at(300)) == windows[1]
    assert window_for([], at(30)) is None


def test_the_completion_distance_is_measured_from_the_address() -> None:
    """A proof taken 0.001° of latitude north of the address is about 111 m from it."""
    fact = stop_fact(stop(proof_lat=52.501, proof_lon=13.4))
    assert fact.completion_m == pytest.approx(111.2, abs=0.2)
    assert stop_fact(stop()).completion_m is None


def test_a_horizon_with_no_window_in_force_is_left_out() -> None:
    """A window first published 20 minutes before the arrival scores the 5 and 15 minute
    horizons only."""
    published = [Publication(at=at(40), likely_at=at(62), lower_at=at(55), upper_at=at(70))]
    errors = eta_errors(at(60), published)
    assert [(e.horizon_min, e.error_s, e.inside) for e in errors] == [
        (5, -120, True),
        (15, -120, True),
    ]


def test_an_electric_route_uses_the_grid_factor_and_a_bicycle_emits_nothing() -> None:
    """20 km at 0.2 kWh per km is 4 kWh, 1.6 kg of CO₂ at 0.4 kg per kWh; no consumption known,
    no energy reported."""
    trip = Trip(
        driven_m=20_000, moving_s=3600, stationary_s=600, idle_s=120, fixes=10, used=10,
        jumps=0, inaccurate=0,
    )  # fmt: skip
    base = {
        "planned_m": 18_000.0,
        "planned_start": at(0),
        "planned_end": at(240),
        "started_at": at(5),
        "completed_at": at(250),
        "delivered": 9,
        "failed": 1,
    }
    electric = route_fact(
        RouteInputs(**base, energy="electric", consumption_per_km=0.2),  # type: ignore[arg-type]
        trip,
        0.4,
    )
    assert (electric.energy_used, electric.co2_kg) == (4.0, 1.6)
    assert (electric.stops, electric.actual_s, electric.planned_s) == (10, 245 * 60, 240 * 60)
    unknown = route_fact(RouteInputs(**base), trip, 0.4)  # type: ignore[arg-type]
    assert (unknown.energy_used, unknown.co2_kg) == (None, None)
