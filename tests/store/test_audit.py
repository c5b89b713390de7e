"""The audit log: append-only, hash-chained per organisation, and tampering is found."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from schemas.ids import OrgId
from store import audit, tenants


async def new_org(db: psycopg.AsyncConnection) -> OrgId:
    return await tenants.create_org(db, f"audit-{id(db)}-{asyncio.get_running_loop().time()}")


async def fill(db: psycopg.AsyncConnection, org_id: OrgId, n: int) -> None:
    for i in range(n):
        await audit.append(db, org_id, "stop.delivered", f"stop:{i}", {"n": i, "note": "é"})


async def test_an_untouched_chain_verifies(db: psycopg.AsyncConnection) -> None:
    """Entries appended one after another chain up, and the check walks all of them."""
    org_id = await new_org(db)
    await fill(db, org_id, 5)
    check = await audit.verify(db, org_id)
    assert (check.ok, check.entries, check.first_bad_seq) == (True, 5, None)


async def test_chains_are_per_organisation_and_concurrent_appends_leave_no_gap(
    database_url: str, db: psycopg.AsyncConnection
) -> None:
    """Twenty appends at once on separate connections give seq 1..20, one chain per org."""
    org_a, org_b = await new_org(db), await new_org(db)

    async def one(org_id: OrgId, i: int) -> int:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            return await audit.append(conn, org_id, "proof.captured", f"stop:{i}", {})

    seqs = await asyncio.gather(*(one(org_a, i) for i in range(20)), one(org_b, 0))
    assert sorted(seqs[:20]) == list(range(1, 21))
    assert seqs[20] == 1
    assert (await audit.verify(db, org_a)).ok
    assert (await audit.verify(db, org_b)).entries == 1


async def test_the_table_refuses_updates_and_deletes(db: psycopg.AsyncConnection) -> None:
    """UPDATE and DELETE on the audit log are refused by the database itself."""
    org_id = await new_org(db)
    await fill(db, org_id, 1)
    with pytest.raises(psycopg.errors.RaiseException):
        await db.execute("UPDATE audit_log SET kind = 'x' WHERE org_id = %s", (org_id,))
    with pytest.raises(psycopg.errors.RaiseException):
        await db.execute("DELETE FROM audit_log WHERE org_id = %s", (org_id,))


async def tampering(db: psycopg.AsyncConnection, statement: str, org_id: OrgId) -> None:
    """Run ``statement`` with triggers off, as someone with the database's superuser would."""
    async with db.transaction():
        await db.execute("SET LOCAL session_replication_role = replica")
        await db.execute(statement, (org_id,))


async def test_an_altered_record_is_found(db: psycopg.AsyncConnection) -> None:
    """Changing one entry's record in the database breaks the chain at that entry."""
    org_id = await new_org(db)
    await fill(db, org_id, 6)
    await tampering(
        db,
        "UPDATE audit_log SET record = replace(record, 'stop:3', 'stop:9')"
        " WHERE org_id = %s AND seq = 4",
        org_id,
    )
    check = await audit.verify(db, org_id)
    assert (check.ok, check.first_bad_seq, check.entries) == (False, 4, 3)
    assert check.reason is not None
    assert "hash does not match" in check.reason


async def test_a_rehashed_forgery_is_found_at_the_next_entry(db: psycopg.AsyncConnection) -> None:
    """Rewriting a record and its own hash still breaks the link to the entry after it."""
    org_id = await new_org(db)
    await fill(db, org_id, 4)
    await tampering(
        db,
        "UPDATE audit_log SET record = replace(record, 'stop:1', 'stop:7'),"
        " hash = sha256(prev_hash || convert_to(replace(record, 'stop:1', 'stop:7'), 'UTF8'))"
        " WHERE org_id = %s AND seq = 2",
        org_id,
    )
    check = await audit.verify(db, org_id)
    assert (check.ok, check.first_bad_seq) == (False, 2)
    assert check.reason == "its columns differ from its record"
    await tampering(
        db,
        "UPDATE audit_log SET subject = 'stop:7' WHERE org_id = %s AND seq = 2",
        org_id,
    )
    check = await audit.verify(db, org_id)
    assert (check.ok, check.first_bad_seq) == (False, 3)
    assert check.reason == "its prev_hash is not the previous entry's hash"


async def test_a_removed_entry_is_found(db: psycopg.AsyncConnection) -> None:
    """Deleting an entry from the middle leaves a gap the check names."""
    org_id = await new_org(db)
    await fill(db, org_id, 5)
    await tampering(db, "DELETE FROM audit_log WHERE org_id = %s AND seq = 3", org_id)
    check = await audit.verify(db, org_id)
    assert (check.ok, check.first_bad_seq) == (False, 4)
    assert check.reason is not None
    assert "expected entry 3" in check.reason
