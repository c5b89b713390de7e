"""Fan-out from Redis to this process's WebSockets.

Each API process holds **one** Redis pub/sub connection. A socket that wants a channel (a driver
wants ``driver:{id}``; later, dispatchers an organisation's channel) calls :meth:`Hub.subscribe`;
the hub subscribes to Redis when the first local socket wants the channel and unsubscribes when
the last one leaves, and its single reader task copies every message into the queue of each
local subscription. So a message published by any process reaches sockets on every process.

Slow-consumer policy — why there is no backpressure toward Redis: one slow phone must never
slow the reader, because the reader serves every socket of the process. Each subscription has a
bounded queue (``max_queue`` messages). When a message finds the queue full, the subscription is
marked *overflowed* and receives nothing more; its socket handler sees that, closes the socket
with :data:`~app.errors.CLOSE_TOO_SLOW` and a reason, and the client reconnects and resumes from
the current state (a driver fetches its route again). Messages are never silently dropped from
a subscription that stays open. Positions use :class:`LatestSubscription` instead: the newest
per driver wins, so a slow dispatcher screen skips intermediate positions but is never cut off
for them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import structlog

log = structlog.get_logger(__name__)

DEFAULT_MAX_QUEUE = 256


@dataclass(eq=False)
class Subscription:
    """One local listener on one channel: a bounded queue, and whether it fell behind."""

    channel: str
    queue: asyncio.Queue[bytes]
    overflowed: bool = False

    async def get(self) -> bytes:
        """The next message; raises :class:`Overflowed` once the queue overflowed."""
        if self.overflowed:
            raise Overflowed(self.channel)
        message = await self.queue.get()
        if self.overflowed:
            raise Overflowed(self.channel)
        return message


@dataclass(eq=False)
class LatestSubscription:
    """The newest message per key on one channel, for positions: latest per driver wins.

    Messages are ``key|payload``. A reader that is slower than the channel skips intermediate
    values but never misses a key's newest one, and its memory is bounded by the number of keys,
    so it needs no cut-off.
    """

    channel: str
    latest: dict[bytes, bytes] = field(default_factory=dict)
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    async def take(self) -> dict[bytes, bytes]:
        """Wait for at least one new value; return every key's newest since the last take."""
        await self.ready.wait()
        self.ready.clear()
        taken, self.latest = self.latest, {}
        return taken

    def offer(self, data: bytes) -> None:
        key, _, payload = data.partition(b"|")
        self.latest[key] = payload
        self.ready.set()


class Overflowed(Exception):
    """A subscription fell too far behind; its socket must close and its client resume."""

    def __init__(self, channel: str) -> None:
        super().__init__(f"fell more than its queue behind on {channel}")
        self.channel = channel


_WAKE = b""


@dataclass
class Hub:
    """The process's single pub/sub connection and its local subscriptions."""

    redis: Any
    max_queue: int = DEFAULT_MAX_QUEUE
    _pubsub: Any = None
    _subscribers: dict[str, set[Subscription | LatestSubscription]] = field(
        default_factory=lambda: defaultdict(set)
    )
    _reader: asyncio.Task[None] | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _ready: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        """Open the pub/sub connection and start the reader."""
        self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        self._reader = asyncio.create_task(self._read(), name="hub-reader")

    async def close(self) -> None:
        """Stop the reader and close the pub/sub connection."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._pubsub is not None:
            await self._pubsub.aclose()

    @contextlib.asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[Subscription]:
        """Listen to ``channel`` for the duration of the ``async with`` block."""
        subscription = Subscription(channel, asyncio.Queue(maxsize=self.max_queue + 1))
        async with self._listening(channel, subscription):
            yield subscription

    @contextlib.asynccontextmanager
    async def subscribe_latest(self, channel: str) -> AsyncIterator[LatestSubscription]:
        """Follow the newest value per key of ``channel`` for the ``async with`` block."""
        subscription = LatestSubscription(channel)
        async with self._listening(channel, subscription):
            yield subscription

    @contextlib.asynccontextmanager
    async def _listening(
        self, channel: str, subscription: Subscription | LatestSubscription
    ) -> AsyncIterator[None]:
        async with self._lock:
            first = not self._subscribers[channel]
            self._subscribers[channel].add(subscription)
            if first:
                await self._pubsub.subscribe(channel)
                self._ready.set()
        try:
            yield
        finally:
            async with self._lock:
                listeners = self._subscribers.get(channel)
                if listeners is not None:
                    listeners.discard(subscription)
                    if not listeners:
                        del self._subscribers[channel]
                        await self._pubsub.unsubscribe(channel)

    def listeners(self, channel: str) -> int:
        """How many local subscriptions ``channel`` has (for tests and metrics)."""
        return len(self._subscribers.get(channel, ()))

    async def _read(self) -> None:
        while True:
            await self._ready.wait()
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except Exception as exc:  # a dropped connection: redis-py resubscribes on reconnect
                log.warning("hub read failed; retrying", error=repr(exc))
                await asyncio.sleep(0.5)
                continue
            if message is None or message.get("type") != "message":
                continue
            channel = message["channel"]
            channel = channel.decode() if isinstance(channel, bytes) else channel
            self.deliver(channel, message["data"])

    def deliver(self, channel: str, data: bytes) -> None:
        """Hand ``data`` to every local subscription of ``channel``, applying the policy."""
        for subscription in list(self._subscribers.get(channel, ())):
            if isinstance(subscription, LatestSubscription):
                subscription.offer(data)
                continue
            if subscription.overflowed:
                continue
            if subscription.queue.qsize() >= self.max_queue:
                subscription.overflowed = True
                subscription.queue.put_nowait(_WAKE)
                log.warning("subscriber fell behind; closing it", channel=channel)
                continue
            subscription.queue.put_nowait(data)
