"""Planning jobs on the API: the request, and the job with its progress and result."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from schemas.ids import DriverId, OrderId, OrgId, PlanId, RouteId, ShiftId, VehicleId
from schemas.planning import Penalty

PlanStatus = Literal["queued", "running", "done", "failed", "cancelled"]
"""``queued → running → done | failed | cancelled``, or ``queued → cancelled`` (it never ran).
A ``cancelled`` plan that had started keeps its best routes so far as its outcome."""
SearchKind = Literal["iterated_local_search", "guided_local_search"]
"""The metaheuristic after the first solution. Iterated local search (ruin and recreate) is
the default because it measured better on the Solomon benchmark (docs/solver.md)."""


class PlanRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Body of ``POST /v1/plans``: plan ``day``'s pending orders on its scheduled shifts.

    ``time_limit_s`` may not exceed the server's cap (``LASTMILE_PLAN_MAX_S``): planners serve
    every organisation, and the cap bounds how long one plan holds one.
    ``order_ids`` restricts the plan to some orders. ``unassigned_penalty`` is what leaving one
    order of priority 0, 1, 2 unserved costs (in the currency of the vehicles' costs), by the
    rule the solver reads it with (:data:`schemas.planning.Penalty`).
    """

    day: date
    time_limit_s: Annotated[float, Meta(gt=0, le=3600)] = 10.0
    balance_workload: bool = False
    order_ids: list[OrderId] | None = None
    unassigned_penalty: Annotated[list[Penalty], Meta(min_length=3, max_length=3)] = msgspec.field(
        default_factory=lambda: [1_000.0, 10_000.0, 100_000.0]
    )
    search: SearchKind = "iterated_local_search"


class PlanJob(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """An entry of the ``plans`` stream: which plan to compute."""

    org_id: OrgId
    plan_id: PlanId


class PlanProgress(msgspec.Struct, frozen=True, kw_only=True):
    """How far the search has come: best objective so far, solutions found, seconds spent."""

    objective: float | None = None
    solutions_found: int = 0
    elapsed_s: float = 0.0


class PlannedVisit(msgspec.Struct, frozen=True, kw_only=True):
    """One stop of a planned route."""

    order_id: OrderId
    order_ref: str
    arrival: datetime
    service_start: datetime
    departure: datetime
    load_after: list[int]
    distance_from_previous_m: int


class PlannedRoute(msgspec.Struct, frozen=True, kw_only=True):
    """One planned route: a shift (driver and vehicle) and its visits in order."""

    shift_id: ShiftId
    driver_id: DriverId
    vehicle_id: VehicleId
    start: datetime
    end: datetime
    distance_m: int
    duration_s: int
    load: list[int]
    cost: float
    visits: list[PlannedVisit]
    breaks: list[tuple[datetime, int]] = []


class LeftOut(msgspec.Struct, frozen=True, kw_only=True):
    """An order the plan does not serve, with a code and a sentence saying why."""

    order_id: OrderId
    order_ref: str
    code: str
    reason: str


class PlanOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """A finished plan: routes, orders left out, the dimensions of the loads, search figures.

    ``engine`` names the engine whose routes these are (``"pyvrp"``, ``"ortools"``),
    ``engine_reason`` why it was chosen for this day, ``search`` the search that produced them,
    and ``processes`` how many processes of their own searched in parallel (0: the search ran in
    the planner's process itself). ``search_status`` is
    ``"cancelled"`` when the plan was cancelled and these are the best routes found by then.
    Plans stored before these fields existed read ``""`` and 1.
    """

    dimensions: list[str]
    routes: list[PlannedRoute]
    unassigned: list[LeftOut]
    objective: float
    wall_time_s: float
    solutions_found: int
    search_status: str
    search: str = ""
    engine: str = ""
    engine_reason: str = ""
    processes: int = 1
    model: str = ""
    """What the plan travelled and served by: the configured speed, or a learned model (its
    id, days, and what of it was used)."""
    model_id: int | None = None


class PlanView(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /v1/plans/{id}``: the job, its progress while it runs, its outcome when done.

    ``cancel_requested_at`` is when a cancel was asked for: a running plan then stops within
    about a second and ends ``cancelled`` with the best routes found so far as its outcome.
    """

    id: PlanId
    day: date
    status: PlanStatus
    progress: PlanProgress
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    outcome: PlanOutcome | None = None
    cancel_requested_at: datetime | None = None


class DispatchRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Body of ``POST /v1/plans/{id}/dispatch``: all routes, or those of the named shifts."""

    shift_ids: list[ShiftId] | None = None


class DispatchResult(msgspec.Struct, frozen=True, kw_only=True):
    """The routes now on drivers' phones, and orders skipped because they changed meanwhile."""

    route_ids: list[RouteId]
    skipped_order_ids: list[OrderId]


class PlanSummary(msgspec.Struct, frozen=True, kw_only=True):
    """A plan in a day's list: what it is and, once it has an outcome, its totals."""

    id: PlanId
    day: date
    status: PlanStatus
    created_at: datetime
    finished_at: datetime | None = None
    time_limit_s: float | None = None
    routes: int = 0
    served: int = 0
    """Orders on a route."""
    unassigned: int = 0
    distance_m: int = 0
    duration_s: int = 0
    objective: float | None = None
    engine: str = ""


class PlanList(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /v1/plans?day=``: the day's latest plans, newest first."""

    plans: list[PlanSummary]
