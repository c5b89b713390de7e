"""The lastmile command: help, and the admin commands against the test database."""

from __future__ import annotations

import os
import subprocess
import sys


def lastmile(*args: str, database_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if database_url is not None:
        env["LASTMILE_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "app", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_help_lists_the_commands() -> None:
    """--help names serve, worker, migrate and the admin groups."""
    result = lastmile("--help")
    assert result.returncode == 0
    for command in ("serve", "worker", "migrate", "org", "apikey", "driver"):
        assert command in result.stdout


def test_admin_commands_create_an_org_a_key_and_a_driver(database_url: str) -> None:
    """org create, apikey create and driver create print ids and tokens that work."""
    org = lastmile("org", "create", "Acme Parcels", database_url=database_url)
    assert org.returncode == 0, org.stderr
    org_id = org.stdout.strip()
    key = lastmile(
        "apikey", "create", "--org", org_id, "--role", "dispatcher", database_url=database_url
    )
    assert key.returncode == 0, key.stderr
    assert key.stdout.startswith("lmk_")
    driver = lastmile(
        "driver", "create", "--org", org_id, "--name", "Ana", database_url=database_url
    )
    assert driver.returncode == 0, driver.stderr
    lines = driver.stdout.splitlines()
    assert lines[0].startswith("driver ")
    assert lines[1].startswith("device token lmd_")


def test_admin_commands_reject_unknown_organisations(database_url: str) -> None:
    """Creating a key for an organisation that does not exist fails with a clear message."""
    result = lastmile(
        "apikey", "create", "--org", "999999", "--role", "admin", database_url=database_url
    )
    assert result.returncode == 2
    assert "no organisation 999999" in result.stderr


def test_a_bad_setting_names_the_variable() -> None:
    """A malformed LASTMILE_* value stops the command and names the variable."""
    env = dict(os.environ, LASTMILE_PING_SHARDS="zero")
    result = subprocess.run(
        [sys.executable, "-m", "app", "migrate"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2
    assert "LASTMILE_PING_SHARDS" in result.stderr


def test_revoked_key_and_device_are_listed_as_revoked_and_no_longer_authenticate(
    database_url: str,
) -> None:
    """apikey revoke and driver revoke-device mark the credential revoked; lookups then miss."""
    import asyncio

    import psycopg

    from app.auth import hash_token
    from store import tenants

    org_id = lastmile("org", "create", "Revokers", database_url=database_url).stdout.strip()
    key = lastmile(
        "apikey", "create", "--org", org_id, "--role", "admin", database_url=database_url
    ).stdout.strip()
    listed = lastmile("apikey", "list", "--org", org_id, database_url=database_url)
    assert listed.returncode == 0, listed.stderr
    key_id, role, prefix, *_ = listed.stdout.splitlines()[0].split("\t")
    assert (role, key.startswith(prefix.rstrip("."))) == ("admin", True)
    assert key not in listed.stdout
    revoked = lastmile("apikey", "revoke", "--org", org_id, key_id, database_url=database_url)
    assert revoked.returncode == 0, revoked.stderr
    again = lastmile("apikey", "revoke", "--org", org_id, key_id, database_url=database_url)
    assert again.returncode == 2
    assert f"no active API key {key_id}" in again.stderr
    assert (
        "revoked" in lastmile("apikey", "list", "--org", org_id, database_url=database_url).stdout
    )

    driver = lastmile(
        "driver", "create", "--org", org_id, "--name", "Bo", database_url=database_url
    ).stdout.splitlines()
    driver_id = driver[0].split()[1]
    token = driver[1].split()[-1]
    devices = lastmile(
        "driver", "devices", "--org", org_id, "--driver", driver_id, database_url=database_url
    )
    device_id = devices.stdout.splitlines()[0].split("\t")[0]
    other_org = lastmile("org", "create", "Others", database_url=database_url).stdout.strip()
    refused = lastmile(
        "driver", "revoke-device", "--org", other_org, device_id, database_url=database_url
    )
    assert refused.returncode == 2
    done = lastmile(
        "driver", "revoke-device", "--org", org_id, device_id, database_url=database_url
    )
    assert done.returncode == 0, done.stderr

    async def lookups() -> tuple[object, object]:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            return (
                await tenants.find_api_key(conn, hash_token(key)),
                await tenants.find_device(conn, hash_token(token)),
            )

    assert asyncio.run(lookups()) == (None, None)
