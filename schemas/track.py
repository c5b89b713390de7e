"""What a customer sees of their own delivery: ``GET /v1/track/{token}`` and its socket.

A tracking token names one order. Everything here is about that order alone: its status, its
address, the arrival window, and the driver's position *only while this stop is the next one*
(or the driver is at the door). Nothing names other customers, other stops, or where the driver
has been: a customer can count the stops before theirs, never see them.

Socket ``/v1/track/{token}/ws`` (server → client only): ``track`` first, and again whenever the
status or the route around the stop changes; ``window`` when the predicted arrival window moves;
``position`` with the driver's newest position while the status is ``en_route`` or ``arrived``.

Customer statuses, in the order a delivery passes through them:

``received``          the order is known, not yet on a route
``scheduled``         on a route that has not started
``out_for_delivery``  the route has started; other stops come first (``stops_before``)
``en_route``          this stop is next: the driver is on the way
``arrived``           the driver is at the address
``delivered``         end state
``failed``            end state: could not deliver (``failure_reason``)
``cancelled``         end state
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from schemas.ids import OrderId
from schemas.route import Window

CustomerStatus = Literal[
    "received",
    "scheduled",
    "out_for_delivery",
    "en_route",
    "arrived",
    "delivered",
    "failed",
    "cancelled",
]
END_STATES: frozenset[CustomerStatus] = frozenset({"delivered", "failed", "cancelled"})


class ArrivalEstimate(msgspec.Struct, frozen=True, kw_only=True):
    """When the driver is expected: most likely, and the window it should fall in."""

    likely: datetime
    earliest: datetime
    latest: datetime
    as_of: datetime


class DriverSpot(msgspec.Struct, frozen=True, kw_only=True):
    """The driver's newest position (never a track), while this stop is next."""

    lat: float
    lon: float
    heading_deg: float | None = None
    time: datetime


class TrackView(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="track"):
    """The order as its customer sees it now."""

    order_ref: str
    status: CustomerStatus
    time_zone: str
    """IANA zone the page shows times in (the organisation's)."""
    address: str
    lat: float
    lon: float
    requested: list[Window] = []
    """The time windows the customer asked for."""
    planned_arrival: datetime | None = None
    estimate: ArrivalEstimate | None = None
    """The live arrival window, once the ETA worker has one."""
    stops_before: int | None = None
    driver: DriverSpot | None = None
    completed_at: datetime | None = None
    failure_reason: str | None = None
    delivery_note: str | None = None
    """The driver's note on the proof of a delivered order."""
    delivery_photo_url: str | None = None
    """A signed, short-lived link to the delivery's first proof photo, where the organisation
    shares proof photos with its customers (``/v1/settings/customer-proof``)."""


class WindowMessage(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="window"):
    """The arrival window moved."""

    estimate: ArrivalEstimate


class PositionMessage(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="position"):
    """The driver moved (sent only while this stop is next)."""

    driver: DriverSpot


TrackMessage = TrackView | WindowMessage | PositionMessage


class TrackingLink(msgspec.Struct, frozen=True, kw_only=True):
    """Answer to ``POST /v1/orders/{id}/tracking``: the token, shown once, and its page."""

    order_id: OrderId
    token: str
    url: str
    """Path of the customer page, ``/t/{token}``."""
    api: str
    """Path of the JSON view, ``/v1/track/{token}``."""
