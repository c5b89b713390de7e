"""Running the OR-Tools search over a built model.

The search builds a first solution with :attr:`SearchTuning.first_solution` and improves it
with :attr:`SearchTuning.metaheuristic` until the time limit: by default OR-Tools' iterated
local search (ruin and recreate), with guided local search one setting away. Each solution
that improves on the best so far is reported to the caller's progress callback.
"""

from __future__ import annotations

import time as clock
from collections.abc import Callable
from typing import Any

import msgspec
from ortools.constraint_solver import pywrapcp, routing_enums_pb2
from ortools.util import optional_boolean_pb2

from solver.errors import ProblemError
from solver.model import COST_SCALE, BuiltModel

FIRST_SOLUTION_STRATEGIES = frozenset(routing_enums_pb2.FirstSolutionStrategy.Value.keys())
ITERATED_LOCAL_SEARCH = "ITERATED_LOCAL_SEARCH"
"""Not one of OR-Tools' local search metaheuristics but its own ruin-and-recreate loop."""
METAHEURISTICS = frozenset(routing_enums_pb2.LocalSearchMetaheuristic.Value.keys()) | {
    ITERATED_LOCAL_SEARCH
}
ENGINES = frozenset({"pyvrp", "ortools"})
"""The engines :attr:`SearchTuning.engine` may name (see :mod:`solver.portfolio`)."""
INSERTION_LNS_OPERATORS = (
    "use_global_cheapest_insertion_path_lns",
    "use_local_cheapest_insertion_path_lns",
    "use_relocate_path_global_cheapest_insertion_insert_unperformed",
    "use_global_cheapest_insertion_visit_types_lns",
    "use_local_cheapest_insertion_visit_types_lns",
)


class SearchTuning(msgspec.Struct, frozen=True, kw_only=True):
    """Knobs of the OR-Tools search; the defaults are what the benchmarks measured best.

    Measured (``docs/solver.md``): parallel cheapest insertion gives the best first solution on
    a 1,000-order day (path cheapest arc is faster but worse, savings drops orders); the
    iterated local search beats guided local search by about two points of gap on Solomon
    subsets at 3 s; dropping the insertion LNS operators and choosing operators by bandit
    gain about another point.

    ``first_solution`` is a name from OR-Tools' ``FirstSolutionStrategy`` enum.
    ``metaheuristic`` is a name from its ``LocalSearchMetaheuristic`` enum, such as
    ``"GUIDED_LOCAL_SEARCH"``, or ``"ITERATED_LOCAL_SEARCH"``: OR-Tools' ruin-and-recreate
    loop, which removes strings of nearby stops (SISR: strings up to ``ruin_max_string`` long,
    ``ruin_avg_removed`` stops on average), re-inserts them, runs a greedy local search and
    accepts the result by simulated annealing. ``gls_lambda`` is the guided local search
    penalty factor; ``full_propagation`` makes the local search filters propagate every
    constraint (slower moves, fewer dead ends); ``lns`` switches on the path and
    inactive-order large-neighbourhood operators. ``insertion_lns`` keeps OR-Tools' five
    cheapest-insertion LNS operators (on by default in OR-Tools): they re-insert whole paths
    and are slow, and with ruin and recreate doing insertions they cost more than they give.
    ``operator_bandit`` lets a multi-armed bandit pick which local search operator to try next
    instead of a fixed order. ``processes`` is how many processes may search a day in
    parallel; ``None`` lets :func:`solver.portfolio.process_count` decide (every core, on a
    large enough day). ``engine`` (``"pyvrp"`` or ``"ortools"``) overrides the portfolio's
    choice of engine; ``None`` lets :func:`solver.portfolio.choose_engine` pick by the
    problem's features.
    """

    first_solution: str = "PARALLEL_CHEAPEST_INSERTION"
    metaheuristic: str = ITERATED_LOCAL_SEARCH
    gls_lambda: float = 0.1
    full_propagation: bool = False
    lns: bool = False
    insertion_lns: bool = False
    operator_bandit: bool = True
    ruin_max_string: int = 15
    ruin_avg_removed: int = 10
    log_search: bool = False
    processes: int | None = None
    engine: str | None = None

    def __post_init__(self) -> None:
        if self.first_solution not in FIRST_SOLUTION_STRATEGIES:
            raise ProblemError(
                "tuning",
                f"expected first_solution in {sorted(FIRST_SOLUTION_STRATEGIES)}, "
                f"got {self.first_solution!r}",
            )
        if self.ruin_max_string < 1 or self.ruin_avg_removed < 1:
            raise ProblemError(
                "tuning",
                "expected ruin_max_string and ruin_avg_removed of at least 1, "
                f"got {self.ruin_max_string} and {self.ruin_avg_removed}",
            )
        if self.processes is not None and self.processes < 1:
            raise ProblemError("tuning", f"expected processes of at least 1, got {self.processes}")
        if self.engine is not None and self.engine not in ENGINES:
            raise ProblemError(
                "tuning", f"expected engine in {sorted(ENGINES)} or none, got {self.engine!r}"
            )
        if self.metaheuristic not in METAHEURISTICS:
            raise ProblemError(
                "tuning",
                f"expected metaheuristic in {sorted(METAHEURISTICS)}, got {self.metaheuristic!r}",
            )


SEQUENCES_EVERY_S = 0.2
"""How often at most an improving solution's visiting orders are read and passed on."""


class Progress(msgspec.Struct, frozen=True, kw_only=True):
    """An improving solution: its objective (currency), seconds since the search began, count."""

    objective: float
    elapsed_s: float
    solutions_found: int


ProgressCallback = Callable[[Progress], None]


class SearchOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """The best assignment (``None`` when none was found) and what the search did."""

    assignment: Any
    status: str
    objective: float
    solutions_found: int


def search_parameters(tuning: SearchTuning, time_limit_s: float) -> Any:
    """OR-Tools search parameters for ``tuning`` stopping after ``time_limit_s`` seconds."""
    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.Value.Value(
        tuning.first_solution
    )
    if tuning.metaheuristic == ITERATED_LOCAL_SEARCH:
        params.local_search_metaheuristic = (
            routing_enums_pb2.LocalSearchMetaheuristic.GREEDY_DESCENT
        )
        params.use_iterated_local_search = True
        ils = params.iterated_local_search_parameters
        sisr = ils.ruin_recreate_parameters.ruin_strategies.add().sisr
        sisr.max_removed_sequence_size = tuning.ruin_max_string
        sisr.avg_num_removed_visits = tuning.ruin_avg_removed
        sisr.bypass_factor = 0.01
        # Temperatures follow the objective's scale, which COST_SCALE makes arbitrary.
        ils.reference_solution_acceptance_strategy.simulated_annealing.automatic_temperatures = True
    else:
        params.local_search_metaheuristic = routing_enums_pb2.LocalSearchMetaheuristic.Value.Value(
            tuning.metaheuristic
        )
    params.guided_local_search_lambda_coefficient = tuning.gls_lambda
    params.use_full_propagation = tuning.full_propagation
    if tuning.lns:
        operators = params.local_search_operators
        operators.use_path_lns = optional_boolean_pb2.BOOL_TRUE
        operators.use_inactive_lns = optional_boolean_pb2.BOOL_TRUE
    if not tuning.insertion_lns:
        operators = params.local_search_operators
        for name in INSERTION_LNS_OPERATORS:
            setattr(operators, name, optional_boolean_pb2.BOOL_FALSE)
    params.use_multi_armed_bandit_concatenate_operators = tuning.operator_bandit
    params.log_search = tuning.log_search
    params.time_limit.FromMilliseconds(max(1, round(time_limit_s * 1000)))
    return params


def run_search(
    built: BuiltModel,
    tuning: SearchTuning,
    time_limit_s: float,
    on_progress: ProgressCallback | None = None,
    on_sequences: Callable[[list[list[int]]], None] | None = None,
) -> SearchOutcome:
    """Search for at most ``time_limit_s`` seconds; report each improving solution.

    An exception raised by ``on_progress`` cancels the search and is raised from here once
    OR-Tools returns: at once under guided local search, at the time limit under the iterated
    local search (which does not heed the cancellation: that is why a search that must stop on
    request runs in a process of its own, see :mod:`solver.portfolio`). ``on_sequences``, when
    given, gets the improving solution's visiting orders (per vehicle, order indices) at most
    every :data:`SEQUENCES_EVERY_S` seconds, so that a process killed mid-search has told its
    best so far.
    """
    routing = built.routing
    began = clock.monotonic()
    best: list[float] = []
    failures: list[Exception] = []
    told = [-SEQUENCES_EVERY_S]

    def tell_sequences() -> None:
        now = clock.monotonic()
        if on_sequences is None or now - told[0] < SEQUENCES_EVERY_S:
            return
        told[0] = now
        on_sequences(current_sequences(built))

    def at_solution() -> None:
        # Not Value(): with per-hour costs the schedule (and so the cost) of a solution may not
        # be fixed yet when it is reported; Min() is its cost with the best schedule, which is
        # the one the search keeps.
        objective = int(routing.CostVar().Min()) / COST_SCALE
        if best and objective >= best[-1]:
            return
        best.append(objective)
        tell_sequences()
        if on_progress is None or failures:
            return
        progress = Progress(
            objective=objective, elapsed_s=clock.monotonic() - began, solutions_found=len(best)
        )
        try:
            on_progress(progress)
        except Exception as exc:
            # An exception cannot cross OR-Tools' C++ frames (it would be swallowed there).
            failures.append(exc)
            routing.CancelSearch()

    routing.AddAtSolutionCallback(at_solution)
    params = search_parameters(tuning, time_limit_s)
    if tuning.metaheuristic == ITERATED_LOCAL_SEARCH:
        assignment = routing.SolveWithIteratedLocalSearch(params)
    else:
        assignment = routing.SolveWithParameters(params)
    if failures:
        raise failures[0]
    status = routing_enums_pb2.RoutingSearchStatus.Value.Name(routing.status())
    if assignment is not None and status == "ROUTING_NOT_SOLVED":
        # The iterated local search returns its best solution without updating the status.
        status = "ROUTING_SUCCESS"
    objective = assignment.ObjectiveValue() / COST_SCALE if assignment is not None else 0.0
    return SearchOutcome(
        assignment=assignment,
        status=status.removeprefix("ROUTING_").lower(),
        objective=float(objective),
        solutions_found=len(best),
    )


def current_sequences(built: BuiltModel) -> list[list[int]]:
    """Each vehicle's orders in the solution being reported (call from a solution callback)."""
    return _sequences(built, lambda index: built.routing.NextVar(index).Value())


def current_sequences_of(built: BuiltModel, assignment: Any) -> list[list[int]]:
    """Each vehicle's orders in ``assignment``."""
    return _sequences(built, lambda index: assignment.Value(built.routing.NextVar(index)))


def _sequences(built: BuiltModel, next_of: Callable[[int], int]) -> list[list[int]]:
    routing = built.routing
    manager = built.manager
    out: list[list[int]] = []
    for v in range(routing.vehicles()):
        index = next_of(routing.Start(v))
        orders: list[int] = []
        while not routing.IsEnd(index):
            k = built.node_order[manager.IndexToNode(index)]
            if k is not None:
                orders.append(k)
            index = next_of(index)
        out.append(orders)
    return out
