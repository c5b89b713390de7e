"""Distinct identifier types, so that a driver id can never be passed where an order id belongs.

Every identifier lastmile stores is one of these. msgspec decodes and encodes a ``NewType`` of
``int`` as a plain integer, so they change nothing on the wire; code that turns a plain ``int``
(a path parameter, a database row) into one says so: ``OrderId(row["id"])``.
"""

from typing import NewType

OrgId = NewType("OrgId", int)
DriverId = NewType("DriverId", int)
DeviceId = NewType("DeviceId", int)
ApiKeyId = NewType("ApiKeyId", int)
VehicleId = NewType("VehicleId", int)
PlanId = NewType("PlanId", int)
RouteId = NewType("RouteId", int)
StopId = NewType("StopId", int)
DepotId = NewType("DepotId", int)
CarrierId = NewType("CarrierId", int)
ShiftId = NewType("ShiftId", int)
OrderId = NewType("OrderId", int)
