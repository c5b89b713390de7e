"""``GET|PUT /v1/settings/customer-proof``: whether customers see their delivery's proof photo.

The tracking page of a delivered order always shows when it was delivered and the driver's
note; the first proof photo only where the organisation turned this on (an admin's choice: the
photo may show more than the parcel). Readers may read it.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app.api.proof_reads import blobs_of, proof_photo_link
from app.auth import ADMINS, READERS
from app.http import answer, decode, request_body, resources_of
from app.resources import Resources
from schemas.customer_proof import CustomerProof
from schemas.ids import OrgId, StopId
from store import customer_proof as store


async def customer_proof(request: Request) -> Response:
    """Read (any reader) or set (admin) whether customers see the proof photo."""
    resources = resources_of(request)
    writing = request.method == "PUT"
    principal = await resources.auth.require_api_key(request, ADMINS if writing else READERS)
    async with resources.pool.connection() as conn:
        if writing:
            wanted = decode(
                await request_body(request), request.headers.get("content-type"), CustomerProof
            )
            await store.set_shares_photo(conn, principal.org_id, wanted.photo)
        return answer(CustomerProof(photo=await store.shares_photo(conn, principal.org_id)))


async def delivered_proof_view(
    resources: Resources, org_id: OrgId, stop_id: StopId
) -> tuple[str | None, str | None]:
    """The driver's note and, where the organisation shares it, a signed link to the first
    photo of the proof that delivered ``stop_id`` (``(None, None)`` without one)."""
    async with resources.pool.connection() as conn:
        proof = await store.delivered_proof(conn, org_id, stop_id)
    if proof is None:
        return None, None
    photo_url = None
    if proof.photo_sha256 is not None:
        settings = resources.settings
        photo_url = proof_photo_link(blobs_of(settings), settings, proof.photo_sha256)
    return proof.notes, photo_url
