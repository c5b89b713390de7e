"""Publishing what happened: domain events onto the ``events`` stream, route pushes to drivers.

Both are called after the change they describe is committed, so a consumer never sees an event
for state it cannot read. Events are at-least-once for consumers (the stream and consumer
groups); a route push is best-effort (pub/sub), which is why a driver app also receives its
current route whenever it (re)connects and can fetch it with ``GET /v1/driver/route``.
"""

from __future__ import annotations

from typing import Any

from realtime.streams import StreamNames
from schemas.codecs import WS_SERVER_MSGPACK
from schemas.driver_ws import RouteMessage
from schemas.eta import EtaChanged
from schemas.events import EVENT_ENCODER, DeliveryUpdate, Event, RouteDispatched
from schemas.route import RouteView

EVENTS_MAXLEN = 1_000_000
"""Approximate cap of the events stream until its consumers trim it by acknowledgement."""
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
    async with redis.pipeline(transaction=False) as pipe:
        for payload in payloads:
            pipe.xadd(names.events, {"e": payload}, maxlen=EVENTS_MAXLEN, approximate=True)
        for driver in changed:
            pipe.incr(names.route_generation(driver))
            pipe.expire(names.route_generation(driver), ROUTE_GENERATION_TTL_S)
        ids = (await pipe.execute())[: len(payloads)]
    # Live screens get ``entry id|event``: the id lets a reconnecting screen resume after it.
    async with redis.pipeline(transaction=False) as pipe:
        for event, entry_id, payload in zip(events, ids, payloads, strict=True):
            message = _id(entry_id) + b"|" + payload
            for channel in channels(names, event):
                pipe.publish(channel, message)
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
    never receives the other customers' arrival windows. Moved windows (``eta_changed``) reach
    the organisation's screens on their own channel instead, coalesced per stop (see
    :func:`emit`): they are the bulk of the events and only the newest of each stop matters.
    """
    found = [] if is_window_change(event) else [names.org_events_channel(event.org_id)]
    if isinstance(event, DeliveryUpdate):
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


async def push_route(redis: Any, names: StreamNames, route: RouteView) -> None:
    """Send a route (new or changed) to its driver's connected apps, on every API process."""
    message = RouteMessage(route=route)
    await redis.publish(names.driver_channel(route.driver_id), WS_SERVER_MSGPACK.encode(message))
