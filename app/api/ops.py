"""Operations endpoints: liveness, readiness (PostgreSQL and Redis answer), and metrics."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.http import resources_of
from store.db import ping as ping_database

CHECK_TIMEOUT_S = 2.0


async def healthz(request: Request) -> Response:
    """The process is up and serving requests."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Both backing services answer within :data:`CHECK_TIMEOUT_S`; 503 names those that don't."""
    resources = resources_of(request)
    checks: dict[str, str] = {}
    for name, probe in (
        ("postgres", ping_database(resources.pool)),
        ("redis", resources.redis.ping()),
    ):
        try:
            await asyncio.wait_for(probe, timeout=CHECK_TIMEOUT_S)
            checks[name] = "ok"
        except Exception as exc:  # any failure means not ready; report what it was
            checks[name] = f"failed: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )
