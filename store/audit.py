"""The audit log: append-only, hash-chained per organisation.

Each entry holds ``record``, the canonical JSON of what happened (sorted keys, no spaces:
``seq``, ``at``, ``kind``, ``subject``, ``data``), and ``hash = sha256(prev_hash || record)``,
where ``prev_hash`` is the previous entry's hash (32 zero bytes for the first). Changing,
removing or inserting any entry breaks the chain from there on, which :func:`verify` finds.

Appends of one organisation are serialised by a transaction-scoped advisory lock, so the
sequence has no gaps and no forks; the caller's transaction holds it until it commits, which
is also what makes the entry part of the change it records. The table refuses UPDATE, DELETE
and TRUNCATE (a trigger), so only someone able to switch triggers off can alter it — and the
chain is there for exactly that case.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import class_row, dict_row, scalar_row

from schemas.ids import OrgId
from schemas.proofs import AuditCheck
from store.rows import fetch_all, fetch_one

GENESIS: Final = bytes(32)
_ENCODER: Final = msgspec.json.Encoder(order="sorted")


class AuditRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What one entry's ``record`` says."""

    seq: int
    at: str
    kind: str
    subject: str
    data: dict[str, Any]


_RECORD: Final = msgspec.json.Decoder(AuditRecord)


def chain_hash(prev_hash: bytes, record: bytes) -> bytes:
    """The hash of an entry: SHA-256 over the previous hash and the entry's record."""
    return hashlib.sha256(prev_hash + record).digest()


async def append(
    conn: AsyncConnection[Any], org_id: OrgId, kind: str, subject: str, data: dict[str, Any]
) -> int:
    """Append an entry to ``org_id``'s chain in the caller's transaction; returns its ``seq``.

    ``kind`` is what happened (``stop.delivered``, ``proof.captured``), ``subject`` what it
    happened to (``stop:42``), ``data`` any JSON object.
    """
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('audit:' || %s::text, 0))", (org_id,)
        )
        last = await fetch_one(
            conn,
            dict_row,
            "SELECT seq, hash FROM audit_log WHERE org_id = %s ORDER BY seq DESC LIMIT 1",
            (org_id,),
        )
        seq, prev_hash = (1, GENESIS) if last is None else (last["seq"] + 1, bytes(last["hash"]))
        at = datetime.now(UTC)
        record = _ENCODER.encode(
            AuditRecord(seq=seq, at=at.isoformat(), kind=kind, subject=subject, data=data)
        )
        await conn.execute(
            "INSERT INTO audit_log (org_id, seq, at, kind, subject, record, prev_hash, hash)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                org_id,
                seq,
                at,
                kind,
                subject,
                record.decode(),
                prev_hash,
                chain_hash(prev_hash, record),
            ),
        )
    return seq


@dataclass(frozen=True)
class _Row:
    seq: int
    at: datetime
    kind: str
    subject: str
    record: str
    prev_hash: bytes
    hash: bytes


async def verify(conn: AsyncConnection[Any], org_id: OrgId) -> AuditCheck:
    """Walk ``org_id``'s chain from its first entry and say whether it holds, and where not."""
    expected_prev = GENESIS
    expected_seq = 1
    count = 0
    async with (
        conn.transaction(),
        conn.cursor(name=f"audit_{org_id}", row_factory=class_row(_Row)) as cursor,
    ):
        await cursor.execute(
            "SELECT seq, at, kind, subject, record, prev_hash, hash FROM audit_log"
            " WHERE org_id = %s ORDER BY seq",
            (org_id,),
        )
        async for row in cursor:
            problem = _check(row, expected_seq, expected_prev)
            if problem is not None:
                return AuditCheck(
                    org_id=org_id, ok=False, entries=count, first_bad_seq=row.seq, reason=problem
                )
            count += 1
            expected_seq = row.seq + 1
            expected_prev = bytes(row.hash)
    return AuditCheck(org_id=org_id, ok=True, entries=count)


def _check(row: _Row, seq: int, prev_hash: bytes) -> str | None:
    """Why ``row`` breaks the chain, or None when it holds."""
    if row.seq != seq:
        return f"expected entry {seq} next, got {row.seq} (an entry was removed)"
    if bytes(row.prev_hash) != prev_hash:
        return "its prev_hash is not the previous entry's hash"
    record = row.record.encode()
    if chain_hash(prev_hash, record) != bytes(row.hash):
        return "its hash does not match its record (the record or the hash was changed)"
    try:
        said = _RECORD.decode(record)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return "its record is not an audit record"
    if (said.seq, said.kind, said.subject) != (row.seq, row.kind, row.subject):
        return "its columns differ from its record"
    if said.at != row.at.astimezone(UTC).isoformat():
        return "its time differs from its record"
    return None


async def orgs_with_entries(conn: AsyncConnection[Any]) -> list[OrgId]:
    """Every organisation that has an audit chain."""
    rows = await fetch_all(
        conn, scalar_row, "SELECT DISTINCT org_id FROM audit_log ORDER BY org_id"
    )
    return [OrgId(org_id) for org_id in rows]
