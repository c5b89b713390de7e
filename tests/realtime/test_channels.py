"""Where each event is shown: the organisation's screens and the tracking pages it concerns."""

from __future__ import annotations

from datetime import UTC, datetime

from realtime.events import channels
from realtime.streams import StreamNames
from schemas.eta import ArrivalDetected, OutOfSequence
from schemas.events import DeliveryUpdate
from schemas.ids import DriverId, OrderId, OrgId, RouteId, StopId
from solver.arrival import EventHead

NAMES = StreamNames(prefix="t:")
ORG = OrgId(3)
AT = datetime(2026, 12, 6, 9, tzinfo=UTC)
STOP: EventHead = {
    "driver_id": DriverId(5),
    "route_id": RouteId(8),
    "route_version": 1,
    "stop_id": StopId(13),
    "order_id": OrderId(21),
    "at_epoch_s": 1_796_547_600,
}


def test_an_out_of_sequence_dwell_reaches_screens_but_not_the_stops_customer() -> None:
    """A dwell at a stop that is not next goes to the organisation's screens only."""
    event = DeliveryUpdate(
        org_id=ORG,
        at=AT,
        detail=OutOfSequence(
            **STOP,
            expected_stop_id=StopId(12),
            expected_order_id=OrderId(20),
            stay_start_epoch_s=1_796_547_555,
            dwell_s=45,
        ),
    )
    assert channels(NAMES, event) == [NAMES.org_events_channel(ORG)]


def test_an_arrival_reaches_screens_and_the_stops_customer() -> None:
    """An arrival at the stop goes to the screens and to the order's tracking page."""
    event = DeliveryUpdate(
        org_id=ORG, at=AT, detail=ArrivalDetected(**STOP, arrived_epoch_s=1_796_547_600)
    )
    assert channels(NAMES, event) == [
        NAMES.org_events_channel(ORG),
        NAMES.order_channel(ORG, OrderId(21)),
    ]
