"""The simulated fleet's organisation across restarts of ``serve --simulate``.

One organisation holds every run's fleet; a run that ended without retiring its fleet (the
process was killed) would otherwise leave a "live" day nobody drives. :func:`retire_leftovers`
ends what earlier runs left open, in one transaction with an audit entry: their drivers are
made inactive and their devices revoked, their scheduled shifts cancelled, their running routes
cancelled with the open stops taken off, and their open orders cancelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from psycopg import AsyncConnection
from psycopg.rows import scalar_row

from schemas.ids import OrgId
from store import audit
from store.rows import fetch_all, fetch_one

NAME: Final = "Simulated fleet"
"""The organisation's name."""
SIMULATED: Final = "sim-%"
"""What the simulator's ``external_ref`` values start with."""
REASON: Final = "the simulation was restarted"


@dataclass(frozen=True)
class Retired:
    """What :func:`retire_leftovers` ended; ``device_hashes`` for revocation announcements."""

    drivers: int
    routes: int
    orders: int
    device_hashes: list[bytes]


async def find_org(conn: AsyncConnection) -> OrgId | None:
    """The simulated fleet's organisation, if one exists (the oldest)."""
    found = await fetch_one(
        conn, scalar_row, "SELECT id FROM orgs WHERE name = %s ORDER BY id LIMIT 1", (NAME,)
    )
    return None if found is None else OrgId(found)


async def retire_leftovers(conn: AsyncConnection, org_id: OrgId) -> Retired:
    """End what earlier runs left open in ``org_id`` (see the module's docstring)."""
    async with conn.transaction():
        drivers = await fetch_all(
            conn,
            scalar_row,
            "UPDATE drivers SET active = false, updated_at = now()"
            " WHERE org_id = %s AND active AND external_ref LIKE %s RETURNING id",
            (org_id, SIMULATED),
        )
        hashes = await fetch_all(
            conn,
            scalar_row,
            "UPDATE devices SET revoked_at = now() WHERE org_id = %s AND revoked_at IS NULL"
            " AND driver_id = ANY(%s) RETURNING token_hash",
            (org_id, drivers),
        )
        await conn.execute(
            "UPDATE shifts SET status = 'cancelled', updated_at = now()"
            " WHERE org_id = %s AND status = 'scheduled' AND driver_id = ANY(%s)",
            (org_id, drivers),
        )
        routes = await fetch_all(
            conn,
            scalar_row,
            "UPDATE routes SET status = 'cancelled'"
            " WHERE org_id = %s AND status IN ('dispatched', 'started') RETURNING id",
            (org_id,),
        )
        await conn.execute(
            "UPDATE stops SET status = 'removed', updated_at = now()"
            " WHERE org_id = %s AND route_id = ANY(%s) AND status IN ('pending', 'arrived')",
            (org_id, routes),
        )
        orders = await fetch_all(
            conn,
            scalar_row,
            "UPDATE orders SET status = 'cancelled', cancel_reason = %s, cancelled_at = now(),"
            " updated_at = now() WHERE org_id = %s AND external_ref LIKE %s"
            " AND status IN ('pending', 'planned', 'dispatched') RETURNING id",
            (REASON, org_id, SIMULATED),
        )
        if drivers or routes or orders:
            await audit.append(
                conn,
                org_id,
                "simulation.retired",
                f"org:{org_id}",
                {"drivers": drivers, "routes": routes, "orders": orders, "reason": REASON},
            )
    return Retired(len(drivers), len(routes), len(orders), list(hashes))
