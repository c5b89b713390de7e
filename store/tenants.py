"""Organisations, API keys, drivers and devices.

Secrets never reach this module in clear: callers pass the SHA-256 of a token (see
``app.auth``), and lookups compare hashes. Every read is scoped by ``org_id``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from psycopg import AsyncConnection
from psycopg.rows import class_row, scalar_row

from schemas.auth import ApiPrincipal, Credential, DevicePrincipal, Role
from schemas.ids import ApiKeyId, DeviceId, DriverId, OrgId, VehicleId
from schemas.organisation import Organisation
from store.rows import fetch_all, fetch_one, returned

_ORGANISATION: Final = (
    "id, name, timezone AS time_zone, locale, default_service_s, auto_resequence, summary_emails"
)


async def create_org(conn: AsyncConnection, name: str, timezone: str = "UTC") -> OrgId:
    """Create an organisation and return its id."""
    org_id = await fetch_one(
        conn,
        scalar_row,
        "INSERT INTO orgs (name, timezone) VALUES (%s, %s) RETURNING id",
        (name, timezone),
    )
    return OrgId(returned(org_id))


async def organisation(conn: AsyncConnection, org_id: OrgId) -> Organisation | None:
    """The organisation's settings, or None."""
    return await fetch_one(
        conn,
        class_row(Organisation),
        f"SELECT {_ORGANISATION} FROM orgs WHERE id = %s",
        (org_id,),
    )


async def update_organisation(
    conn: AsyncConnection, org_id: OrgId, wanted: Organisation
) -> Organisation | None:
    """Store the organisation's settings; as stored, or None when it is gone."""
    return await fetch_one(
        conn,
        class_row(Organisation),
        "UPDATE orgs SET name = %s, timezone = %s, locale = %s, default_service_s = %s,"
        f" auto_resequence = %s, summary_emails = %s WHERE id = %s RETURNING {_ORGANISATION}",
        (
            wanted.name,
            wanted.time_zone,
            wanted.locale,
            wanted.default_service_s,
            wanted.auto_resequence,
            wanted.summary_emails,
            org_id,
        ),
    )


async def auto_resequence(conn: AsyncConnection, org_id: OrgId) -> bool:
    """Whether the organisation re-sequences late routes by itself."""
    found = await fetch_one(
        conn, scalar_row, "SELECT auto_resequence FROM orgs WHERE id = %s", (org_id,)
    )
    return bool(found)


async def org_ids(conn: AsyncConnection) -> list[OrgId]:
    """Every organisation's id, in order."""
    rows = await fetch_all(conn, scalar_row, "SELECT id FROM orgs ORDER BY id")
    return [OrgId(r) for r in rows]


async def org_exists(conn: AsyncConnection, org_id: OrgId) -> bool:
    """Whether organisation ``org_id`` exists."""
    row = await (await conn.execute("SELECT 1 FROM orgs WHERE id = %s", (org_id,))).fetchone()
    return row is not None


async def create_api_key(
    conn: AsyncConnection,
    org_id: OrgId,
    *,
    name: str,
    role: Role,
    token_hash: bytes,
    token_prefix: str,
    expires_at: datetime | None = None,
) -> ApiKeyId:
    """Store a new API key (its hash only) and return its id."""
    key_id = await fetch_one(
        conn,
        scalar_row,
        "INSERT INTO api_keys (org_id, name, role, token_hash, token_prefix, expires_at)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (org_id, name, role, token_hash, token_prefix, expires_at),
    )
    return ApiKeyId(returned(key_id))


async def find_api_key(conn: AsyncConnection, token_hash: bytes) -> ApiPrincipal | None:
    """The principal of an unrevoked, unexpired API key with this hash, or None; marks the key
    used (at most once a minute)."""
    return await fetch_one(
        conn,
        class_row(ApiPrincipal),
        "WITH k AS (SELECT id, org_id, role, expires_at, last_used_at FROM api_keys"
        "   WHERE token_hash = %s AND revoked_at IS NULL"
        "   AND (expires_at IS NULL OR expires_at > now())),"
        " used AS (UPDATE api_keys SET last_used_at = now() WHERE id IN (SELECT id FROM k"
        "   WHERE last_used_at IS NULL OR last_used_at < now() - interval '1 minute'))"
        " SELECT org_id, id AS key_id, role, expires_at FROM k",
        (token_hash,),
    )


async def revoke_api_key(conn: AsyncConnection, org_id: OrgId, key_id: ApiKeyId) -> bytes | None:
    """Revoke a key of ``org_id``: its token's hash (for :func:`app.revocation.announce`), or
    None when no such unrevoked key exists."""
    return await fetch_one(
        conn,
        scalar_row,
        "UPDATE api_keys SET revoked_at = now()"
        " WHERE id = %s AND org_id = %s AND revoked_at IS NULL RETURNING token_hash",
        (key_id, org_id),
    )


async def create_driver(
    conn: AsyncConnection,
    org_id: OrgId,
    *,
    name: str,
    phone: str | None = None,
    external_ref: str | None = None,
    vehicle_id: VehicleId | None = None,
) -> DriverId:
    """Create a driver of ``org_id`` and return its id."""
    driver_id = await fetch_one(
        conn,
        scalar_row,
        "INSERT INTO drivers (org_id, name, phone, external_ref, vehicle_id)"
        " VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (org_id, name, phone, external_ref, vehicle_id),
    )
    return DriverId(returned(driver_id))


async def list_drivers(conn: AsyncConnection, org_id: OrgId) -> list[tuple[DriverId, str]]:
    """Every driver of ``org_id`` as ``(id, name)``, by id."""
    cursor = await conn.execute(
        "SELECT id, name FROM drivers WHERE org_id = %s ORDER BY id", (org_id,)
    )
    return [(DriverId(driver_id), name) for driver_id, name in await cursor.fetchall()]


async def create_device(
    conn: AsyncConnection,
    org_id: OrgId,
    driver_id: DriverId,
    *,
    token_hash: bytes,
    token_prefix: str,
    name: str = "phone",
) -> DeviceId | None:
    """Register a device for a driver of ``org_id``; None if the driver is not in that org."""
    device_id = await fetch_one(
        conn,
        scalar_row,
        "INSERT INTO devices (org_id, driver_id, name, token_hash, token_prefix)"
        " SELECT org_id, id, %s, %s, %s FROM drivers WHERE id = %s AND org_id = %s"
        " RETURNING id",
        (name, token_hash, token_prefix, driver_id, org_id),
    )
    return None if device_id is None else DeviceId(device_id)


async def find_device(conn: AsyncConnection, token_hash: bytes) -> DevicePrincipal | None:
    """The principal of an unrevoked device token of an active driver, or None."""
    return await fetch_one(
        conn,
        class_row(DevicePrincipal),
        "SELECT d.org_id, d.driver_id, d.id AS device_id FROM devices d"
        " JOIN drivers r ON r.id = d.driver_id"
        " WHERE d.token_hash = %s AND d.revoked_at IS NULL AND r.active",
        (token_hash,),
    )


async def revoke_device(conn: AsyncConnection, org_id: OrgId, device_id: DeviceId) -> bytes | None:
    """Revoke a device token of ``org_id``: its hash, or None when no such unrevoked device
    exists."""
    return await fetch_one(
        conn,
        scalar_row,
        "UPDATE devices SET revoked_at = now()"
        " WHERE id = %s AND org_id = %s AND revoked_at IS NULL RETURNING token_hash",
        (device_id, org_id),
    )


async def device_hashes(conn: AsyncConnection, org_id: OrgId, driver_id: DriverId) -> list[bytes]:
    """The token hashes of a driver's unrevoked devices (what deactivating it revokes)."""
    return await fetch_all(
        conn,
        scalar_row,
        "SELECT token_hash FROM devices WHERE org_id = %s AND driver_id = %s"
        " AND revoked_at IS NULL",
        (org_id, driver_id),
    )


async def list_api_keys(conn: AsyncConnection, org_id: OrgId) -> list[Credential]:
    """Every API key of ``org_id``, revoked ones too, oldest first."""
    return await fetch_all(
        conn,
        class_row(Credential),
        "SELECT id, name, role, token_prefix, created_at, revoked_at, expires_at, last_used_at"
        " FROM api_keys WHERE org_id = %s ORDER BY id",
        (org_id,),
    )


async def get_api_key(conn: AsyncConnection, org_id: OrgId, key_id: ApiKeyId) -> Credential | None:
    """One API key of ``org_id`` as :func:`list_api_keys` shows it, or None."""
    return await fetch_one(
        conn,
        class_row(Credential),
        "SELECT id, name, role, token_prefix, created_at, revoked_at, expires_at, last_used_at"
        " FROM api_keys WHERE org_id = %s AND id = %s",
        (org_id, key_id),
    )


async def get_device(
    conn: AsyncConnection, org_id: OrgId, device_id: DeviceId
) -> Credential | None:
    """One device token of ``org_id`` as :func:`list_devices` shows it, or None."""
    return await fetch_one(
        conn,
        class_row(Credential),
        "SELECT id, name, 'device' AS role, token_prefix, created_at, revoked_at FROM devices"
        " WHERE org_id = %s AND id = %s",
        (org_id, device_id),
    )


async def list_devices(
    conn: AsyncConnection, org_id: OrgId, driver_id: DriverId
) -> list[Credential]:
    """Every device token of a driver of ``org_id``, revoked ones too, oldest first."""
    return await fetch_all(
        conn,
        class_row(Credential),
        "SELECT id, name, 'device' AS role, token_prefix, created_at, revoked_at FROM devices"
        " WHERE org_id = %s AND driver_id = %s ORDER BY id",
        (org_id, driver_id),
    )


async def expire_api_key(
    conn: AsyncConnection, org_id: OrgId, key_id: ApiKeyId, grace_s: int
) -> bytes | None:
    """Let an unrevoked key of ``org_id`` work ``grace_s`` more seconds at most (its expiry is
    brought forward, never pushed back): its token's hash, or None when there is no such key."""
    return await fetch_one(
        conn,
        scalar_row,
        "UPDATE api_keys SET expires_at = LEAST(coalesce(expires_at, 'infinity'),"
        "   now() + make_interval(secs => %s))"
        " WHERE id = %s AND org_id = %s AND revoked_at IS NULL RETURNING token_hash",
        (grace_s, key_id, org_id),
    )
