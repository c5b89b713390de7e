"""``serve --simulate``'s setup across restarts: the same organisation and key, and what a run
that was killed left open ended, not left "live"."""

from __future__ import annotations

import secrets
import stat

import psycopg
from redis.asyncio import Redis

from app.auth import hash_token
from app.cli.simulate import FLEET_EMAIL, simulation_banner, simulation_setup
from app.passwords import verify
from app.settings import Settings
from schemas.ids import OrgId
from store import simulated, tenants, users


async def test_a_restart_keeps_the_key_and_ends_the_day_a_killed_run_left(
    settings: Settings, db: psycopg.AsyncConnection, redis: Redis
) -> None:
    first = await simulation_setup(settings)
    assert first.config.speedup == 1.0
    assert first.config.under_way_h > 0
    assert first.config.streets, "the demo's drivers follow the streets"
    kept = settings.data_dir / "demo" / "simulation.json"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    principal = await tenants.find_api_key(db, hash_token(first.config.api_key))
    assert principal is not None
    org_id = OrgId(principal.org_id)
    assert await simulated.find_org(db) == org_id
    # The fleet's dispatcher signs in to this organisation, with the password the banner shows
    # beside the fleet's map.
    fleet = await users.account(db, FLEET_EMAIL)
    assert fleet is not None
    assert fleet.org_id == org_id
    assert await verify(fleet.password_hash, first.password)
    banner = simulation_banner(settings, first).splitlines()
    at_map = next(n for n, line in enumerate(banner) if "/dispatch#key=" in line)
    assert first.config.api_key in banner[at_map]
    assert FLEET_EMAIL in banner[at_map + 1]
    assert banner[at_map + 1].endswith(first.password)

    # What a killed run leaves: an active simulated driver with a device, and an open order.
    run = secrets.token_hex(3)
    driver_id = await tenants.create_driver(
        db, org_id, name="sim", external_ref=f"sim-{run}-driver-1"
    )
    await tenants.create_device(
        db, org_id, driver_id, token_hash=secrets.token_bytes(32), token_prefix="lmd_x"
    )
    ref = f"sim-{run}-00001"
    await db.execute(
        "INSERT INTO orders (org_id, external_ref, address, lat, lon, day)"
        " VALUES (%s, %s, 'x', 52.5, 13.4, current_date)",
        (org_id, ref),
    )
    entries = "SELECT count(*) FROM audit_log WHERE org_id = %s AND kind = 'simulation.retired'"
    before = await (await db.execute(entries, (org_id,))).fetchone()
    assert before is not None
    second = await simulation_setup(settings)
    assert second.config.api_key == first.config.api_key
    assert second.password == first.password
    row = await (
        await db.execute("SELECT active FROM drivers WHERE id = %s", (driver_id,))
    ).fetchone()
    assert row == (False,)
    revoked = await (
        await db.execute(
            "SELECT revoked_at IS NOT NULL FROM devices WHERE driver_id = %s", (driver_id,)
        )
    ).fetchone()
    assert revoked == (True,)
    order = await (
        await db.execute(
            "SELECT status, cancel_reason FROM orders WHERE org_id = %s AND external_ref = %s",
            (org_id, ref),
        )
    ).fetchone()
    assert order == ("cancelled", simulated.REASON)
    after = await (await db.execute(entries, (org_id,))).fetchone()
    assert after == (before[0] + 1,)

    # A key that no longer works (revoked) is replaced, in the same organisation.
    await db.execute("UPDATE api_keys SET revoked_at = now() WHERE org_id = %s", (org_id,))
    third = await simulation_setup(settings)
    assert third.config.api_key != first.config.api_key
    again = await tenants.find_api_key(db, hash_token(third.config.api_key))
    assert again is not None
    assert again.org_id == org_id
