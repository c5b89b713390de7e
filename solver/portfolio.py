"""Which engine plans a problem, how many processes search, and running them.

Two engines plan days (see ``docs/solver.md`` for the measurements behind the choice):

* **PyVRP** (:mod:`solver.pyvrp_search`), an iterated local search that is far ahead on
  large days, for every problem its model expresses: capacities in several dimensions, one
  time window per order, shifts, maximum durations, skills, priorities with penalties;
* **OR-Tools** (:mod:`solver.model`, :mod:`solver.search`) for what only it expresses:
  breaks, workload balance, orders with several time windows.

:func:`choose_engine` picks by the problem's features. :func:`plan_jobs` decides what runs:
one search, or on a large day one search per core, each in a process of its own — PyVRP with
different seeds, every other one required to serve every order (see :class:`Job`); for a day
with breaks, OR-Tools' own search beside PyVRP planning the day with
room kept for the breaks, whose late stops are then left out (:mod:`solver.repair`), or for
other OR-Tools problems its guided local search. :func:`run_jobs` runs them, stops them when
asked, and returns every candidate plan; the caller keeps the cheapest one that passes
:mod:`solver.check`.

Processes are started with the ``spawn`` method: the caller may be a thread of a process that
holds sockets and locks, which ``fork`` would copy. A search that must stop on request runs in
a process of its own when it is OR-Tools' iterated local search, which heeds no cancellation;
the process tells its best visiting orders as it goes and is ended when asked to stop.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time as clock
from collections.abc import Callable, Sequence
from importlib.metadata import version
from multiprocessing.connection import Connection, wait
from typing import Any, Literal, cast

import msgspec

from schemas.planning import PlanningProblem, Route
from solver.errors import ProblemError
from solver.feasibility import Verdict
from solver.instance import Instance
from solver.search import Progress, ProgressCallback, SearchTuning

Engine = Literal["pyvrp", "ortools"]
JobKind = Literal["pyvrp", "ortools", "ortools_gls", "pyvrp_breaks"]

PARALLEL_MIN_ORDERS = 100
"""Days with fewer orders search in one process: they are solved well before a second
process would have started (spawning one and importing the engines takes about a second)."""
PARALLEL_MIN_S = 5.0
"""Nor do searches shorter than this many seconds run in parallel, for the same reason."""
MIN_SEARCH_S = 0.05
"""An OR-Tools search gets at least this long, even when building its model used up the time."""
REPAIR_SHARE = 0.1
"""Share of the time a ``pyvrp_breaks`` search keeps for taking the breaks and repairing."""
STOP_GRACE_S = 0.5
"""After asking processes to stop: how long to wait for their last word before ending them."""
LATE_GRACE_S = 5.0
"""Past the time limit: how long to wait for a process before ending it."""


class Choice(msgspec.Struct, frozen=True, kw_only=True):
    """The engine for a problem and why, in words."""

    engine: Engine
    reason: str
    only_breaks: bool = False


class Job(msgspec.Struct, frozen=True, kw_only=True):
    """One search to run: its kind and random seed.

    ``required``: a PyVRP search that must serve every order (PyVRP's required clients) and
    finds nothing when it cannot. Where leaving orders out is allowed, PyVRP's search also
    weighs removing each one; on days of many short routes that costs it much of its time
    (measured on Gehring–Homberger R1 at 1,000 customers and 60 s: 4.70 % above the best known
    with every order optional, 3.27 % with every order required). So beside an optional search,
    one that serves everything: whichever plan is cheaper is kept, and the optional one still
    answers when not every order can be served.
    """

    kind: JobKind
    seed: int = 0
    required: bool = False


class Candidate(msgspec.Struct, kw_only=True):
    """What one search returned: visiting orders (per vehicle), and routes when it timed them.

    ``objective`` is the engine's own objective (currency), ``status`` its final status.
    """

    job: Job
    engine: Engine
    search: str
    status: str
    objective: float
    solutions_found: int
    sequences: list[list[int]] | None
    routes: list[Route] | None = None


def choose_engine(instance: Instance, forced: str | None = None) -> Choice:
    """PyVRP unless the problem needs something only OR-Tools expresses.

    ``forced`` (:attr:`~solver.search.SearchTuning.engine`) names the engine instead; forcing
    PyVRP on a problem it cannot express raises :class:`~solver.errors.ProblemError`.
    """
    problem = instance.problem
    needs: list[str] = []
    if any(instance.breaks):
        needs.append("breaks")
    if problem.options.balance_workload:
        needs.append("workload balance")
    if any(len(windows) > 1 for windows in instance.order_windows):
        needs.append("orders with several time windows")
    if forced == "ortools":
        return Choice(engine="ortools", reason="OR-Tools: asked for by the caller")
    if forced == "pyvrp" and needs:
        raise ProblemError(
            "tuning",
            f"expected a problem PyVRP can plan, got one with {' and '.join(needs)}",
        )
    if forced == "pyvrp":
        return Choice(engine="pyvrp", reason="PyVRP: asked for by the caller")
    if needs:
        reason = f"OR-Tools: the problem has {' and '.join(needs)}, which PyVRP does not model"
        if needs == ["breaks"]:
            reason += (
                "; on a large day PyVRP also plans it with room kept for the breaks, "
                "and the cheaper plan is kept"
            )
        return Choice(engine="ortools", reason=reason, only_breaks=needs == ["breaks"])
    return Choice(
        engine="pyvrp",
        reason=(
            "PyVRP: capacities, single time windows, shifts, maximum durations, skills and "
            "priorities are all in its model, and its search is the stronger one"
        ),
    )


def process_count(problem: PlanningProblem, candidates: int, tuning: SearchTuning) -> int:
    """How many processes search: ``tuning.processes`` when set, else every core for a day
    of at least :data:`PARALLEL_MIN_ORDERS` orders given at least :data:`PARALLEL_MIN_S`."""
    if tuning.processes is not None:
        return tuning.processes
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if candidates < PARALLEL_MIN_ORDERS or problem.options.time_limit_s < PARALLEL_MIN_S:
        return 1
    return max(1, cores or 1)


def fleet_carries_all(instance: Instance, candidates: Sequence[int]) -> bool:
    """Whether the fleet's vans together have room for every candidate order, in every
    dimension: where they have not, a search that must serve every order is not run."""
    dims = len(instance.capacity[0]) if instance.capacity else 0
    return all(
        sum(instance.size[k][d] for k in candidates) <= sum(c[d] for c in instance.capacity)
        for d in range(dims)
    )


def plan_jobs(choice: Choice, processes: int, *, may_require: bool = True) -> list[Job]:
    """The searches to run for ``choice`` on ``processes`` processes (``may_require``: a
    search that must serve every order may be among them)."""
    if choice.engine == "pyvrp":
        if processes == 1:
            return [Job(kind="pyvrp")]
        return [
            Job(kind="pyvrp", seed=s, required=may_require and s % 2 == 0) for s in range(processes)
        ]
    if processes == 1:
        return [Job(kind="ortools")]
    # Beside OR-Tools' own search: PyVRP with room for the breaks when breaks are all that
    # PyVRP lacks, else OR-Tools' guided local search.
    other: JobKind = "pyvrp_breaks" if choice.only_breaks else "ortools_gls"
    return [Job(kind="ortools"), *[Job(kind=other, seed=s) for s in range(processes - 1)]]


def ortools_search_name(tuning: SearchTuning) -> str:
    """How :class:`~schemas.planning.SearchStats` names an OR-Tools search."""
    return f"OR-Tools {version('ortools')} {tuning.first_solution} + {tuning.metaheuristic}"


BREAKS_ROOM = " with room kept for breaks, then breaks taken (late stops left out)"
"""How a PyVRP search planning a day with breaks is named after PyVRP's own search."""
EVERY_ORDER = ", every order required"
"""How a PyVRP search that must serve every order is named after PyVRP's own search."""


def names_of(job: Job, tuning: SearchTuning) -> tuple[Engine, str]:
    """The engine and the search a job's plan is named by, whether the job finished or its
    process was ended and only told its routes."""
    if job.kind == "ortools":
        return "ortools", ortools_search_name(tuning)
    if job.kind == "ortools_gls":
        return "ortools", ortools_search_name(_gls(tuning))
    return "pyvrp", pyvrp_search_name(job)


def pyvrp_search_name(job: Job) -> str:
    """How a PyVRP job's plan names its search: PyVRP's own, and how the job varied it."""
    from solver.pyvrp_search import SEARCH

    if job.kind == "pyvrp_breaks":
        return SEARCH + BREAKS_ROOM
    return SEARCH + (EVERY_ORDER if job.required else "")


def _gls(tuning: SearchTuning) -> SearchTuning:
    return msgspec.structs.replace(tuning, metaheuristic="GUIDED_LOCAL_SEARCH")


def run_job(
    instance: Instance,
    verdicts: Sequence[Verdict],
    job: Job,
    tuning: SearchTuning,
    deadline: float,
    on_progress: ProgressCallback | None,
    should_stop: Callable[[], bool] | None,
    on_sequences: Callable[[list[list[int]]], None] | None = None,
) -> Candidate:
    """Run one search until ``deadline`` (``time.monotonic()``) in this process."""
    if job.kind == "pyvrp":
        return _run_pyvrp(instance, verdicts, job, deadline, on_progress, should_stop)
    if job.kind == "ortools":
        return _run_ortools(instance, verdicts, job, tuning, deadline, on_progress, on_sequences)
    if job.kind == "ortools_gls":
        return _run_ortools(
            instance, verdicts, job, _gls(tuning), deadline, on_progress, on_sequences
        )
    return _run_breaks(instance, verdicts, job, deadline, on_sequences, should_stop)


def _candidates(verdicts: Sequence[Verdict]) -> list[int]:
    return [k for k, verdict in enumerate(verdicts) if verdict.vehicles]


def _run_pyvrp(
    instance: Instance,
    verdicts: Sequence[Verdict],
    job: Job,
    deadline: float,
    on_progress: ProgressCallback | None,
    should_stop: Callable[[], bool] | None,
) -> Candidate:
    from solver.pyvrp_search import PyvrpModel, run_pyvrp

    began = clock.monotonic()
    found: list[float] = []

    def improved(objective: float) -> None:
        found.append(objective)
        if on_progress is not None:
            on_progress(
                Progress(
                    objective=objective,
                    elapsed_s=clock.monotonic() - began,
                    solutions_found=len(found),
                )
            )

    model = PyvrpModel(instance, _candidates(verdicts), required=job.required)
    sequences, feasible, stopped = run_pyvrp(
        model,
        seed=job.seed,
        time_limit_s=max(0.0, deadline - clock.monotonic()),
        should_stop=should_stop,
        on_improvement=improved,
    )
    status = "cancelled" if stopped else "success" if feasible else "no_solution"
    return Candidate(
        job=job,
        engine="pyvrp",
        search=pyvrp_search_name(job),
        status=status,
        objective=found[-1] if found else 0.0,
        solutions_found=len(found),
        sequences=sequences if feasible else None,
    )


def _run_ortools(
    instance: Instance,
    verdicts: Sequence[Verdict],
    job: Job,
    tuning: SearchTuning,
    deadline: float,
    on_progress: ProgressCallback | None,
    on_sequences: Callable[[list[list[int]]], None] | None,
) -> Candidate:
    from solver.model import build_model
    from solver.readback import read_routes
    from solver.search import current_sequences_of, run_search

    built = build_model(instance, verdicts)
    remaining = max(MIN_SEARCH_S, deadline - clock.monotonic())
    outcome = run_search(built, tuning, remaining, on_progress, on_sequences)
    assignment = outcome.assignment
    return Candidate(
        job=job,
        engine="ortools",
        search=ortools_search_name(tuning),
        status=outcome.status,
        objective=outcome.objective,  # 0.0 without an assignment
        solutions_found=outcome.solutions_found,
        sequences=None if assignment is None else current_sequences_of(built, assignment),
        routes=None if assignment is None else read_routes(instance, built, assignment),
    )


def _run_breaks(
    instance: Instance,
    verdicts: Sequence[Verdict],
    job: Job,
    deadline: float,
    on_sequences: Callable[[list[list[int]]], None] | None,
    should_stop: Callable[[], bool] | None,
) -> Candidate:
    """PyVRP on a day with breaks, with room kept for them; then the breaks are taken and the
    stops that would be late are left out (:mod:`solver.repair`)."""
    from solver.pyvrp_search import PyvrpModel, run_pyvrp
    from solver.repair import repair

    model = PyvrpModel(instance, _candidates(verdicts), room_for_breaks=True)
    sequences, feasible, stopped = run_pyvrp(
        model,
        seed=job.seed,
        time_limit_s=(1.0 - REPAIR_SHARE) * max(0.0, deadline - clock.monotonic()),
        should_stop=should_stop,
    )
    repaired = repair(instance, verdicts, sequences) if feasible else None
    if repaired is not None and on_sequences is not None:
        on_sequences(repaired)
    return Candidate(
        job=job,
        engine="pyvrp",
        search=pyvrp_search_name(job),
        status="cancelled" if stopped else "success" if feasible else "no_solution",
        objective=0.0,
        solutions_found=1 if repaired is not None else 0,
        sequences=repaired,
    )


# --- several processes ---------------------------------------------------------------------


def run_jobs(
    instance: Instance,
    verdicts: Sequence[Verdict],
    jobs: Sequence[Job],
    tuning: SearchTuning,
    deadline: float,
    on_progress: ProgressCallback | None,
    should_stop: Callable[[], bool] | None,
) -> tuple[list[Candidate], bool]:
    """Run ``jobs``, each in a process of its own; return their candidates and whether
    ``should_stop`` stopped them.

    Improvements any process reports go to ``on_progress`` when they beat the best reported
    so far (from the parent's thread, which is the caller's). A process that has not answered
    :data:`STOP_GRACE_S` after being asked to stop, or :data:`LATE_GRACE_S` after the deadline,
    is ended; its last told visiting orders become its candidate.
    """
    ctx = multiprocessing.get_context("spawn")
    stop_event = ctx.Event()
    running: dict[Connection, tuple[int, Any]] = {}
    told: dict[int, list[list[int]]] = {}
    done: dict[int, Candidate] = {}
    began = clock.monotonic()
    reported: list[float] = []
    processes: list[Any] = []
    for j, job in enumerate(jobs):
        receiver, sender = ctx.Pipe(duplex=False)
        process = ctx.Process(
            target=_child,
            args=(instance, list(verdicts), job, tuning, deadline, sender, stop_event),
            name=f"lastmile-solver-{job.kind}-{j}",
            daemon=True,
        )
        process.start()
        processes.append(process)
        sender.close()
        running[receiver] = (j, process)

    stopped = False
    end_by: float | None = None
    failure: BaseException | None = None
    try:
        while running:
            now = clock.monotonic()
            if not stopped and should_stop is not None and should_stop():
                stopped = True
                stop_event.set()
                end_by = now + STOP_GRACE_S
            if end_by is None and now > deadline:
                end_by = deadline + LATE_GRACE_S
            if end_by is not None and now > end_by:
                break
            for ready in wait(list(running), timeout=0.1):
                receiver = cast(Connection, ready)
                j, _ = running[receiver]
                try:
                    message = receiver.recv()
                except EOFError:
                    del running[receiver]
                    continue
                kind = message[0]
                if kind == "progress":
                    objective = message[1]
                    if on_progress is not None and (not reported or objective < reported[-1]):
                        reported.append(objective)
                        on_progress(
                            Progress(
                                objective=objective,
                                elapsed_s=clock.monotonic() - began,
                                solutions_found=len(reported),
                            )
                        )
                elif kind == "sequences":
                    told[j] = message[1]
                elif kind == "done":
                    done[j] = message[1]
                    del running[receiver]
                elif kind == "error":
                    failure = failure or message[1]
                    del running[receiver]
    finally:
        stop_event.set()
        for receiver, (_, process) in running.items():
            process.terminate()
            receiver.close()
        for process in processes:
            process.join(1.0)
    if failure is not None and not done and not told:
        raise failure
    out = list(done.values())
    for j, sequences in told.items():
        if j not in done:
            job = jobs[j]
            engine, search = names_of(job, tuning)
            out.append(
                Candidate(
                    job=job,
                    engine=engine,
                    search=search,
                    status="cancelled" if stopped else "ended",
                    objective=0.0,
                    solutions_found=0,
                    sequences=sequences,
                )
            )
    return out, stopped


def _child(
    instance: Instance,
    verdicts: list[Verdict],
    job: Job,
    tuning: SearchTuning,
    deadline: float,
    sender: Connection,
    stop_event: Any,
) -> None:
    # Ctrl-C reaches the whole process group; the parent decides when this process ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def progress(p: Progress) -> None:
        sender.send(("progress", p.objective))

    def sequences(orders: list[list[int]]) -> None:
        sender.send(("sequences", orders))

    try:
        candidate = run_job(
            instance,
            verdicts,
            job,
            tuning,
            deadline,
            progress if job.kind != "pyvrp_breaks" else None,
            stop_event.is_set,
            sequences,
        )
        sender.send(("done", candidate))
    except BaseException as exc:  # every failure is reported to the parent
        try:
            sender.send(("error", exc))
        except Exception:  # the exception itself would not pickle
            sender.send(("error", RuntimeError(repr(exc))))
    finally:
        sender.close()
