"""What the API processes do by themselves on the day's events: re-sequence a late driver's
route where the organisation turned that on (``auto_resequence``).

Each API process runs one consumer of the ``autoresequence`` group on the events stream (the
:mod:`workers.runner` loop), so that every ``running_late`` is handled by one process, with the
solver pool that process already has. An event older than :data:`MAX_EVENT_AGE_S` is skipped: a
group created on a stream with history (or a backlog after an outage) must not rewrite routes
for what was late hours ago.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from app.api.reoptimize import resequence_late
from app.resources import Resources
from realtime.events import event_of
from schemas.eta import RunningLate
from schemas.events import DeliveryUpdate, Event
from workers.runner import Entry, Runner, RunnerConfig

GROUP: Final = "autoresequence"
MAX_EVENT_AGE_S: Final = 300.0


@dataclass
class AutoResequence:
    """The consumer: each fresh ``running_late`` asks :func:`resequence_late`."""

    resources: Resources
    group: str = GROUP

    def streams(self) -> Sequence[str]:
        return [self.resources.names.events]

    def decode(self, fields: dict[bytes, bytes]) -> Event:
        return event_of(fields)

    async def handle(self, entries: Sequence[Entry[Event]]) -> None:
        now = datetime.now(UTC)
        for entry in entries:
            event = entry.value
            if not isinstance(event, DeliveryUpdate) or not isinstance(event.detail, RunningLate):
                continue
            if (now - event.at).total_seconds() > MAX_EVENT_AGE_S:
                continue
            await resequence_late(self.resources, event.org_id, event.detail.route_id)


async def run(resources: Resources) -> None:
    """Consume until cancelled (a task of the process's resources)."""
    settings = resources.settings
    config = RunnerConfig(
        consumer_name=f"api-{socket.gethostname()}-{os.getpid()}",
        batch_entries=100,
        block_ms=settings.worker_block_ms,
        claim_idle_ms=settings.claim_idle_ms,
        dead_letter_stream=resources.names.dead_letters,
    )
    stop = asyncio.Event()
    try:
        await Runner(resources.redis, AutoResequence(resources), config).run(stop)
    finally:
        stop.set()
