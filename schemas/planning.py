"""The route-planning problem handed to the solver, and the plan it returns.

Units and conventions (they hold for every Struct below):

* **Instants** are integer seconds since the Unix epoch, UTC, in fields ending ``_epoch_s``.
  The solver only uses differences between instants, so any common origin works (benchmarks
  use 0); what matters is that all instants of one problem share it.
* **Durations** are integer seconds (``service_s``, ``duration_s``), **distances** integer
  metres (``distance_m``), **costs** plain numbers in the caller's currency.
* **Identifiers** are strings chosen by the caller (:data:`OrderRef`, :data:`VehicleRef`,
  :data:`DepotRef`); the solver echoes them back and never invents its own.
* **Amounts** (capacity of a vehicle, size of an order) are ``list[int]`` aligned with
  :attr:`PlanningProblem.dimensions`, e.g. ``["weight_kg", "volume_l", "parcels"]``. The unit
  belongs in the dimension's name; amounts are integers because the solver works in integers.
* A :class:`Location` is either geographic (``lat``/``lon``, WGS84 degrees) or planar
  (``x_m``/``y_m``, metres in some local frame; used by benchmarks and tests). A problem uses
  one kind throughout, matching the matrix provider it is solved with.

Every order is a delivery loaded at the vehicle's start depot: a vehicle leaves with the sum of
its orders' sizes and unloads each at its stop.
"""

from __future__ import annotations

from typing import Annotated, Literal, NewType

import msgspec
from msgspec import Meta

OrderRef = NewType("OrderRef", str)
VehicleRef = NewType("VehicleRef", str)
DepotRef = NewType("DepotRef", str)

Latitude = Annotated[float, Meta(ge=-90.0, le=90.0, description="WGS84 latitude, degrees")]
Longitude = Annotated[float, Meta(ge=-180.0, le=180.0, description="WGS84 longitude, degrees")]
EpochS = Annotated[int, Meta(ge=0, description="instant, seconds since the Unix epoch (UTC)")]
DurationS = Annotated[int, Meta(ge=0, description="duration, seconds")]
DistanceM = Annotated[int, Meta(ge=0, description="distance, metres")]
Amount = Annotated[int, Meta(ge=0, description="quantity in the unit of its dimension")]
Cost = Annotated[float, Meta(ge=0.0, description="cost in the caller's currency")]
MAX_PENALTY = 1e9
Penalty = Annotated[
    float,
    Meta(ge=0.0, le=MAX_PENALTY, description="cost of leaving one order unserved, currency"),
]
"""An unassignment penalty: not negative (the solver would prefer dropping orders) and finite,
so that it stays an integer in the solver's cost units (:data:`solver.model.COST_SCALE`)."""

UnassignedReasonCode = Literal["skill", "capacity", "time_window", "search", "no_solution"]
"""Why an order is not in any route.

* ``skill``: no vehicle has every skill the order requires;
* ``capacity``: no vehicle (with the skills) can carry the order's size;
* ``time_window``: no shift (of a vehicle with the skills and capacity) can reach the order
  inside one of its windows and return to its end depot in time and within its maximum duration;
* ``search``: serving it looked possible on its own, but the search found no insertion cheaper
  than the order's unassignment penalty (or none compatible with the other orders and breaks);
* ``no_solution``: the search found no solution at all within its time limit.
"""


class Location(msgspec.Struct, frozen=True, kw_only=True):
    """A point: either ``lat``/``lon`` (WGS84 degrees) or ``x_m``/``y_m`` (planar metres).

    Exactly one of the two pairs must be given, both of its members; decoding anything else fails.
    """

    lat: Latitude | None = None
    lon: Longitude | None = None
    x_m: float | None = None
    y_m: float | None = None

    def __post_init__(self) -> None:
        geo = (self.lat is not None, self.lon is not None)
        planar = (self.x_m is not None, self.y_m is not None)
        if geo == (True, True) and planar == (False, False):
            return
        if planar == (True, True) and geo == (False, False):
            return
        raise ValueError(
            "expected either lat and lon, or x_m and y_m, "
            f"got lat={self.lat}, lon={self.lon}, x_m={self.x_m}, y_m={self.y_m}"
        )

    @property
    def is_geographic(self) -> bool:
        """Whether this point is given as WGS84 latitude and longitude."""
        return self.lat is not None


class PlanningTimeWindow(msgspec.Struct, frozen=True, kw_only=True):
    """A closed interval of instants, ``start_epoch_s <= t <= end_epoch_s``."""

    start_epoch_s: EpochS
    end_epoch_s: EpochS


class PlanningDepot(msgspec.Struct, frozen=True, kw_only=True):
    """A place where vehicles load and where their shifts start or end."""

    ref: DepotRef
    location: Location


class PlanningBreak(msgspec.Struct, frozen=True, kw_only=True):
    """A rest the driver must take: it starts inside ``window`` and lasts ``duration_s``.

    A break never interrupts a stop's service; it is taken while waiting or between two stops,
    or before the first or after the last stop of the route.
    """

    window: PlanningTimeWindow
    duration_s: DurationS


class PlanningVehicle(msgspec.Struct, frozen=True, kw_only=True):
    """One vehicle with its driver's shift for the planning day.

    The route leaves ``start_depot`` no earlier than ``shift.start_epoch_s`` and is back at
    ``end_depot`` (the start depot when ``None``) no later than ``shift.end_epoch_s``; its
    duration, from leaving to returning and including waiting and breaks, is at most
    ``max_duration_s`` when that is set. ``capacity`` is aligned with the problem's dimensions.
    A vehicle that is used costs ``fixed_cost``, plus ``cost_per_km`` for each kilometre driven
    and ``cost_per_hour`` for each hour from leaving to returning.
    """

    ref: VehicleRef
    start_depot: DepotRef
    end_depot: DepotRef | None = None
    shift: PlanningTimeWindow
    breaks: list[PlanningBreak] = []
    max_duration_s: DurationS | None = None
    capacity: list[Amount] = []
    skills: frozenset[str] = frozenset()
    fixed_cost: Cost = 0.0
    cost_per_km: Cost = 0.0
    cost_per_hour: Cost = 0.0


class PlanningOrder(msgspec.Struct, frozen=True, kw_only=True):
    """A delivery to make at ``location``.

    Service starts inside one of ``time_windows`` (anywhere in the shift when the list is empty)
    and lasts ``service_s``. ``size`` is aligned with the problem's dimensions. ``priority`` is an
    index into :attr:`PlanningOptions.unassigned_penalty`: higher priorities should map to larger
    penalties, so they are dropped last. Only vehicles with every skill in ``required_skills``
    may serve the order.
    """

    ref: OrderRef
    location: Location
    time_windows: list[PlanningTimeWindow] = []
    service_s: DurationS = 0
    size: list[Amount] = []
    priority: Annotated[int, Meta(ge=0)] = 0
    required_skills: frozenset[str] = frozenset()


class PlanningOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How hard to search, and what leaving orders out and unbalanced routes cost.

    ``unassigned_penalty[p]`` is what leaving one order of priority ``p`` unserved costs, in the
    same currency as the vehicle costs. With ``balance_workload`` the longest route's working time
    (driving and service, without waiting) costs ``balance_cost_per_hour`` per hour on top, which
    spreads work across vehicles.
    """

    time_limit_s: Annotated[float, Meta(gt=0.0, le=3600.0)] = 10.0
    unassigned_penalty: Annotated[list[Penalty], Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: [1_000.0, 10_000.0, 100_000.0]
    )
    balance_workload: bool = False
    balance_cost_per_hour: Cost = 10.0


class PlanningProblem(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the solver needs to plan one day: where, who, what, and how hard to try."""

    dimensions: list[str] = []
    depots: list[PlanningDepot]
    vehicles: list[PlanningVehicle]
    orders: list[PlanningOrder]
    options: PlanningOptions = PlanningOptions()


class PlannedStop(msgspec.Struct, frozen=True, kw_only=True):
    """One visit of a route: when the vehicle gets there, serves and leaves.

    ``arrival_epoch_s <= service_start_epoch_s`` (the difference is waiting, or a break);
    ``departure_epoch_s = service_start_epoch_s + service_s``. ``load_after`` is what is still
    on board after this delivery, aligned with the problem's dimensions.
    """

    order_ref: OrderRef
    arrival_epoch_s: EpochS
    service_start_epoch_s: EpochS
    departure_epoch_s: EpochS
    load_after: list[Amount]
    distance_from_previous_m: DistanceM


class PlannedBreak(msgspec.Struct, frozen=True, kw_only=True):
    """When a vehicle's break is planned."""

    start_epoch_s: EpochS
    duration_s: DurationS


class Route(msgspec.Struct, frozen=True, kw_only=True):
    """The ordered stops of one vehicle, from leaving its start depot to returning to its end.

    ``load`` is what the vehicle carries when it leaves; ``duration_s`` is
    ``end_epoch_s - start_epoch_s`` and ``distance_m`` includes the way back to the depot.
    """

    vehicle_ref: VehicleRef
    start_epoch_s: EpochS
    end_epoch_s: EpochS
    stops: list[PlannedStop]
    breaks: list[PlannedBreak] = []
    distance_m: DistanceM
    duration_s: DurationS
    load: list[Amount]
    cost: Cost


class UnassignedOrder(msgspec.Struct, frozen=True, kw_only=True):
    """An order left out of the plan, with a machine-readable code and a sentence for people."""

    order_ref: OrderRef
    code: UnassignedReasonCode
    reason: str


class SearchStats(msgspec.Struct, frozen=True, kw_only=True):
    """What the search did: its final objective (in cost units), time spent and progress.

    ``solutions_found`` counts improving solutions (each one also went to the progress callback);
    ``status`` is the solver's final status, e.g. ``"success"``, ``"no_solution"``, or
    ``"cancelled"`` when the caller stopped the search early and got its best plan so far.

    ``engine`` names the engine whose plan this is (``"pyvrp"`` or ``"ortools"``), ``search``
    the search that produced it in words, and ``engine_reason`` why the portfolio chose that
    engine for this problem. ``processes`` counts the search processes started
    (0: the search ran in the caller's process, as small and short plans do).
    ``first_solution_strategy`` and ``metaheuristic`` are the OR-Tools settings asked for.
    """

    objective: float
    wall_time_s: float
    solutions_found: int
    status: str
    first_solution_strategy: str
    metaheuristic: str
    engine: str = "ortools"
    search: str = ""
    engine_reason: str = ""
    processes: int = 1


class PlanningResult(msgspec.Struct, frozen=True, kw_only=True):
    """The plan: one route per used vehicle, each unserved order with its reason, and stats."""

    routes: list[Route]
    unassigned: list[UnassignedOrder]
    stats: SearchStats
