"""``lastmile audit verify``: the command line's check of the audit chains."""

from __future__ import annotations

import psycopg

from store import audit, tenants
from tests.app.test_cli import lastmile
from tests.store.test_audit import tampering


async def test_audit_verify_reports_each_chain_and_fails_on_a_broken_one(
    database_url: str, db: psycopg.AsyncConnection
) -> None:
    """An intact chain prints ok and exits 0; after a row is altered it names the entry, exit 1."""
    org_id = await tenants.create_org(db, "audited")
    for n in range(3):
        await audit.append(db, org_id, "stop.delivered", f"stop:{n}", {"n": n})
    intact = lastmile("audit", "verify", "--org", str(org_id), database_url=database_url)
    assert intact.returncode == 0, intact.stderr
    assert intact.stdout.strip() == f"org {org_id}: ok, 3 entries"
    await tampering(
        db, "UPDATE audit_log SET hash = sha256(hash) WHERE org_id = %s AND seq = 2", org_id
    )
    broken = lastmile("audit", "verify", database_url=database_url)
    assert broken.returncode == 1
    assert f"org {org_id}: BROKEN at entry 2:" in broken.stdout
