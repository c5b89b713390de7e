"""Who is calling: the principals that API keys, device tokens and tracking tokens resolve to."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from schemas.ids import ApiKeyId, DeviceId, DriverId, OrgId, UserId

Role = Literal["admin", "dispatcher", "integration"]


class DevicePrincipal(msgspec.Struct, frozen=True, kw_only=True):
    """A driver's device: it may write only its own driver's pings and stops."""

    org_id: OrgId
    driver_id: DriverId
    device_id: DeviceId


class ApiPrincipal(msgspec.Struct, frozen=True, kw_only=True):
    """An API key of an organisation, with the role it was issued for; or a signed-in user's
    session (``user_id`` set, ``key_id`` None), with the user's role."""

    org_id: OrgId
    key_id: ApiKeyId | None
    role: Role
    expires_at: datetime | None = None
    """After this the key (or the session) is refused (a key issued for a time, or rotated
    out; a session's end)."""
    user_id: UserId | None = None


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
    expires_at: datetime | None = None
    """API keys: refused after this (issued for a time, or rotated out with a grace)."""
    last_used_at: datetime | None = None
    """API keys: when a server last looked the key up (to the minute)."""


class ApiKeyIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``POST /v1/api-keys``: a new key for an integration or a person."""

    name: Annotated[str, Meta(min_length=1, max_length=200)]
    role: Role
    expires_at: Annotated[datetime, Meta(tz=True)] | None = None
    """When the key stops working; none: until it is revoked."""


class KeyRotateIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``POST /v1/api-keys/{id}/rotate`` (the body may be empty)."""

    grace_s: Annotated[int, Meta(ge=0, le=30 * 86_400)] = 0
    """How long the old key keeps working beside its successor (0: it is revoked at once)."""


class ApiKeyCreated(msgspec.Struct, frozen=True, kw_only=True):
    """A new API key: ``token`` is shown in this answer only (it is stored hashed); a replay
    of the same idempotent request answers ``token: null``."""

    id: ApiKeyId
    name: str
    role: Role
    token: str | None
    token_prefix: str
    expires_at: datetime | None = None


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
