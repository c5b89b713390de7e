"""Before the search: which vehicles could serve each order on its own, and if none, why.

For every order and vehicle three checks run in turn — skills, capacity, then time (can the
shift reach the order inside one of its windows and get back to its end depot in time and
within its maximum duration, ignoring breaks and every other order). An order that passes on
some vehicle goes into the model restricted to those vehicles; one that passes on none stays
out of the model and is reported with the reason of the check that stopped the most advanced
vehicles. The checks are necessary conditions only: an order that passes may still be left out
by the search (breaks, other orders), and is then reported with code ``"search"``.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from schemas.planning import UnassignedReasonCode
from solver.instance import Instance, Window


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    """For one order: the vehicles (indices) that could serve it alone, or why none can.

    ``code`` and ``reason`` are ``None`` exactly when ``vehicles`` is not empty.
    """

    vehicles: list[int]
    code: UnassignedReasonCode | None = None
    reason: str | None = None


def precheck(instance: Instance) -> list[Verdict]:
    """Return one :class:`Verdict` per order, in ``problem.orders`` order."""
    return [_order_verdict(instance, k) for k in range(len(instance.problem.orders))]


def reachable(instance: Instance, order: int, vehicle: int) -> bool:
    """Whether ``vehicle``'s shift alone can serve ``order`` in a window and return in time.

    The route leaves as late as it can without making the order wait past its window start,
    so the check also respects the vehicle's maximum duration.
    """
    windows = instance.order_windows[order]
    start_point = instance.vehicle_start[vehicle]
    end_point = instance.vehicle_end[vehicle]
    point = instance.order_point[order]
    out_s = instance.travel_s(start_point, point)
    back_s = instance.travel_s(point, end_point)
    service_s = instance.problem.orders[order].service_s
    shift_start, shift_end = instance.shift[vehicle]
    max_duration = instance.problem.vehicles[vehicle].max_duration_s
    for window_start, window_end in windows:
        service_start = max(shift_start + out_s, window_start)
        if service_start > window_end:
            continue
        back_at = service_start + service_s + back_s
        if back_at > shift_end:
            continue
        leave_at = max(shift_start, window_start - out_s)
        if max_duration is not None and back_at - leave_at > max_duration:
            continue
        return True
    return False


def _order_verdict(instance: Instance, k: int) -> Verdict:
    problem = instance.problem
    order = problem.orders[k]
    vehicles = range(len(problem.vehicles))

    skilled = [v for v in vehicles if order.required_skills <= problem.vehicles[v].skills]
    if not skilled:
        return Verdict(vehicles=[], code="skill", reason=_skill_reason(instance, k))

    fitting = [v for v in skilled if _fits(instance.size[k], instance.capacity[v])]
    if not fitting:
        return Verdict(vehicles=[], code="capacity", reason=_capacity_reason(instance, k, skilled))

    timely = [v for v in fitting if reachable(instance, k, v)]
    if not timely:
        return Verdict(vehicles=[], code="time_window", reason=_time_reason(instance, k))
    return Verdict(vehicles=timely)


def _fits(size: Sequence[int], capacity: Sequence[int]) -> bool:
    return all(s <= c for s, c in zip(size, capacity, strict=True))


def _skill_reason(instance: Instance, k: int) -> str:
    required = instance.problem.orders[k].required_skills
    vehicles = instance.problem.vehicles
    missing = sorted(s for s in required if not any(s in v.skills for v in vehicles))
    if missing:
        return f"no vehicle has skill {', '.join(repr(s) for s in missing)}"
    return f"no vehicle has all of the skills {', '.join(repr(s) for s in sorted(required))}"


def _capacity_reason(instance: Instance, k: int, skilled: Sequence[int]) -> str:
    dims = instance.problem.dimensions
    size = instance.size[k]
    for d, name in enumerate(dims):
        largest = max(instance.capacity[v][d] for v in skilled)
        if size[d] > largest:
            return (
                f"capacity: order {name} {size[d]} exceeds every vehicle "
                f"with the required skills (largest {largest})"
            )
    amounts = ", ".join(f"{n} {s}" for n, s in zip(dims, size, strict=True))
    return f"capacity: no single vehicle with the required skills fits {amounts} together"


def _time_reason(instance: Instance, k: int) -> str:
    windows = instance.order_windows[k]
    if not windows:
        return "time window unreachable from any shift: every window lies outside all shifts"
    spans = ", ".join(_format_window(instance, w) for w in windows)
    return (
        "time window unreachable from any shift: no vehicle able to carry the order can reach "
        f"it within {spans} and return to its depot within its shift and maximum duration"
    )


def _format_window(instance: Instance, window: Window) -> str:
    origin = instance.origin_epoch_s
    return f"[{window[0] + origin}, {window[1] + origin}] epoch s"
