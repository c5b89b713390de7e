"""Errors of the workers, and which failures of a handler are worth retrying.

Hierarchy::

    WorkerError             base class of the errors workers raise on purpose
    ├── PoisonEntry         one stream entry can never be handled (its content is wrong): the
    │                       runner moves it to the dead-letter stream at once, without retrying
    └── InvalidPlan         a stored plan's options break the rules the API or the solver
                            applies (the planner turns it into a PoisonEntry)

Everything else a handler raises is either *transient* (:func:`is_transient`: Redis or
PostgreSQL unreachable, a connection dropped, a timeout, a deadlock), retried with backoff for as
long as it lasts, or a failure the runner retries a bounded number of times before
dead-lettering the entry that causes it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg
from redis import exceptions as redis_errors

if TYPE_CHECKING:
    from workers.runner import Entry

_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,  # includes ConnectionError: sockets refused, reset, unreachable
    TimeoutError,
    redis_errors.ConnectionError,  # includes BusyLoadingError (a restarting Redis)
    redis_errors.TimeoutError,
    redis_errors.ReadOnlyError,  # a replica answering during a failover
    redis_errors.TryAgainError,
    redis_errors.ClusterDownError,
    psycopg.InterfaceError,  # a connection already closed
)

_POSTGRES_TRANSIENT_CLASSES = ("08", "40", "57", "58")
"""SQLSTATE classes that say the server or the connection is in trouble, not the work: connection
exceptions, transaction rollbacks (serialization failures, deadlocks), operator intervention
(shutdown, cannot connect now, statement cancelled), system errors."""
_POSTGRES_TRANSIENT_STATES = ("53100", "53300")
"""Disk full and too many connections. Not out of memory (53200) nor a configured limit
(53400): those are what one transaction too big for the server gets (``out of shared memory``
when it takes too many locks), and would come back every time it is retried."""


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` says a backing service is away for now, not that the work is wrong.

    Retrying such a failure later may succeed, so it never counts against an entry.
    """
    if isinstance(exc, psycopg.OperationalError):
        state = exc.sqlstate  # None: raised by the client (cannot connect, pool timeout)
        return (
            state is None
            or state.startswith(_POSTGRES_TRANSIENT_CLASSES)
            or state in _POSTGRES_TRANSIENT_STATES
        )
    return isinstance(exc, _TRANSIENT)


class WorkerError(Exception):
    """Base class of the errors workers raise on purpose."""


class PoisonEntry(WorkerError):
    """Entry ``entry_id`` of ``stream`` can never be handled; ``reason`` says why.

    A handler raises it to have the runner dead-letter that one entry at once and handle the
    rest of the batch without it.
    """

    def __init__(self, stream: str, entry_id: str, reason: str) -> None:
        super().__init__(f"{stream} {entry_id}: {reason}")
        self.stream = stream
        self.entry_id = entry_id
        self.reason = reason

    @classmethod
    def of(cls, entry: Entry[Any], reason: str) -> PoisonEntry:
        """The error for a :class:`workers.runner.Entry`."""
        return cls(entry.stream, entry.id, reason)


class InvalidPlan(WorkerError):
    """Plan ``plan_id`` asks for options the API or the solver would refuse; ``detail`` names
    the field and says what was expected and what came."""

    def __init__(self, plan_id: int, detail: str) -> None:
        super().__init__(f"plan {plan_id}: {detail}")
        self.plan_id = plan_id
        self.detail = detail
