"""Who is calling: the principals that API keys, device tokens and tracking tokens resolve to."""

from __future__ import annotations

from datetime import datetime
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


class Credential(msgspec.Struct, frozen=True, kw_only=True):
    """An issued API key or device token as an administrator lists it: never the secret."""

    id: int
    """The key's or the device's id (what ``revoke`` takes)."""
    name: str
    role: str
    """The key's role, or ``device`` for a driver's device token."""
    token_prefix: str
    """The first characters of the secret, to tell credentials apart."""
    created_at: datetime
    revoked_at: datetime | None = None
