"""Publishing what happened: domain events onto the ``events`` stream, route pushes to drivers.

Both are called after the change they describe is committed, so a consumer never sees an event
for state it cannot read. Events are at-least-once for consumers (the stream and consumer
groups); a route push is best-effort (pub/sub), which is why a driver app also receives its
current route whenever it (re)connects and can fetch it with ``GET /v1/driver/route``.
"""

from __future__ import annotations

from typing import Any

from realtime.streams import StreamNames
from schemas.driver_ws import RouteMessage
from schemas.events import EVENT_ENCODER, Event
from schemas.route import RouteView

EVENTS_MAXLEN = 1_000_000
"""Approximate cap of the events stream until its consumers trim it by acknowledgement."""

_ROUTE_ENCODER = EVENT_ENCODER


async def emit(redis: Any, names: StreamNames, *events: Event) -> None:
    """Append ``events`` to the events stream in one round trip."""
    if not events:
        return
    async with redis.pipeline(transaction=False) as pipe:
        for event in events:
            pipe.xadd(
                names.events,
                {"e": EVENT_ENCODER.encode(event)},
                maxlen=EVENTS_MAXLEN,
                approximate=True,
            )
        await pipe.execute()


async def push_route(redis: Any, names: StreamNames, route: RouteView) -> None:
    """Send a route (new or changed) to its driver's connected apps, on every API process."""
    message = RouteMessage(route=route)
    await redis.publish(names.driver_channel(route.driver_id), _ROUTE_ENCODER.encode(message))
