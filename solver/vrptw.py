"""Plan a day's routes: the vehicle routing problem with time windows, solved with OR-Tools.

:func:`solve` is the one entry point. It asks the matrix provider for travel times, validates
and indexes the problem (:mod:`solver.instance`), pre-checks which vehicles could serve each
order (:mod:`solver.feasibility`), builds the routing model (:mod:`solver.model`), searches
within the problem's time limit (:mod:`solver.search`) and returns a
:class:`~schemas.planning.PlanningResult` in which every order is either on a route or listed
as unassigned with its reason. It does no I/O; the caller's time limit covers everything
including the matrix and the model building.
"""

from __future__ import annotations

import time as clock

from schemas.planning import (
    OrderRef,
    PlanningProblem,
    PlanningResult,
    SearchStats,
    UnassignedOrder,
)
from solver.feasibility import precheck
from solver.instance import compile_problem, problem_points
from solver.matrix import MatrixProvider
from solver.model import build_model
from solver.readback import read_routes, served_orders
from solver.search import ProgressCallback, SearchTuning, run_search

MIN_SEARCH_S = 0.05
"""The search gets at least this long, even when preparing the model used up the time limit."""
READBACK_SHARE = 0.02
"""Share of the time limit (at most :data:`READBACK_MAX_S`) kept for reading the plan back."""
READBACK_MAX_S = 0.5


def solve(
    problem: PlanningProblem,
    provider: MatrixProvider,
    *,
    on_progress: ProgressCallback | None = None,
    tuning: SearchTuning | None = None,
) -> PlanningResult:
    """Plan routes for ``problem`` with travel times from ``provider``.

    Returns within about ``problem.options.time_limit_s`` seconds: the matrix, the model and
    reading the plan back all come out of that budget (a 1,000-order plan reads back in well
    under the 2 % kept for it). ``on_progress`` is called synchronously, from inside the
    search, with each solution that improves on the best so far; it should be quick. An
    exception it raises comes out of this call when the search stops (see
    :func:`solver.search.run_search`).

    Raises :class:`~solver.errors.ProblemError` for an inconsistent problem and
    :class:`~solver.errors.MatrixError` when the provider cannot handle its points.
    """
    began = clock.monotonic()
    tuning = tuning if tuning is not None else SearchTuning()
    depart = min((v.shift.start_epoch_s for v in problem.vehicles), default=0)
    matrix = provider.matrix(problem_points(problem), depart_epoch_s=depart)
    instance = compile_problem(problem, matrix)
    verdicts = precheck(instance)
    orders = problem.orders

    unassigned = [
        UnassignedOrder(order_ref=OrderRef(orders[k].ref), code=verdict.code, reason=verdict.reason)
        for k, verdict in enumerate(verdicts)
        if verdict.code is not None and verdict.reason is not None
    ]
    candidates = [k for k, verdict in enumerate(verdicts) if verdict.vehicles]

    def stats(status: str, objective: float, solutions: int) -> SearchStats:
        return SearchStats(
            objective=objective,
            wall_time_s=clock.monotonic() - began,
            solutions_found=solutions,
            status=status,
            first_solution_strategy=tuning.first_solution,
            metaheuristic=tuning.metaheuristic,
        )

    rejected = sum(instance.penalty[k] for k, v in enumerate(verdicts) if not v.vehicles)
    if not candidates:
        return PlanningResult(routes=[], unassigned=unassigned, stats=stats("success", rejected, 0))

    built = build_model(instance, verdicts)
    limit_s = problem.options.time_limit_s
    reserve_s = min(READBACK_MAX_S, READBACK_SHARE * limit_s)
    remaining_s = limit_s - reserve_s - (clock.monotonic() - began)
    outcome = run_search(built, tuning, max(remaining_s, MIN_SEARCH_S), on_progress)

    if outcome.assignment is None:
        unassigned += [
            UnassignedOrder(
                order_ref=OrderRef(orders[k].ref),
                code="no_solution",
                reason=f"the search found no solution within its time limit ({outcome.status})",
            )
            for k in candidates
        ]
        return PlanningResult(routes=[], unassigned=unassigned, stats=stats(outcome.status, 0.0, 0))

    routes = read_routes(instance, built, outcome.assignment)
    served = served_orders(built, outcome.assignment)
    unassigned += [
        UnassignedOrder(
            order_ref=OrderRef(orders[k].ref),
            code="search",
            reason=(
                "not served within the search: its unassignment penalty "
                f"({instance.penalty[k]:g}) was cheaper than any insertion found"
            ),
        )
        for k in candidates
        if k not in served
    ]
    return PlanningResult(
        routes=routes,
        unassigned=unassigned,
        stats=stats(outcome.status, outcome.objective + rejected, outcome.solutions_found),
    )
