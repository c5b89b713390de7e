"""How the PyVRP engine sets up its search: first penalty weights and late-acceptance history.

Whether the engine plans well is shown by the known-optimum instances (``test_constraints``)
and measured by ``bench.solomon``; these tests pin what the set-up itself promises.
"""

from __future__ import annotations

import numpy as np
import pytest

from solver.pyvrp_search import (
    HISTORY_MAX,
    HISTORY_MIN,
    MAX_PENALTY,
    PyvrpModel,
    history_length,
    initial_penalties,
)
from tests.solver.builders import compiled, day, drop, van


def test_first_penalties_are_what_an_average_arc_costs_per_unit() -> None:
    """A second of time warp first costs what an average arc costs per second of it, a unit of
    overload what it costs per unit an order carries (so a dimension counted in units ten
    times smaller weighs ten times less), below the halfway point of the bound PyVRP starts at."""
    fleet = [
        van(f"v{i}", capacity=[100, 1000], cost_per_km=1.0, cost_per_hour=36.0) for i in range(3)
    ]
    orders = [drop(f"o{k}", 500.0 * k, 300.0 * (k % 4), size=[1, 10]) for k in range(12)]
    model = PyvrpModel(compiled(day(fleet, orders, dimensions=("parcels", "kg"))), range(12))
    (parcels, kg), warp, excess = initial_penalties(model)

    vehicle = model.data.vehicle_type(0)
    distance = float(np.mean(model.instance.matrix.distance_m))
    duration = float(np.mean(model.instance.matrix.duration_s))
    arc = vehicle.unit_distance_cost * distance + vehicle.unit_duration_cost * duration
    assert warp * duration == pytest.approx(arc)
    assert excess * distance == pytest.approx(arc)
    assert parcels == pytest.approx(arc)
    assert kg == pytest.approx(arc / 10)
    assert max(parcels, kg, warp, excess) < MAX_PENALTY / 2


def test_the_history_shortens_as_the_day_grows() -> None:
    """PyVRP's default history for days up to 100 orders, shorter for larger ones, never
    below the floor."""
    assert history_length(0) == history_length(100) == HISTORY_MAX == 300
    assert history_length(200) == 150
    assert history_length(1000) == history_length(5000) == HISTORY_MIN == 100
