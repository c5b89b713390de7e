"""Domain events on the ``events`` stream: what happened to routes, stops and orders.

A tagged union (``type``), msgpack-encoded in the entry field ``e``. Consumers (notifications,
webhooks, analytics, the dispatcher fan-out) switch on the type. Evolving: new event types are
new members; existing members only gain fields with defaults.
"""

from __future__ import annotations

from datetime import date, datetime

import msgspec

from schemas.eta import DeliveryEvent
from schemas.ids import DriverId, OrderId, OrgId, RouteId, StopId


class _Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    org_id: OrgId
    at: datetime


class RouteDispatched(_Event, frozen=True, kw_only=True, tag="route_dispatched"):
    """A route reached its driver."""

    route_id: RouteId
    driver_id: DriverId
    version: int
    stops: int
    order_ids: list[OrderId] = []
    """The orders on the route, so each customer's tracking page learns it is scheduled."""


class RouteStarted(_Event, frozen=True, kw_only=True, tag="route_started"):
    """The driver started the route."""

    route_id: RouteId
    driver_id: DriverId


class RouteChanged(_Event, frozen=True, kw_only=True, tag="route_changed"):
    """The remaining stops of a running route changed (and its driver was sent the new route)."""

    route_id: RouteId
    driver_id: DriverId
    version: int
    change: str
    order_id: OrderId | None = None


class StopArrived(_Event, frozen=True, kw_only=True, tag="stop_arrived"):
    """The driver reported arriving at a stop."""

    route_id: RouteId
    stop_id: StopId
    order_id: OrderId
    driver_id: DriverId


class StopDelivered(_Event, frozen=True, kw_only=True, tag="stop_delivered"):
    """The stop's order was delivered."""

    route_id: RouteId
    stop_id: StopId
    order_id: OrderId
    driver_id: DriverId


class StopFailed(_Event, frozen=True, kw_only=True, tag="stop_failed"):
    """The stop's order could not be delivered; ``reason`` says why."""

    route_id: RouteId
    stop_id: StopId
    order_id: OrderId
    driver_id: DriverId
    reason: str
    code: str | None = None
    """One of the failure codes of ``schemas.proofs.FailureCode``; None from older senders."""


class ParcelsFlagged(_Event, frozen=True, kw_only=True, tag="parcels_flagged"):
    """A stop was closed with parcels of its order not scanned (``missing``) or with scans of
    parcels that are not its order's (``unexpected``)."""

    route_id: RouteId
    stop_id: StopId
    order_id: OrderId
    driver_id: DriverId
    missing: list[str] = []
    unexpected: list[str] = []


class OrderCancelled(_Event, frozen=True, kw_only=True, tag="order_cancelled"):
    """An order was cancelled; ``route_id`` names the route it was removed from, if any."""

    order_id: OrderId
    route_id: RouteId | None = None


class OrderRescheduled(_Event, frozen=True, kw_only=True, tag="order_rescheduled"):
    """The customer asked for another day: the order is pending again on ``to_day``, and
    ``route_id`` names the route its stop was taken off, if any. ``source`` is ``page`` (the
    tracking page) or ``sms`` (a reply to a text message)."""

    order_id: OrderId
    from_day: date
    to_day: date
    route_id: RouteId | None = None
    source: str


class WebhookDisabled(_Event, frozen=True, kw_only=True, tag="webhook_disabled"):
    """A webhook endpoint was disabled after a run of failed deliveries (or a 410 Gone); its
    deliveries wait until an administrator enables it again."""

    endpoint_id: int
    url: str
    reason: str
    consecutive_failures: int


class DeliveryUpdate(_Event, frozen=True, kw_only=True, tag="delivery"):
    """What the ETA worker detected from the driver's positions: ``detail.type`` is one of
    ``en_route``, ``approaching``, ``arrived``, ``departed``, ``running_late`` (an alert for
    dispatchers), ``eta_changed`` and ``out_of_sequence`` (an alert for dispatchers: the driver
    dwelled at a stop that is not the route's next one; never for the stop's customer). Each
    of the first five fires at most once per stop; ``out_of_sequence`` once per stay."""

    detail: DeliveryEvent


Event = (
    RouteDispatched
    | RouteStarted
    | RouteChanged
    | StopArrived
    | StopDelivered
    | StopFailed
    | ParcelsFlagged
    | OrderCancelled
    | OrderRescheduled
    | DeliveryUpdate
    | WebhookDisabled
)
