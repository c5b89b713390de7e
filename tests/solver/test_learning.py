"""Learning from the fleet's days: a known speed field is recovered from synthetic tracks, thin
evidence is shrunk towards the city, service times answer from the most specific figure."""

from __future__ import annotations

import math
import random
import statistics
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import h3
import numpy as np
import pytest

from schemas.eta import EtaConfig
from schemas.planning import Location
from solver.geo import haversine_m
from solver.learning import (
    MAD_TO_SD,
    LearnedSpeeds,
    LearningRules,
    ServiceSample,
    SpeedPass,
    SpeedTable,
    address_key,
    customer_key,
    hour_of_week,
    learn_service,
    learn_speeds,
    route_log_ratios,
    route_pace_sd,
    size_key,
    speed_passes,
)
from solver.trip import Fix

BERLIN = ZoneInfo("Europe/Berlin")
RULES = LearningRules(res=6)
# Monday 23 November 2026, local time; hours of week 8 and 14.
MONDAY = datetime(2026, 11, 23, tzinfo=BERLIN)
CELL_A = h3.latlng_to_cell(52.52, 13.40, 6)
CELL_B = h3.latlng_to_cell(52.40, 13.10, 6)
TRUTH = {(CELL_A, 8): 5.0, (CELL_A, 14): 10.0, (CELL_B, 8): 8.0, (CELL_B, 14): 12.0}
METRES_PER_DEGREE = haversine_m(52.0, 13.0, 53.0, 13.0)


def drive(cell: str, start: datetime, speed_mps: float, seconds: int = 300) -> list[Fix]:
    """Fixes every 10 s of a drive north through ``cell``'s centre at ``speed_mps``."""
    lat, lon = h3.cell_to_latlng(cell)
    length_m = speed_mps * seconds
    first = lat - length_m / 2 / METRES_PER_DEGREE
    return [
        Fix(
            time=start + timedelta(seconds=t),
            lat=first + speed_mps * t / METRES_PER_DEGREE,
            lon=lon,
        )
        for t in range(0, seconds + 1, 10)
    ]


def synthetic_passes(seed: int, routes: int = 40) -> list[SpeedPass]:
    """``routes`` days of driving through both cells at both hours, each drive's speed off the
    truth by up to ±10 %, and one drive in ten a wild outlier (stuck, or racing)."""
    rng = random.Random(seed)
    passes: list[SpeedPass] = []
    for day in range(routes):
        for (cell, hour), speed in TRUTH.items():
            factor = rng.uniform(0.9, 1.1)
            if rng.random() < 0.1:
                factor = rng.choice([0.3, 2.5])
            start = MONDAY + timedelta(weeks=day, hours=hour, minutes=rng.randint(0, 50))
            start = start.astimezone(UTC)
            fixes = drive(cell, start, speed * factor, seconds=240)
            passes += speed_passes([fixes], [], BERLIN, RULES)
    return passes


@pytest.mark.parametrize("seed", range(1, 11))
def test_a_known_speed_field_is_recovered_within_five_percent(seed: int) -> None:
    """Forty weeks of drives through two cells at two hours recover each cell's speed at each
    hour within 5 %, outliers and noise notwithstanding."""
    table = learn_speeds(synthetic_passes(seed), RULES)
    assert table is not None
    for (cell, hour), speed in TRUTH.items():
        assert table.speed_mps(cell, hour) == pytest.approx(speed, rel=0.05), (cell, hour)


def test_a_pass_counts_in_the_local_hour_and_leaves_stop_visits_out() -> None:
    """A drive starting 08:10 Berlin time counts in Monday's hour 8, and the minute spent at a
    stop in the middle of it is not driving."""
    start = (MONDAY + timedelta(hours=8, minutes=10)).astimezone(UTC)
    fixes = drive(CELL_A, start, 6.0, seconds=300)
    (whole,) = speed_passes([fixes], [], BERLIN, RULES)
    assert (whole.cell, whole.hour_of_week, whole.seconds) == (CELL_A, 8, 300)
    visit = (start + timedelta(seconds=100), start + timedelta(seconds=160))
    (cut,) = speed_passes([fixes], [visit], BERLIN, RULES)
    assert cut.seconds == 300 - 60  # the six steps inside the visit
    assert hour_of_week(start, BERLIN) == 8


def test_a_thin_cell_is_shrunk_towards_the_city_and_an_unseen_one_drives_at_it() -> None:
    """A cell of five slow passes (2 m/s) among many fast ones (10 m/s) is pulled halfway to the
    city's pace by five pseudo-samples; a cell never driven drives at the city's speed of the
    hour; four passes are too few to learn anything."""
    many = [SpeedPass(cell="fast", hour_of_week=8, metres=600.0, seconds=60.0)] * 50
    few = [SpeedPass(cell="slow", hour_of_week=8, metres=120.0, seconds=60.0)] * 5
    table = learn_speeds(many + few, RULES)
    assert table is not None
    assert table.city_mps == pytest.approx(10.0)
    # relative pace 5, shrunk towards 1 in pace: (5 * 5 + 5 * 1) / 10 = 3, a third of the city's
    assert table.by_cell["slow"] == pytest.approx(10.0 / 3)
    assert table.speed_mps("never seen", 8) == pytest.approx(table.by_hour[8])
    assert learn_speeds(few[:4], RULES) is None


def test_learned_speeds_give_each_pair_the_harmonic_mean_scaled_by_circuity() -> None:
    """From a 5 m/s cell to a 10 m/s cell is 6.67 m/s (half the way in each), times configured
    over observed circuity."""
    table = SpeedTable(
        res=6, city_mps=8.0, by_cell={CELL_A: 5.0, CELL_B: 10.0}, observed_circuity=1.0
    )
    model = LearnedSpeeds(table, BERLIN, circuity=1.3)
    a, b = h3.cell_to_latlng(CELL_A), h3.cell_to_latlng(CELL_B)
    points = [Location(lat=a[0], lon=a[1]), Location(lat=b[0], lon=b[1])]
    speeds = model.speed_matrix_mps(points, int(MONDAY.timestamp()))
    assert speeds.shape == (2, 2)
    assert speeds[0, 1] == pytest.approx(2 / (1 / 5 + 1 / 10) * 1.3)
    assert np.allclose(speeds, speeds.T)


def test_service_times_answer_from_the_most_specific_figure() -> None:
    """An address with enough visits answers for itself, a customer's other addresses answer
    with the customer's figure, an unknown customer with the order size's."""
    samples = (
        [ServiceSample(address_key="1 a st", customer_key="c1", size_key="1", service_s=60.0)] * 6
        + [ServiceSample(address_key=f"{n} b st", customer_key="c2", size_key="1", service_s=300.0)
           for n in range(4)]
        + [ServiceSample(address_key=f"{n} c st", customer_key=None, size_key="6+", service_s=600.0)
           for n in range(3)]
    )  # fmt: skip
    table = learn_service(samples, min_samples=3, prior_weight=3)
    assert table is not None
    assert table.estimate("1 a st", "c1", "1")[1] == "address"
    assert table.estimate("9 b st", "c2", "1") == (table.by_customer["c2"], "customer")
    assert table.estimate("9 z st", None, "6+") == (table.by_size["6+"], "size")
    assert table.estimate("9 z st", None, "2") == (table.overall_s, "overall")
    assert table.by_address["1 a st"] < table.by_customer["c2"] < table.by_size["6+"]


def test_keys_leave_out_case_spacing_and_phone_punctuation() -> None:
    """Addresses and customers are matched without case, spacing or phone punctuation."""
    assert address_key("  1  Queen\tSt ") == address_key("1 queen st")
    assert customer_key("Ada@Example.COM") == "ada@example.com"
    assert customer_key("+49 (30) 123-45") == "+493012345"
    assert customer_key("  ") is None
    assert [size_key(n) for n in (0, 1, 2, 3, 5, 6, 40)] == [
        "1",
        "1",
        "2",
        "3-5",
        "3-5",
        "6+",
        "6+",
    ]


def test_a_plan_spanning_hours_drives_at_their_harmonic_mean() -> None:
    """A matrix for a day from 08:00 over two hours drives at the harmonic mean of the hours'
    speeds (equal time in each), not at the departure hour's alone."""
    table = SpeedTable(res=6, city_mps=8.0, by_hour={8: 5.0, 9: 10.0})
    a, b = h3.cell_to_latlng(CELL_A), h3.cell_to_latlng(CELL_B)
    points = [Location(lat=a[0], lon=a[1]), Location(lat=b[0], lon=b[1])]
    at_eight = int((MONDAY + timedelta(hours=8)).timestamp())
    one = LearnedSpeeds(table, BERLIN, circuity=1.3).speed_matrix_mps(points, at_eight)
    two = LearnedSpeeds(table, BERLIN, circuity=1.3, span_h=2).speed_matrix_mps(points, at_eight)
    assert one[0, 1] == pytest.approx(5.0)
    assert two[0, 1] == pytest.approx(2 / (1 / 5 + 1 / 10))


def test_a_routes_spread_is_measured_on_days_the_speeds_were_not_learned_from() -> None:
    """Four days of routes driven at × e^0.2 and × e^-0.2 a city's 10 m/s: each of the last
    three days measured against the speeds of the other days strays by 0.2 in log (the mean
    pace of the two sits at cosh 0.2), a robust standard deviation of 0.2; one day alone has no
    other day to be measured against, and routes under ten minutes of passes count for
    nothing."""

    def route(log_factor: float, seconds: float = 900.0) -> list[SpeedPass]:
        metres = 10.0 * seconds / math.exp(log_factor)
        return [SpeedPass(cell="c", hour_of_week=8, metres=metres / 3, seconds=seconds / 3)] * 3

    days = [date(2026, 11, d) for d in (2, 3, 4, 5)]
    routes = [(day, route(f)) for day in days for f in (0.2, -0.2, 0.2, -0.2)]
    assert route_pace_sd(routes, RULES) == pytest.approx(0.2 * MAD_TO_SD, rel=0.01)
    table = learn_speeds([p for _, ps in routes for p in ps], RULES)
    assert table is not None
    logs = route_log_ratios(table, [route(0.2), route(0.2, seconds=300.0)], RULES)
    assert logs == [pytest.approx(0.2 - math.log(math.cosh(0.2)), abs=0.002)]
    assert route_pace_sd([r for r in routes if r[0] == days[0]], RULES) is None


def test_the_eta_prior_takes_the_learned_spread_within_its_bounds() -> None:
    """A learned spread replaces the pace prior, no narrower than ``pace_prior_learned_min``
    and no wider than the configured prior; without one the configuration stays."""
    config = EtaConfig()
    assert config.with_learned_prior(None) is config
    assert config.with_learned_prior(0.2).pace_prior_sd == pytest.approx(0.2)
    assert config.with_learned_prior(0.01).pace_prior_sd == config.pace_prior_learned_min
    assert config.with_learned_prior(3.0).pace_prior_sd == config.pace_prior_sd


def test_a_service_time_is_the_mean_without_outliers() -> None:
    """Right-skewed services (most 2-4 minutes, a few 8) give their mean, above the median a
    trimmed mean would lean to; a two-hour stop among them is left out."""
    usual = [120.0, 150.0, 180.0, 180.0, 200.0, 210.0, 240.0, 240.0, 480.0, 480.0]
    samples = [
        ServiceSample(address_key=f"{n} a st", customer_key=None, size_key="1", service_s=s)
        for n, s in enumerate([*usual, 7200.0])
    ]
    table = learn_service(samples)
    assert table is not None
    assert table.overall_s == pytest.approx(sum(usual) / len(usual), abs=0.1)
    assert table.overall_s > statistics.median(usual)
