"""Proofs as readers get them: search, one proof, a stop's proof, and the images behind
short-lived signed URLs (``GET /v1/blobs/{sha256}`` for the local store); the blob store of
this process, and the link a customer message may carry.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from typing import Any, cast

from psycopg import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response

from adapters.blobs import BlobStore, LocalBlobs, S3Blobs, local_signing_key
from app.auth import READERS
from app.errors import BadParameter, NotFound, Unavailable
from app.http import answer, ascii_int, path_id, query_date, resources_of
from app.settings import Settings
from schemas.ids import MAX_ID, DriverId, OrderId, StopId
from schemas.proofs import Override, Proof, ProofImage, ProofList, Requirement
from store import proofs

# --- the blob store of this process ----------------------------------------------------------


def make_blob_store(settings: Settings) -> BlobStore:
    """The configured blob store (``LASTMILE_BLOB_STORE``)."""
    if settings.blob_store == "s3":
        if not settings.blob_s3_bucket:
            raise Unavailable("the s3 blob store has no bucket (LASTMILE_BLOB_S3_BUCKET)")
        return S3Blobs.connect(
            settings.blob_s3_bucket,
            endpoint_url=settings.blob_s3_endpoint_url,
            region=settings.blob_s3_region,
            access_key_id=settings.blob_s3_access_key_id,
            secret_access_key=settings.blob_s3_secret_access_key,
        )
    key = local_signing_key(settings.data_dir, settings.blob_signing_key)
    return LocalBlobs(settings.data_dir / "blobs", key)


@functools.lru_cache(maxsize=4)
def blobs_of(settings: Settings) -> BlobStore:
    """The blob store of these settings, made once per process on first use (an S3 client is
    not made per request); a store that cannot be made is tried again on the next call."""
    return make_blob_store(settings)


def blob_store(request: Request) -> BlobStore:
    """This process's blob store (:func:`blobs_of` its settings)."""
    return blobs_of(resources_of(request).settings)


def proof_photo_link(
    blobs: BlobStore, settings: Settings, sha256: str, *, ttl_s: int | None = None
) -> str:
    """An absolute, signed, expiring link to a proof photo, for a page or a customer message.

    Relative URLs of the local store are made absolute with ``LASTMILE_PUBLIC_URL``; S3 URLs
    are absolute already. ``ttl_s`` defaults to ``LASTMILE_BLOB_URL_TTL_S``; a message read
    hours later needs a longer one. The notification side calls this where the organisation
    allows showing the proof photo.
    """
    url = blobs.signed_url(sha256, "image/jpeg", ttl_s or settings.blob_url_ttl_s)
    if url.startswith("/") and settings.public_url:
        return settings.public_url.rstrip("/") + url
    return url


# --- reads -----------------------------------------------------------------------------------


async def proof_view(
    request: Request, conn: AsyncConnection[Any], org_id: Any, proof_id: int
) -> Proof:
    """A proof of ``org_id`` as readers see it, or 404."""
    row = await proofs.get_proof(conn, org_id, proof_id)
    if row is None:
        raise NotFound(f"no proof {proof_id}")
    return (await proof_views(request, conn, [row]))[0]


async def proof_views(
    request: Request, conn: AsyncConnection[Any], rows: Sequence[proofs.ProofRow]
) -> list[Proof]:
    """Proofs with their images (as signed URLs) and overrides."""
    if not rows:
        return []
    blobs = blob_store(request)
    ttl_s = resources_of(request).settings.blob_url_ttl_s
    by_proof: dict[int, list[proofs.ImageRow]] = {}
    for image in await proofs.images_of(conn, [row.id for row in rows]):
        by_proof.setdefault(image.proof_id, []).append(image)
    waivers: dict[int, list[Override]] = {}
    for waiver in await proofs.overrides(conn, [row.stop_id for row in rows]):
        waivers.setdefault(waiver.stop_id, []).append(override_view(waiver))
    result = []
    for row in rows:
        photos: list[ProofImage] = []
        labels: list[ProofImage] = []
        signature_url = None
        for image in by_proof.get(row.id, []):
            if image.kind == "signature":
                signature_url = blobs.signed_url(image.sha256, "image/png", ttl_s)
                continue
            shown = ProofImage(
                sha256=image.sha256,
                url=blobs.signed_url(image.sha256, "image/jpeg", ttl_s),
                thumbnail_url=blobs.signed_url(image.thumb_sha256, "image/jpeg", ttl_s),
                width=image.width,
                height=image.height,
                taken_at=image.taken_at,
                exif_lat=image.exif_lat,
                exif_lon=image.exif_lon,
            )
            (photos if image.kind == "photo" else labels).append(shown)
        result.append(
            Proof(
                id=row.id,
                stop_id=row.stop_id,
                order_id=row.order_id,
                route_id=row.route_id,
                driver_id=row.driver_id,
                day=row.day,
                outcome=cast("Any", row.outcome),
                attempt=row.attempt,
                captured_at=row.captured_at,
                device_time=row.device_time,
                lat=row.lat,
                lon=row.lon,
                accuracy_m=row.accuracy_m,
                recipient_name=row.recipient_name,
                notes=row.notes,
                age_verified=row.age_verified,
                scans=row.scans,
                decoded_scans=row.decoded_scans,
                missing_parcels=row.missing_parcels,
                unexpected_parcels=row.unexpected_parcels,
                failure_code=cast("Any", row.failure_code),
                failure_text=row.failure_text,
                photos=photos,
                labels=labels,
                signature_url=signature_url,
                overrides=waivers.get(row.stop_id, []),
            )
        )
    return result


def override_view(row: proofs.OverrideRow) -> Override:
    """A dispatcher's waiver as readers see it."""
    return Override(
        stop_id=row.stop_id,
        waived=cast("list[Requirement]", row.waived),
        reason=row.reason,
        at=row.at,
    )


def _query_id(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    value = ascii_int(raw)
    if value is None or not 0 < value <= MAX_ID:
        raise BadParameter(name, f"expected a positive integer id, got {raw!r}")
    return value


def _query_text(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name)
    if raw is None or not raw.strip():
        return None
    if len(raw) > 200 or "\x00" in raw:
        raise BadParameter(name, "expected at most 200 characters without NUL")
    return raw.strip()


async def search_proofs(request: Request) -> Response:
    """``GET /v1/proofs``: by order, driver, customer, day range, outcome and text."""
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, READERS)
    outcome = _query_text(request, "outcome")
    if outcome not in (None, "delivered", "failed"):
        raise BadParameter("outcome", f"expected delivered or failed, got {outcome!r}")
    limit = _query_id(request, "limit") or 100
    if limit > 1000:
        raise BadParameter("limit", f"expected at most 1000, got {limit}")
    day_from, day_to = query_date(request, "from"), query_date(request, "to")
    if day_from and day_to and day_from > day_to:
        raise BadParameter("to", f"expected a day on or after {day_from}, got {day_to}")
    query = proofs.Search(
        order_id=cast("OrderId | None", _query_id(request, "order_id")),
        driver_id=cast("DriverId | None", _query_id(request, "driver_id")),
        customer=_query_text(request, "customer"),
        day_from=day_from,
        day_to=day_to,
        outcome=outcome,
        text=_query_text(request, "q"),
        before_id=_query_id(request, "before"),
        limit=limit + 1,
    )
    async with resources.pool.connection() as conn:
        rows = await proofs.search(conn, principal.org_id, query)
        found = await proof_views(request, conn, rows[:limit])
    return answer(ProofList(proofs=found, truncated=len(rows) > limit))


async def get_proof(request: Request) -> Response:
    """``GET /v1/proofs/{proof_id}``."""
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, READERS)
    proof_id = path_id(request, "proof_id")
    async with resources.pool.connection() as conn:
        return answer(await proof_view(request, conn, principal.org_id, proof_id))


async def stop_proof(request: Request) -> Response:
    """``GET /v1/stops/{stop_id}/proof``: the proof that closed the stop."""
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, READERS)
    stop_id = StopId(path_id(request, "stop_id"))
    async with resources.pool.connection() as conn:
        row = await proofs.proof_of_stop(conn, principal.org_id, stop_id)
        if row is None:
            raise NotFound(f"no proof for stop {stop_id}")
        return answer((await proof_views(request, conn, [row]))[0])


async def get_blob(request: Request) -> Response:
    """``GET /v1/blobs/{sha256}``: a blob of the local store, through its signed URL."""
    blobs = blob_store(request)
    sha256 = request.path_params["sha256"]
    if not isinstance(blobs, LocalBlobs):
        raise NotFound("blobs are served by the configured S3 store")
    content_type = request.query_params.get("type", "")
    expires = ascii_int(request.query_params.get("expires", "")) or 0
    sig = request.query_params.get("sig", "")
    if content_type not in ("image/jpeg", "image/png"):
        raise BadParameter("type", f"expected image/jpeg or image/png, got {content_type!r}")
    if not blobs.verify(sha256, content_type, expires, sig, time.time()):
        raise NotFound("no such blob, or the link expired or is not signed by this server")
    try:
        data = await blobs.read(sha256)
    except Exception:
        raise NotFound("no such blob") from None
    return Response(
        data,
        media_type=content_type,
        headers={
            "cache-control": "private, max-age=60",
            "x-content-type-options": "nosniff",
            "content-security-policy": "default-src 'none'",
        },
    )
