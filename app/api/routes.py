"""The day's routes as dispatchers read them: ``GET /v1/routes`` and ``GET /v1/routes/{id}``."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response

from app.auth import READERS
from app.errors import NotFound
from app.http import answer, path_id, query_date, resources_of
from schemas.ids import RouteId
from store import routes as store


async def list_routes(request: Request) -> Response:
    """Every route of a day (``?day=YYYY-MM-DD``, default today in UTC) with its stops."""
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, READERS)
    day = query_date(request, "day") or datetime.now(UTC).date()
    async with resources.pool.connection() as conn:
        views = await store.day_views(conn, principal.org_id, day)
    return answer({"day": day, "routes": views})


async def get_route(request: Request) -> Response:
    """One route with its stops."""
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, READERS)
    route_id = RouteId(path_id(request, "route_id"))
    async with resources.pool.connection() as conn:
        view = await store.route_view(conn, principal.org_id, route_id)
    if view is None:
        raise NotFound(f"no route {route_id} in this organisation")
    return answer(view)
