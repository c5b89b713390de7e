"""Customer tracking: links and ``GET /v1/track/{token}`` (the socket: :mod:`app.api.track_socket`).

A link (``POST /v1/orders/{id}/tracking``, API key) names one order; its token is the
customer's only credential, stored hashed. It works while the order is open and for
``tracking_ttl_h`` hours after the delivery ends (410 after that, 404 for a token nobody issued).

Privacy is structural: the view is built from one order's row, its stop and its route's counts,
and the socket follows only that order's channel, its route's channel (to learn when the stops
before it are done) and, only while the stop is next or the driver is at the door, the driver's
own position channel. The customer gets the driver's newest position, never a track, and never
another customer's stop or window.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import Response

from app.api.customer_proof import delivered_proof_view
from app.auth import hash_token
from app.errors import (
    Gone,
    NotFound,
)
from app.http import answer, path_id
from app.resources import Resources
from realtime.live import stop_state
from schemas.auth import Role
from schemas.eta import ArrivalWindow
from schemas.ids import DriverId, OrderId, OrgId, RouteId, StopId
from schemas.ping import LivePosition
from schemas.track import (
    END_STATES,
    ArrivalEstimate,
    CustomerStatus,
    DriverSpot,
    TrackingLink,
    TrackView,
)
from store import tracking as store

ISSUER_ROLES: tuple[Role, ...] = ("admin", "dispatcher", "integration")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")
SHOWS_DRIVER: frozenset[CustomerStatus] = frozenset({"en_route", "arrived"})
SHOWS_WINDOW: frozenset[CustomerStatus] = frozenset({"scheduled", "out_for_delivery", "en_route"})


async def issue_link(request: Request) -> Response:
    """``POST /v1/orders/{order_id}/tracking``: a new link to the order's tracking page."""
    resources: Resources = request.app.state.resources
    principal = await resources.auth.require_api_key(request, ISSUER_ROLES)
    order_id = OrderId(path_id(request, "order_id"))
    token = secrets.token_urlsafe(18)
    async with resources.pool.connection() as conn:
        if not await store.create_link(conn, principal.org_id, order_id, hash_token(token)):
            raise NotFound(f"order {order_id} not found")
    page = f"/t/{token}"
    base = (resources.settings.public_url or "").rstrip("/")
    link = TrackingLink(order_id=order_id, token=token, url=base + page, api=f"/v1/track/{token}")
    return answer(link, 201)


async def get_track(request: Request) -> Response:
    """``GET /v1/track/{token}``: the order as its customer sees it now."""
    resources: Resources = request.app.state.resources
    org_id, order_id = await order_of_link(resources, request.path_params["token"])
    view, _ = await current_view(resources, org_id, order_id)
    response = answer(view)
    response.headers["cache-control"] = "no-store"
    return response


async def order_of_link(resources: Resources, token: str) -> tuple[OrgId, OrderId]:
    """The organisation and order a live link names; NotFound or Gone otherwise."""
    if not _TOKEN.fullmatch(token):
        raise NotFound("unknown tracking link")
    async with resources.pool.connection() as conn:
        link = await store.link(conn, hash_token(token))
    if link is None:
        raise NotFound("unknown tracking link")
    now = datetime.now(UTC)
    ttl = timedelta(hours=resources.settings.tracking_ttl_h)
    if now >= link.expires_at or (link.ended_at is not None and now >= link.ended_at + ttl):
        raise Gone("this tracking link has expired")
    return link.org_id, link.order_id


@dataclass(frozen=True)
class Where:
    """What a customer's socket follows: the order's route, its stop, and the driver only
    while the customer may see them."""

    route_id: RouteId | None = None
    stop_id: StopId | None = None
    driver_id: DriverId | None = None


def customer_status(track: store.OrderTrack, tracker_next: bool) -> CustomerStatus:
    """The order's status in the customer's words (see :mod:`schemas.track`).

    ``tracker_next``: the ETA worker saw the driver leave the stop before this one, which
    makes this stop next even before the driver has tapped the previous one done.
    """
    if track.order_status == "cancelled":
        return "cancelled"
    if "delivered" in (track.stop_status, track.order_status):
        return "delivered"
    if "failed" in (track.stop_status, track.order_status):
        return "failed"
    if track.stop_id is None or track.route_status not in ("dispatched", "started"):
        return "received"
    if track.stop_status == "arrived":
        return "arrived"
    if track.route_status == "dispatched":
        return "scheduled"
    if track.stops_before == 0 or tracker_next:
        return "en_route"
    return "out_for_delivery"


def estimate_of(window: ArrivalWindow) -> ArrivalEstimate:
    """An arrival window as the customer sees it."""
    return ArrivalEstimate(
        likely=instant(window.likely_epoch_s),
        earliest=instant(window.lower_epoch_s),
        latest=instant(window.upper_epoch_s),
        as_of=instant(window.computed_epoch_s),
    )


def spot_of(position: LivePosition) -> DriverSpot:
    """The driver's position without anything else about the driver."""
    return DriverSpot(
        lat=position.lat, lon=position.lon, heading_deg=position.heading_deg, time=position.time
    )


async def current_view(
    resources: Resources, org_id: OrgId, order_id: OrderId
) -> tuple[TrackView, Where]:
    """The order's view now, from PostgreSQL (order, stop, route) and Redis (window, driver)."""
    async with resources.pool.connection() as conn:
        track = await store.order_track(conn, org_id, order_id)
    if track is None:
        raise NotFound("unknown tracking link")
    window = position = None
    tracker_next = False
    open_stop = track.stop_status in ("pending", "arrived") and track.route_status in (
        "dispatched",
        "started",
    )
    if (
        open_stop
        and track.route_id is not None
        and track.stop_id is not None
        and track.driver_id is not None
    ):
        live = await stop_state(
            resources.redis,
            resources.names,
            org_id,
            route_id=track.route_id,
            stop_id=track.stop_id,
            driver_id=track.driver_id,
        )
        window, position, saved = live.window, live.position, live.tracker
        tracker_next = (
            saved is not None
            and saved.route_id == track.route_id
            and saved.state.next_stop_id == track.stop_id
        )
    status = customer_status(track, tracker_next)
    shows_driver = status in SHOWS_DRIVER
    note = photo_url = None
    if status == "delivered" and track.stop_id is not None:
        note, photo_url = await delivered_proof_view(resources, org_id, track.stop_id)
    view = TrackView(
        order_ref=track.order_ref,
        status=status,
        time_zone=track.time_zone,
        address=track.address,
        lat=track.lat,
        lon=track.lon,
        requested=track.requested,
        planned_arrival=track.planned_arrival,
        estimate=estimate_of(window) if window is not None and status in SHOWS_WINDOW else None,
        stops_before=(
            (0 if status == "en_route" else track.stops_before)
            if status in ("scheduled", "out_for_delivery", "en_route")
            else None
        ),
        driver=spot_of(position) if shows_driver and position is not None else None,
        completed_at=track.completed_at if status in END_STATES else None,
        failure_reason=track.failure_reason if status == "failed" else None,
        delivery_note=note,
        delivery_photo_url=photo_url,
    )
    where = Where(
        route_id=track.route_id if open_stop else None,
        stop_id=track.stop_id if open_stop else None,
        driver_id=track.driver_id if shows_driver else None,
    )
    return view, where


def instant(epoch_s: int) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)
