"""Distinct identifier types, so that a driver id can never be passed where an order id belongs.

Every identifier lastmile stores is one of these. msgspec decodes and encodes a ``NewType`` of
``int`` as a plain integer, so they change nothing on the wire; code that turns a plain ``int``
(a path parameter, a database row) into one says so: ``OrderId(row["id"])``.

Each is bounded like the ``bigint`` identity column it names (:data:`Id`), so an id no row can
have (0, a negative number, 2**63 or more) is refused where it is decoded, naming its field,
instead of failing at the database.
"""

from typing import Annotated, Final, NewType

from msgspec import Meta

MAX_ID: Final = 2**63 - 1
"""The largest PostgreSQL ``bigint``, and so the largest id."""

Id = Annotated[int, Meta(ge=1, le=MAX_ID, description="identifier, a positive 64-bit integer")]
"""What every identifier below is on the wire."""

OrgId = NewType("OrgId", Id)
DriverId = NewType("DriverId", Id)
DeviceId = NewType("DeviceId", Id)
ApiKeyId = NewType("ApiKeyId", Id)
UserId = NewType("UserId", Id)
VehicleId = NewType("VehicleId", Id)
PlanId = NewType("PlanId", Id)
RouteId = NewType("RouteId", Id)
StopId = NewType("StopId", Id)
DepotId = NewType("DepotId", Id)
CarrierId = NewType("CarrierId", Id)
ShiftId = NewType("ShiftId", Id)
OrderId = NewType("OrderId", Id)
