"""Travel times from a road network: an OSRM-compatible ``table`` service.

Configured with ``LASTMILE_OSRM_URL`` (e.g. ``http://osrm:5000``, the ``driving`` profile is
used); with it set, planning and re-optimisation use real road distances and durations instead
of great-circle estimates. Matrices of repeated point sets are cached (least recently used).
This is the edge where the solver's :class:`~solver.matrix.MatrixProvider` meets the network;
the solver itself does no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx
from cachetools import LRUCache

from schemas.planning import Location
from solver.errors import MatrixError
from solver.matrix import TravelMatrix

MAX_POINTS = 1000
"""OSRM defaults to ``--max-table-size 100``; planning servers raise it. Beyond this we refuse."""


class OsrmProvider:
    """A :class:`~solver.matrix.MatrixProvider` over an OSRM ``/table/v1/driving`` endpoint."""

    def __init__(self, base_url: str, *, timeout_s: float = 30.0, cache_size: int = 64) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.cache_size = cache_size
        # One connection pool per provider: a plan asks for many tables in a row.
        self._client = httpx.Client(timeout=timeout_s)
        self._cache: LRUCache[tuple[Location, ...], TravelMatrix] = LRUCache(maxsize=cache_size)

    def matrix(self, points: Sequence[Location], *, depart_epoch_s: int) -> TravelMatrix:
        """Distances and durations between every pair of ``points`` (geographic only)."""
        key = tuple(points)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        if len(points) > MAX_POINTS:
            raise MatrixError(f"expected at most {MAX_POINTS} points for OSRM, got {len(points)}")
        coords = []
        for i, p in enumerate(points):
            if p.lat is None or p.lon is None:
                raise MatrixError(f"expected geographic points for OSRM, got planar at index {i}")
            coords.append(f"{p.lon:.6f},{p.lat:.6f}")
        url = f"{self.base_url}/table/v1/driving/{';'.join(coords)}"
        try:
            reply = self._client.get(url, params={"annotations": "duration,distance"})
            body = reply.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise MatrixError(f"the OSRM table service at {self.base_url} failed: {exc}") from exc
        if not isinstance(body, dict):
            raise MatrixError(f"OSRM answered {reply.status_code} with no table")
        if body.get("code") != "Ok":
            raise MatrixError(f"OSRM answered {body.get('code')}: {body.get('message', '')}")
        matrix = TravelMatrix(
            distance_m=[[_whole(v) for v in row] for row in body["distances"]],
            duration_s=[[_whole(v) for v in row] for row in body["durations"]],
        )
        self._cache[key] = matrix
        return matrix


def _whole(value: float | None) -> int:
    """OSRM gives ``null`` for unroutable pairs: treat them as practically unreachable."""
    return 10**9 if value is None else round(value)
