"""The driver app's profile read: a driver's name and its organisation's time zone."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row

from schemas.driver_profile import DriverProfile
from schemas.ids import DriverId, OrgId
from store.rows import fetch_one


async def driver_profile(
    conn: AsyncConnection[Any], org_id: OrgId, driver_id: DriverId
) -> DriverProfile | None:
    """``driver_id`` of ``org_id`` with its organisation's zone, or None."""
    return await fetch_one(
        conn,
        class_row(DriverProfile),
        "SELECT d.id AS driver_id, d.name, o.timezone AS time_zone"
        " FROM drivers d JOIN orgs o ON o.id = d.org_id WHERE d.org_id = %s AND d.id = %s",
        (org_id, driver_id),
    )
