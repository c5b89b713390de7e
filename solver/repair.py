"""Making visiting orders feasible by leaving stops out.

On a large day with breaks, PyVRP plans the day with room kept for the breaks
(:mod:`solver.portfolio`'s ``pyvrp_breaks`` search); taking the breaks may still make a route
miss a window or run past its shift. :func:`repair` times each route with its breaks
(:mod:`solver.schedule`) and, while the independent check (:mod:`solver.check`) finds a fault,
leaves out the first stop served outside its windows, or else the last stop. The orders left
out are reported unassigned (code ``search``) if this plan is the one kept.
"""

from __future__ import annotations

from collections.abc import Sequence

from solver.check import route_violations
from solver.feasibility import Verdict
from solver.instance import Instance
from solver.schedule import time_route


def repair(
    instance: Instance, verdicts: Sequence[Verdict], sequences: Sequence[Sequence[int]]
) -> list[list[int]]:
    """``sequences`` (per vehicle) with stops left out until every route passes the check."""
    out: list[list[int]] = []
    for v, orders in enumerate(sequences):
        kept = [k for k in orders if v in verdicts[k].vehicles]
        while kept:
            route = time_route(instance, v, kept)
            if not route_violations(instance, v, route, kept):
                break
            origin = instance.origin_epoch_s
            late = [
                i
                for i, (k, stop) in enumerate(zip(kept, route.stops, strict=True))
                if not any(
                    a <= stop.service_start_epoch_s - origin <= b
                    for a, b in instance.order_windows[k]
                )
            ]
            kept.pop(late[0] if late else len(kept) - 1)
        out.append(kept)
    return out
