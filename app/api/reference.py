"""The API reference, served: ``/openapi.json``, ``/docs``, and the API's root.

* ``GET /openapi.json``: the OpenAPI 3.1 document of the running app, built on first use by
  :mod:`app.openapi` from the app's own routes and the table in :mod:`app.api.catalogue`;
* ``GET /docs``: Swagger UI over it, from the ``swagger-ui-bundle-v2`` package's files (no CDN),
  started by ``/static/docs/main.js`` because the page's Content-Security-Policy, like the
  other pages', allows no inline script;
* ``GET /`` and ``GET /v1/``: where to go from here: the pages, the reference, the health checks.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Final

import swagger_ui_bundle
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from app.api.catalogue import OPERATIONS, PATH_PARAMS, SOCKETS, TAGS, Index
from app.openapi import JSON, build
from schemas.codecs import JSON_ENCODER

DESCRIPTION: Final = """\
Real-time last-mile delivery orchestration: orders, planning, dispatch, live positions and
arrival windows.

**Credentials.** API keys (`Authorization: Bearer lmk_…`) carry a role: `admin`,
`dispatcher` or `integration`; each operation lists the roles it accepts. Driver apps use a
device token (`Authorization: Bearer lmd_…`); OsmAnd apps send it as `id`, OwnTracks as the
Basic-auth password. A customer's tracking token is part of the path.

**Errors.** Every 4xx and 5xx answer is `{"error": code, "field": name-or-null, "reason":
text}`: `field` names what is wrong as the client spelled it, `reason` says what was expected
and what came.

**Idempotency.** Creates accept `Idempotency-Key`; a retry with the same key and body replays
the first answer instead of creating again.

**Units** are in field names (`service_s`, `speed_mps`, `accuracy_m`); instants are RFC 3339
with a zone; a `day` is a date in the organisation's time zone.

**WebSockets** are listed under `x-websockets`, their messages under the schemas
`DriverClientMessage`, `DriverServerMessage`, `LiveMessage` and `TrackMessage`
(docs/websockets.md explains them).
"""


def _version() -> str:
    try:
        return version("lastmile")
    except PackageNotFoundError:
        return "0.0.0"


def document(routes: list[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI document of an app with ``routes`` (raises if one is undocumented)."""
    return build(
        routes,
        OPERATIONS,
        SOCKETS,
        info={"title": "lastmile", "version": _version(), "description": DESCRIPTION},
        path_params=PATH_PARAMS,
        tags=TAGS,
    )


# --- serving it ------------------------------------------------------------------------------

HERE: Final = Path(__file__).parent.parent / "web" / "docs"
SWAGGER_UI: Final = Path(str(swagger_ui_bundle.swagger_ui_path))
CONTENT_POLICY: Final = (
    "default-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
"""Like the other pages' policy: scripts from this origin only. Swagger UI sets inline styles."""


async def openapi_json(request: Request) -> Response:
    """``GET /openapi.json``: built on first use from this app's routes, then kept."""
    state = request.app.state
    body: bytes | None = getattr(state, "openapi_json", None)
    if body is None:
        body = state.openapi_json = JSON_ENCODER.encode(document(request.app.routes))
    return Response(body, media_type=JSON, headers={"cache-control": "no-cache"})


async def docs_page(request: Request) -> Response:
    """``GET /docs``: Swagger UI, started by its own script file."""
    return FileResponse(
        HERE / "index.html",
        media_type="text/html",
        headers={
            "content-security-policy": CONTENT_POLICY,
            "x-content-type-options": "nosniff",
            "cache-control": "no-cache",
        },
    )


LINKS: Final = {
    "dispatch": "/dispatch",
    "plan": "/plan",
    "analytics": "/analytics",
    "admin": "/admin",
    "docs": "/docs",
    "openapi": "/openapi.json",
    "healthz": "/healthz",
    "readyz": "/readyz",
    "metrics": "/metrics",
}


async def index(request: Request) -> Response:
    """``GET /`` and ``GET /v1/``: links to the pages, the reference and the health checks."""
    body = JSON_ENCODER.encode(Index(name="lastmile", version=_version(), links=LINKS))
    return Response(body, media_type=JSON)


def routes() -> list[BaseRoute]:
    """The reference's routes and the files of its page."""
    return [
        Route("/", index, name="index"),
        Route("/v1/", index, name="api_index"),
        Route("/openapi.json", openapi_json, name="openapi"),
        Route("/docs", docs_page, name="docs"),
        Mount("/static/docs", StaticFiles(directory=HERE), name="docs_files"),
        Mount("/static/swagger-ui", StaticFiles(directory=SWAGGER_UI), name="swagger_ui"),
    ]
