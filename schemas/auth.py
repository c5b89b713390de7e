"""Who is calling: the principals that API keys, device tokens and tracking tokens resolve to."""

from __future__ import annotations

from typing import Literal

import msgspec

from schemas.ids import ApiKeyId, DeviceId, DriverId, OrgId

Role = Literal["admin", "dispatcher", "integration"]


class DevicePrincipal(msgspec.Struct, frozen=True, kw_only=True):
    """A driver's device: it may write only its own driver's pings and stops."""

    org_id: OrgId
    driver_id: DriverId
    device_id: DeviceId


class ApiPrincipal(msgspec.Struct, frozen=True, kw_only=True):
    """An API key of an organisation, with the role it was issued for."""

    org_id: OrgId
    key_id: ApiKeyId
    role: Role
