"""Plan a day's routes: the vehicle routing problem with time windows.

:func:`solve` is the one entry point. It asks the matrix provider for travel times, validates
and indexes the problem (:mod:`solver.instance`), pre-checks which vehicles could serve each
order (:mod:`solver.feasibility`), picks the engine and the processes (:mod:`solver.portfolio`:
PyVRP, or OR-Tools for breaks, workload balance and several windows per order), searches
within the problem's time limit, checks every candidate plan independently
(:mod:`solver.check`) and returns the cheapest as a :class:`~schemas.planning.PlanningResult`
in which every order is either on a route or listed as unassigned with its reason. It does no
I/O; the caller's time limit covers everything including the matrix and the model building.
"""

from __future__ import annotations

import itertools
import multiprocessing
import time as clock
from collections.abc import Callable, Sequence

from schemas.planning import (
    OrderRef,
    PlanningProblem,
    PlanningResult,
    Route,
    SearchStats,
    UnassignedOrder,
)
from solver.check import check_plan
from solver.errors import InfeasiblePlan
from solver.feasibility import precheck
from solver.instance import Instance, compile_problem, problem_points
from solver.matrix import MatrixProvider
from solver.portfolio import (
    Candidate,
    Choice,
    choose_engine,
    fleet_carries_all,
    ortools_search_name,
    plan_jobs,
    process_count,
    run_job,
    run_jobs,
)
from solver.schedule import time_route
from solver.search import ProgressCallback, SearchTuning

READBACK_SHARE = 0.03
"""Share of the time limit (at most :data:`READBACK_MAX_S`) kept for reading the plans back
from the search processes, timing, checking and comparing them."""
READBACK_MAX_S = 2.0


def solve(
    problem: PlanningProblem,
    provider: MatrixProvider,
    *,
    on_progress: ProgressCallback | None = None,
    tuning: SearchTuning | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> PlanningResult:
    """Plan routes for ``problem`` with travel times from ``provider``.

    Returns within about ``problem.options.time_limit_s`` seconds: the matrix, the model and
    reading the plan back all come out of that budget. ``on_progress`` is called
    synchronously, from the calling thread, with each solution that improves on the best so
    far; it should be quick. An exception it raises comes out of this call when the search
    stops (see :func:`solver.search.run_search`).

    ``should_stop``, when given, is polled while the search runs (about every 0.1 s, from the
    calling thread). Once it returns true the search stops within about a second — in every
    engine and every search process — and ``solve`` returns normally with the best plan found
    so far and ``stats.status == "cancelled"`` (orders the search had not placed yet are
    unassigned with code ``"search"``; with no plan found yet, all are, with
    ``"no_solution"``). OR-Tools' iterated local search does not heed cancellation, so when
    ``should_stop`` is given it runs in a process of its own, which is ended when asked to
    stop; its best plan so far is the last one it told.

    ``stats.engine``, ``stats.search`` and ``stats.processes`` say what ran. Every plan is
    re-checked by :func:`solver.check.check_plan` before it is returned.

    Raises :class:`~solver.errors.ProblemError` for an inconsistent problem,
    :class:`~solver.errors.MatrixError` when the provider cannot handle its points, and
    :class:`~solver.errors.InfeasiblePlan` if an engine returned a plan that breaks a
    constraint (a bug: such a plan is never returned).
    """
    began = clock.monotonic()
    tuning = tuning if tuning is not None else SearchTuning()
    depart = min((v.shift.start_epoch_s for v in problem.vehicles), default=0)
    matrix = provider.matrix(problem_points(problem), depart_epoch_s=depart)
    instance = compile_problem(problem, matrix)
    verdicts = precheck(instance)
    orders = problem.orders
    choice = choose_engine(instance, tuning.engine)

    rejected_orders = [
        UnassignedOrder(order_ref=OrderRef(orders[k].ref), code=verdict.code, reason=verdict.reason)
        for k, verdict in enumerate(verdicts)
        if verdict.code is not None and verdict.reason is not None
    ]
    candidates = [k for k, verdict in enumerate(verdicts) if verdict.vehicles]
    rejected = sum(instance.penalty[k] for k, v in enumerate(verdicts) if not v.vehicles)

    def stats(
        status: str,
        objective: float,
        solutions: int,
        search: str,
        processes: int,
        engine: str = choice.engine,
    ) -> SearchStats:
        return SearchStats(
            objective=objective,
            wall_time_s=clock.monotonic() - began,
            solutions_found=solutions,
            status=status,
            first_solution_strategy=tuning.first_solution,
            metaheuristic=tuning.metaheuristic,
            engine=engine,
            search=search,
            engine_reason=choice.reason,
            processes=processes,
        )

    if not candidates:
        return PlanningResult(
            routes=[], unassigned=rejected_orders, stats=stats("success", rejected, 0, "", 0)
        )

    limit_s = problem.options.time_limit_s
    deadline = began + limit_s - min(READBACK_MAX_S, READBACK_SHARE * limit_s)
    # A daemonic process may not start processes of its own: it searches in this one.
    daemonic = multiprocessing.current_process().daemon
    processes = 1 if daemonic else process_count(problem, len(candidates), tuning)
    jobs = plan_jobs(choice, processes, may_require=fleet_carries_all(instance, candidates))
    # OR-Tools does not poll should_stop here: a search that must stop runs in a process.
    must_stop = should_stop is not None and jobs[0].kind != "pyvrp"
    if daemonic or (len(jobs) == 1 and not must_stop):
        found = [run_job(instance, verdicts, jobs[0], tuning, deadline, on_progress, should_stop)]
        stopped = found[0].status == "cancelled"
        processes = 0
    else:
        found, stopped = run_jobs(
            instance, verdicts, jobs, tuning, deadline, on_progress, should_stop
        )
        processes = len(jobs)

    best = _best_plan(instance, candidates, found, rejected_orders, rejected)
    if best is None:
        unassigned = rejected_orders + [
            UnassignedOrder(
                order_ref=OrderRef(orders[k].ref),
                code="no_solution",
                reason="the search found no solution within its time limit",
            )
            for k in candidates
        ]
        status = "cancelled" if stopped else "no_solution"
        search = found[0].search if found else _search_name(choice, tuning)
        return PlanningResult(
            routes=[], unassigned=unassigned, stats=stats(status, 0.0, 0, search, processes)
        )
    candidate, routes, left_out, cost = best
    objective = candidate.objective + rejected if candidate.objective else cost
    status = "cancelled" if stopped else candidate.status
    solutions = max(c.solutions_found for c in found)
    return PlanningResult(
        routes=routes,
        unassigned=rejected_orders + left_out,
        stats=stats(status, objective, solutions, candidate.search, processes, candidate.engine),
    )


def _search_name(choice: Choice, tuning: SearchTuning) -> str:
    if choice.engine == "ortools":
        return ortools_search_name(tuning)
    from solver.pyvrp_search import SEARCH

    return SEARCH


def _best_plan(
    instance: Instance,
    candidates: Sequence[int],
    found: Sequence[Candidate],
    rejected_orders: Sequence[UnassignedOrder],
    rejected: float,
) -> tuple[Candidate, list[Route], list[UnassignedOrder], float] | None:
    """The cheapest candidate plan that passes the check, its routes, left-out orders, cost.

    A plan a search finished and timed itself must pass: a fault there raises
    :class:`~solver.errors.InfeasiblePlan`. A plan told by a process that was ended before it
    finished (timed here) is only left out when it fails.
    """
    best: tuple[Candidate, list[Route], list[UnassignedOrder], float] | None = None
    for candidate in found:
        if candidate.sequences is None:
            continue
        routes = candidate.routes
        if routes is None:
            routes = [
                time_route(instance, v, orders)
                for v, orders in enumerate(candidate.sequences)
                if orders
            ]
        served = {k for orders in candidate.sequences for k in orders}
        left_out = [
            UnassignedOrder(
                order_ref=OrderRef(instance.problem.orders[k].ref),
                code="search",
                reason=(
                    "not served within the search: its unassignment penalty "
                    f"({instance.penalty[k]:g}) was cheaper than any insertion found"
                ),
            )
            for k in candidates
            if k not in served
        ]
        try:
            check_plan(instance, routes, [*rejected_orders, *left_out])
        except InfeasiblePlan:
            if candidate.status not in {"cancelled", "ended"}:
                raise
            continue
        cost = (
            sum(r.cost for r in routes)
            + sum(instance.penalty[k] for k in candidates if k not in served)
            + rejected
            + _balance_cost(instance, routes)
        )
        if best is None or cost < best[3]:
            best = (candidate, routes, left_out, cost)
    return best


def _balance_cost(instance: Instance, routes: Sequence[Route]) -> float:
    """The workload-balance term: the longest route's driving and service, per hour."""
    options = instance.problem.options
    if not options.balance_workload or not routes:
        return 0.0
    problem = instance.problem
    order_index = {o.ref: k for k, o in enumerate(problem.orders)}
    vehicle_index = {vehicle.ref: v for v, vehicle in enumerate(problem.vehicles)}
    longest = 0
    for route in routes:
        v = vehicle_index[route.vehicle_ref]
        points = [instance.order_point[order_index[s.order_ref]] for s in route.stops]
        path = [instance.vehicle_start[v], *points, instance.vehicle_end[v]]
        driving = sum(instance.travel_s(a, b) for a, b in itertools.pairwise(path))
        service = sum(s.departure_epoch_s - s.service_start_epoch_s for s in route.stops)
        longest = max(longest, service + driving)
    return options.balance_cost_per_hour * longest / 3600.0
