"""Failed credentials, rate-limited per client address: a guess at tokens from one address is
refused (429) once it failed too often, in every process. Failed sign-ins are limited per
account as well, so that guessing one user's password from many addresses is refused too.

The counts live in Redis through the ``limits`` library (a moving window per address, shared by
every process). A process that sees an address go over the limit also remembers it locally
until the window has passed, so that while it is blocked its requests are refused without a
database lookup or a Redis round trip; a request with a good token costs nothing here.
"""

from __future__ import annotations

import math
import time
from typing import Final

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import Redis

from app.errors import TooManyFailures

DEFAULT_LIMIT: Final = "30/minute"
"""Failed credentials an address may send in a window."""
DEFAULT_ACCOUNT_LIMIT: Final = "10 per 15 minutes"
"""Failed sign-ins an account may have in a window."""
MAX_BLOCKED: Final = 10_000
"""Blocked addresses a process keeps before it drops the expired ones."""


def storage_uri(redis_url: str) -> str:
    """The ``limits`` URI of ``redis_url`` (``redis://``, ``rediss://`` or ``unix://``)."""
    if redis_url.startswith("unix://"):
        return "async+redis+unix://" + redis_url.removeprefix("unix://")
    return "async+" + redis_url


class FailedCredentials:
    """Counts failed credentials per address and refuses an address over the limit."""

    def __init__(
        self,
        redis: Redis,
        redis_url: str,
        *,
        prefix: str = "",
        limit: str = DEFAULT_LIMIT,
        account_limit: str = DEFAULT_ACCOUNT_LIMIT,
    ) -> None:
        # Over the process's own connection pool (``redis_url`` only names the server).
        self._storage = RedisStorage(
            storage_uri(redis_url),
            implementation="redispy",
            key_prefix=f"{prefix}limits",
            connection_pool=redis.connection_pool,  # type: ignore[arg-type]  # passed on to redis-py
        )
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._item: RateLimitItem = parse(limit)
        self._account_item: RateLimitItem = parse(account_limit)
        self._blocked: dict[str, float] = {}
        """Addresses over the limit, and until when (monotonic seconds), in this process."""

    def check(self, address: str | None) -> None:
        """Refuse ``address`` while it is blocked here."""
        if address is None or not self._blocked:
            return
        until = self._blocked.get(address)
        if until is None:
            return
        left = until - time.monotonic()
        if left <= 0:
            del self._blocked[address]
            return
        raise TooManyFailures(
            "too many failed credentials from this address", retry_after_s=math.ceil(left)
        )

    async def failed(self, address: str | None) -> None:
        """Count a failed credential of ``address``; over the limit, block it and refuse."""
        if address is None:
            return
        if await self._limiter.hit(self._item, "credentials", address):
            return
        stats = await self._limiter.get_window_stats(self._item, "credentials", address)
        now = time.monotonic()
        if len(self._blocked) >= MAX_BLOCKED:  # many addresses at once: forget the expired
            self._blocked = {a: until for a, until in self._blocked.items() if until > now}
        self._blocked[address] = now + max(1.0, stats.reset_time - time.time())
        self.check(address)

    async def check_account(self, account: str) -> None:
        """Refuse a sign-in to ``account`` (an email, lower case) while it is over its limit."""
        if await self._limiter.test(self._account_item, "signin", account):
            return
        stats = await self._limiter.get_window_stats(self._account_item, "signin", account)
        raise TooManyFailures(
            "too many failed sign-ins to this account; try again later",
            retry_after_s=max(1, math.ceil(stats.reset_time - time.time())),
        )

    async def failed_account(self, account: str) -> None:
        """Count a failed sign-in to ``account``."""
        await self._limiter.hit(self._account_item, "signin", account)
