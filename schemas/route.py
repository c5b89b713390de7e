"""A dispatched route as drivers and dispatchers see it, and the driver's stop commands."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from schemas.customer import Instructions
from schemas.ids import DriverId, OrderId, PlanId, RouteId, ShiftId, StopId, VehicleId

RouteStatus = Literal["dispatched", "started", "completed", "cancelled"]
StopStatus = Literal["pending", "arrived", "delivered", "failed", "removed"]


class Window(msgspec.Struct, frozen=True, kw_only=True):
    """A customer's time window."""

    start: datetime
    end: datetime


class RouteStop(msgspec.Struct, frozen=True, kw_only=True):
    """One visit of a route, with what the driver needs at the door."""

    id: StopId
    seq: int
    status: StopStatus
    order_id: OrderId
    order_ref: str
    customer_name: str | None = None
    phone: str | None = None
    address: str
    lat: float
    lon: float
    windows: list[Window] = []
    service_s: int = 0
    barcodes: list[str] = []
    notes: str | None = None
    planned_arrival: datetime
    planned_departure: datetime
    lateness_s: int = 0
    arrived_at: datetime | None = None
    completed_at: datetime | None = None
    failure_reason: str | None = None
    instructions: Instructions | None = None
    """What the customer asked of the driver (gate code, where to leave the parcel): customer
    text, to be shown as text."""


class RouteView(msgspec.Struct, frozen=True, kw_only=True):
    """A route and its stops in order; ``version`` grows with every change to it."""

    id: RouteId
    plan_id: PlanId
    driver_id: DriverId
    vehicle_id: VehicleId
    shift_id: ShiftId
    day: str
    status: RouteStatus
    version: int
    planned_start: datetime
    planned_end: datetime
    distance_m: int
    stops: list[RouteStop]


class FailStop(msgspec.Struct, frozen=True, kw_only=True):
    """Body of ``POST /v1/driver/stops/{id}/fail``."""

    reason: Annotated[str, Meta(min_length=1, max_length=500)]


class InsertOrder(msgspec.Struct, frozen=True, kw_only=True):
    """Body of ``POST /v1/routes/insert``: put a pending order into today's running routes."""

    order_id: OrderId


class MoveStop(msgspec.Struct, frozen=True, kw_only=True):
    """Body of ``POST /v1/stops/{id}/move``: give the stop to another route."""

    route_id: RouteId
    position: Annotated[int, Meta(ge=0)] | None = None


class StopChange(msgspec.Struct, frozen=True, kw_only=True):
    """One pending stop of a route an action would change: its planned arrival now and after."""

    order_id: OrderId
    order_ref: str
    windows: list[Window] = []
    """The customer's windows, to read the new arrival against."""
    before: datetime | None
    """The planned arrival now; none: the stop is not on this route yet."""
    after: datetime | None
    """The planned arrival after the action; none: the stop leaves this route."""
    late_after_s: int = 0
    """How late the stop would be after its last window's end (0: on time)."""


class RouteChange(msgspec.Struct, frozen=True, kw_only=True):
    """A route an action would rewrite, and every pending stop of it before and after."""

    route_id: RouteId
    driver_id: DriverId
    version: int
    """The version the preview was computed on; the action refuses (409) if it changed."""
    stops: list[StopChange]
    distance_m_after: int
    """The distance still to drive after the action."""


class ActionPreview(msgspec.Struct, frozen=True, kw_only=True):
    """What an action would do (``?preview=true``), not done: each route it rewrites."""

    routes: list[RouteChange]
    added_travel_s: int | None = None
    """An insertion's extra driving time."""
