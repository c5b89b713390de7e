"""Stream names, sharding, and appending ping batches to Redis.

Keys of one shard share the hash tag ``{shard}`` (``pings:{3}``, ``live:{3}:42``), so one Lua
call can append a batch and update the driver's latest position atomically, and the layout
works unchanged on Redis Cluster. A driver always maps to the same shard
(:func:`shard_of`), which keeps each driver's batches in order on one stream.

:class:`PingAppender` coalesces concurrent callers: while one round trip is in flight, new
batches queue up and go out together in the next, one script call per shard. A caller's
``append`` returns only once Redis has the entry, which is what lets a 2xx mean "stored".
"""

from __future__ import annotations

import asyncio
import zlib
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from schemas.codecs import LIVE_POSITION_DECODER, LIVE_POSITION_ENCODER, PING_BATCH_ENCODER
from schemas.ids import DriverId, OrderId, OrgId, RouteId
from schemas.ping import LivePosition, PingBatch

APPEND_SCRIPT = """
local n = tonumber(ARGV[1])
local ids = {}
for i = 0, n - 1 do
  local a = 2 + i * 6
  local driver, t = ARGV[a], ARGV[a + 1]
  ids[i + 1] = redis.call('XADD', KEYS[1], '*', 'b', ARGV[a + 3])
  local live, live_t = KEYS[2 + i * 2], KEYS[3 + i * 2]
  local cur = redis.call('HGET', live_t, driver)
  if (not cur) or tonumber(cur) < tonumber(t) then
    redis.call('HSET', live_t, driver, t)
    redis.call('HSET', live, driver, ARGV[a + 2])
    redis.call('PUBLISH', ARGV[a + 4], driver .. '|' .. ARGV[a + 2])
    redis.call('PUBLISH', ARGV[a + 5], driver .. '|' .. ARGV[a + 2])
  end
end
return ids
"""
"""KEYS: the shard's stream, then per batch its org's live and live-time hashes.
ARGV: the batch count, then per batch: driver id, latest time (µs), live payload, entry, the
org's positions channel and the driver's own (where ``driver|payload`` is published when the
position is newer)."""


def shard_of(driver_id: DriverId, shards: int) -> int:
    """The stream shard of a driver: stable across processes, restarts and machines."""
    return zlib.crc32(str(driver_id).encode()) % shards


@dataclass(frozen=True)
class StreamNames:
    """Key names, with an optional prefix so several deployments can share one Redis."""

    prefix: str = ""
    shards: int = 4

    def pings(self, shard: int) -> str:
        """The ping stream of ``shard``."""
        return f"{self.prefix}pings:{{{shard}}}"

    def all_pings(self) -> list[str]:
        """Every ping stream, by shard."""
        return [self.pings(s) for s in range(self.shards)]

    def live(self, shard: int, org_id: OrgId) -> str:
        """Hash of latest positions (driver id → encoded :class:`LivePosition`)."""
        return f"{self.prefix}live:{{{shard}}}:{org_id}"

    def live_time(self, shard: int, org_id: OrgId) -> str:
        """Hash of the device time (µs since the epoch) behind each latest position."""
        return f"{self.prefix}live_t:{{{shard}}}:{org_id}"

    @property
    def events(self) -> str:
        """The domain events stream."""
        return f"{self.prefix}events"

    def org_events(self, org_id: OrgId) -> str:
        """An organisation's own events stream: the events its dispatcher screens are sent one
        by one (all but moved arrival windows), kept so that a reconnecting screen can be sent
        exactly the ones it missed (``?since=``) without reading other organisations' events."""
        return f"{self.prefix}org_events:{org_id}"

    @property
    def dead_letters(self) -> str:
        """The base name of the dead-letter streams, one per consumer group
        (:func:`workers.runner.dead_letter_stream`)."""
        return f"{self.prefix}dead"

    @property
    def plans(self) -> str:
        """The stream of planning jobs."""
        return f"{self.prefix}plans"

    def positions_channel(self, org_id: OrgId) -> str:
        """Pub/sub channel of an organisation's newest driver positions (``driver|payload``)."""
        return f"{self.prefix}positions:{org_id}"

    def org_events_channel(self, org_id: OrgId) -> str:
        """Pub/sub channel of an organisation's domain events, for live dispatcher screens."""
        return f"{self.prefix}events:{org_id}"

    def org_windows_channel(self, org_id: OrgId) -> str:
        """Pub/sub channel of an organisation's moved arrival windows (``stop|eta_changed``),
        for live dispatcher screens, which keep the newest per stop."""
        return f"{self.prefix}windows:{org_id}"

    def driver_position_channel(self, driver_id: DriverId) -> str:
        """Pub/sub channel of one driver's newest positions (``driver|payload``), for the
        tracking page of the customer whose stop is next."""
        return f"{self.prefix}pos:{driver_id}"

    def order_channel(self, org_id: OrgId, order_id: OrderId) -> str:
        """Pub/sub channel of the events about one order (``entry id|event``), for its customer."""
        return f"{self.prefix}order:{org_id}:{order_id}"

    def route_channel(self, route_id: RouteId) -> str:
        """Pub/sub channel of a route's own events (started, changed, stops completed), which
        move its customers' places in the queue."""
        return f"{self.prefix}route:{route_id}"

    def driver_channel(self, driver_id: DriverId) -> str:
        """The pub/sub channel that reaches a driver's connected app (route changes)."""
        return f"{self.prefix}driver:{driver_id}"

    def route_generation(self, driver_id: DriverId) -> str:
        """Counter bumped by every route or stop event of a driver: when it moves, the ETA
        worker re-reads the driver's route (instead of polling PostgreSQL)."""
        return f"{self.prefix}routegen:{driver_id}"

    def lease(self, job: str) -> str:
        """A lease (``eta:{shard}``: the ETA worker's on a ping shard); its value names the
        holder."""
        return f"{self.prefix}lease:{job}"

    def members(self, job: str) -> str:
        """Sorted set of the processes sharing ``job``, scored by when each last announced
        itself (Redis's clock, milliseconds)."""
        return f"{self.prefix}members:{job}"

    def eta_state(self, driver_id: DriverId) -> str:
        """Where the ETA worker keeps a driver's tracker state between pings and restarts."""
        return f"{self.prefix}eta:{driver_id}"

    def arrival_windows(self, route_id: RouteId) -> str:
        """Hash of a route's latest arrival windows (stop id → encoded window)."""
        return f"{self.prefix}windows:{route_id}"


class ScriptRunner(Protocol):
    """What :class:`PingAppender` needs of a Redis client: run one registered script."""

    async def __call__(self, keys: Sequence[str], args: Sequence[Any]) -> list[bytes]: ...


@dataclass
class _Pending:
    batch: PingBatch
    future: asyncio.Future[str]


@dataclass
class PingAppender:
    """Appends :class:`PingBatch` entries, coalescing concurrent callers into few round trips."""

    names: StreamNames
    run_script: ScriptRunner
    on_stored: Callable[[Mapping[str, int]], None] | None = None
    """Told, after each round trip, how many pings per source are now on the streams."""
    max_per_call: int = 256
    _queue: list[_Pending] = field(default_factory=list)
    _flusher: asyncio.Task[None] | None = None

    async def append(self, batch: PingBatch) -> str:
        """Put ``batch`` on its driver's shard stream; return the entry id once Redis has it.

        Raises whatever the Redis client raised if the batch could not be stored; the
        caller must then report failure, since nothing of this batch is on the stream.
        """
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(batch, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._queue:
            taken, self._queue = self._queue, []
            by_shard: dict[int, list[_Pending]] = defaultdict(list)
            for item in taken:
                by_shard[shard_of(item.batch.driver_id, self.names.shards)].append(item)
            calls = []
            for shard, items in by_shard.items():
                for start in range(0, len(items), self.max_per_call):
                    calls.append(self._send(shard, items[start : start + self.max_per_call]))
            await asyncio.gather(*calls)

    async def _send(self, shard: int, items: list[_Pending]) -> None:
        keys = [self.names.pings(shard)]
        args: list[Any] = [len(items)]
        for item in items:
            batch = item.batch
            latest = max(batch.pings, key=lambda p: p.time)
            keys.append(self.names.live(shard, batch.org_id))
            keys.append(self.names.live_time(shard, batch.org_id))
            args.append(batch.driver_id)
            args.append(_epoch_us(latest.time))
            args.append(
                LIVE_POSITION_ENCODER.encode(
                    LivePosition(
                        driver_id=batch.driver_id,
                        time=latest.time,
                        lat=latest.lat,
                        lon=latest.lon,
                        speed_mps=latest.speed_mps,
                        heading_deg=latest.heading_deg,
                        accuracy_m=latest.accuracy_m,
                        battery_pct=latest.battery_pct,
                        received_at=batch.received_at,
                    )
                )
            )
            args.append(PING_BATCH_ENCODER.encode(batch))
            args.append(self.names.positions_channel(batch.org_id))
            args.append(self.names.driver_position_channel(batch.driver_id))
        try:
            ids = await self.run_script(keys, args)
        except BaseException as exc:  # every waiting caller must learn its batch failed
            for item in items:
                if not item.future.done():
                    item.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for item, entry_id in zip(items, ids, strict=True):
            if not item.future.done():
                item.future.set_result(entry_id.decode())
        if self.on_stored is not None:
            stored: dict[str, int] = defaultdict(int)
            for item in items:
                stored[item.batch.source] += len(item.batch.pings)
            self.on_stored(stored)


def _epoch_us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def decode_live(payload: bytes) -> LivePosition:
    """Decode one value of a live-position hash."""
    result: LivePosition = LIVE_POSITION_DECODER.decode(payload)
    return result


async def trim_consumed(redis: Any, stream: str, retention_s: float) -> int:
    """Trim entries older than ``retention_s`` that every consumer group has acknowledged.

    Never removes an entry some group has not yet read or still holds pending, so a stopped
    persist worker means a growing stream, never lost pings. Returns how many were removed.
    """
    try:
        groups = await redis.xinfo_groups(stream)
    except Exception:  # no such stream yet
        return 0
    if not groups:
        return 0
    # Entry ids carry Redis's clock, so the age cutoff is taken from Redis too, never from
    # this host's clock (workers and Redis run on different machines, with skew).
    seconds, microseconds = await redis.time()
    now_ms = int(seconds) * 1000 + int(microseconds) // 1000
    safe = _id_tuple(f"{now_ms - int(retention_s * 1000)}-0")
    for group in groups:
        name = group["name"]
        last = group["last-delivered-id"]
        safe = min(safe, _id_tuple(as_text(last)))
        if group["pending"]:
            summary = await redis.xpending(stream, name)
            lowest = summary["min"]
            # None: acknowledged since XINFO; last-delivered-id above already bounds them.
            if lowest is not None:
                safe = min(safe, _id_tuple(as_text(lowest)))
    removed: int = await redis.xtrim(stream, minid=f"{safe[0]}-{safe[1]}", approximate=False)
    return removed


EntryId = tuple[int, int]
"""A stream entry id, ``<ms>-<seq>``, as a pair that compares in stream order."""

_MAX_ID_PART = 2**64 - 1


def parse_entry_id(raw: str) -> EntryId:
    """``<ms>-<seq>`` (two unsigned 64-bit numbers) as an :data:`EntryId`.

    Raises ValueError saying what was expected and what came, so a client's id is checked
    before it reaches Redis (which would answer "Invalid stream ID").
    """
    ms, dash, seq = raw.partition("-")
    if not (dash and ms.isdigit() and seq.isdigit() and ms.isascii() and seq.isascii()):
        raise ValueError(f"expected a stream entry id <ms>-<seq>, got {raw[:40]!r}")
    parsed = int(ms), int(seq)
    if max(parsed) > _MAX_ID_PART:
        raise ValueError(f"expected numbers below 2**64 in <ms>-<seq>, got {raw[:40]!r}")
    return parsed


def as_text(raw: bytes | str) -> str:
    """A Redis reply's id or cursor as text, whether the client decodes replies or not."""
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _id_tuple(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
