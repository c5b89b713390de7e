"""The Starlette applications: the main API, and the bare OsmAnd listener.

:func:`create_app` takes the settings and, optionally, already-open :class:`Resources` (the
server opens them once and shares them with the OsmAnd listener); without them its lifespan
opens and closes its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute

from app import drivers, ingest, ops
from app.driver_ws import driver_socket
from app.errors import HANDLED, handle_error
from app.metrics import metrics_endpoint
from app.resources import Resources, open_resources
from app.settings import Settings


def create_app(settings: Settings, resources: Resources | None = None) -> Starlette:
    """The main API application."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if resources is not None:
            app.state.resources = resources
            yield
            return
        async with open_resources(settings) as opened:
            app.state.resources = opened
            yield

    routes = [
        Route("/healthz", ops.healthz),
        Route("/readyz", ops.readyz),
        Route("/metrics", metrics_endpoint),
        Route("/v1/pings", ingest.post_pings, methods=["POST"]),
        WebSocketRoute("/v1/driver/ws", driver_socket),
        Route("/osmand", ingest.osmand_fix, methods=["GET", "POST"]),
        Route("/owntracks", ingest.owntracks_location, methods=["POST"]),
        Route("/v1/drivers/live", drivers.live_positions),
        Route("/v1/drivers/{driver_id}/positions", drivers.driver_positions),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers=dict.fromkeys(HANDLED, handle_error),
    )
    if resources is not None:
        app.state.resources = resources
    return app


def create_osmand_app(resources: Resources) -> Starlette:
    """The dedicated OsmAnd listener (Traccar's usual port 5055): the protocol at the root path."""
    app = Starlette(
        routes=[Route("/", ingest.osmand_fix, methods=["GET", "POST"])],
        exception_handlers=dict.fromkeys(HANDLED, handle_error),
    )
    app.state.resources = resources
    return app
