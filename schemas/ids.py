"""Distinct identifier types, so that a driver id can never be passed where an order id belongs."""

from typing import NewType

OrgId = NewType("OrgId", int)
DriverId = NewType("DriverId", int)
DeviceId = NewType("DeviceId", int)
ApiKeyId = NewType("ApiKeyId", int)
VehicleId = NewType("VehicleId", int)
PlanId = NewType("PlanId", int)
RouteId = NewType("RouteId", int)
StopId = NewType("StopId", int)
