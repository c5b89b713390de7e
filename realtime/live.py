"""Reading the live state kept in Redis: drivers' latest positions, arrival windows, trackers.

The writes live next door: the ingest script of :mod:`realtime.streams` keeps each driver's
latest position, and the ETA worker keeps each route's newest arrival windows and each
driver's tracker state. These functions are the only readers, so the key layout and the
encodings stay in ``realtime/``; each takes the Redis client and :class:`StreamNames` and
does one round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from realtime.streams import StreamNames, decode_live, shard_of
from schemas.codecs import ARRIVAL_WINDOW_DECODER, SAVED_TRACKER_DECODER
from schemas.eta import ArrivalWindow, SavedTracker
from schemas.ids import DriverId, OrgId, RouteId, StopId
from schemas.ping import LivePosition
from schemas.route import RouteView

OPEN_STOP_STATUSES = frozenset({"pending", "arrived"})
"""Stop statuses that still have an arrival window worth showing."""


async def latest_positions(redis: Any, names: StreamNames, org_id: OrgId) -> list[LivePosition]:
    """The latest position of every driver of ``org_id`` that has sent one, by driver id."""
    async with redis.pipeline(transaction=False) as pipe:
        for shard in range(names.shards):
            pipe.hvals(names.live(shard, org_id))
        replies = await pipe.execute()
    drivers = [decode_live(_bytes(value)) for reply in replies for value in reply]
    return sorted(drivers, key=lambda live: live.driver_id)


async def latest_position(
    redis: Any, names: StreamNames, org_id: OrgId, driver_id: DriverId
) -> LivePosition | None:
    """The latest position of one driver, or None if it has sent none (or is not of ``org_id``)."""
    shard = shard_of(driver_id, names.shards)
    raw = await redis.hget(names.live(shard, org_id), str(driver_id))
    return None if raw is None else decode_live(_bytes(raw))


async def open_windows(
    redis: Any, names: StreamNames, routes: Sequence[RouteView]
) -> list[ArrivalWindow]:
    """The newest arrival window of every open stop of ``routes`` (where the ETA worker has one)."""
    if not routes:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for route in routes:
            pipe.hgetall(names.arrival_windows(route.id))
        replies = await pipe.execute()
    windows = []
    for route, reply in zip(routes, replies, strict=True):
        open_stops = {s.id for s in route.stops if s.status in OPEN_STOP_STATUSES}
        for stop_id, raw in reply.items():
            if int(stop_id) in open_stops:
                windows.append(ARRIVAL_WINDOW_DECODER.decode(raw))
    return windows


@dataclass(frozen=True)
class StopState:
    """What Redis holds now about one open stop and its driver (each None when it holds none)."""

    window: ArrivalWindow | None
    """The stop's newest arrival window."""
    tracker: SavedTracker | None
    """The driver's ETA tracker: which route it follows and which stop it expects next."""
    position: LivePosition | None
    """The driver's latest position."""


async def stop_state(
    redis: Any,
    names: StreamNames,
    org_id: OrgId,
    *,
    route_id: RouteId,
    stop_id: StopId,
    driver_id: DriverId,
) -> StopState:
    """The arrival window of ``stop_id`` on ``route_id``, and its driver's tracker and position."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hget(names.arrival_windows(route_id), str(stop_id))
        pipe.get(names.eta_state(driver_id))
        pipe.hget(names.live(shard_of(driver_id, names.shards), org_id), str(driver_id))
        raw_window, raw_tracker, raw_position = await pipe.execute()
    return StopState(
        window=None if raw_window is None else ARRIVAL_WINDOW_DECODER.decode(raw_window),
        tracker=None if raw_tracker is None else SAVED_TRACKER_DECODER.decode(raw_tracker),
        position=None if raw_position is None else decode_live(_bytes(raw_position)),
    )


def _bytes(raw: bytes | str) -> bytes:
    return raw if isinstance(raw, bytes) else raw.encode()
