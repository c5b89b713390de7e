"""Helpers that speak the domain: making pings, waiting for them to be stored, and waiting
for something else to become true."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import psycopg
from redis.asyncio import Redis
from redis.typing import StreamRangeResponse

from schemas.ids import DriverId
from store.positions import count_positions

T = TypeVar("T")

StreamEntries = list[tuple[bytes, dict[bytes, bytes]]]
"""A stream's entries, ``(entry id, fields)``, as the suite's clients read them: in bytes."""


def stream_entries(reply: StreamRangeResponse | None) -> StreamEntries:
    """An ``XRANGE`` or ``XREVRANGE`` reply typed as it is here: redis-py types it for any
    client (``str`` when decoding responses, ``None`` for no reply), the suite's decode none."""
    return cast(StreamEntries, reply)


class Trace:
    """A seeded GPS trace near Berlin: ``Trace(seed=7)`` always yields the same fixes."""

    def __init__(self, seed: int, start: datetime | None = None) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.start = start or datetime.now(UTC) - timedelta(minutes=30)

    def __repr__(self) -> str:
        return f"Trace(seed={self.seed})"

    def pings(self, n: int, *, offset: int = 0) -> list[dict[str, Any]]:
        """``n`` fixes one second apart, starting ``offset`` seconds into the trace."""
        return [
            {
                "time": (self.start + timedelta(seconds=offset + i)).isoformat(),
                "lat": 52.52 + self.rng.uniform(-0.05, 0.05),
                "lon": 13.40 + self.rng.uniform(-0.05, 0.05),
                "speed_mps": round(self.rng.uniform(0, 15), 2),
                "heading_deg": round(self.rng.uniform(0, 359), 1),
                "accuracy_m": 5.0,
                "battery": 0.8,
                "seq": offset + i,
            }
            for i in range(n)
        ]


async def wait_for_positions(
    conn: psycopg.AsyncConnection,
    driver_id: DriverId | None,
    expected: int,
    *,
    deadline_s: float = 30.0,
) -> int:
    """Poll ``positions`` until it holds ``expected`` rows (for the driver) or the deadline passes.

    Returns the last count seen; the caller asserts on it, so a shortfall fails with numbers.
    """
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    count = await count_positions(conn, driver_id)
    while count < expected and loop.time() < end:
        await asyncio.sleep(0.05)
        count = await count_positions(conn, driver_id)
    return count


async def eventually(
    check: Callable[[], Awaitable[T]], what: str, *, deadline_s: float = 10.0
) -> T:
    """Call ``check`` every 50 ms until it answers something true, and return that answer; past
    the deadline, fail saying ``what`` was awaited and the last answer."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    answer = await check()
    while not answer and loop.time() < end:
        await asyncio.sleep(0.05)
        answer = await check()
    if not answer:
        raise AssertionError(f"never {what} (last: {answer!r})")
    return answer


class Relay:
    """A TCP relay in front of a server that can cut every connection at once, as a network
    blip or a restarting proxy would: a real peer for clients that must survive one."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        """Listen on a free local port; returns it."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def cut(self) -> None:
        """Close every relayed connection; new ones are accepted again."""
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@contextlib.asynccontextmanager
async def relayed_redis(redis_url: str) -> AsyncIterator[tuple[Redis, Relay]]:
    """A Redis client whose connections pass through a :class:`Relay`, to be cut at will."""
    url = urlsplit(redis_url)
    relay = Relay(url.hostname or "127.0.0.1", url.port or 6379)
    port = await relay.start()
    client = Redis.from_url(url._replace(netloc=f"127.0.0.1:{port}").geturl())
    try:
        yield client, relay
    finally:
        await client.aclose()
        await relay.close()
