"""The pages the app serves: ``/dispatch`` (dispatcher live map), ``/plan`` (planning a day and
dispatching it), ``/analytics`` (what the days really were), ``/admin`` (settings, users, keys
and devices), ``/t/{token}`` (customer) and
``/driver`` (the driver app, an installable web app with its service worker at ``/driver/sw.js``).

They are static shells: the HTML carries no data and no credential, only configuration in
``data-`` attributes (the tile URL template, ``"off"`` for none). Each page is one folder of
``app/web/`` (``index.html``, its ``main.js`` and the modules it imports; ``common/`` holds what
all share), and its scripts read the API and the sockets themselves:

* ``/dispatch``, ``/plan`` and ``/admin`` serve a user signed in with a password (the session is an
  HttpOnly cookie; the page keeps only the CSRF token), or take an API key from the URL fragment
  (``#key=lmk_...``), which browsers never send to the server, and keep it in ``sessionStorage``;
* ``/driver`` takes its device token from the fragment (``#token=lmd_...``, what the sign-in QR
  code holds) or from the driver pasting it, and keeps it in ``localStorage``: a phone stays
  signed in across restarts, as an installed app must;
* ``/t/{token}`` is served for any token without a lookup: the token is checked by
  ``GET /v1/track/{token}`` (404 unknown, 410 expired), and the page says so. Serving the shell
  blindly costs no database round trip and tells a prober nothing the API does not.

The assets are served from ``/static/<page>/`` (ours), ``/static/leaflet/`` and
``/static/markercluster/`` (the ``xstatic-leaflet`` and ``xstatic-leaflet-markercluster``
packages) and ``/static/plotly/`` (plotly.js from the ``plotly`` package), so the pages need
no CDN and work offline apart from the map tiles. Every page answer carries a
Content-Security-Policy that allows scripts from this origin only and images from the tile
server too.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import plotly
import xstatic.pkg.leaflet
import xstatic.pkg.leaflet_markercluster
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from app.settings import Settings

HERE = Path(__file__).parent
LEAFLET = Path(xstatic.pkg.leaflet.BASE_DIR)
MARKERCLUSTER = Path(xstatic.pkg.leaflet_markercluster.BASE_DIR)
PLOTLY = Path(plotly.__file__).parent / "package_data"
"""Where the ``plotly`` package keeps plotly.js (``plotly.min.js``), the analytics page's charts."""
TILES_OFF = "off"
PAGE_FOLDERS = ("dispatch", "track", "common", "driver", "mail", "admin", "plan", "analytics")
"""The folders whose files are served under ``/static/<folder>/``."""


def routes() -> list[BaseRoute]:
    """The pages' routes and their static assets."""
    templates = Jinja2Templates(directory=HERE)

    async def dispatch(request: Request) -> Response:
        """The dispatcher's live map; the page asks for an API key when the fragment has none.

        It flags a proof captured farther than ``proof_max_distance_m`` from its stop."""
        settings: Settings = request.app.state.resources.settings
        limit = {"proof_max_distance_m": str(settings.proof_max_distance_m)}
        return _page(templates, request, "dispatch/index.html", limit)

    async def admin(request: Request) -> Response:
        """The settings page: the organisation, users, API keys and devices (signed in)."""
        return _page(templates, request, "admin/index.html", {})

    async def plan(request: Request) -> Response:
        """Planning a day: orders, shifts, plans compared and reviewed, dispatch (signed in)."""
        return _page(templates, request, "plan/index.html", {})

    async def analytics(request: Request) -> Response:
        """Analytics: figures, trends, drivers, the zone map, patterns, exports (signed in)."""
        return _page(templates, request, "analytics/index.html", {})

    async def track(request: Request) -> Response:
        """The customer's tracking page for the token in the path (checked by the API)."""
        return _page(
            templates, request, "track/index.html", {"token": request.path_params["token"]}
        )

    async def mail(request: Request) -> Response:
        """The demo mail page: what the demo sink received (the page reads ``/v1/demo/mail``)."""
        return _page(templates, request, "mail/index.html", {})

    async def driver(request: Request) -> Response:
        """The driver app; it reads its device token from the fragment ``#token=lmd_...``."""
        return _page(templates, request, "driver/index.html", {})

    async def driver_qr(request: Request) -> Response:
        """The dispatcher's page that shows a driver's sign-in QR code (key from the fragment)."""
        return _page(templates, request, "driver/qr.html", {})

    return [
        Route("/dispatch", dispatch, name="dispatch_page"),
        Route("/admin", admin, name="admin_page"),
        Route("/plan", plan, name="plan_page"),
        Route("/analytics", analytics, name="analytics_page"),
        Route("/t/{token}", track, name="track_page"),
        Route("/driver", driver, name="driver_page"),
        Route("/demo/mail", mail, name="mail_page"),
        Route("/driver/sw.js", driver_worker, name="driver_worker"),
        Route("/driver/qr", driver_qr, name="driver_qr_page"),
        Route("/favicon.ico", favicon, name="favicon"),
        Mount("/static/leaflet", StaticFiles(directory=LEAFLET), name="leaflet"),
        Mount("/static/markercluster", StaticFiles(directory=MARKERCLUSTER), name="markercluster"),
        Mount("/static/plotly", StaticFiles(directory=PLOTLY), name="plotly"),
        *(
            Mount(f"/static/{folder}", StaticFiles(directory=HERE / folder), name=folder)
            for folder in PAGE_FOLDERS
        ),
    ]


async def favicon(request: Request) -> Response:
    """What browsers ask every site for: the app's icon (a PNG; browsers go by its type)."""
    return FileResponse(
        HERE / "driver" / "icon-192.png",
        media_type="image/png",
        headers={"cache-control": "public, max-age=86400", "x-content-type-options": "nosniff"},
    )


async def driver_worker(request: Request) -> Response:
    """The driver app's service worker, served beside ``/driver`` so that it may control it.

    A worker's scope may not be wider than its script's folder (``/driver/``) without
    ``Service-Worker-Allowed``; the page is ``/driver`` itself, so the header widens it to that.
    ``no-cache`` makes the browser look for a new worker on every visit.
    """
    return FileResponse(
        HERE / "driver" / "sw.js",
        media_type="text/javascript",
        headers={
            "service-worker-allowed": "/driver",
            "cache-control": "no-cache",
            "x-content-type-options": "nosniff",
        },
    )


def _page(
    templates: Jinja2Templates, request: Request, name: str, context: dict[str, str]
) -> Response:
    settings: Settings = request.app.state.resources.settings
    response = templates.TemplateResponse(request, name, {**context, "tile_url": settings.tile_url})
    response.headers["content-security-policy"] = content_policy(settings.tile_url)
    # The tracking token is in the page's path: other origins (the tile server) get the origin only.
    response.headers["referrer-policy"] = "strict-origin-when-cross-origin"
    response.headers["x-content-type-options"] = "nosniff"
    response.headers["cache-control"] = "no-cache"
    return response


def content_policy(tile_url: str) -> str:
    """The pages' Content-Security-Policy: everything from this origin, map tiles from theirs.

    Sockets are same-origin (``'self'`` covers ``ws:``/``wss:`` to this host). Leaflet positions
    its elements with inline styles, hence ``style-src 'unsafe-inline'``.
    """
    images = " ".join(["'self'", "data:", *tile_sources(tile_url)])
    return (
        "default-src 'self'; script-src 'self'; connect-src 'self'; "
        f"img-src {images}; style-src 'self' 'unsafe-inline'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )


def tile_sources(tile_url: str) -> list[str]:
    """The CSP source that admits ``tile_url`` (a Leaflet URL template), or none for ``"off"``.

    A ``{s}`` subdomain placeholder becomes a ``*.`` wildcard; a placeholder anywhere else in the
    host admits the whole scheme, which is the most a CSP source can say about it.
    """
    if tile_url == TILES_OFF:
        return []
    parts = urlsplit(tile_url)
    if not parts.scheme or not parts.netloc:
        return []  # a path on this origin: 'self' covers it
    host = parts.netloc
    if "{" not in host:
        return [f"{parts.scheme}://{host}"]
    first, _, rest = host.partition(".")
    if first.startswith("{") and first.endswith("}") and rest and "{" not in rest:
        return [f"{parts.scheme}://*.{rest}"]
    return [f"{parts.scheme}:"]
