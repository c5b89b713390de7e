"""Re-optimising routes while they are driven: the one import for the rest of the system.

Every call is pure: it takes the live state as :class:`~schemas.reoptimize.RunningRoute` values
(the driver's position and now, the stops still to serve, the shift's limits) and a matrix
provider, and returns what the caller should apply. Visited stops are never part of the input,
so they cannot move; every timeline starts at the driver's current position and instant.

* :func:`retime` — a driver reports a delay, or a stop was cancelled (remove it with
  :func:`without_stop` first): new arrival times, with lateness reported, never refused;
* :func:`cheapest_insertion` — an urgent order arrives: the running route and position where
  it adds the least driving without breaking any constraint, or why there is none;
* :func:`move_stop` — a dispatcher hands a stop to another driver: both new timelines, or why
  the other route cannot take it (at the position chosen);
* :func:`resequence` — a driver is late: the remaining stops re-ordered for the least total
  lateness, then the least driving; never worse than the current order.

:func:`with_stop` and :func:`without_stop` apply an answer to a route, so calls can chain;
:func:`order_stop` turns a new :class:`~schemas.planning.PlanningOrder` into a remaining stop.

The modules behind them: :mod:`solver.timeline` (the timing rule, :func:`retime`),
:mod:`solver.insertion` and :mod:`solver.resequence`. Importing this module loads OR-Tools
(for :func:`resequence`); code that only re-times, such as the ETA worker, can import
:mod:`solver.timeline` alone.
"""

from __future__ import annotations

from solver.insertion import cheapest_insertion, move_stop, order_stop, with_stop, without_stop
from solver.resequence import resequence
from solver.timeline import retime

__all__ = [
    "cheapest_insertion",
    "move_stop",
    "order_stop",
    "resequence",
    "retime",
    "with_stop",
    "without_stop",
]
