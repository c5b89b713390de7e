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

A route planned at learned speeds is re-optimised at them too: the caller passes the plan's
model as :class:`LearnedTravel`, and each process keeps the providers it built for the last
:data:`PROVIDERS_KEPT` (model, time zone, span), so a table is decoded once per process and
span, not per call; a call without one uses the configured provider. The table goes with every
call as msgspec JSON, since the caller cannot know which process takes it: a dense one (every
cell of ``bench.insert_api --learned``'s area at every working hour, 1.8 MB) adds about 2 ms.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
import structlog
from cachetools import LRUCache

from app.settings import Settings
from solver.learning import SpeedTable
from solver.matrix import MatrixProvider
from workers.learner import with_speeds

log = structlog.get_logger(__name__)

T = TypeVar("T")

PROVIDERS_KEPT = 8
"""Providers at learned speeds a solver process keeps (each holds its own pair cache)."""


@dataclass(frozen=True)
class LearnedTravel:
    """The learned speeds a call drives at: what a solver process needs to build, once, the
    configured provider driven at them (:func:`workers.learner.with_speeds`)."""

    model_id: int
    timezone: str
    """The organisation's IANA time zone: the table's hours of week are local."""
    speeds_json: bytes
    """The model's :class:`~solver.learning.SpeedTable`, msgspec JSON."""
    span_h: int
    """Hours of week averaged from each departure's (at least 1)."""


_provider: MatrixProvider | None = None
"""The travel-time provider of this solver process (set by :func:`_start`)."""

_learned: LRUCache[tuple[int, str, int], MatrixProvider] = LRUCache(maxsize=PROVIDERS_KEPT)
"""This process's providers at learned speeds, by (model id, time zone, span)."""

_SPEEDS = msgspec.json.Decoder(SpeedTable)


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


def _provider_for(travel: LearnedTravel | None) -> MatrixProvider:
    """The configured provider, driven at ``travel``'s speeds when it names some."""
    if _provider is None:
        raise RuntimeError("a solver process was used before it started")
    if travel is None:
        return _provider
    key = (travel.model_id, travel.timezone, travel.span_h)
    provider = _learned.get(key)
    if provider is None:
        speeds = _SPEEDS.decode(travel.speeds_json)
        provider = with_speeds(_provider, speeds, travel.timezone, travel.span_h)
        _learned[key] = provider
    return provider


def _call(
    fn: Callable[..., T],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    travel: LearnedTravel | None = None,
) -> T:
    return fn(*args, provider=_provider_for(travel), **kwargs)


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

    async def run(
        self,
        fn: Callable[..., T],
        *args: Any,
        travel: LearnedTravel | None = None,
        **kwargs: Any,
    ) -> T:
        """``fn(*args, provider=<the process's provider>, **kwargs)`` in a solver process; the
        provider drives at ``travel``'s learned speeds when given (``travel`` is the pool's,
        never passed to ``fn``).

        ``fn`` must be a module-level function and its arguments and answer picklable; its
        exceptions come back as raised.
        """
        loop = asyncio.get_running_loop()
        executor = self._executor
        try:
            return await loop.run_in_executor(executor, _call, fn, args, kwargs, travel)
        except BrokenProcessPool:
            if self._executor is executor:  # the first call to see it replaces the pool
                log.warning("a solver process died; starting a new pool", function=fn.__name__)
                executor.shutdown(wait=False, cancel_futures=True)
                self._executor = self._new()
            return await loop.run_in_executor(self._executor, _call, fn, args, kwargs, travel)

    def warm(self) -> None:
        """Start the processes now, so that the first call does not wait for them."""
        self._executor.submit(_ready)

    def close(self) -> None:
        """Stop the processes (a running search is abandoned)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
