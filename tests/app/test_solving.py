"""The API's solver pool: calls run in another process with that process's provider, errors
come back as raised, and a pool whose process died is replaced."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.process.solver_pool import SolverPool
from app.settings import Settings
from schemas.planning import Location
from solver.errors import ProblemError
from solver.matrix import MatrixProvider


def driving_s(a: Location, b: Location, *, provider: MatrixProvider) -> tuple[int, int]:
    """The provider's driving seconds from a to b, and the process that answered."""
    return provider.matrix([a, b], depart_epoch_s=0).duration_s[0][1], os.getpid()


def refuse(subject: str, *, provider: MatrixProvider) -> None:
    raise ProblemError(subject, "expected something else")


def die_once(marker: str, *, provider: MatrixProvider) -> str:
    """Kill the solver process the first time (as the OOM killer would), answer afterwards."""
    if not Path(marker).exists():
        Path(marker).touch()
        os._exit(1)
    return "answered"


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[SolverPool]:
    solver = SolverPool(Settings(data_dir=tmp_path, travel_speed_mps=10.0, circuity=1.0), 1)
    yield solver
    solver.close()


BERLIN = Location(lat=52.52, lon=13.405)
POTSDAM = Location(lat=52.3906, lon=13.0645)


async def test_a_call_runs_in_a_solver_process_with_the_settings_provider(
    pool: SolverPool,
) -> None:
    """Same answer as the configured provider gives here, from another process."""
    seconds, pid = await pool.run(driving_s, BERLIN, POTSDAM)
    assert pid != os.getpid()
    assert 2_500 < seconds < 2_900  # about 27 km as the crow flies at 10 m/s
    again, same = await pool.run(driving_s, BERLIN, POTSDAM)
    assert (again, same) == (seconds, pid)


async def test_a_solver_error_comes_back_with_its_fields(pool: SolverPool) -> None:
    """A ProblemError raised in the solver process is raised here, subject and detail intact."""
    with pytest.raises(ProblemError) as caught:
        await pool.run(refuse, "route 7")
    assert (caught.value.subject, caught.value.detail) == ("route 7", "expected something else")


async def test_a_dead_solver_process_is_replaced(pool: SolverPool, tmp_path: Path) -> None:
    """The call that lost its process is retried once in a new pool; later calls work."""
    first_pid = (await pool.run(driving_s, BERLIN, POTSDAM))[1]
    assert await pool.run(die_once, str(tmp_path / "died")) == "answered"
    assert (tmp_path / "died").exists()
    assert (await pool.run(driving_s, BERLIN, POTSDAM))[1] != first_pid
