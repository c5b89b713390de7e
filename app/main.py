"""The Starlette applications: the main API, and the bare OsmAnd listener.

:func:`create_app` takes the settings and, optionally, already-open :class:`Resources` (the
server opens them once and shares them with the OsmAnd listener); without them its lifespan
opens and closes its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route, WebSocketRoute

from app.api import (
    analytics,
    credentials,
    customer_answers,
    customer_proof,
    demo_mail,
    driver_profile,
    driver_qr,
    driver_route,
    fleet,
    notification_rules,
    notifications,
    ops,
    orders,
    organisation,
    plans,
    positions,
    proofs,
    reference,
    reoptimize,
    routes,
    sms_inbound,
    summary,
    track_socket,
    tracking,
    users,
)
from app.api import pings as ingest
from app.api import webhooks as webhook_api
from app.api.driver_socket import driver_socket
from app.api.live_socket import live_socket
from app.errors import exception_handlers
from app.http import JsonAnswerHeaders
from app.metrics import metrics_endpoint
from app.resources import Resources, open_resources
from app.settings import Settings
from app.web import pages


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

    table = [
        Route("/healthz", ops.healthz),
        Route("/readyz", ops.readyz),
        Route("/metrics", metrics_endpoint),
        Route("/v1/pings", ingest.post_pings, methods=["POST"]),
        WebSocketRoute("/v1/driver/ws", driver_socket),
        WebSocketRoute("/v1/live/ws", live_socket),
        Route("/osmand", ingest.osmand_fix, methods=["GET", "POST"]),
        Route("/owntracks", ingest.owntracks_location, methods=["POST"]),
        Route("/v1/drivers/live", positions.live_positions),
        Route("/v1/drivers/{driver_id}/positions", positions.driver_positions),
        Route("/v1/settings/dimensions", fleet.dimensions, methods=["GET", "PUT"]),
        Route("/v1/depots", fleet.depots, methods=["GET", "POST"]),
        Route("/v1/depots/{depot_id}", fleet.depot, methods=["GET", "PATCH"]),
        Route("/v1/carriers", fleet.carriers, methods=["GET", "POST"]),
        Route("/v1/carriers/{carrier_id}", fleet.carrier, methods=["GET", "PATCH"]),
        Route("/v1/vehicles", fleet.vehicles, methods=["GET", "POST"]),
        Route("/v1/vehicles/{vehicle_id}", fleet.vehicle, methods=["GET", "PATCH"]),
        Route("/v1/drivers", fleet.drivers, methods=["GET", "POST"]),
        Route("/v1/drivers/{driver_id}", fleet.driver, methods=["GET", "PATCH"]),
        Route(
            "/v1/drivers/{driver_id}/devices",
            fleet.devices,
            methods=["GET", "POST"],
        ),
        Route("/v1/devices/{device_id}/revoke", credentials.revoke_device, methods=["POST"]),
        Route("/v1/api-keys", credentials.api_keys, methods=["GET", "POST"]),
        Route("/v1/session", users.session, methods=["GET", "POST", "DELETE"]),
        Route("/v1/session/password", users.own_password, methods=["PUT"]),
        Route("/v1/users", users.user_list, methods=["GET", "POST"]),
        Route("/v1/users/{user_id}", users.user, methods=["GET", "PATCH"]),
        Route("/v1/users/{user_id}/password", users.user_password, methods=["PUT"]),
        Route("/v1/socket-tickets", credentials.socket_ticket, methods=["POST"]),
        Route("/v1/driver/socket-tickets", credentials.driver_socket_ticket, methods=["POST"]),
        Route("/v1/api-keys/{key_id}/revoke", credentials.revoke_api_key, methods=["POST"]),
        Route("/v1/api-keys/{key_id}/rotate", credentials.rotate_api_key, methods=["POST"]),
        Route("/v1/drivers/{driver_id}/devices/qr", driver_qr.device_qr, methods=["POST"]),
        Route("/v1/settings/organisation", organisation.organisation, methods=["GET", "PATCH"]),
        Route(
            "/v1/settings/customer-proof",
            customer_proof.customer_proof,
            methods=["GET", "PUT"],
        ),
        Route("/v1/shifts", fleet.shifts, methods=["GET", "POST"]),
        Route("/v1/shifts/{shift_id}", fleet.shift, methods=["GET", "PATCH"]),
        Route("/v1/shifts/{shift_id}/cancel", fleet.cancel_shift, methods=["POST"]),
        Route("/v1/orders", orders.collection, methods=["GET", "POST"]),
        Route("/v1/orders/import", orders.import_orders, methods=["POST"]),
        Route("/v1/orders/{order_id}", orders.item, methods=["GET", "PATCH"]),
        Route("/v1/orders/{order_id}/cancel", orders.cancel, methods=["POST"]),
        Route("/v1/orders/{order_id}/cancel/preview", orders.cancel_what, methods=["POST"]),
        Route("/v1/orders/{order_id}/opt-out", orders.opt_out, methods=["PUT"]),
        Route("/v1/orders/{order_id}/tracking", tracking.issue_link, methods=["POST"]),
        Route("/v1/orders/{order_id}/notifications", notifications.of_order),
        Route("/v1/notifications", notifications.of_recipient),
        Route("/v1/notification-rules", notification_rules.rules, methods=["GET", "PUT"]),
        Route("/v1/notification-templates", notification_rules.templates),
        Route("/v1/notification-templates/preview", notification_rules.preview, methods=["POST"]),
        Route(
            "/v1/notification-templates/{kind}/{channel}/{language}",
            notification_rules.template,
            methods=["GET", "PUT", "DELETE"],
        ),
        Route("/v1/demo/mail", demo_mail.mailbox),
        Route("/v1/track/{token}", tracking.get_track),
        WebSocketRoute("/v1/track/{token}/ws", track_socket.track_socket),
        Route("/v1/track/{token}/answers", customer_answers.get_track_answers),
        Route(
            "/v1/track/{token}/instructions", customer_answers.post_instructions, methods=["POST"]
        ),
        Route("/v1/track/{token}/reschedule", customer_answers.post_reschedule, methods=["POST"]),
        Route("/v1/track/{token}/rating", customer_answers.post_rating, methods=["POST"]),
        Route("/v1/orders/{order_id}/answers", customer_answers.get_order_answers),
        Route("/v1/sms/status", sms_inbound.status_callback, methods=["POST"]),
        Route("/v1/sms/inbound", sms_inbound.inbound, methods=["POST"]),
        Route("/v1/plans", plans.plans, methods=["GET", "POST"]),
        Route("/v1/plans/{plan_id}", plans.get_plan),
        Route("/v1/plans/{plan_id}/cancel", plans.cancel_plan, methods=["POST"]),
        Route("/v1/plans/{plan_id}/dispatch", plans.dispatch_plan, methods=["POST"]),
        Route("/v1/routes", routes.list_routes),
        Route("/v1/routes/insert", reoptimize.insert_order, methods=["POST"]),
        Route("/v1/routes/insert/preview", reoptimize.insert_preview, methods=["POST"]),
        Route("/v1/routes/{route_id}", routes.get_route),
        Route("/v1/routes/{route_id}/resequence", reoptimize.resequence_route, methods=["POST"]),
        Route(
            "/v1/routes/{route_id}/resequence/preview",
            reoptimize.resequence_preview,
            methods=["POST"],
        ),
        Route("/v1/stops/{stop_id}/move", reoptimize.move, methods=["POST"]),
        Route("/v1/stops/{stop_id}/move/preview", reoptimize.move_preview, methods=["POST"]),
        Route("/v1/driver/me", driver_profile.driver_me),
        Route("/v1/driver/route", driver_route.driver_route),
        Route("/v1/driver/route/start", driver_route.driver_start, methods=["POST"]),
        Route("/v1/driver/stops/{stop_id}/arrive", driver_route.stop_arrive, methods=["POST"]),
        Route("/v1/driver/stops/{stop_id}/deliver", driver_route.stop_deliver, methods=["POST"]),
        Route("/v1/driver/stops/{stop_id}/fail", driver_route.stop_fail, methods=["POST"]),
        Route("/v1/webhooks", webhook_api.collection, methods=["GET", "POST"]),
        Route("/v1/webhooks/{webhook_id}", webhook_api.item, methods=["GET", "PATCH", "DELETE"]),
        Route("/v1/webhooks/{webhook_id}/rotate", webhook_api.rotate, methods=["POST"]),
        Route("/v1/webhooks/{webhook_id}/deliveries", webhook_api.deliveries),
        Route(
            "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/replay",
            webhook_api.replay_delivery,
            methods=["POST"],
        ),
        Route("/v1/webhooks/{webhook_id}/replay", webhook_api.replay_range, methods=["POST"]),
        *pages.routes(),
        Route("/v1/driver/stops/{stop_id}/proof", proofs.capture_proof, methods=["POST"]),
        Route("/v1/proofs", proofs.search_proofs),
        Route("/v1/analytics/deliveries", analytics.deliveries),
        Route("/v1/analytics/routes", analytics.routes),
        Route("/v1/analytics/learned", analytics.learned),
        Route("/v1/analytics/patterns", analytics.patterns),
        Route("/v1/analytics/weekly-summary", summary.preview),
        Route("/v1/analytics/weekly-summary/send", summary.send, methods=["POST"]),
        Route("/v1/proofs/{proof_id}", proofs.get_proof),
        Route("/v1/stops/{stop_id}/proof", proofs.stop_proof),
        Route("/v1/stops/{stop_id}/proof-override", proofs.override, methods=["POST"]),
        Route("/v1/blobs/{sha256}", proofs.get_blob),
        Route("/v1/settings/proof-requirements", proofs.org_requirements, methods=["GET", "PUT"]),
        Route(
            "/v1/orders/{order_id}/proof-requirements",
            proofs.order_requirements,
            methods=["GET", "PUT"],
        ),
        Route("/v1/orders/{order_id}/reattempt", proofs.reattempt, methods=["POST"]),
        Route("/v1/audit/verify", proofs.verify_audit),
        *reference.routes(),
    ]
    app = Starlette(
        routes=table,
        lifespan=lifespan,
        exception_handlers=exception_handlers(),
        middleware=[Middleware(JsonAnswerHeaders)],
    )
    if resources is not None:
        app.state.resources = resources
    return app


def create_osmand_app(resources: Resources) -> Starlette:
    """The dedicated OsmAnd listener (Traccar's usual port 5055): the protocol at the root path."""
    app = Starlette(
        routes=[Route("/", ingest.osmand_fix, methods=["GET", "POST"])],
        exception_handlers=exception_handlers(),
    )
    app.state.resources = resources
    return app
