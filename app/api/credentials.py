"""Credentials an administrator manages: API keys (admins) and drivers' device tokens (admins and
dispatchers), listed without their secrets, created with the secret shown once, revoked.

A revocation commits, then reaches every process through Redis (:func:`app.revocation.announce`):
the token is refused at once everywhere, not when each process's cache entry expires.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, cast

import msgspec
from psycopg import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response

from app import revocation, tickets
from app.auth import (
    ADMINS,
    API_KEY_PREFIX,
    FLEET_WRITERS,
    READERS,
    actor_of,
    hash_token,
    new_token,
    token_prefix,
)
from app.errors import InvalidField, NotFound
from app.http import answer, decode, encode, path_id, request_body, resources_of
from app.idempotency import Answer, run_create
from app.resources import Resources
from schemas.auth import (
    ApiKeyCreated,
    ApiKeyIn,
    ApiKeys,
    Credential,
    Devices,
    KeyRotateIn,
    Role,
    SocketTicket,
)
from schemas.ids import ApiKeyId, DriverId, OrgId
from store import audit, fleet, tenants


async def api_keys(request: Request) -> Response:
    """``GET`` (list) and ``POST`` (create) ``/v1/api-keys``: admins only."""
    principal = await resources_of(request).auth.require_api_key(request, ADMINS)
    if request.method == "GET":
        async with resources_of(request).pool.connection() as conn:
            found = await tenants.list_api_keys(conn, principal.org_id)
        return answer(ApiKeys(api_keys=found))
    body = await request_body(request)
    wanted = decode(body, request.headers.get("content-type"), ApiKeyIn)
    if wanted.expires_at is not None and wanted.expires_at <= datetime.now(UTC):
        raise InvalidField("expires_at", f"expected a time to come, got {wanted.expires_at}")

    async def command(conn: AsyncConnection) -> Answer:
        created = await _new_key(conn, principal.org_id, wanted)
        await audit.append(
            conn,
            principal.org_id,
            "api_key.created",
            f"api_key:{created.id}",
            {
                "name": created.name,
                "role": created.role,
                "expires_at": None if created.expires_at is None else str(created.expires_at),
                "by": actor_of(principal),
            },
        )
        return _created(created)

    return await run_create(request, principal, body, command)


async def rotate_api_key(request: Request) -> Response:
    """``POST /v1/api-keys/{key_id}/rotate``: a successor with the same name and role (shown
    once); the old key is revoked, or keeps working ``grace_s`` more seconds."""
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, ADMINS)
    key_id = ApiKeyId(path_id(request, "key_id"))
    body = await request_body(request)
    wanted = decode(body, request.headers.get("content-type"), KeyRotateIn, empty_ok=True)
    old_hash: list[bytes] = []

    async def command(conn: AsyncConnection) -> Answer:
        old = await tenants.get_api_key(conn, principal.org_id, key_id)
        if old is None or old.revoked_at is not None:
            raise NotFound(f"no active API key {key_id} in this organisation")
        if wanted.grace_s == 0:
            token_hash = await tenants.revoke_api_key(conn, principal.org_id, key_id)
        else:
            token_hash = await tenants.expire_api_key(
                conn, principal.org_id, key_id, wanted.grace_s
            )
        old_hash.extend([] if token_hash is None else [token_hash])
        role = cast(Role, old.role)  # an API key's: admin, dispatcher or integration
        successor = ApiKeyIn(name=old.name, role=role, expires_at=old.expires_at)
        created = await _new_key(conn, principal.org_id, successor)
        await audit.append(
            conn,
            principal.org_id,
            "api_key.rotated",
            f"api_key:{key_id}",
            {"successor": created.id, "grace_s": wanted.grace_s, "by": actor_of(principal)},
        )
        return _created(created)

    answered = await run_create(request, principal, body, command)
    settings = resources.settings
    if old_hash and wanted.grace_s == 0:
        await announce_revoked(resources, "key", old_hash)
    elif old_hash:  # it still works, with an expiry every process must see
        await revocation.evict(resources.redis, settings.redis_prefix, old_hash)
    return answered


async def _new_key(conn: AsyncConnection, org_id: OrgId, wanted: ApiKeyIn) -> ApiKeyCreated:
    token = new_token(API_KEY_PREFIX)
    key_id = await tenants.create_api_key(
        conn,
        org_id,
        name=wanted.name,
        role=wanted.role,
        token_hash=hash_token(token),
        token_prefix=token_prefix(token),
        expires_at=wanted.expires_at,
    )
    return ApiKeyCreated(
        id=key_id,
        name=wanted.name,
        role=wanted.role,
        token=token,
        token_prefix=token_prefix(token),
        expires_at=wanted.expires_at,
    )


def _created(shown: ApiKeyCreated) -> Answer:
    """The new key's answer, and its replay's (without the secret)."""
    return Answer(201, encode(shown), encode(msgspec.structs.replace(shown, token=None)))


async def revoke_api_key(request: Request) -> Response:
    """``POST /v1/api-keys/{key_id}/revoke``: refused everywhere at once; idempotent."""
    return await _revoke(
        request, ADMINS, "key", "API key", tenants.revoke_api_key, tenants.get_api_key
    )


async def devices(request: Request) -> Response:
    """``GET /v1/drivers/{driver_id}/devices``: the driver's device tokens, never the secrets."""
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, FLEET_WRITERS)
    driver_id = DriverId(path_id(request, "driver_id"))
    async with resources.pool.connection() as conn:
        if await fleet.get(conn, fleet.DRIVERS, principal.org_id, driver_id) is None:
            raise NotFound(f"no driver {driver_id} in this organisation")
        found = await tenants.list_devices(conn, principal.org_id, driver_id)
    return answer(Devices(devices=found))


async def revoke_device(request: Request) -> Response:
    """``POST /v1/devices/{device_id}/revoke``: refused everywhere at once; idempotent."""
    return await _revoke(
        request, FLEET_WRITERS, "device", "device", tenants.revoke_device, tenants.get_device
    )


Revoke = Callable[[AsyncConnection, OrgId, Any], Awaitable[bytes | None]]
Read = Callable[[AsyncConnection, OrgId, Any], Awaitable[Credential | None]]


async def _revoke(
    request: Request,
    roles: tuple[Role, ...],
    kind: revocation.CredentialKind,
    noun: str,
    revoke: Revoke,
    read: Read,
) -> Response:
    """Revoke the credential of the path's id (``key_id`` or ``device_id``), tell every
    process, answer it as listed (404 when the organisation has no such credential)."""
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, roles)
    credential_id = path_id(request, f"{kind}_id")
    async with resources.pool.connection() as conn, conn.transaction():
        token_hash = await revoke(conn, principal.org_id, credential_id)
        found = await read(conn, principal.org_id, credential_id)
        if token_hash is not None:
            subject = "api_key" if kind == "key" else kind
            await audit.append(
                conn,
                principal.org_id,
                f"{subject}.revoked",
                f"{subject}:{credential_id}",
                {"by": actor_of(principal)},
            )
    if found is None:
        raise NotFound(f"no {noun} {credential_id} in this organisation")
    if token_hash is not None:
        await announce_revoked(resources, kind, [token_hash])
    return answer(found)


async def driver_deactivated(resources: Resources, org_id: OrgId, driver_id: DriverId) -> None:
    """A driver made inactive: its devices' tokens are refused everywhere at once."""
    async with resources.pool.connection() as conn:
        hashes = await tenants.device_hashes(conn, org_id, driver_id)
    await announce_revoked(resources, "device", hashes)


async def driver_reactivated(resources: Resources, org_id: OrgId, driver_id: DriverId) -> None:
    """A driver active again: its unrevoked devices' tombstones go (PostgreSQL accepts them)."""
    async with resources.pool.connection() as conn:
        hashes = await tenants.device_hashes(conn, org_id, driver_id)
    await revocation.unrevoke(resources.redis, resources.settings.redis_prefix, "device", hashes)


async def announce_revoked(
    resources: Resources, kind: revocation.CredentialKind, hashes: list[bytes]
) -> None:
    """Tell every process that these credentials are revoked (see :mod:`app.revocation`)."""
    settings = resources.settings
    await revocation.announce(
        resources.redis, settings.redis_prefix, kind, hashes, settings.auth_fallback_ttl_s
    )


async def socket_ticket(request: Request) -> Response:
    """``POST /v1/socket-tickets``: a ticket for a page's socket, for the calling API key."""
    resources = resources_of(request)
    await resources.auth.require_api_key(request, READERS)
    return await _ticket(resources, request.state.credential_kind, request)


async def driver_socket_ticket(request: Request) -> Response:
    """``POST /v1/driver/socket-tickets``: a ticket for the driver app's socket."""
    resources = resources_of(request)
    await resources.auth.require_device(request)
    return await _ticket(resources, "device", request)


async def _ticket(
    resources: Resources, kind: revocation.CredentialKind, request: Request
) -> Response:
    ticket = await tickets.issue(
        resources.redis, resources.settings.redis_prefix, kind, request.state.token_hash
    )
    return answer(SocketTicket(ticket=ticket, expires_in_s=tickets.TICKET_TTL_S), status=201)
