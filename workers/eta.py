"""ETA worker: ping streams → arrival windows and delivery events.

Its own consumer group reads every ping shard (beside ``persist``). For a driver on a
dispatched route, each ping goes through the pure model in :mod:`solver.eta`: place the driver
on the route, detect arrival and departure, and recompute an arrival window for every remaining
stop. Windows that moved past the publication threshold are stored in ``windows:{route}``; what
the model detected is appended to the ``events`` stream (and shown to live screens) as
:class:`~schemas.events.DeliveryUpdate` events.

A driver's route is re-read from PostgreSQL when its *route generation* moved (every route or
stop event of the driver bumps a counter in Redis, see :func:`realtime.events.emit`; one MGET
per batch reads them all), and at the latest every ``route_ttl_s`` as a safety net. That is also
how the model learns of the driver app's stop commands: a completed stop leaves the route, and
one marked arrived comes with its ``arrived_at`` (served from then on, even out of order).
Reading it on every ping, or polling every few seconds, would put PostgreSQL round trips on the
hot path (docs/BENCHMARKS.md, live fan-out). The tracker state is kept in Redis after every
batch, so another worker, or this one after a restart, continues where it was; a redelivered
batch finds its pings already seen by the state, and fires nothing twice. One consumer works on
a ping shard at a time, holding that shard's lease (:mod:`workers.lease`); ETA processes share
the shards, and :func:`app.process.server.run_worker` runs one consumer over the shards held.

With ``learning`` on, a driver's windows are predicted with the speeds learned from their
organisation's days (:mod:`workers.learner`; its newest model, read again every ``model_ttl_s``)
instead of the configured speed: the prior that the driver's own pace then corrects, as sure
of itself as the model's routes were close to it (:meth:`EtaConfig.with_learned_prior`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from realtime.events import emit
from realtime.streams import StreamNames
from schemas.codecs import ETA_STATE_ENCODER, PING_BATCH_DECODER, SAVED_TRACKER_DECODER
from schemas.eta import EtaConfig, EtaRoute, SavedTracker, TrackerState
from schemas.events import DeliveryUpdate, Event
from schemas.ids import DriverId, OrgId
from schemas.ping import PingBatch
from solver.eta import DEFAULT_CONFIG, on_route_changed, route_from_view, update
from solver.matrix import MatrixProvider
from store import routes as route_store
from store import tenants
from store.learning import latest_model
from workers.connection import OwnConnection
from workers.learner import tables_of, with_speeds
from workers.runner import Entry

GROUP = "eta"


@dataclass
class _Tracked:
    route: EtaRoute | None
    state: TrackerState | None
    checked: float
    generation: object = None
    provider: MatrixProvider | None = None
    """The driver's organisation's travel model (learned speeds, when it has them)."""
    config: EtaConfig | None = None
    """The model's configuration for the organisation (the pace prior its learned speeds
    measured, when they did)."""


@dataclass
class EtaConsumer(OwnConnection):
    """Tracks every driver on a dispatched route, one batch of pings at a time."""

    names: StreamNames
    database_url: str
    provider: MatrixProvider
    redis: Redis
    config: EtaConfig = DEFAULT_CONFIG
    route_ttl_s: float = 300.0
    group: str = GROUP
    shards: Sequence[int] | None = None
    """The ping shards this consumer reads (default: all of them)."""
    learning: bool = False
    """Predict with each organisation's learned speeds (re-read every ``model_ttl_s``)."""
    model_ttl_s: float = 600.0
    _tracked: dict[DriverId, _Tracked] = field(default_factory=dict)
    _models: dict[OrgId, tuple[float, MatrixProvider, EtaConfig]] = field(default_factory=dict)
    _conn: psycopg.AsyncConnection | None = field(default=None, repr=False)

    def streams(self) -> Sequence[str]:
        if self.shards is None:
            return self.names.all_pings()
        return [self.names.pings(shard) for shard in self.shards]

    def decode(self, fields: dict[bytes, bytes]) -> PingBatch:
        batch: PingBatch = PING_BATCH_DECODER.decode(fields[b"b"])
        return batch

    async def handle(self, entries: Sequence[Entry[PingBatch]]) -> None:
        drivers = list(dict.fromkeys(entry.value.driver_id for entry in entries))
        keys = [self.names.route_generation(d) for d in drivers]
        generations = dict(zip(drivers, await self.redis.mget(keys), strict=True))
        events: list[Event] = []
        try:
            # One round trip saves every tracked driver's state and windows for the whole read.
            async with self.redis.pipeline(transaction=False) as pipe:
                for entry in entries:
                    value = entry.value
                    events += await self._track(value, generations[value.driver_id], pipe)
                # The events go out before the state that says they were detected: a failure
                # between the two fires them again on the retry (at least once), where the
                # other order would lose them for good.
                await emit(self.redis, self.names, *events)
                await pipe.execute()
        except BaseException:
            # The trackers moved on in memory, but their state was not saved: forget them, so
            # that a retry (of the batch, or of its entries one at a time) starts from the
            # state saved in Redis and fires what this attempt detected.
            for driver in drivers:
                self._tracked.pop(driver, None)
            raise

    async def _track(self, batch: PingBatch, generation: object, pipe: Pipeline) -> list[Event]:
        tracked = await self._tracked_of(batch.org_id, batch.driver_id, generation)
        if tracked.route is None:
            return []
        route = tracked.route
        state = tracked.state
        windows = []
        details = []
        for ping in sorted(batch.pings, key=lambda p: p.time):
            state, published, detected = update(
                state,
                route,
                ping,
                tracked.provider or self.provider,
                tracked.config or self.config,
            )
            windows += published
            details += detected
        tracked.state = state
        if state is not None:
            pipe.set(
                self.names.eta_state(batch.driver_id),
                ETA_STATE_ENCODER.encode(SavedTracker(route_id=route.route_id, state=state)),
                ex=86_400,
            )
        if windows:
            key = self.names.arrival_windows(route.route_id)
            pipe.hset(key, mapping={str(w.stop_id): ETA_STATE_ENCODER.encode(w) for w in windows})
            pipe.expire(key, 86_400)
        now = datetime.now(UTC)
        return [DeliveryUpdate(org_id=batch.org_id, at=now, detail=d) for d in details]

    async def _tracked_of(self, org_id: OrgId, driver_id: DriverId, generation: object) -> _Tracked:
        tracked = self._tracked.get(driver_id)
        if (
            tracked is not None
            and tracked.generation == generation
            and time.monotonic() - tracked.checked < self.route_ttl_s
        ):
            return tracked
        conn = await self._connection()
        route_id = await route_store.current_route_id(conn, org_id, driver_id)
        view = None if route_id is None else await route_store.route_view(conn, org_id, route_id)
        route = None if view is None else route_from_view(view)
        state = tracked.state if tracked is not None else await self._saved(driver_id, route)
        if route is not None and state is not None:
            same_route = tracked is not None and tracked.route is not None
            same_route = same_route and tracked.route == route  # type: ignore[union-attr]
            if not same_route:
                state = on_route_changed(state, route)
        provider, config = (
            await self._model_of(org_id) if route is not None else (self.provider, self.config)
        )
        fresh = _Tracked(
            route=route,
            state=state if route is not None else None,
            checked=time.monotonic(),
            generation=generation,
            provider=provider,
            config=config,
        )
        self._tracked[driver_id] = fresh
        return fresh

    async def _model_of(self, org_id: OrgId) -> tuple[MatrixProvider, EtaConfig]:
        """The organisation's travel model and configuration: the configured provider driven
        at its learned speeds, with the pace prior they measured (its newest model, read at
        most every ``model_ttl_s``), else the configured ones."""
        if not self.learning:
            return self.provider, self.config
        kept = self._models.get(org_id)
        if kept is not None and time.monotonic() - kept[0] < self.model_ttl_s:
            return kept[1], kept[2]
        conn = await self._connection()
        model = await latest_model(conn, org_id)
        provider, config = self.provider, self.config
        if model is not None:
            org = await tenants.organisation(conn, org_id)
            speeds, _service = tables_of(model)
            learned = with_speeds(self.provider, speeds, org.time_zone if org else "UTC")
            if learned is not provider and speeds is not None:
                provider = learned
                config = self.config.with_learned_prior(speeds.route_pace_sd)
        self._models[org_id] = (time.monotonic(), provider, config)
        return provider, config

    async def _saved(self, driver_id: DriverId, route: EtaRoute | None) -> TrackerState | None:
        if route is None:
            return None
        raw = await self.redis.get(self.names.eta_state(driver_id))
        if raw is None:
            return None
        saved = SAVED_TRACKER_DECODER.decode(raw if isinstance(raw, bytes) else raw.encode())
        return saved.state if saved.route_id == route.route_id else None
