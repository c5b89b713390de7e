"""Re-optimising routes that are already being driven: the state handed in, the answers given.

The rest of the system keeps the live state (where each driver is, which stops are done) and
calls the pure functions of :mod:`solver.reoptimize` with a :class:`RunningRoute` per driver;
they answer with a :class:`Timeline` (when each remaining stop will be reached), an
:class:`Insertion` (where a new order fits best) or an :class:`Unplaceable` (why it fits
nowhere). The caller applies the answer; nothing here changes state.

Conventions are those of :mod:`schemas.planning` (integer epoch seconds, metres, amounts aligned
with the planning problem's dimensions), plus:

* **Visited stops are not in the input.** A :class:`RunningRoute` holds only the stops still to
  serve, so nothing can move a stop that is done. Its timeline starts at ``position`` at
  ``now_epoch_s``: where the driver is free to drive on from, and when. (A driver in the middle
  of a service is passed with that stop left out and ``now_epoch_s`` set to when it ends.)
* **Service starts inside a window.** A stop reached before a window opens waits for it; one
  reached after all its windows closed is served on arrival and reported late
  (``lateness_s`` is the arrival minus the last window's end). A stop without windows is never
  late. Timelines report lateness; the functions that change a route refuse to make any stop
  later than it already was, and require the new stop itself to be on time.
* **The route ends** at ``end_location`` no later than :attr:`RunningRoute.latest_end_epoch_s`,
  the earlier of the shift end and ``route_start_epoch_s + max_duration_s``.

The two answers of an insertion form a tagged union (``Insertion | Unplaceable``) whose
``type`` field names the member, so a decoder can tell them apart on the wire.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from schemas.planning import (
    Amount,
    DistanceM,
    DurationS,
    EpochS,
    Location,
    OrderRef,
    PlanningTimeWindow,
    VehicleRef,
)

UnplaceableCode = Literal["no_route", "skill", "capacity", "time_window"]
"""Why an order fits into no running route.

* ``no_route``: there was no running route to put it on;
* ``skill``: no running route's vehicle has every skill the order requires;
* ``capacity``: no route with the skills has room for the order's size on top of its
  remaining stops' (see :class:`RunningRoute` for how room is counted);
* ``time_window``: on every route with the skills and room, every position either misses the
  order's windows, makes a later stop later than it already was, or ends the route after its
  shift end or maximum duration.
"""


class RemainingStop(msgspec.Struct, frozen=True, kw_only=True):
    """A stop still to be served: an order's place, windows, service time and size.

    ``time_windows`` empty means any time (bounded only by the route's end); ``size`` empty
    means nothing (zero in every dimension), otherwise it is aligned with the route's
    ``capacity``. ``required_skills`` matter when the stop is moved to another vehicle.
    """

    order_ref: OrderRef
    location: Location
    time_windows: list[PlanningTimeWindow] = []
    service_s: DurationS = 0
    size: list[Amount] = []
    required_skills: frozenset[str] = frozenset()


class RunningRoute(msgspec.Struct, frozen=True, kw_only=True):
    """A dispatched route as it stands now: the driver's position and the stops left, in order.

    The driver is at ``position``, free to drive on at ``now_epoch_s``, and will serve
    ``stops`` in list order, then drive to ``end_location``. The route left its start depot at
    ``route_start_epoch_s``; it must reach ``end_location`` by :attr:`latest_end_epoch_s`.

    **Capacity — a known simplification.** ``capacity`` is the vehicle's full capacity (as in
    :attr:`schemas.planning.PlanningVehicle.capacity`), not what is left of it. What is on board is
    taken to be exactly the sizes of the remaining stops, so an order fits when the remaining
    stops' sizes plus its own fit ``capacity`` in every dimension. This assumes the goods of an
    inserted order can be loaded onto the vehicle (handed over on the way, or already aboard)
    without a detour to a depot, and that nothing else is aboard (goods of failed deliveries
    coming back are not counted). Callers for whom that is wrong must reduce ``capacity``
    by what else is aboard. Empty ``capacity`` means the vehicle's load is not constrained.
    """

    vehicle_ref: VehicleRef
    position: Location
    now_epoch_s: EpochS
    stops: list[RemainingStop] = []
    end_location: Location
    shift_end_epoch_s: EpochS
    route_start_epoch_s: EpochS
    max_duration_s: DurationS | None = None
    capacity: list[Amount] = []
    skills: frozenset[str] = frozenset()

    @property
    def latest_end_epoch_s(self) -> int:
        """The instant the route must be at its end: shift end, or start plus max duration."""
        if self.max_duration_s is None:
            return self.shift_end_epoch_s
        return min(self.shift_end_epoch_s, self.route_start_epoch_s + self.max_duration_s)


class TimedStop(msgspec.Struct, frozen=True, kw_only=True):
    """When a remaining stop is reached, served and left, and how late its service is.

    ``arrival_epoch_s <= service_start_epoch_s`` (the difference is waiting for a window);
    ``departure_epoch_s = service_start_epoch_s + service_s``. ``lateness_s`` is 0 when service
    starts inside a window, otherwise the arrival minus the end of the stop's last window.
    """

    order_ref: OrderRef
    arrival_epoch_s: EpochS
    service_start_epoch_s: EpochS
    departure_epoch_s: EpochS
    lateness_s: DurationS
    distance_from_previous_m: DistanceM


class Timeline(msgspec.Struct, frozen=True, kw_only=True):
    """The rest of one route, timed, from ``position`` at ``now_epoch_s`` to its end location.

    ``stops`` are in visiting order (which may differ from the input's after a re-sequencing).
    ``end_epoch_s`` is the arrival at the end location; ``duration_s = end_epoch_s -
    now_epoch_s`` (driving, waiting and service); ``travel_s`` and ``distance_m`` count driving
    only, including the way to the end location. ``lateness_s`` is the sum of the stops'
    lateness and ``overtime_s`` how far ``end_epoch_s`` passes the route's latest end (0 when
    in time).
    """

    vehicle_ref: VehicleRef
    position: Location
    now_epoch_s: EpochS
    stops: list[TimedStop]
    end_epoch_s: EpochS
    distance_m: DistanceM
    duration_s: DurationS
    travel_s: DurationS
    lateness_s: DurationS
    overtime_s: DurationS

    @property
    def on_time(self) -> bool:
        """Whether every stop starts service inside a window and the route ends in time."""
        return self.lateness_s == 0 and self.overtime_s == 0


class Insertion(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="insertion"):
    """Where an order goes: into ``vehicle_ref``'s remaining stops at index ``position``.

    ``position`` is the index the new stop takes in the route's remaining stops (0: next, before
    every other stop; ``len(stops)``: last, before the end location). ``stop`` is the order as
    a remaining stop. ``added_travel_s`` and ``added_distance_m`` are what the detour adds to
    the route's driving; they can be slightly negative when rounded travel times break the
    triangle inequality. ``timeline`` is the route with the stop inserted.
    """

    vehicle_ref: VehicleRef
    position: Annotated[int, Meta(ge=0)]
    stop: RemainingStop
    added_travel_s: int
    added_distance_m: int
    timeline: Timeline


class Unplaceable(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="unplaceable"):
    """An order that fits into no running route, with a machine-readable code and a sentence."""

    order_ref: OrderRef
    code: UnplaceableCode
    reason: str
