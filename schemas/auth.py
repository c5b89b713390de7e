"""Who is calling: the principals that API keys, device tokens and tracking tokens resolve to."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

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


class ApiKeyIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``POST /v1/api-keys``: a new key for an integration or a person."""

    name: Annotated[str, Meta(min_length=1, max_length=200)]
    role: Role


class ApiKeyCreated(msgspec.Struct, frozen=True, kw_only=True):
    """A new API key: ``token`` is shown in this answer only (it is stored hashed); a replay
    of the same idempotent request answers ``token: null``."""

    id: ApiKeyId
    name: str
    role: Role
    token: str | None
    token_prefix: str


class ApiKeys(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /v1/api-keys``: every key of the organisation, revoked ones too, oldest first."""

    api_keys: list[Credential]


class Devices(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /v1/drivers/{id}/devices``: the driver's device tokens, revoked ones too."""

    devices: list[Credential]


class SocketTicket(msgspec.Struct, frozen=True, kw_only=True):
    """``POST /v1/socket-tickets``: open a socket with ``?ticket=`` within ``expires_in_s``;
    it works once."""

    ticket: str
    expires_in_s: int
