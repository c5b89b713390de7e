"""Proof of delivery: capture (a driver's multipart upload), reads and search, signed blob URLs,
requirements and their override, another attempt for a failed order, and the audit check.

The capture (``POST /v1/driver/stops/{stop_id}/proof``, shape in ``docs/proofs.md``) closes
the stop as delivered or failed and stores its proof in one transaction, with both audit
entries. Its body is streamed: Starlette's multipart parser spools each file part to disk past
1 MiB, and the stream it reads is counted, so a request over ``proof_max_bytes`` is refused
(413) as soon as it gets there, whatever its ``Content-Length`` said. Images are decoded in a
pool of :data:`IMAGE_WORKERS` threads, so decoded pixels in memory are bounded by that and
not by how many drivers upload together.

An ``Idempotency-Key`` is required: the driver app's offline queue replays a capture with the
same key until it gets an answer, and a key already stored answers the stored proof
(``Idempotent-Replayed: true``) without reading the body.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import AsyncGenerator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timezone
from typing import IO, Any, Final, cast

from psycopg import AsyncConnection
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import Response

from adapters.blobs import BlobStore, LocalBlobs, S3Blobs, local_signing_key
from app import images
from app.auth import ADMINS, FLEET_WRITERS, ORDER_WRITERS, READERS
from app.errors import (
    CLOSE_UNPROCESSABLE,
    ApiError,
    BadParameter,
    Conflict,
    InvalidField,
    KeyReused,
    Kind,
    NotFound,
)
from app.http import answer, ascii_int, decode, path_id, query_date, request_body, resources_of
from app.resources import Resources
from app.settings import Settings
from realtime.errors import MalformedBody, PayloadTooLarge, UnsupportedMediaType
from realtime.events import emit, push_route
from schemas.auth import DevicePrincipal
from schemas.events import Event, ParcelsFlagged, StopDelivered, StopFailed
from schemas.ids import MAX_ID, DriverId, OrderId, StopId
from schemas.proofs import (
    FAILURE_CODES,
    Override,
    OverrideIn,
    Proof,
    ProofImage,
    ProofList,
    ProofRequirements,
    Reattempt,
    ReattemptIn,
    Requirement,
)
from store import audit, proofs
from store import routes as route_store

HEADER: Final = "Idempotency-Key"
REPLAYED_HEADER: Final = "Idempotent-Replayed"
IMAGE_WORKERS: Final = 2
"""Captures whose images are decoded at once per API process (each holds one decoded photo)."""
MAX_PHOTOS: Final = 8
MAX_LABELS: Final = 4
MAX_SCANS: Final = 200
_KEY: Final = re.compile(r"^[\x21-\x7e]{1,255}$")
_BARCODE: Final = re.compile(r"^[\x21-\x7e]{1,100}$")
_TEXT_LIMITS: Final = {
    "outcome": 20,
    "recipient_name": 200,
    "notes": 2000,
    "lat": 40,
    "lon": 40,
    "accuracy_m": 40,
    "device_time": 64,
    "age_verified": 10,
    "failure_code": 40,
    "failure_text": 500,
    "signature_strokes": 512 * 1024,
}
_FILES: Final = {"photo": MAX_PHOTOS, "label_photo": MAX_LABELS, "signature": 1}


class RequirementsUnmet(ApiError):
    """Closing the stop as delivered lacks what its order requires; ``field`` lists it."""

    kind = Kind(422, "requirements_unmet", CLOSE_UNPROCESSABLE)

    def __init__(self, missing: Sequence[str]) -> None:
        super().__init__(
            ", ".join(missing),
            f"the order requires {', '.join(missing)} before it is delivered; capture a proof"
            " with them, or have a dispatcher override",
        )
        self.missing = list(missing)


# --- the blob store of this process ----------------------------------------------------------


def make_blob_store(settings: Settings) -> BlobStore:
    """The configured blob store (``LASTMILE_BLOB_STORE``)."""
    if settings.blob_store == "s3":
        if not settings.blob_s3_bucket:
            raise InvalidField("LASTMILE_BLOB_S3_BUCKET", "expected a bucket for the s3 store")
        return S3Blobs.connect(
            settings.blob_s3_bucket,
            endpoint_url=settings.blob_s3_endpoint_url,
            region=settings.blob_s3_region,
            access_key_id=settings.blob_s3_access_key_id,
            secret_access_key=settings.blob_s3_secret_access_key,
        )
    key = local_signing_key(settings.data_dir, settings.blob_signing_key)
    return LocalBlobs(settings.data_dir / "blobs", key)


def blob_store(request: Request) -> BlobStore:
    """This process's blob store, made on first use from its settings."""
    state = request.app.state
    store: BlobStore | None = getattr(state, "proof_blobs", None)
    if store is None:
        store = make_blob_store(resources_of(request).settings)
        state.proof_blobs = store
    return store


def _image_threads(request: Request) -> ThreadPoolExecutor:
    """This process's image threads: few, so that decoded pixels in memory are bounded by
    them (and malloc keeps few arenas), not by how many uploads arrive together."""
    state = request.app.state
    threads: ThreadPoolExecutor | None = getattr(state, "proof_image_threads", None)
    if threads is None:
        threads = ThreadPoolExecutor(IMAGE_WORKERS, thread_name_prefix="proof-images")
        state.proof_image_threads = threads
    return threads


def proof_photo_link(blobs: BlobStore, settings: Settings, sha256: str) -> str:
    """An absolute, signed, short-lived link to a proof photo, for a customer message.

    Relative URLs of the local store are made absolute with ``LASTMILE_PUBLIC_URL``; S3 URLs
    are absolute already. The notification side calls this where the organisation allows
    showing the proof photo.
    """
    url = blobs.signed_url(sha256, "image/jpeg", settings.blob_url_ttl_s)
    if url.startswith("/") and settings.public_url:
        return settings.public_url.rstrip("/") + url
    return url


# --- reading the upload ----------------------------------------------------------------------


async def _read_form(request: Request, limit: int) -> FormData:
    """The multipart body, its files spooled to disk, refused with 413 past ``limit`` bytes."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() != "multipart/form-data":
        raise UnsupportedMediaType(
            "Content-Type", f"expected multipart/form-data, got {content_type or 'none'!r}"
        )
    declared = ascii_int(request.headers.get("content-length", ""))
    if declared is not None and declared > limit:
        raise PayloadTooLarge("body", f"expected at most {limit} bytes, got {declared}")

    async def counted() -> AsyncGenerator[bytes, None]:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge("body", f"expected at most {limit} bytes, got more")
            yield chunk

    parser = MultiPartParser(
        request.headers,
        counted(),
        max_files=MAX_PHOTOS + MAX_LABELS + 1,
        max_fields=MAX_SCANS + len(_TEXT_LIMITS),
        max_part_size=max(_TEXT_LIMITS.values()),
    )
    try:
        return await parser.parse()
    except MultiPartException as exc:
        raise MalformedBody("body", f"expected a multipart/form-data body, got: {exc}") from None


@dataclass
class Capture:
    """The parts of one capture, checked; files still spooled."""

    outcome: str
    photos: list[IO[bytes]] = field(default_factory=list)
    labels: list[IO[bytes]] = field(default_factory=list)
    signature: IO[bytes] | None = None
    strokes: bytes | None = None
    recipient_name: str | None = None
    notes: str | None = None
    scans: list[str] = field(default_factory=list)
    lat: float | None = None
    lon: float | None = None
    accuracy_m: float | None = None
    device_time: datetime | None = None
    age_verified: bool = False
    failure_code: str | None = None
    failure_text: str | None = None


def _parse(form: FormData) -> Capture:
    """The capture's parts, or 400 naming the first one at fault."""
    texts: dict[str, str] = {}
    files: dict[str, list[IO[bytes]]] = {name: [] for name in _FILES}
    scans: list[str] = []
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            if name not in _FILES:
                raise InvalidField(name, f"expected a file part only as one of {sorted(_FILES)}")
            if len(files[name]) >= _FILES[name]:
                raise InvalidField(name, f"expected at most {_FILES[name]} parts {name!r}")
            files[name].append(value.file)
            continue
        if name == "scan":
            scan = value.strip()
            if len(scans) >= MAX_SCANS:
                raise InvalidField("scan", f"expected at most {MAX_SCANS} scans")
            if not _BARCODE.match(scan):
                raise InvalidField(
                    f"scan[{len(scans)}]",
                    f"expected 1 to 100 printable characters without spaces, got {scan[:120]!r}",
                )
            if scan not in scans:
                scans.append(scan)
            continue
        if name not in _TEXT_LIMITS:
            raise InvalidField(name, "expected no such part (see docs/proofs.md)")
        if name in texts:
            raise InvalidField(name, "expected this part once, got it twice")
        if len(value) > _TEXT_LIMITS[name]:
            raise InvalidField(name, f"expected at most {_TEXT_LIMITS[name]} characters")
        if "\x00" in value:
            raise InvalidField(name, "expected text without NUL characters")
        texts[name] = value
    outcome = texts.get("outcome")
    if outcome not in ("delivered", "failed"):
        raise InvalidField("outcome", f"expected 'delivered' or 'failed', got {outcome!r}")
    if files["signature"] and "signature_strokes" in texts:
        raise InvalidField("signature_strokes", "expected a signature PNG or strokes, not both")
    capture = Capture(
        outcome=outcome,
        photos=files["photo"],
        labels=files["label_photo"],
        signature=files["signature"][0] if files["signature"] else None,
        strokes=texts["signature_strokes"].encode() if "signature_strokes" in texts else None,
        recipient_name=_optional(texts.get("recipient_name")),
        notes=_optional(texts.get("notes")),
        scans=scans,
        age_verified=_flag(texts.get("age_verified")),
        device_time=_time(texts.get("device_time")),
        accuracy_m=_number(texts, "accuracy_m", 0, 100_000),
    )
    capture.lat = _number(texts, "lat", -90, 90)
    capture.lon = _number(texts, "lon", -180, 180)
    if (capture.lat is None) != (capture.lon is None):
        raise InvalidField("lon" if capture.lon is None else "lat", "expected lat and lon both")
    _failure(capture, texts)
    return capture


def _failure(capture: Capture, texts: dict[str, str]) -> None:
    code = _optional(texts.get("failure_code"))
    text = _optional(texts.get("failure_text"))
    if capture.outcome == "delivered":
        if code is not None:
            raise InvalidField("failure_code", "expected none for a delivered stop")
        return
    if code is None:
        raise InvalidField("failure_code", f"expected one of {', '.join(FAILURE_CODES)}")
    if code not in FAILURE_CODES:
        raise InvalidField(
            "failure_code", f"expected one of {', '.join(FAILURE_CODES)}, got {code!r}"
        )
    if code == "other" and text is None:
        raise InvalidField("failure_text", "expected what happened, for failure_code 'other'")
    capture.failure_code, capture.failure_text = code, text


def _optional(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    return value.strip()


def _flag(value: str | None) -> bool:
    if value is None or value == "":
        return False
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise InvalidField("age_verified", f"expected true or false, got {value!r}")


def _number(texts: dict[str, str], name: str, low: float, high: float) -> float | None:
    raw = _optional(texts.get(name))
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise InvalidField(name, f"expected a number, got {raw!r}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise InvalidField(name, f"expected a number in [{low:g}, {high:g}], got {raw!r}")
    return value


def _time(raw: str | None) -> datetime | None:
    raw = _optional(raw)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise InvalidField(
            "device_time",
            f"expected a time with a zone such as 2026-12-06T14:03:11+01:00, got {raw!r}",
        )
    return value


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
        return await loop.run_in_executor(_image_threads(request), _process, capture, max_pixels)
    except images.ImageRefused as exc:
        if exc.too_large:
            raise PayloadTooLarge(exc.part, exc.reason) from None
        if exc.part == "signature_strokes":
            raise InvalidField(exc.part, exc.reason) from None
        raise UnsupportedMediaType(exc.part, exc.reason) from None


# --- requirements ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Provided:
    """What a capture (or a bare command: nothing) brings towards the requirements."""

    photo: bool = False
    signature: bool = False
    recipient_name: bool = False
    age_verified: bool = False
    missing_parcels: tuple[str, ...] = ()


def unmet(req: ProofRequirements, given: Provided, waived: set[str]) -> list[str]:
    """What ``req`` asks that ``given`` lacks and nobody waived, in a stable order."""
    lacking: list[Requirement] = []
    if req.photo and not given.photo:
        lacking.append("photo")
    if req.signature and not given.signature:
        lacking.append("signature")
    if req.recipient_name and not given.recipient_name:
        lacking.append("recipient_name")
    if req.all_parcels and given.missing_parcels:
        lacking.append("parcels")
    if req.min_age is not None and not given.age_verified:
        lacking.append("age_verified")
    return [item for item in lacking if item not in waived]


async def waived_for(conn: AsyncConnection[Any], stop_id: StopId) -> set[str]:
    """Everything dispatchers waived for the stop."""
    return {item for row in await proofs.overrides(conn, [stop_id]) for item in row.waived}


async def check_bare_delivery(
    conn: AsyncConnection[Any], org_id: Any, stop_id: StopId, order_id: OrderId
) -> None:
    """Refuse (422) delivering a stop with no proof when its order requires any.

    For ``POST /v1/driver/stops/{id}/deliver``: a bare command brings nothing, so every
    requirement not waived is missing (parcels too, when the order has any).
    """
    req = await proofs.order_requirements(conn, org_id, order_id)
    parcels = await proofs.order_parcels(conn, org_id, order_id)
    lacking = unmet(req, Provided(missing_parcels=tuple(parcels)), await waived_for(conn, stop_id))
    if lacking:
        raise RequirementsUnmet(lacking)


def reconcile(expected: Sequence[str], scanned: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(missing, unexpected)``: the order's parcels not scanned, and scans not of the order."""
    seen = set(scanned)
    known = set(expected)
    return [p for p in expected if p not in seen], [s for s in scanned if s not in known]


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
    form = await _read_form(request, settings.proof_max_bytes)
    try:
        capture = _parse(form)
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
    for item in processed.items:
        served = await blobs.put_bytes(item.served.data, item.served.content_type)
        thumb = await blobs.put_bytes(item.thumb.data, item.thumb.content_type)
        stored.append((item, served.sha256, thumb.sha256))
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
        proof = await _proof(request, conn, driver.org_id, proof_id)
    await _after_close(resources, driver, new, proof)
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
    response = answer(await _proof(request, conn, driver.org_id, proof_id), 201)
    response.headers[REPLAYED_HEADER] = "true"
    return response


async def _store(
    conn: AsyncConnection[Any], new: proofs.NewProof, stored: list[tuple[Processed, str, str]]
) -> int:
    """Close the stop and store the proof, in the caller's transaction; 409 when it closed."""
    stop = await proofs.stop_context(conn, new.org_id, new.driver_id, new.stop.stop_id, lock=True)
    if stop is None or stop.status not in ("pending", "arrived"):
        raise Conflict("status", f"cannot close a stop that is {stop.status if stop else 'gone'}")
    for item, sha, thumb in stored:
        await proofs.record_blob(conn, sha, len(item.served.data), item.served.content_type)
        await proofs.record_blob(conn, thumb, len(item.thumb.data), item.thumb.content_type)
    proof_id = await proofs.insert_proof(conn, new)
    if proof_id is None:
        raise Conflict(HEADER, "another request with this key is storing the proof; retry")
    delivered = new.outcome == "delivered"
    ref = route_store.StopRef(stop.stop_id, stop.route_id, stop.order_id, stop.status)
    reason = new.failure_text or new.failure_code
    if not await route_store.complete(conn, new.org_id, ref, delivered=delivered, reason=reason):
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


async def record_transition(
    conn: AsyncConnection[Any],
    org_id: Any,
    stop_id: StopId,
    before: str,
    after: str,
    driver_id: DriverId | None,
    proof_id: int | None = None,
    **extra: Any,
) -> None:
    """Append a stop's transition to the audit chain (in the caller's transaction)."""
    data: dict[str, Any] = {"from": before, "to": after, "driver_id": driver_id}
    if proof_id is not None:
        data["proof_id"] = proof_id
    data.update(extra)
    await audit.append(conn, org_id, f"stop.{after}", f"stop:{stop_id}", data)


async def _after_close(
    resources: Resources, driver: DevicePrincipal, new: proofs.NewProof, proof: Proof
) -> None:
    """Tell the streams and the driver's app, once the change is committed."""
    now = datetime.now(UTC)
    stop = new.stop
    events: list[Event] = []
    if new.outcome == "delivered":
        events.append(
            StopDelivered(
                org_id=driver.org_id,
                at=now,
                route_id=stop.route_id,
                stop_id=stop.stop_id,
                order_id=stop.order_id,
                driver_id=driver.driver_id,
            )
        )
    else:
        events.append(
            StopFailed(
                org_id=driver.org_id,
                at=now,
                route_id=stop.route_id,
                stop_id=stop.stop_id,
                order_id=stop.order_id,
                driver_id=driver.driver_id,
                reason=new.failure_text or new.failure_code or "",
                code=new.failure_code,
            )
        )
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
    await emit(resources.redis, resources.names, *events)
    async with resources.pool.connection() as conn:
        view = await route_store.route_view(conn, driver.org_id, stop.route_id)
    if view is not None:
        await push_route(resources.redis, resources.names, view)


# --- reads -----------------------------------------------------------------------------------


async def _proof(request: Request, conn: AsyncConnection[Any], org_id: Any, proof_id: int) -> Proof:
    found = await _proofs(
        request, conn, [row for row in [await proofs.get_proof(conn, org_id, proof_id)] if row]
    )
    if not found:
        raise NotFound(f"no proof {proof_id}")
    return found[0]


async def _proofs(
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
        waivers.setdefault(waiver.stop_id, []).append(
            Override(
                stop_id=waiver.stop_id,
                waived=cast("list[Requirement]", waiver.waived),
                reason=waiver.reason,
                at=waiver.at,
            )
        )
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
        found = await _proofs(request, conn, rows[:limit])
    return answer(ProofList(proofs=found, truncated=len(rows) > limit))


async def get_proof(request: Request) -> Response:
    """``GET /v1/proofs/{proof_id}``."""
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, READERS)
    proof_id = path_id(request, "proof_id")
    async with resources.pool.connection() as conn:
        return answer(await _proof(request, conn, principal.org_id, proof_id))


async def stop_proof(request: Request) -> Response:
    """``GET /v1/stops/{stop_id}/proof``: the proof that closed the stop."""
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, READERS)
    stop_id = StopId(path_id(request, "stop_id"))
    async with resources.pool.connection() as conn:
        row = await proofs.proof_of_stop(conn, principal.org_id, stop_id)
        if row is None:
            raise NotFound(f"no proof for stop {stop_id}")
        return answer((await _proofs(request, conn, [row]))[0])


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


# --- requirements, overrides, re-attempts ----------------------------------------------------


async def org_requirements(request: Request) -> Response:
    """``GET|PUT /v1/settings/proof-requirements``: the organisation's defaults."""
    resources = resources_of(request)
    writing = request.method == "PUT"
    principal = await resources.auth.require_api_key(request, FLEET_WRITERS if writing else READERS)
    async with resources.pool.connection() as conn:
        if writing:
            req = decode(
                await request_body(request), request.headers.get("content-type"), ProofRequirements
            )
            async with conn.transaction():
                await proofs.set_requirements(conn, principal.org_id, None, req)
                await audit.append(
                    conn,
                    principal.org_id,
                    "requirements.default",
                    "org",
                    {"requirements": _req_dict(req), "key_id": principal.key_id},
                )
        return answer(await proofs.default_requirements(conn, principal.org_id))


async def order_requirements(request: Request) -> Response:
    """``GET|PUT /v1/orders/{order_id}/proof-requirements``: one order's own requirements."""
    resources = resources_of(request)
    writing = request.method == "PUT"
    principal = await resources.auth.require_api_key(request, ORDER_WRITERS if writing else READERS)
    order_id = OrderId(path_id(request, "order_id"))
    async with resources.pool.connection() as conn:
        if not await proofs.order_exists(conn, principal.org_id, order_id):
            raise NotFound(f"no order {order_id}")
        if writing:
            req = decode(
                await request_body(request), request.headers.get("content-type"), ProofRequirements
            )
            async with conn.transaction():
                await proofs.set_requirements(conn, principal.org_id, order_id, req)
                await audit.append(
                    conn,
                    principal.org_id,
                    "requirements.order",
                    f"order:{order_id}",
                    {"requirements": _req_dict(req), "key_id": principal.key_id},
                )
        return answer(await proofs.order_requirements(conn, principal.org_id, order_id))


def _req_dict(req: ProofRequirements) -> dict[str, Any]:
    return {
        "photo": req.photo,
        "signature": req.signature,
        "all_parcels": req.all_parcels,
        "recipient_name": req.recipient_name,
        "min_age": req.min_age,
    }


async def override(request: Request) -> Response:
    """``POST /v1/stops/{stop_id}/proof-override``: a dispatcher waives requirements, with a
    reason, before the driver closes the stop; recorded and audited."""
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, FLEET_WRITERS)
    stop_id = StopId(path_id(request, "stop_id"))
    body = decode(await request_body(request), request.headers.get("content-type"), OverrideIn)
    async with resources.pool.connection() as conn, conn.transaction():
        stop = await proofs.stop_context(conn, principal.org_id, None, stop_id)
        if stop is None:
            raise NotFound(f"no stop {stop_id}")
        if stop.status not in ("pending", "arrived"):
            raise Conflict("status", f"cannot override a stop that is {stop.status}")
        if body.waive is None:
            req = await proofs.order_requirements(conn, principal.org_id, stop.order_id)
            waive = unmet(req, Provided(missing_parcels=("all",)), set())
        else:
            waive = list(dict.fromkeys(body.waive))
        row = await proofs.add_override(
            conn, principal.org_id, stop_id, waive, body.reason, principal.key_id
        )
        await audit.append(
            conn,
            principal.org_id,
            "proof.override",
            f"stop:{stop_id}",
            {"waived": waive, "reason": body.reason, "key_id": principal.key_id},
        )
    return answer(
        Override(
            stop_id=stop_id,
            waived=cast("list[Requirement]", row.waived),
            reason=row.reason,
            at=row.at,
        ),
        201,
    )


async def reattempt(request: Request) -> Response:
    """``POST /v1/orders/{order_id}/reattempt``: a failed order, pending again on a later day."""
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, ORDER_WRITERS)
    order_id = OrderId(path_id(request, "order_id"))
    body = decode(await request_body(request), request.headers.get("content-type"), ReattemptIn)
    async with resources.pool.connection() as conn, conn.transaction():
        state = await proofs.order_state(conn, principal.org_id, order_id)
        if state is None:
            raise NotFound(f"no order {order_id}")
        status, day = state
        if status != "failed":
            raise Conflict("status", f"expected a failed order, got one that is {status}")
        if body.day <= day:
            raise InvalidField("day", f"expected a day after {day}, got {body.day}")
        attempt = await proofs.reattempt(conn, principal.org_id, order_id, body.day)
        if attempt is None:
            raise Conflict("status", "the order changed meanwhile")
        await audit.append(
            conn,
            principal.org_id,
            "order.reattempt",
            f"order:{order_id}",
            {"from_day": day.isoformat(), "day": body.day.isoformat(), "attempt": attempt},
        )
    return answer(Reattempt(order_id=order_id, day=body.day, attempt=attempt))


async def verify_audit(request: Request) -> Response:
    """``GET /v1/audit/verify``: walk the caller's organisation's audit chain."""
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, ADMINS)
    async with resources.pool.connection() as conn:
        return answer(await audit.verify(conn, principal.org_id))
