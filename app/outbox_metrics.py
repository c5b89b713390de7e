"""Gauges of the notification outbox, sampled from PostgreSQL by each API process.

The outbox is the truth about notifications, so these are read from it rather than counted
as things happen: ``lastmile_outbox_messages{channel, state}`` (every channel × state pair,
0 when none, so a state that empties drops to 0 instead of keeping its last value) and
``lastmile_outbox_oldest_due_seconds{channel}`` (how long the longest-waiting due message has
waited: a sender that is down, or a channel that is not configured, shows as a growing age).

What happens per attempt is counted where it happens, by the sender
(:mod:`workers.sender`): ``lastmile_sender_attempts_total{channel, outcome}`` (its ``retry``
and ``dead`` outcomes are the retries and dead letters) and
``lastmile_sender_latency_seconds{channel}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, get_args

from prometheus_client import Gauge

from schemas.notifications import CHANNELS, OutboxState
from store.notifications import count_by_state, oldest_due_s

if TYPE_CHECKING:  # app.resources starts the sampler: imported for the type only
    from app.resources import Resources

SAMPLE_S: Final = 15.0
"""How often each API process reads the outbox (one grouped count, one grouped minimum)."""

OUTBOX_MESSAGES = Gauge(
    "lastmile_outbox_messages",
    "Notification outbox rows by channel and state",
    ["channel", "state"],
    multiprocess_mode="mostrecent",
)
OUTBOX_OLDEST_DUE = Gauge(
    "lastmile_outbox_oldest_due_seconds",
    "How long the longest-waiting due outbox row of a channel has waited (0 when none is due)",
    ["channel"],
    multiprocess_mode="mostrecent",
)
STATES: Final[tuple[str, ...]] = get_args(OutboxState)


async def sample_outbox(resources: Resources) -> None:
    """Read the outbox's counts and the age of its oldest due row into the gauges."""
    async with resources.pool.connection() as conn:
        counts = await count_by_state(conn)
        waited = await oldest_due_s(conn)
    for channel in CHANNELS:
        for state in STATES:
            OUTBOX_MESSAGES.labels(channel, state).set(counts.get((channel, state), 0))
        OUTBOX_OLDEST_DUE.labels(channel).set(max(0.0, waited.get(channel, 0.0)))
