"""The API's solver calls (insertion, moves, re-sequencing, re-timing) in worker processes.

OR-Tools keeps the GIL while it searches (a re-sequence searches for up to a second; a thread
does not help, the event loop still stalls for half of it), and the OSRM provider waits on
blocking HTTP. Run inline in an API process, either would stall every socket the process
serves: positions, windows, pings and their acks. So each API process hands these calls to a
small pool of processes (``LASTMILE_SOLVER_PROCESSES``, 1 by default), each holding its own
travel-time provider built from the settings, so that only the routes and the answer cross
the process boundary.

Processes are spawned (not forked: the API process has threads and an event loop) when the API
starts (``LASTMILE_WARM_SOLVER``, on by default; off, the first call waits about a second for
the imports); a pool whose process died is replaced, and the call retried once, since every
call here is a pure function.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

import structlog

from app.settings import Settings
from solver.matrix import MatrixProvider

log = structlog.get_logger(__name__)

T = TypeVar("T")

_provider: MatrixProvider | None = None
"""The travel-time provider of this solver process (set by :func:`_start`)."""


def _start(settings: Settings) -> None:
    global _provider
    # A Ctrl-C reaches the whole process group; the API process shuts this pool down itself,
    # so a solver process that took the interrupt would only print a traceback while waiting.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Imported here: app.resources imports this module to open the pool.
    from app.resources import matrix_provider

    _provider = matrix_provider(settings)


def _ready() -> None:
    """Nothing: submitting it starts a process, which runs :func:`_start` first."""


def _call(fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
    if _provider is None:
        raise RuntimeError("a solver process was used before it started")
    return fn(*args, provider=_provider, **kwargs)


class SolverPool:
    """Runs solver functions that take a ``provider`` keyword in separate processes."""

    def __init__(self, settings: Settings, processes: int) -> None:
        self._settings = settings
        self._processes = processes
        self._executor = self._new()

    def _new(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self._processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start,
            initargs=(self._settings,),
        )

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, provider=<the process's provider>, **kwargs)`` in a solver process.

        ``fn`` must be a module-level function and its arguments and answer picklable; its
        exceptions come back as raised.
        """
        loop = asyncio.get_running_loop()
        executor = self._executor
        try:
            return await loop.run_in_executor(executor, _call, fn, args, kwargs)
        except BrokenProcessPool:
            if self._executor is executor:  # the first call to see it replaces the pool
                log.warning("a solver process died; starting a new pool", function=fn.__name__)
                executor.shutdown(wait=False, cancel_futures=True)
                self._executor = self._new()
            return await loop.run_in_executor(self._executor, _call, fn, args, kwargs)

    def warm(self) -> None:
        """Start the processes now, so that the first call does not wait for them."""
        self._executor.submit(_ready)

    def close(self) -> None:
        """Stop the processes (a running search is abandoned)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
