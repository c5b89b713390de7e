"""The API process's Prometheus metrics, and the ``/metrics`` answer.

When ``serve`` runs workers as child processes it sets ``PROMETHEUS_MULTIPROC_DIR`` before
anything imports prometheus_client, and ``/metrics`` then adds up every process's values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.requests import Request
from starlette.responses import Response

PINGS_ACCEPTED = Counter(
    "lastmile_pings_accepted_total", "Pings accepted onto a stream", ["source"]
)
PINGS_REJECTED = Counter(
    "lastmile_pings_rejected_total", "Pings or requests rejected, by reason", ["source", "reason"]
)
INGEST_SECONDS = Histogram(
    "lastmile_ingest_seconds",
    "Time from a ping request's arrival to its answer",
    ["source"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
STREAM_LAG = Gauge(
    "lastmile_stream_lag_entries",
    "Entries of a stream not yet delivered to a consumer group",
    ["stream", "group"],
    multiprocess_mode="mostrecent",
)
STREAM_PENDING = Gauge(
    "lastmile_stream_pending_entries",
    "Entries delivered to a consumer group but not yet acknowledged",
    ["stream", "group"],
    multiprocess_mode="mostrecent",
)
GROUP_OLDEST_PENDING = Gauge(
    "lastmile_group_oldest_pending_seconds",
    "Seconds the oldest unacknowledged entry of a consumer group has waited (0 when none)",
    ["group"],
    multiprocess_mode="mostrecent",
)
GROUP_DEAD_LETTERS = Gauge(
    "lastmile_group_dead_letters",
    "Entries a consumer group moved aside to its dead-letter stream (latest 100,000 kept)",
    ["group"],
    multiprocess_mode="mostrecent",
)
GROUP_STUCK = Gauge(
    "lastmile_group_stuck",
    "1 when a consumer group's oldest pending entry waits past the stuck threshold",
    ["group"],
    multiprocess_mode="mostrecent",
)
WS_CONNECTIONS = Gauge(
    "lastmile_websocket_connections",
    "Open WebSocket connections",
    ["kind"],
    multiprocess_mode="livesum",
)


def count_accepted(stored: Mapping[str, int]) -> None:
    """Count pings that reached a stream; called once per Redis round trip, not per request."""
    for source, pings in stored.items():
        PINGS_ACCEPTED.labels(source).inc(pings)


def registry() -> CollectorRegistry:
    """The registry to expose: every process's when multiprocess mode is on."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)  # type: ignore[no-untyped-call]
        return collected
    from prometheus_client import REGISTRY

    return REGISTRY


async def metrics_endpoint(request: Request) -> Response:
    """``GET /metrics`` in the Prometheus text format."""
    return Response(generate_latest(registry()), media_type=CONTENT_TYPE_LATEST)
