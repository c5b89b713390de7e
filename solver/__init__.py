"""Pure computation for planning and tracking: no I/O, no clocks but the search's own.

Modules, in the order a plan flows through them:

* :mod:`solver.geo` — great-circle and planar distances;
* :mod:`solver.matrix` — travel matrices: the ``MatrixProvider`` protocol and its providers;
* :mod:`solver.instance` — a planning problem validated and indexed on one time axis;
* :mod:`solver.feasibility` — per-order pre-checks and the reasons for leaving orders out;
* :mod:`solver.model` — the OR-Tools routing model;
* :mod:`solver.search` — running the search and reading plans back;
* :mod:`solver.vrptw` — :func:`solver.vrptw.solve`, the entry point;
* :mod:`solver.errors` — what the solver raises.

Nothing is imported here, so that importing one module (say, a future ``solver.eta``) does not
load OR-Tools.
"""
