"""The solver pool with learned speeds: a call that names a model drives at its speeds, each
process builds the provider of a (model, time zone, span) once and keeps it, and a call
without one keeps the configured provider."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from app.process.solver_pool import LearnedTravel, SolverPool
from app.settings import Settings
from schemas.planning import Location
from solver.learning import SpeedTable
from solver.matrix import MatrixProvider

BERLIN = Location(lat=52.52, lon=13.405)
POTSDAM = Location(lat=52.3906, lon=13.0645)


def driving(a: Location, b: Location, *, provider: MatrixProvider) -> tuple[int, int, int]:
    """The provider's driving seconds from a to b, the provider's identity and the process."""
    seconds = provider.matrix([a, b], depart_epoch_s=1_765_000_000).duration_s[0][1]
    return seconds, id(provider), os.getpid()


def travel(model_id: int, city_mps: float, span_h: int = 3) -> LearnedTravel:
    table = SpeedTable(res=8, city_mps=city_mps)
    return LearnedTravel(
        model_id=model_id,
        timezone="Europe/Berlin",
        speeds_json=msgspec.json.encode(table),
        span_h=span_h,
    )


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[SolverPool]:
    solver = SolverPool(Settings(data_dir=tmp_path, travel_speed_mps=10.0, circuity=1.0), 1)
    yield solver
    solver.close()


async def test_a_call_with_a_model_drives_at_its_speeds(pool: SolverPool) -> None:
    """About 27 km at 10 m/s configured, twice as long at a learned 5 m/s."""
    configured, _, _ = await pool.run(driving, BERLIN, POTSDAM)
    learned, _, _ = await pool.run(driving, BERLIN, POTSDAM, travel=travel(1, 5.0))
    assert 2_500 < configured < 2_900
    assert learned == pytest.approx(2 * configured, abs=2)
    again, _, _ = await pool.run(driving, BERLIN, POTSDAM)
    assert again == configured


def kept(*, provider: MatrixProvider) -> list[tuple[int, str, int]]:
    """The (model, time zone, span) of the learned providers this solver process keeps."""
    from app.process import solver_pool

    return list(solver_pool._learned.keys())


async def test_a_process_builds_a_models_provider_once_per_span(pool: SolverPool) -> None:
    """The same model and span give the same provider in a process; another span or model, a
    provider of its own. (Object ids alone would not show it: a provider dropped after a call
    may leave its id to the next one.)"""
    _, first, pid = await pool.run(driving, BERLIN, POTSDAM, travel=travel(1, 5.0))
    _, same, same_pid = await pool.run(driving, BERLIN, POTSDAM, travel=travel(1, 5.0))
    assert (same, same_pid) == (first, pid)
    assert await pool.run(kept) == [(1, "Europe/Berlin", 3)]
    _, other_span, _ = await pool.run(driving, BERLIN, POTSDAM, travel=travel(1, 5.0, span_h=4))
    _, other_model, _ = await pool.run(driving, BERLIN, POTSDAM, travel=travel(2, 5.0))
    assert len({first, other_span, other_model}) == 3
    assert sorted(await pool.run(kept)) == [
        (1, "Europe/Berlin", 3),
        (1, "Europe/Berlin", 4),
        (2, "Europe/Berlin", 3),
    ]
