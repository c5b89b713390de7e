"""Are the workers keeping up? The consumer groups' health, for ``/readyz`` and metrics.

A group is *stuck* when its oldest unacknowledged entry has waited longer than
:func:`stuck_after_ms` (nobody works on it, nobody claims it), or has been delivered more often
than the runner tries an entry before moving it aside. The API itself still serves then, so
``/readyz`` stays 200 and says ``degraded``, naming the group: taking every API process out of a
load balancer because a worker is down would turn a late plan into an outage. The metrics carry
the same facts for alerting (:data:`app.metrics.GROUP_STUCK`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from app.resources import Resources
from app.settings import WorkerName
from realtime.streams import StreamNames
from workers.health import GroupHealth, groups_health
from workers.runner import RunnerConfig

STUCK_CLAIM_PERIODS = 3
"""How many claim periods an entry may wait before its group counts as stuck."""


@dataclass(frozen=True)
class GroupState:
    """One group's health and whether it counts as stuck."""

    health: GroupHealth
    stuck: bool

    def describe(self) -> str:
        """One line for ``/readyz``: ``ok`` or what is wrong."""
        h = self.health
        if not self.stuck:
            return "ok"
        idle_s = (h.oldest_pending_idle_ms or 0) / 1000
        return (
            f"stuck: entry {h.oldest_pending_id} of {h.oldest_pending_stream} waits {idle_s:.0f} s"
            f" after {h.oldest_pending_deliveries} deliveries"
        )


def stuck_after_ms(claim_idle_ms: int) -> int:
    """How long an entry may wait unacknowledged before its group counts as stuck."""
    return STUCK_CLAIM_PERIODS * claim_idle_ms


WATCHED: Final[dict[WorkerName, Callable[[StreamNames], list[str]]]] = {
    "persist": lambda names: names.all_pings(),
    "eta": lambda names: names.all_pings(),
    "planner": lambda names: [names.plans],
    "notify": lambda names: [names.events],
    "webhooks": lambda names: [names.events],
    "rollups": lambda names: [names.events],
}
"""Each stream-consuming worker's group and the streams it reads (the sender polls the outbox
and has no consumer group to watch)."""


async def group_states(resources: Resources) -> dict[WorkerName, GroupState]:
    """Every watched worker's consumer group, with its health."""
    limit_ms = stuck_after_ms(resources.settings.claim_idle_ms)
    max_deliveries = RunnerConfig(consumer_name="-").max_attempts
    reports = await groups_health(
        resources.redis,
        {worker: streams(resources.names) for worker, streams in WATCHED.items()},
        dead_letter_base=resources.names.dead_letters,
    )
    return {
        worker: GroupState(
            health=health,
            stuck=(health.oldest_pending_idle_ms or 0) > limit_ms
            or (health.oldest_pending_deliveries or 0) > max_deliveries,
        )
        for worker, health in zip(WATCHED, reports, strict=True)
    }
