"""Proof of delivery, the resource: the capture (a driver's multipart upload) is here, its body
read and checked by :mod:`app.api.proof_upload`; reads, search and signed blob URLs are in
:mod:`app.api.proof_reads`; requirements, overrides, re-attempts and the audit check in
:mod:`app.api.proof_rules` (their routes are named here too, so the route table reads
``proofs.*``).

The capture (``POST /v1/driver/stops/{stop_id}/proof``, shape in ``docs/proofs.md``) closes
the stop as delivered or failed and stores its proof in one transaction, with both audit
entries. Its body is streamed, and a request over ``proof_max_bytes`` is refused (413) as soon
as it gets there, whatever its ``Content-Length`` said. Images are decoded in the process's
pool of :data:`app.resources.IMAGE_WORKERS` threads (opened and shut down with its resources),
so decoded pixels in memory are bounded by that and not by how many drivers upload together.

An ``Idempotency-Key`` is required: the driver app's offline queue replays a capture with the
same key until it gets an answer, and a key already stored answers the stored proof
(``Idempotent-Replayed: true``) without reading the body.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timezone
from typing import Any, Final

from psycopg import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response

from adapters.blobs import BlobError
from app import images
from app.api.driver_route import implausible, publish_change, stop_event
from app.api.proof_reads import (
    blob_store,
    get_blob,
    get_proof,
    make_blob_store,
    proof_photo_link,
    proof_view,
    search_proofs,
    stop_proof,
)
from app.api.proof_rules import (
    Provided,
    RequirementsUnmet,
    order_requirements,
    org_requirements,
    override,
    reattempt,
    reconcile,
    record_transition,
    unmet,
    verify_audit,
    waived_for,
)
from app.api.proof_upload import Capture, parse_capture, read_form
from app.errors import Conflict, InvalidField, KeyReused, NotFound, Unavailable
from app.http import answer, path_id, resources_of
from app.idempotency import HEADER, REPLAYED_HEADER
from app.resources import Resources
from realtime.errors import PayloadTooLarge, UnsupportedMediaType
from schemas.auth import DevicePrincipal
from schemas.events import Event, ParcelsFlagged
from schemas.ids import StopId
from store import audit, proofs
from store import routes as route_store

__all__ = [
    "capture_proof",
    "get_blob",
    "get_proof",
    "make_blob_store",
    "order_requirements",
    "org_requirements",
    "override",
    "proof_photo_link",
    "reattempt",
    "search_proofs",
    "stop_proof",
    "verify_audit",
]

_KEY: Final = re.compile(r"^[\x21-\x7e]{1,255}$")


# --- images ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Blob:
    """A blob to store: bytes and their type."""

    data: bytes
    content_type: str


@dataclass(frozen=True)
class Processed:
    """An image of the capture: its served copy and thumbnail, and what it said."""

    kind: str
    served: Blob
    thumb: Blob
    width: int
    height: int
    meta: images.PhotoMeta | None = None


@dataclass
class Images:
    """Every image of one capture, processed, and the barcodes read from its labels."""

    items: list[Processed] = field(default_factory=list)
    decoded: list[str] = field(default_factory=list)


def _process(capture: Capture, max_pixels: int) -> Images:
    """Decode, check and re-encode the capture's images (blocking: run in a thread)."""
    zone = capture.device_time.tzinfo if capture.device_time else UTC
    default_zone = zone if isinstance(zone, timezone) else UTC
    result = Images()
    for kind, files in (("photo", capture.photos), ("label", capture.labels)):
        for n, file in enumerate(files):
            part = f"{'photo' if kind == 'photo' else 'label_photo'}[{n}]"
            photo = images.load_photo(file, part, max_pixels, default_zone=default_zone)
            if kind == "label":
                for code in images.read_barcodes(photo.image):
                    if code not in result.decoded:
                        result.decoded.append(code)
            result.items.append(_processed(kind, photo.image, photo.meta))
    if capture.signature is not None:
        signature = images.load_png(capture.signature, "signature", max_pixels)
        result.items.append(_processed("signature", signature, None, png=True))
    elif capture.strokes is not None:
        drawn = images.render_strokes(capture.strokes, "signature_strokes")
        result.items.append(_processed("signature", drawn, None, png=True))
    return result


def _processed(
    kind: str, image: Any, meta: images.PhotoMeta | None, *, png: bool = False
) -> Processed:
    served = (
        Blob(images.served_png(image), "image/png")
        if png
        else Blob(images.served_jpeg(image), "image/jpeg")
    )
    return Processed(
        kind=kind,
        served=served,
        thumb=Blob(images.thumbnail_jpeg(image), "image/jpeg"),
        width=image.width,
        height=image.height,
        meta=meta,
    )


async def _images(request: Request, capture: Capture, max_pixels: int) -> Images:
    loop = asyncio.get_running_loop()
    try:
        threads = resources_of(request).images
        return await loop.run_in_executor(threads, _process, capture, max_pixels)
    except images.ImageRefused as exc:
        if exc.too_large:
            raise PayloadTooLarge(exc.part, exc.reason) from None
        if exc.part == "signature_strokes":
            raise InvalidField(exc.part, exc.reason) from None
        raise UnsupportedMediaType(exc.part, exc.reason) from None


# --- capture ---------------------------------------------------------------------------------


async def capture_proof(request: Request) -> Response:
    """A driver's proof for a stop: stored, and the stop closed as delivered or failed."""
    resources = resources_of(request)
    driver = await resources.auth.require_device(request)
    stop_id = StopId(path_id(request, "stop_id"))
    key = request.headers.get(HEADER)
    if key is None or not _KEY.match(key):
        raise InvalidField(HEADER, f"expected 1 to 255 visible ASCII characters, got {key!r}")
    async with resources.pool.connection() as conn:
        replay = await _replay(request, conn, driver, key, stop_id)
    if replay is not None:
        return replay
    settings = resources.settings
    form = await read_form(request, settings.proof_max_bytes)
    try:
        capture = parse_capture(form)
        processed = await _images(request, capture, settings.image_max_pixels)
    finally:
        await form.close()
    scans = list(capture.scans)
    for code in processed.decoded:
        if code not in scans:
            scans.append(code)
    async with resources.pool.connection() as conn:
        stop = await proofs.stop_context(conn, driver.org_id, driver.driver_id, stop_id)
        if stop is None:
            raise NotFound(f"no stop {stop_id} on this driver's routes")
        if stop.status not in ("pending", "arrived"):
            raise Conflict("status", f"cannot close a stop that is {stop.status}")
        parcels = await proofs.order_parcels(conn, driver.org_id, stop.order_id)
        missing, unexpected = reconcile(parcels, scans)
        if capture.outcome == "delivered":
            given = Provided(
                photo=any(item.kind == "photo" for item in processed.items),
                signature=any(item.kind == "signature" for item in processed.items),
                recipient_name=capture.recipient_name is not None,
                age_verified=capture.age_verified,
                missing_parcels=tuple(missing),
            )
            req = await proofs.order_requirements(conn, driver.org_id, stop.order_id)
            lacking = unmet(req, given, await waived_for(conn, stop_id))
            if lacking:
                raise RequirementsUnmet(lacking)
    blobs = blob_store(request)
    stored: list[tuple[Processed, str, str]] = []
    try:
        for item in processed.items:
            served = await blobs.put_bytes(item.served.data, item.served.content_type)
            thumb = await blobs.put_bytes(item.thumb.data, item.thumb.content_type)
            stored.append((item, served.sha256, thumb.sha256))
    except BlobError as exc:
        raise Unavailable(f"the blob store is unavailable ({exc}); retry") from None
    new = proofs.NewProof(
        org_id=driver.org_id,
        stop=stop,
        driver_id=driver.driver_id,
        outcome=capture.outcome,
        idempotency_key=key,
        device_time=capture.device_time,
        lat=capture.lat,
        lon=capture.lon,
        accuracy_m=capture.accuracy_m,
        recipient_name=capture.recipient_name,
        notes=capture.notes,
        age_verified=capture.age_verified,
        scans=list(capture.scans),
        decoded_scans=processed.decoded,
        missing_parcels=missing,
        unexpected_parcels=unexpected,
        failure_code=capture.failure_code,
        failure_text=capture.failure_text,
        images=[
            proofs.NewImage(
                kind=item.kind,
                sha256=sha,
                thumb_sha256=thumb,
                width=item.width,
                height=item.height,
                taken_at=item.meta.taken_at if item.meta else None,
                exif_lat=item.meta.lat if item.meta else None,
                exif_lon=item.meta.lon if item.meta else None,
            )
            for item, sha, thumb in stored
        ],
    )
    async with resources.pool.connection() as conn:
        async with conn.transaction():
            replay = await _replay(request, conn, driver, key, stop_id)
            if replay is not None:
                return replay
            proof_id = await _store(conn, new, stored)
        proof = await proof_view(request, conn, driver.org_id, proof_id)
    await _after_close(resources, driver, new)
    return answer(proof, 201)


async def _replay(
    request: Request,
    conn: AsyncConnection[Any],
    driver: DevicePrincipal,
    key: str,
    stop_id: StopId,
) -> Response | None:
    """The stored answer to a capture whose key was seen, or None for a new key."""
    prior = await proofs.proof_id_by_key(conn, driver.org_id, driver.driver_id, key)
    if prior is None:
        return None
    proof_id, prior_stop = prior
    if prior_stop != stop_id:
        raise KeyReused(
            HEADER, f"expected a new key for stop {stop_id}; {key!r} was used for another stop"
        )
    response = answer(await proof_view(request, conn, driver.org_id, proof_id), 201)
    response.headers[REPLAYED_HEADER] = "true"
    return response


async def _store(
    conn: AsyncConnection[Any], new: proofs.NewProof, stored: list[tuple[Processed, str, str]]
) -> int:
    """Close the stop and store the proof, in the caller's transaction; 409 when it closed."""
    stop = await proofs.stop_context(conn, new.org_id, new.driver_id, new.stop.stop_id, lock=True)
    if stop is None or stop.status not in ("pending", "arrived"):
        raise Conflict("status", f"cannot close a stop that is {stop.status if stop else 'gone'}")
    await proofs.record_blobs(
        conn,
        [
            (sha256, len(blob.data), blob.content_type)
            for item, sha, thumb in stored
            for sha256, blob in ((sha, item.served), (thumb, item.thumb))
        ],
    )
    proof_id = await proofs.insert_proof(conn, new)
    if proof_id is None:
        raise Conflict(HEADER, "another request with this key is storing the proof; retry")
    delivered = new.outcome == "delivered"
    ref = route_store.StopRef(stop.stop_id, stop.route_id, stop.order_id, stop.status)
    reason = new.failure_text or new.failure_code
    closed_at = closed_time(new.device_time)
    if not await route_store.complete(
        conn, new.org_id, ref, delivered=delivered, reason=reason, at=closed_at
    ):
        raise Conflict("status", "the stop was closed meanwhile")
    await proofs.mark_stop(
        conn,
        stop.stop_id,
        attempt=stop.attempt,
        failure_code=new.failure_code,
        missing=new.missing_parcels,
        unexpected=new.unexpected_parcels,
    )
    subject = f"stop:{stop.stop_id}"
    await audit.append(
        conn,
        new.org_id,
        "proof.captured",
        subject,
        {
            "proof_id": proof_id,
            "order_id": stop.order_id,
            "driver_id": new.driver_id,
            "outcome": new.outcome,
            "attempt": stop.attempt,
            "device_time": new.device_time.isoformat() if new.device_time else None,
            "lat": new.lat,
            "lon": new.lon,
            "recipient_name": new.recipient_name,
            "notes": new.notes,
            "scans": new.scans,
            "decoded_scans": new.decoded_scans,
            "missing_parcels": new.missing_parcels,
            "unexpected_parcels": new.unexpected_parcels,
            "failure_code": new.failure_code,
            "failure_text": new.failure_text,
            "images": [{"kind": i.kind, "sha256": i.sha256} for i in new.images],
        },
    )
    await record_transition(
        conn, new.org_id, stop.stop_id, stop.status, new.outcome, new.driver_id, proof_id
    )
    return proof_id


def closed_time(device_time: datetime | None) -> datetime:
    """When a proof closed its stop: the phone's time of the capture (an upload sent late keeps
    it), unless that clock is implausible (:func:`implausible`): then the server's."""
    now = datetime.now(UTC)
    if device_time is None or implausible(device_time, now) is not None:
        return now
    return device_time.astimezone(UTC)


async def _after_close(resources: Resources, driver: DevicePrincipal, new: proofs.NewProof) -> None:
    """Tell the streams and the driver's app, once the change is committed."""
    stop = new.stop
    now = closed_time(new.device_time)
    ref = route_store.StopRef(stop.stop_id, stop.route_id, stop.order_id, stop.status)
    command = "deliver" if new.outcome == "delivered" else "fail"
    events: list[Event] = [
        stop_event(command, driver, ref, now, code=new.failure_code, reason=new.failure_text)
    ]
    if new.missing_parcels or new.unexpected_parcels:
        events.append(
            ParcelsFlagged(
                org_id=driver.org_id,
                at=now,
                route_id=stop.route_id,
                stop_id=stop.stop_id,
                order_id=stop.order_id,
                driver_id=driver.driver_id,
                missing=new.missing_parcels,
                unexpected=new.unexpected_parcels,
            )
        )
    await publish_change(resources, driver.org_id, stop.route_id, *events)
