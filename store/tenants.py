"""Organisations, API keys, drivers, devices and vehicles.

Secrets never reach this module in clear: callers pass the SHA-256 of a token (see
``app.auth``), and lookups compare hashes. Every read is scoped by ``org_id``.
"""

from __future__ import annotations

from psycopg import AsyncConnection

from schemas.auth import ApiPrincipal, DevicePrincipal, Role
from schemas.ids import ApiKeyId, DeviceId, DriverId, OrgId, VehicleId
from store.db import returned


async def create_org(conn: AsyncConnection, name: str, timezone: str = "UTC") -> OrgId:
    """Create an organisation and return its id."""
    row = await (
        await conn.execute(
            "INSERT INTO orgs (name, timezone) VALUES (%s, %s) RETURNING id", (name, timezone)
        )
    ).fetchone()
    row = returned(row)
    return OrgId(row[0])


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
) -> ApiKeyId:
    """Store a new API key (its hash only) and return its id."""
    row = await (
        await conn.execute(
            "INSERT INTO api_keys (org_id, name, role, token_hash, token_prefix)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (org_id, name, role, token_hash, token_prefix),
        )
    ).fetchone()
    row = returned(row)
    return ApiKeyId(row[0])


async def find_api_key(conn: AsyncConnection, token_hash: bytes) -> ApiPrincipal | None:
    """The principal of an unrevoked API key with this hash, or None."""
    row = await (
        await conn.execute(
            "SELECT org_id, id, role FROM api_keys WHERE token_hash = %s AND revoked_at IS NULL",
            (token_hash,),
        )
    ).fetchone()
    if row is None:
        return None
    return ApiPrincipal(org_id=OrgId(row[0]), key_id=ApiKeyId(row[1]), role=row[2])


async def revoke_api_key(conn: AsyncConnection, org_id: OrgId, key_id: ApiKeyId) -> bool:
    """Revoke a key of ``org_id``; False when no such unrevoked key exists."""
    cursor = await conn.execute(
        "UPDATE api_keys SET revoked_at = now()"
        " WHERE id = %s AND org_id = %s AND revoked_at IS NULL",
        (key_id, org_id),
    )
    return cursor.rowcount == 1


async def create_vehicle(
    conn: AsyncConnection, org_id: OrgId, *, name: str, external_ref: str | None = None
) -> VehicleId:
    """Create a vehicle of ``org_id`` and return its id."""
    row = await (
        await conn.execute(
            "INSERT INTO vehicles (org_id, name, external_ref) VALUES (%s, %s, %s) RETURNING id",
            (org_id, name, external_ref),
        )
    ).fetchone()
    row = returned(row)
    return VehicleId(row[0])


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
    row = await (
        await conn.execute(
            "INSERT INTO drivers (org_id, name, phone, external_ref, vehicle_id)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (org_id, name, phone, external_ref, vehicle_id),
        )
    ).fetchone()
    row = returned(row)
    return DriverId(row[0])


async def list_drivers(conn: AsyncConnection, org_id: OrgId) -> list[tuple[DriverId, str]]:
    """Every driver of ``org_id`` as ``(id, name)``, by id."""
    cursor = await conn.execute(
        "SELECT id, name FROM drivers WHERE org_id = %s ORDER BY id", (org_id,)
    )
    return [(DriverId(r[0]), r[1]) for r in await cursor.fetchall()]


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
    row = await (
        await conn.execute(
            "INSERT INTO devices (org_id, driver_id, name, token_hash, token_prefix)"
            " SELECT org_id, id, %s, %s, %s FROM drivers WHERE id = %s AND org_id = %s"
            " RETURNING id",
            (name, token_hash, token_prefix, driver_id, org_id),
        )
    ).fetchone()
    return None if row is None else DeviceId(row[0])


async def find_device(conn: AsyncConnection, token_hash: bytes) -> DevicePrincipal | None:
    """The principal of an unrevoked device token of an active driver, or None."""
    row = await (
        await conn.execute(
            "SELECT d.org_id, d.driver_id, d.id FROM devices d"
            " JOIN drivers r ON r.id = d.driver_id"
            " WHERE d.token_hash = %s AND d.revoked_at IS NULL AND r.active",
            (token_hash,),
        )
    ).fetchone()
    if row is None:
        return None
    return DevicePrincipal(org_id=OrgId(row[0]), driver_id=DriverId(row[1]), device_id=row[2])


async def revoke_device(conn: AsyncConnection, org_id: OrgId, device_id: DeviceId) -> bool:
    """Revoke a device token of ``org_id``; False when no such unrevoked device exists."""
    cursor = await conn.execute(
        "UPDATE devices SET revoked_at = now()"
        " WHERE id = %s AND org_id = %s AND revoked_at IS NULL",
        (device_id, org_id),
    )
    return cursor.rowcount == 1
