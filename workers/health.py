"""How a consumer group is doing: what it holds unacknowledged, how long the oldest of that has
waited, and how many entries it moved aside.

For a readiness check or a metric. A group is stuck when its oldest pending entry's idle time
keeps growing (its consumer is gone and nobody claims the entry), or when its dead letters grow
(entries it could not handle, see :mod:`workers.runner`). A consumer busy with a long batch keeps
its entries' idle time low, so a high idle time means nobody is working on them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from workers.runner import dead_letter_stream


@dataclass(frozen=True)
class GroupHealth:
    """One consumer group over all of its streams."""

    group: str
    pending: int
    """Entries delivered to the group's consumers and not acknowledged yet."""
    lag: int | None
    """Entries not delivered to the group yet; None when Redis cannot tell for some stream."""
    dead_letters: int
    """Entries in the group's dead-letter stream (which keeps about the latest 100,000)."""
    oldest_pending_stream: str | None = None
    oldest_pending_id: str | None = None
    oldest_pending_idle_ms: int | None = None
    """Milliseconds since the oldest pending entry was last delivered or kept claimed."""
    oldest_pending_deliveries: int | None = None
    """How often the oldest pending entry was delivered (read, reread after a restart, or
    claimed by another consumer)."""


async def group_health(
    redis: Any, group: str, streams: Sequence[str], *, dead_letter_base: str
) -> GroupHealth:
    """The health of ``group`` on ``streams``; its dead letters are in ``dead_letter_base``'s
    stream for the group (the :attr:`~workers.runner.RunnerConfig.dead_letter_stream` its
    workers run with). Streams that do not exist yet, or lack the group, count as empty.

    "Oldest" is by entry id: the entry added first among those pending.
    """
    pending = 0
    lag: int | None = 0
    oldest: tuple[tuple[int, int], str, dict[str, Any]] | None = None
    for stream in streams:
        try:
            groups = await redis.xinfo_groups(stream)
        except ResponseError:  # no such stream yet
            continue
        info = next((g for g in groups if _text(g["name"]) == group), None)
        if info is None:
            continue
        pending += int(info["pending"])
        lag = None if lag is None or info.get("lag") is None else lag + int(info["lag"])
        if not info["pending"]:
            continue
        head = await redis.xpending_range(stream, group, min="-", max="+", count=1)
        if head:
            key = _id_key(_text(head[0]["message_id"]))
            if oldest is None or key < oldest[0]:
                oldest = (key, stream, head[0])
    dead_letters = int(await redis.xlen(dead_letter_stream(dead_letter_base, group)))
    if oldest is None:
        return GroupHealth(group=group, pending=pending, lag=lag, dead_letters=dead_letters)
    _, stream, head = oldest
    return GroupHealth(
        group=group,
        pending=pending,
        lag=lag,
        dead_letters=dead_letters,
        oldest_pending_stream=stream,
        oldest_pending_id=_text(head["message_id"]),
        oldest_pending_idle_ms=int(head["time_since_delivered"]),
        oldest_pending_deliveries=int(head["times_delivered"]),
    )


async def groups_health(
    redis: Any, groups: Mapping[str, Sequence[str]], *, dead_letter_base: str
) -> list[GroupHealth]:
    """:func:`group_health` of each group (name → its streams), in the mapping's order."""
    return [
        await group_health(redis, group, streams, dead_letter_base=dead_letter_base)
        for group, streams in groups.items()
    ]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
