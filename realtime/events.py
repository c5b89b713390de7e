"""Publishing what happened: domain events onto the ``events`` stream, route pushes to drivers;
and replaying an organisation's events to a screen that reconnects.

Both writes are called after the change they describe is committed, so a consumer never sees an
event for state it cannot read. Events are at-least-once for consumers (the stream and consumer
groups); a route push is best-effort (pub/sub), which is why a driver app also receives its
current route whenever it (re)connects and can fetch it with ``GET /v1/driver/route``.

Every event but a moved arrival window is also appended to its organisation's own stream
(:meth:`~realtime.streams.StreamNames.org_events`), whose entry ids are the ones dispatcher
screens see. :func:`replay` reads only that stream, so a screen's replay costs its own events,
never the other organisations', and is exact: it either sends every event after the screen's
last one or says it cannot (too old, or too many) and sends none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from realtime.streams import EntryId, StreamNames, as_text, parse_entry_id
from schemas.codecs import EVENT_DECODER, EVENT_ENCODER, WS_SERVER_MSGPACK
from schemas.driver_ws import RouteMessage
from schemas.eta import EtaChanged, OutOfSequence
from schemas.events import DeliveryUpdate, Event, RouteDispatched
from schemas.ids import OrgId
from schemas.live import ReplayOutcome
from schemas.route import RouteView

FIELD = "e"
"""The field of an events stream entry that holds the encoded event."""
_FIELD_BYTES = FIELD.encode()
EVENTS_MAXLEN = 1_000_000
"""Approximate cap of the events stream until its consumers trim it by acknowledgement."""
ORG_EVENTS_MAXLEN = 20_000
"""Approximate cap of each organisation's own events stream: it serves only replays, which
stop at :data:`REPLAY_MAX_EVENTS`, so it keeps days of a large organisation's events."""
REPLAY_MAX_EVENTS = 1_000
"""The most events one reconnecting screen is sent; past that, its snapshot stands in for them
(a few times a screen's live queue, :data:`realtime.hub.DEFAULT_MAX_QUEUE`)."""
ROUTE_GENERATION_TTL_S = 7 * 86_400
"""How long a driver's route generation outlives its last change (the ETA worker's cache of a
route lives minutes; a counter that expired just starts again and reads as a change)."""


async def emit(redis: Any, names: StreamNames, *events: Event) -> None:
    """Append ``events`` to the events stream, and show them to live screens, in one round trip."""
    if not events:
        return
    payloads = [EVENT_ENCODER.encode(event) for event in events]
    # A route or stop event moves the driver's route generation: the ETA worker re-reads the
    # route on the driver's next ping, instead of polling PostgreSQL for changes.
    changed = {
        driver
        for event in events
        if not isinstance(event, DeliveryUpdate)
        and (driver := getattr(event, "driver_id", None)) is not None
    }
    # Each event also goes to its organisation's own stream (but for moved windows, which are
    # never replayed): a reconnecting screen then reads only its own events, however busy the
    # other organisations are. Written in the same round trip; the shared stream stays the
    # one that notify, webhooks and analytics consume.
    kept = [not is_window_change(event) for event in events]
    async with redis.pipeline(transaction=False) as pipe:
        for event, payload, own in zip(events, payloads, kept, strict=True):
            pipe.xadd(names.events, {FIELD: payload}, maxlen=EVENTS_MAXLEN, approximate=True)
            if own:
                pipe.xadd(
                    names.org_events(event.org_id),
                    {FIELD: payload},
                    maxlen=ORG_EVENTS_MAXLEN,
                    approximate=True,
                )
        for driver in changed:
            pipe.incr(names.route_generation(driver))
            pipe.expire(names.route_generation(driver), ROUTE_GENERATION_TTL_S)
        replies = iter(await pipe.execute())
    ids: list[tuple[bytes, bytes]] = []  # per event: shared stream's id, own stream's (or shared)
    for own in kept:
        shared_id = next(replies)
        ids.append((shared_id, next(replies) if own else shared_id))
    # Live screens get ``entry id|event``. On an organisation's channel the id is the entry on
    # its own stream, the one a reconnecting screen resumes after (``?since=``); tracking pages,
    # which never resume by id, get the shared stream's.
    async with redis.pipeline(transaction=False) as pipe:
        for event, (shared_id, own_id), payload in zip(events, ids, payloads, strict=True):
            org_channel = names.org_events_channel(event.org_id)
            for channel in channels(names, event):
                entry_id = own_id if channel == org_channel else shared_id
                pipe.publish(channel, _id(entry_id) + b"|" + payload)
            if isinstance(event, DeliveryUpdate) and isinstance(event.detail, EtaChanged):
                # Dispatcher screens keep only the newest window per stop: ``stop|event``.
                stop = str(event.detail.stop_id).encode()
                pipe.publish(names.org_windows_channel(event.org_id), stop + b"|" + payload)
        await pipe.execute()


def is_window_change(event: Event) -> bool:
    """True for the ETA worker's ``eta_changed``: shown to screens coalesced per stop."""
    return isinstance(event, DeliveryUpdate) and isinstance(event.detail, EtaChanged)


def channels(names: StreamNames, event: Event) -> list[str]:
    """Where ``event`` is shown: its organisation's screens, and the tracking pages it concerns.

    A customer's page follows its order's channel (what happened to the order, its arrival
    window) and its route's (stops before it completed, the route started or changed), so it
    never receives the other customers' arrival windows, nor a dwell at its stop out of the
    route's order. Moved windows (``eta_changed``) reach
    the organisation's screens on their own channel instead, coalesced per stop (see
    :func:`emit`): they are the bulk of the events and only the newest of each stop matters.
    """
    found = [] if is_window_change(event) else [names.org_events_channel(event.org_id)]
    if isinstance(event, DeliveryUpdate):
        # A dwell at a stop that is not next is the dispatcher's to judge: its customer hears of
        # the stop only when the driver really serves it.
        if not isinstance(event.detail, OutOfSequence):
            found.append(names.order_channel(event.org_id, event.detail.order_id))
        return found
    if isinstance(event, RouteDispatched):
        found += [names.order_channel(event.org_id, o) for o in event.order_ids]
    order_id = getattr(event, "order_id", None)
    if order_id is not None:
        found.append(names.order_channel(event.org_id, order_id))
    route_id = getattr(event, "route_id", None)
    if route_id is not None:
        found.append(names.route_channel(route_id))
    return found


def _id(entry_id: bytes | str) -> bytes:
    return entry_id if isinstance(entry_id, bytes) else entry_id.encode()


@dataclass(frozen=True)
class Replay:
    """What a reconnecting screen is owed: the events after its last seen id, or why not.

    ``outcome`` is ``"follows"`` when ``events`` are all of the organisation's events after the
    id, oldest first (possibly none); ``"too_old"`` when some of them may no longer be kept (the
    id is older than the stream's first entry, or the stream is gone); ``"too_many"`` when
    there are more than the bound. In the last two cases ``events`` is empty and the caller's
    fresh snapshot must stand in for them.
    """

    outcome: ReplayOutcome
    events: list[tuple[str, Event]]


async def replay(
    redis: Any,
    names: StreamNames,
    org_id: OrgId,
    since: EntryId,
    limit: int = REPLAY_MAX_EVENTS,
) -> Replay:
    """The events of ``org_id`` after entry ``since`` of its own stream, at most ``limit``.

    One atomic round trip reads the stream's first entry and up to ``limit + 1`` entries after
    ``since``, so memory stays bounded and no trim can fall between the two reads. The caller
    must have subscribed to the organisation's channel before calling, so that an event
    appended after this read still reaches it there.
    """
    key = names.org_events(org_id)
    after = f"({since[0]}-{since[1]}"
    async with redis.pipeline(transaction=True) as pipe:
        pipe.xrange(key, count=1)
        pipe.xrange(key, min=after, count=limit + 1)
        first, entries = await pipe.execute()
    # Trimming removes the oldest entries: if the screen's last one is at or after the first
    # kept, everything after it is still here; before it, some may be gone unseen.
    if not first or since < parse_entry_id(as_text(first[0][0])):
        return Replay(outcome="too_old", events=[])
    if len(entries) > limit:
        return Replay(outcome="too_many", events=[])
    return Replay(
        outcome="follows",
        events=[(as_text(entry_id), event_of(fields)) for entry_id, fields in entries],
    )


def event_of(fields: dict[bytes, bytes]) -> Event:
    """The event of one entry of an events stream (as :func:`emit` wrote it)."""
    event: Event = EVENT_DECODER.decode(fields[_FIELD_BYTES])
    return event


async def push_route(redis: Any, names: StreamNames, route: RouteView) -> None:
    """Send a route (new or changed) to its driver's connected apps, on every API process."""
    message = RouteMessage(route=route)
    await redis.publish(names.driver_channel(route.driver_id), WS_SERVER_MSGPACK.encode(message))
