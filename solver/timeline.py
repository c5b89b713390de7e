"""Timing a running route's remaining stops, on a travel matrix shared by several routes.

:func:`retime` is the public call: one route, its own matrix. The other re-optimisation
modules (:mod:`solver.insertion`, :mod:`solver.resequence`) index several routes onto one
point list with :func:`index_routes`, ask the provider once, and time candidate sequences with
:func:`time_visits` without asking again.

The timing rule, shared by everything that re-optimises (see :mod:`schemas.reoptimize`): from
``position`` at ``now_epoch_s``, drive to each stop in turn; service starts at the arrival or,
when no window is open then, at the start of the next window; when every window has closed,
service starts on arrival and the stop is late by the arrival minus its last window's end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from schemas.planning import Location
from schemas.reoptimize import RemainingStop, RunningRoute, TimedStop, Timeline
from solver.errors import ProblemError
from solver.instance import Window, merge_windows
from solver.matrix import MatrixProvider, TravelMatrix


@dataclass(frozen=True, slots=True)
class Visit:
    """A remaining stop placed on the shared matrix: its ``point`` (row and column) and its
    windows in epoch seconds, sorted and merged (empty: any time)."""

    stop: RemainingStop
    point: int
    windows: tuple[Window, ...]


@dataclass(frozen=True, slots=True)
class IndexedRoute:
    """A running route placed on the shared matrix.

    ``start`` and ``end`` are the points of the driver's position and of the end location;
    ``visits`` are the remaining stops in their current order; ``load`` is the sum of their
    sizes, aligned with the route's capacity (empty when the capacity is).
    """

    route: RunningRoute
    start: int
    end: int
    visits: list[Visit]
    load: list[int]


def index_routes(
    routes: Sequence[RunningRoute], extra: Sequence[RemainingStop] = ()
) -> tuple[list[Location], list[IndexedRoute], list[Visit]]:
    """Place ``routes`` and ``extra`` stops on one point list, checking them on the way.

    Returns the points (ask the provider for their matrix once), the indexed routes and the
    extra stops as visits. Raises :class:`~solver.errors.ProblemError` for a window that ends
    before it starts, a negative service time or amount, a size not aligned with its route's
    capacity, or an order that appears twice.
    """
    points: list[Location] = []
    seen: set[str] = set()

    def place(stop: RemainingStop, subject: str) -> Visit:
        if stop.order_ref in seen:
            raise ProblemError(subject, "expected each order once across the routes, got it twice")
        seen.add(stop.order_ref)
        points.append(stop.location)
        return Visit(stop=stop, point=len(points) - 1, windows=stop_windows(stop, subject))

    indexed: list[IndexedRoute] = []
    for route in routes:
        where = f"route {route.vehicle_ref!r}"
        _check_amounts(route.capacity, where, "capacity")
        points.append(route.position)
        start = len(points) - 1
        visits = [place(s, f"{where} stop {s.order_ref!r}") for s in route.stops]
        points.append(route.end_location)
        load = [0] * len(route.capacity)
        for visit in visits:
            size = stop_size(visit.stop, route, f"{where} stop {visit.stop.order_ref!r}")
            load = [a + b for a, b in zip(load, size, strict=True)]
        indexed.append(
            IndexedRoute(route=route, start=start, end=len(points) - 1, visits=visits, load=load)
        )
    extra_visits = [place(s, f"order {s.order_ref!r}") for s in extra]
    return points, indexed, extra_visits


def stop_windows(stop: RemainingStop, subject: str) -> tuple[Window, ...]:
    """The stop's windows as sorted, merged ``(start, end)`` epoch seconds, after checking them."""
    if stop.service_s < 0:
        raise ProblemError(subject, f"expected a non-negative service_s, got {stop.service_s}")
    for k, window in enumerate(stop.time_windows):
        if window.end_epoch_s < window.start_epoch_s:
            raise ProblemError(
                subject,
                f"expected time window {k} to end at or after its start "
                f"{window.start_epoch_s}, got end {window.end_epoch_s}",
            )
    return tuple(merge_windows([(w.start_epoch_s, w.end_epoch_s) for w in stop.time_windows]))


def stop_size(stop: RemainingStop, route: RunningRoute, subject: str) -> list[int]:
    """The stop's size aligned with ``route.capacity`` (zeros when the stop gives none)."""
    if not route.capacity:
        return []
    if not stop.size:
        return [0] * len(route.capacity)
    if len(stop.size) != len(route.capacity):
        raise ProblemError(
            subject,
            f"expected size with {len(route.capacity)} amounts, like route "
            f"{route.vehicle_ref!r}'s capacity, got {len(stop.size)}",
        )
    _check_amounts(stop.size, subject, "size")
    return list(stop.size)


def service_start(arrival_epoch_s: int, windows: Sequence[Window]) -> tuple[int, int]:
    """When service starts after arriving at ``arrival_epoch_s``, and how late that is.

    ``windows`` must be sorted and merged. Returns ``(start, 0)`` with ``start`` the earliest
    instant at or after the arrival inside a window, or ``(arrival, arrival - last end)`` when
    every window has closed; ``(arrival, 0)`` when there are no windows.
    """
    for start, end in windows:
        if arrival_epoch_s <= end:
            return max(arrival_epoch_s, start), 0
    if not windows:
        return arrival_epoch_s, 0
    return arrival_epoch_s, arrival_epoch_s - windows[-1][1]


def time_visits(matrix: TravelMatrix, route: IndexedRoute, visits: Sequence[Visit]) -> Timeline:
    """Time ``visits``, in this order, as ``route``'s remaining stops (see the module doc)."""
    duration = matrix.duration_s
    distance = matrix.distance_m
    running = route.route
    clock = running.now_epoch_s
    here = route.start
    travel = metres = lateness = 0
    timed: list[TimedStop] = []
    for visit in visits:
        arrival = clock + duration[here][visit.point]
        start, late = service_start(arrival, visit.windows)
        clock = start + visit.stop.service_s
        timed.append(
            TimedStop(
                order_ref=visit.stop.order_ref,
                arrival_epoch_s=arrival,
                service_start_epoch_s=start,
                departure_epoch_s=clock,
                lateness_s=late,
                distance_from_previous_m=distance[here][visit.point],
            )
        )
        travel += duration[here][visit.point]
        metres += distance[here][visit.point]
        lateness += late
        here = visit.point
    end = clock + duration[here][route.end]
    return Timeline(
        vehicle_ref=running.vehicle_ref,
        position=running.position,
        now_epoch_s=running.now_epoch_s,
        stops=timed,
        end_epoch_s=end,
        distance_m=metres + distance[here][route.end],
        duration_s=end - running.now_epoch_s,
        travel_s=travel + duration[here][route.end],
        lateness_s=lateness,
        overtime_s=max(0, end - running.latest_end_epoch_s),
    )


def shared_matrix(
    provider: MatrixProvider, points: Sequence[Location], routes: Sequence[RunningRoute]
) -> TravelMatrix:
    """One matrix over ``points``, for trips starting about the earliest ``now`` of ``routes``."""
    depart = min((r.now_epoch_s for r in routes), default=0)
    return provider.matrix(points, depart_epoch_s=depart)


def retime(route: RunningRoute, provider: MatrixProvider) -> Timeline:
    """Time ``route``'s remaining stops in their current order, from its position and now.

    Never refuses: a stop reached after its windows is reported with ``lateness_s > 0`` and a
    route ending after its latest end with ``overtime_s > 0``. Call it after removing a
    cancelled stop, and whenever the driver's position or delay changes. Raises
    :class:`~solver.errors.ProblemError` for an inconsistent route and
    :class:`~solver.errors.MatrixError` when the provider cannot handle its points.
    """
    points, (indexed,), _ = index_routes([route])
    return time_visits(shared_matrix(provider, points, [route]), indexed, indexed.visits)


def _check_amounts(amounts: Sequence[int], subject: str, what: str) -> None:
    for k, value in enumerate(amounts):
        if value < 0:
            raise ProblemError(subject, f"expected non-negative {what} amounts, got {value} at {k}")
