"""Operations endpoints: liveness, readiness (PostgreSQL and Redis answer, workers keep up)."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.groups import group_states
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
    groups: dict[str, str] = {}
    if checks["redis"] == "ok":
        try:
            states = await asyncio.wait_for(group_states(resources), timeout=CHECK_TIMEOUT_S)
            groups = {name: state.describe() for name, state in states.items()}
        except Exception as exc:  # the services answered; only this report failed
            groups = {"all": f"unknown: {type(exc).__name__}"}
    status = "not ready" if not ready else "ready"
    if ready and any(text != "ok" for text in groups.values()):
        status = "degraded"  # the API serves; a worker group needs a look (app.groups says why)
    return JSONResponse(
        {"status": status, "checks": checks, "workers": groups},
        status_code=200 if ready else 503,
    )
