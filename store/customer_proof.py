"""What a customer may see of the proof that closed their stop: the driver's note, and the
first photo where the organisation shares proof photos (``orgs.share_proof_photo``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row, scalar_row

from schemas.ids import OrgId, StopId
from store.rows import fetch_one


@dataclass(frozen=True)
class DeliveredProof:
    """The customer-facing part of a stop's proof; ``photo_sha256`` only where shared."""

    notes: str | None
    photo_sha256: str | None


async def delivered_proof(
    conn: AsyncConnection[Any], org_id: OrgId, stop_id: StopId
) -> DeliveredProof | None:
    """The note of the proof that delivered ``stop_id`` and, when the organisation shares
    proof photos, its first photo's SHA-256; None when the stop has no delivered proof."""
    return await fetch_one(
        conn,
        class_row(DeliveredProof),
        "SELECT p.notes,"
        " CASE WHEN o.share_proof_photo THEN ("
        "   SELECT i.sha256 FROM proof_images i"
        "   WHERE i.proof_id = p.id AND i.kind = 'photo' ORDER BY i.position LIMIT 1"
        " ) END AS photo_sha256"
        " FROM proofs p JOIN orgs o ON o.id = p.org_id"
        " WHERE p.org_id = %s AND p.stop_id = %s AND p.outcome = 'delivered'",
        (org_id, stop_id),
    )


async def shares_photo(conn: AsyncConnection[Any], org_id: OrgId) -> bool:
    """Whether the organisation shows its proof photos to customers."""
    shared = await fetch_one(
        conn, scalar_row, "SELECT share_proof_photo FROM orgs WHERE id = %s", (org_id,)
    )
    return bool(shared)


async def set_shares_photo(conn: AsyncConnection[Any], org_id: OrgId, shared: bool) -> None:
    """Turn the sharing of proof photos with customers on or off."""
    await conn.execute("UPDATE orgs SET share_proof_photo = %s WHERE id = %s", (shared, org_id))
