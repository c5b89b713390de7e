"""Errors raised by the solver, each carrying the fields that explain it.

Hierarchy::

    SolverError                 base class; catch this to handle any solver failure
    ├── ProblemError            the planning problem is inconsistent (unknown depot, misaligned
    │                           amounts, a window that ends before it starts, ...)
    ├── MatrixError             a travel matrix or its points are unusable (wrong shape, a
    │                           negative value, planar points given to a geographic provider, ...)
    └── InfeasiblePlan          a search engine returned a plan that breaks a constraint (found
                                by :mod:`solver.check`; a bug, never a plan to store)

Messages say what was expected and what came, e.g.
``vehicle 'v1': expected capacity with 2 amounts (weight_kg, parcels), got 3``.
"""

from __future__ import annotations


class SolverError(Exception):
    """Base class of every error the solver raises on purpose."""


class ProblemError(SolverError):
    """The planning problem cannot be solved as given.

    ``subject`` names the part at fault (``"vehicle 'v1'"``, ``"order 'o7'"``, ``"options"``)
    and ``detail`` says what was expected and what came.
    """

    def __init__(self, subject: str, detail: str) -> None:
        super().__init__(f"{subject}: {detail}")
        self.subject = subject
        self.detail = detail

    def __reduce__(self) -> tuple[type[ProblemError], tuple[str, str]]:
        # Rebuilt from its fields when it crosses processes (the API's solver pool).
        return type(self), (self.subject, self.detail)


class MatrixError(SolverError):
    """A travel matrix, or the points it is asked for, cannot be used.

    ``detail`` says what was expected and what came.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InfeasiblePlan(SolverError):
    """An engine's plan failed the independent feasibility check (:mod:`solver.check`).

    ``violations`` lists each broken constraint in words; the plan must not be used.
    """

    def __init__(self, violations: list[str]) -> None:
        shown = "; ".join(violations[:5])
        more = f" (and {len(violations) - 5} more)" if len(violations) > 5 else ""
        super().__init__(f"the plan breaks {len(violations)} constraints: {shown}{more}")
        self.violations = violations

    def __reduce__(self) -> tuple[type[InfeasiblePlan], tuple[list[str]]]:
        return type(self), (self.violations,)
