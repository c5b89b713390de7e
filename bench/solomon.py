"""VRPTW benchmark: lastmile's planner, PyVRP and VROOM against the distance-only DIMACS BKS.

Run from the repository root::

    python -m bench.solomon --instances C101,R201 --time-limit 10 --solvers lastmile,pyvrp,vroom
    python -m bench.solomon --all --time-limit 10 --out docs/benchmarks/solomon-10s.md
    python -m bench.solomon --data ../shared/data/gh --format vrplib --all --match '*_10_*' \
        --time-limit 60 --out docs/benchmarks/gh1000-60s.md

Instances are read in Solomon's text format (``<data>/instances/*.txt``, best known solutions
from ``<data>/bks_distance_dimacs.csv``) or in VRPLIB format (``--format vrplib``:
``<data>/instances_vrplib/*.vrp``, each best known solution from the ``Cost`` line of the
``.sol`` beside it). ``lastmile`` is the planner as the product runs it
(:func:`solver.vrptw.solve`: the portfolio picks the engine and uses every core on a large
day); ``pyvrp`` and ``vroom`` run as their own libraries, one process each.

Convention (DIMACS, distance only): every distance and travel time is the Euclidean distance
truncated to one decimal, ``floor(10 * d) / 10``; the objective is the total distance with at
most the instance's fleet; every customer must be served. All quantities are scaled by 10 so
the solvers work on exact integers (one Solomon unit = 10 m = 10 s for lastmile's solver).

Each solver's routes are re-evaluated here with the same truncated distances — reported
objectives are not trusted — and checked for capacity, time windows, the fleet limit and that
each customer is served exactly once. An infeasible solution is reported as such and left out
of the gap averages.

Data: ``--data`` defaults to ``../shared/data/solomon`` relative to the repository root (see
``SOURCES.md`` there); the Gehring-Homberger instances are in ``../shared/data/gh``. This is a
benchmark command, not a test; it needs the ``bench`` extra (VROOM).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from schemas.planning import (
    DepotRef,
    Location,
    OrderRef,
    PlanningDepot,
    PlanningOptions,
    PlanningOrder,
    PlanningProblem,
    PlanningTimeWindow,
    PlanningVehicle,
    VehicleRef,
)
from solver.matrix import EuclideanProvider
from solver.search import SearchTuning
from solver.vrptw import solve

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "solomon"
SCALE = 10
"""Solomon units to integers: distances and times are truncated to tenths, so x10 is exact."""
FAMILIES = ("C1", "C2", "R1", "R2", "RC1", "RC2")
"""Solomon's and Gehring-Homberger's families (``R1_10_2`` is in family R1)."""

Routes = list[list[int]]
"""A solution: for each used vehicle, its customers (1..n) in visiting order."""


@dataclass(frozen=True)
class SolomonInstance:
    """One instance; index 0 of every list is the depot. Times and service in Solomon units."""

    name: str
    fleet: int
    capacity: int
    x: list[int]
    y: list[int]
    demand: list[int]
    ready: list[int]
    due: list[int]
    service: list[int]

    def distance(self, i: int, j: int) -> int:
        """DIMACS distance (and travel time) from i to j, in tenths: ``floor(10 * euclid)``."""
        dx = self.x[i] - self.x[j]
        dy = self.y[i] - self.y[j]
        return math.isqrt(SCALE * SCALE * (dx * dx + dy * dy))


@dataclass(frozen=True)
class Evaluation:
    """A solution measured with the DIMACS distances: ``distance`` in Solomon units."""

    distance: float
    vehicles: int
    violations: list[str]

    @property
    def feasible(self) -> bool:
        """Whether no constraint is violated."""
        return not self.violations


@dataclass(frozen=True)
class Outcome:
    """One solver on one instance."""

    instance: str
    solver: str
    evaluation: Evaluation
    bks: float
    wall_s: float

    @property
    def gap_pct(self) -> float:
        """Distance above the BKS, percent."""
        return 100.0 * (self.evaluation.distance - self.bks) / self.bks


def read_instance(path: Path) -> SolomonInstance:
    """Parse a Solomon text file (CRLF or LF)."""
    lines = [line.split() for line in path.read_text().splitlines()]
    name = lines[0][0]
    fleet, capacity = (
        int(v) for v in next(r for r in lines if len(r) == 2 and all(v.isdigit() for v in r))
    )
    rows = [row for row in lines if len(row) == 7 and row[0].isdigit()]
    cols = list(zip(*[[int(float(v)) for v in row] for row in rows], strict=True))
    return SolomonInstance(
        name=name,
        fleet=fleet,
        capacity=capacity,
        x=list(cols[1]),
        y=list(cols[2]),
        demand=list(cols[3]),
        ready=list(cols[4]),
        due=list(cols[5]),
        service=list(cols[6]),
    )


def read_vrplib(path: Path) -> SolomonInstance:
    """Parse a VRPLIB VRPTW instance (``NODE_COORD``, ``DEMAND``, ``TIME_WINDOW`` sections)."""
    import vrplib  # type: ignore[import-untyped]

    data = vrplib.read_instance(str(path))
    n = int(data["dimension"])
    service = data["service_time"]
    if isinstance(service, int | float):
        # One SERVICE_TIME for every client; the depot takes none.
        service = [0] + [service] * (n - 1)
    coords = [[round(float(v)) for v in row] for row in data["node_coord"]]
    windows = [[int(v) for v in row] for row in data["time_window"]]
    return SolomonInstance(
        name=str(data["name"]),
        fleet=int(data.get("vehicles", n - 1)),
        capacity=int(data["capacity"]),
        x=[c[0] for c in coords],
        y=[c[1] for c in coords],
        demand=[int(v) for v in data["demand"]],
        ready=[w[0] for w in windows],
        due=[w[1] for w in windows],
        service=[int(v) for v in service],
    )


def read_vrplib_bks(path: Path) -> float:
    """The ``Cost`` of the best known solution in the ``.sol`` file at ``path``."""
    import vrplib

    return float(vrplib.read_solution(str(path))["cost"])


def evaluate(inst: SolomonInstance, routes: Routes) -> Evaluation:
    """Total DIMACS distance of ``routes`` and every constraint they violate."""
    violations: list[str] = []
    seen = [c for route in routes for c in route]
    n = len(inst.x) - 1
    if sorted(seen) != list(range(1, n + 1)):
        missing = sorted(set(range(1, n + 1)) - set(seen))
        violations.append(f"customers served {len(seen)} times for {n} (missing {missing[:5]})")
    if len(routes) > inst.fleet:
        violations.append(f"{len(routes)} routes for a fleet of {inst.fleet}")
    total = 0
    for r, route in enumerate(routes):
        if sum(inst.demand[c] for c in route) > inst.capacity:
            violations.append(f"route {r} over capacity")
        t, prev = SCALE * inst.ready[0], 0
        for c in [*route, 0]:
            total += inst.distance(prev, c)
            t = max(t + inst.distance(prev, c), SCALE * inst.ready[c])
            if t > SCALE * inst.due[c]:
                violations.append(f"route {r} reaches {c} at {t / SCALE} > due {inst.due[c]}")
            t += SCALE * inst.service[c]
            prev = c
    return Evaluation(distance=total / SCALE, vehicles=len(routes), violations=violations)


def to_problem(inst: SolomonInstance, time_limit_s: float) -> PlanningProblem:
    """The instance as a lastmile planning problem: 1 Solomon unit = 10 m = 10 s."""

    def at(i: int) -> Location:
        return Location(x_m=float(SCALE * inst.x[i]), y_m=float(SCALE * inst.y[i]))

    horizon = PlanningTimeWindow(
        start_epoch_s=SCALE * inst.ready[0], end_epoch_s=SCALE * inst.due[0]
    )
    return PlanningProblem(
        dimensions=["demand"],
        depots=[PlanningDepot(ref=DepotRef("depot"), location=at(0))],
        vehicles=[
            PlanningVehicle(
                ref=VehicleRef(f"v{v}"),
                start_depot=DepotRef("depot"),
                shift=horizon,
                capacity=[inst.capacity],
                cost_per_km=1000.0,  # one cost unit per metre: the objective is the distance
            )
            for v in range(inst.fleet)
        ],
        orders=[
            PlanningOrder(
                ref=OrderRef(str(c)),
                location=at(c),
                time_windows=[
                    PlanningTimeWindow(
                        start_epoch_s=SCALE * inst.ready[c], end_epoch_s=SCALE * inst.due[c]
                    )
                ],
                service_s=SCALE * inst.service[c],
                size=[inst.demand[c]],
            )
            for c in range(1, len(inst.x))
        ],
        # Far above any route's cost: the benchmark requires every customer to be served.
        options=PlanningOptions(time_limit_s=time_limit_s, unassigned_penalty=[1.0e7]),
    )


ENGINES: dict[str, str] = {}
"""The engine and processes lastmile's planner used, by instance (for the report)."""


def solve_lastmile(inst: SolomonInstance, time_limit_s: float, tuning: SearchTuning) -> Routes:
    """Routes from lastmile's planner, through its public :func:`solver.vrptw.solve`."""
    problem = to_problem(inst, time_limit_s)
    provider = EuclideanProvider(speed_mps=1.0, rounding="floor")
    _check_matrix(inst, problem, provider)
    result = solve(problem, provider, tuning=tuning)
    ENGINES[inst.name] = f"{result.stats.engine} x{max(1, result.stats.processes)}"
    return [[int(stop.order_ref) for stop in route.stops] for route in result.routes]


def _check_matrix(
    inst: SolomonInstance, problem: PlanningProblem, provider: EuclideanProvider
) -> None:
    """Fail loudly unless the provider's matrix is exactly the DIMACS one (x10)."""
    points = [problem.depots[0].location] + [o.location for o in problem.orders]
    matrix = provider.matrix(points, depart_epoch_s=0)
    n = len(inst.x)
    expected = [[inst.distance(i, j) for j in range(n)] for i in range(n)]
    if matrix.distance_m != expected or matrix.duration_s != expected:
        raise SystemExit(f"{inst.name}: EuclideanProvider differs from the DIMACS distances")


def solve_pyvrp(inst: SolomonInstance, time_limit_s: float, tuning: SearchTuning) -> Routes:
    """Routes from PyVRP (hybrid genetic search), stopped after ``time_limit_s``."""
    from pyvrp import Model
    from pyvrp.stop import MaxRuntime

    model = Model()
    locations = [model.add_location(x=inst.x[i], y=inst.y[i]) for i in range(len(inst.x))]
    depot = model.add_depot(
        locations[0], tw_early=SCALE * inst.ready[0], tw_late=SCALE * inst.due[0]
    )
    model.add_vehicle_type(
        num_available=inst.fleet,
        capacity=inst.capacity,
        start_depot=depot,
        end_depot=depot,
        tw_early=SCALE * inst.ready[0],
        tw_late=SCALE * inst.due[0],
    )
    for c in range(1, len(inst.x)):
        model.add_client(
            locations[c],
            delivery=inst.demand[c],
            service_duration=SCALE * inst.service[c],
            tw_early=SCALE * inst.ready[c],
            tw_late=SCALE * inst.due[c],
        )
    for i, a in enumerate(locations):
        for j, b in enumerate(locations):
            d = inst.distance(i, j)
            model.add_edge(a, b, distance=d, duration=d)
    result = model.solve(stop=MaxRuntime(time_limit_s), seed=0, display=False)
    # A client activity's idx counts clients from 0 in the order added: customer idx + 1.
    return [
        [int(a.idx) + 1 for a in route.schedule() if a.is_client()]
        for route in result.best.routes()
    ]


def solve_vroom(inst: SolomonInstance, time_limit_s: float, tuning: SearchTuning) -> Routes:
    """Routes from VROOM (exploration level 5, one thread), with ``time_limit_s`` as timeout.

    VROOM minimises travel time here (its default cost); travel time equals distance.
    """
    import vroom

    n = len(inst.x)
    problem = vroom.Input()
    problem.set_durations_matrix(
        profile="car", matrix_input=[[inst.distance(i, j) for j in range(n)] for i in range(n)]
    )
    window = vroom.TimeWindow(SCALE * inst.ready[0], SCALE * inst.due[0])
    problem.add_vehicle(
        [
            vroom.Vehicle(id=v, start=0, end=0, capacity=[inst.capacity], time_window=window)
            for v in range(inst.fleet)
        ]
    )
    problem.add_job(
        [
            vroom.Job(
                id=c,
                location=c,
                default_service=SCALE * inst.service[c],
                delivery=[inst.demand[c]],
                time_windows=[vroom.TimeWindow(SCALE * inst.ready[c], SCALE * inst.due[c])],
            )
            for c in range(1, n)
        ]
    )
    solution = problem.solve(
        exploration_level=5, nb_threads=1, timeout=timedelta(seconds=time_limit_s)
    )
    jobs = solution.routes[solution.routes["type"] == "job"]
    return [
        [int(c) for c in group["id"].tolist()] for _, group in jobs.groupby("vehicle_id", sort=True)
    ]


SOLVERS: dict[str, Callable[[SolomonInstance, float, SearchTuning], Routes]] = {
    "lastmile": solve_lastmile,
    "pyvrp": solve_pyvrp,
    "vroom": solve_vroom,
}


def read_bks(data: Path) -> dict[str, float]:
    """Distance-only DIMACS best known solutions, by instance name."""
    with (data / "bks_distance_dimacs.csv").open(newline="") as f:
        return {row["instance"]: float(row["distance"]) for row in csv.DictReader(f)}


def run(
    data: Path,
    names: Sequence[str],
    solvers: Sequence[str],
    time_limit_s: float,
    tuning: SearchTuning,
    emit: Callable[[str], None],
    vrplib_format: bool = False,
) -> list[Outcome]:
    """Solve each instance with each solver (one at a time) and report as it goes."""
    bks = {} if vrplib_format else read_bks(data)
    outcomes: list[Outcome] = []
    emit(f"{'instance':9} {'solver':8} {'distance':>9} {'veh':>4} {'gap%':>7} {'wall':>6}  ok")
    for name in names:
        if vrplib_format:
            inst = read_vrplib(data / "instances_vrplib" / f"{name}.vrp")
            bks[name] = read_vrplib_bks(data / "instances_vrplib" / f"{name}.sol")
        else:
            inst = read_instance(data / "instances" / f"{name}.txt")
        for solver in solvers:
            began = time.monotonic()
            routes = SOLVERS[solver](inst, time_limit_s, tuning)
            wall = time.monotonic() - began
            outcome = Outcome(name, solver, evaluate(inst, routes), bks[name], wall)
            outcomes.append(outcome)
            ev = outcome.evaluation
            engine = f"  ({ENGINES[name]})" if solver == "lastmile" and name in ENGINES else ""
            emit(
                f"{name:9} {solver:8} {ev.distance:9.1f} {ev.vehicles:4d} {outcome.gap_pct:7.2f} "
                f"{wall:7.1f}  {'yes' if ev.feasible else 'NO: ' + '; '.join(ev.violations[:3])}"
                f"{engine}"
            )
    return outcomes


def summarise(outcomes: Sequence[Outcome], solvers: Sequence[str]) -> list[str]:
    """Mean gap per family and overall for each solver (feasible solutions only)."""
    lines = ["", f"{'family':8} " + " ".join(f"{s + ' gap%':>14}" for s in solvers)]
    groups = [(f, [o for o in outcomes if _family(o.instance) == f]) for f in FAMILIES]
    groups.append(("all", list(outcomes)))
    for family, members in groups:
        if not members:
            continue
        cells = []
        for solver in solvers:
            mine = [o for o in members if o.solver == solver]
            ok = [o.gap_pct for o in mine if o.evaluation.feasible]
            bad = len(mine) - len(ok)
            mean = f"{sum(ok) / len(ok):.2f}" if ok else "-"
            cells.append(f"{mean + (f' ({bad} inf)' if bad else ''):>14}")
        lines.append(f"{family:8} " + " ".join(cells))
    return lines


def _family(name: str) -> str:
    return name.split("_")[0] if "_" in name else name[:-2]


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.solomon", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="data folder")
    parser.add_argument(
        "--format",
        choices=("solomon", "vrplib"),
        default="solomon",
        help="instances/*.txt with bks_distance_dimacs.csv, or instances_vrplib/*.vrp with .sol",
    )
    parser.add_argument("--match", default="*", help="with --all: a glob on instance names")
    parser.add_argument(
        "--time-limit", type=float, default=10.0, help="seconds per instance and solver"
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--instances", default="C101,R201", help="comma-separated names")
    group.add_argument("--all", action="store_true", help="every instance in the folder")
    parser.add_argument(
        "--solvers", default="lastmile,pyvrp,vroom", help="subset of lastmile,pyvrp,vroom"
    )
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    tuning = SearchTuning()
    parser.add_argument("--first-solution", default=tuning.first_solution)
    parser.add_argument("--metaheuristic", default=tuning.metaheuristic)
    parser.add_argument("--gls-lambda", type=float, default=tuning.gls_lambda)
    parser.add_argument("--full-propagation", action="store_true", default=tuning.full_propagation)
    parser.add_argument("--lns", action="store_true", default=tuning.lns)
    parser.add_argument("--insertion-lns", action="store_true", default=tuning.insertion_lns)
    parser.add_argument(
        "--no-operator-bandit", dest="operator_bandit", action="store_false", default=True
    )
    parser.add_argument(
        "--processes", type=int, default=None, help="lastmile's search processes (default: auto)"
    )
    args = parser.parse_args(argv)

    data: Path = args.data
    vrplib_format = args.format == "vrplib"
    if args.all:
        folder, suffix = ("instances_vrplib", "vrp") if vrplib_format else ("instances", "txt")
        names = sorted(p.stem for p in (data / folder).glob(f"{args.match}.{suffix}"))
        if not names:
            parser.error(f"no instances matching {args.match!r} in {data / folder}")
    else:
        names = [n.strip().upper() for n in args.instances.split(",") if n.strip()]
    solvers = [s.strip() for s in args.solvers.split(",") if s.strip()]
    unknown = [s for s in solvers if s not in SOLVERS]
    if unknown:
        parser.error(f"expected solvers among {', '.join(SOLVERS)}, got {', '.join(unknown)}")
    tuning = SearchTuning(
        first_solution=args.first_solution,
        metaheuristic=args.metaheuristic,
        gls_lambda=args.gls_lambda,
        full_propagation=args.full_propagation,
        lns=args.lns,
        insertion_lns=args.insertion_lns,
        operator_bandit=args.operator_bandit,
        processes=args.processes,
    )
    report: list[str] = []

    def emit(line: str) -> None:
        report.append(line)
        print(line, flush=True)

    command = " ".join(["python -m bench.solomon", *(argv if argv is not None else sys.argv[1:])])
    emit(f"# {command}")
    emit(f"# time limit {args.time_limit:g} s per instance and solver; tuning {tuning}")
    emit(f"# machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start")
    outcomes = run(data, names, solvers, args.time_limit, tuning, emit, vrplib_format)
    for line in summarise(outcomes, solvers):
        emit(line)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(report) + "\n")
    # A benchmark whose solver broke a constraint has measured nothing: fail like a test would.
    return 0 if all(o.evaluation.feasible for o in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
