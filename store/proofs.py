"""Proofs of delivery, their images, requirements, overrides and re-attempts.

A proof is written in the same transaction that closes its stop (the caller's), together with
its audit entry. ``(org, driver, idempotency key)`` is unique: :func:`insert_proof` answers
None when another request with the key won, and the caller replays that one's proof.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, LiteralString

from psycopg import AsyncConnection
from psycopg.rows import class_row, dict_row, scalar_row

from schemas.ids import DriverId, OrderId, OrgId, RouteId, StopId
from schemas.proofs import ProofRequirements
from store.rows import fetch_all, fetch_one, returned

# --- requirements ----------------------------------------------------------------------------

_REQ_COLUMNS: LiteralString = "photo, signature, all_parcels, recipient_name, min_age"


async def default_requirements(conn: AsyncConnection[Any], org_id: OrgId) -> ProofRequirements:
    """The organisation's default requirements (none set: nothing required)."""
    row = await fetch_one(
        conn,
        class_row(ProofRequirements),
        f"SELECT {_REQ_COLUMNS} FROM proof_requirements WHERE org_id = %s AND order_id IS NULL",
        (org_id,),
    )
    return ProofRequirements() if row is None else row


async def order_requirements(
    conn: AsyncConnection[Any], org_id: OrgId, order_id: OrderId
) -> ProofRequirements:
    """The order's own requirements, else the organisation's defaults."""
    row = await fetch_one(
        conn,
        class_row(ProofRequirements),
        f"SELECT {_REQ_COLUMNS} FROM proof_requirements WHERE org_id = %s"
        " AND (order_id = %s OR order_id IS NULL) ORDER BY order_id NULLS LAST LIMIT 1",
        (org_id, order_id),
    )
    return ProofRequirements() if row is None else row


async def set_requirements(
    conn: AsyncConnection[Any],
    org_id: OrgId,
    order_id: OrderId | None,
    req: ProofRequirements,
) -> None:
    """Set the organisation's defaults (``order_id`` None) or one order's requirements."""
    # The organisation's default and an order's own row have a partial unique index each.
    target: LiteralString = (
        "(org_id) WHERE order_id IS NULL"
        if order_id is None
        else "(org_id, order_id) WHERE order_id IS NOT NULL"
    )
    await conn.execute(
        f"INSERT INTO proof_requirements (org_id, order_id, {_REQ_COLUMNS})"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)"
        f" ON CONFLICT {target} DO UPDATE SET"
        " photo = EXCLUDED.photo, signature = EXCLUDED.signature,"
        " all_parcels = EXCLUDED.all_parcels, recipient_name = EXCLUDED.recipient_name,"
        " min_age = EXCLUDED.min_age, updated_at = now()",
        (
            org_id,
            order_id,
            req.photo,
            req.signature,
            req.all_parcels,
            req.recipient_name,
            req.min_age,
        ),
    )


async def order_exists(conn: AsyncConnection[Any], org_id: OrgId, order_id: OrderId) -> bool:
    """Whether ``org_id`` has the order."""
    found = await fetch_one(
        conn,
        scalar_row,
        "SELECT 1 FROM orders WHERE org_id = %s AND id = %s",
        (org_id, order_id),
    )
    return found is not None


async def order_parcels(conn: AsyncConnection[Any], org_id: OrgId, order_id: OrderId) -> list[str]:
    """The barcodes of the order's parcels, in order."""
    return await fetch_all(
        conn,
        scalar_row,
        "SELECT barcode FROM parcels WHERE org_id = %s AND order_id = %s ORDER BY position",
        (org_id, order_id),
    )


# --- overrides -------------------------------------------------------------------------------


@dataclass(frozen=True)
class OverrideRow:
    """A dispatcher's waiver of a stop's requirements."""

    stop_id: StopId
    waived: list[str]
    reason: str
    at: datetime


async def add_override(
    conn: AsyncConnection[Any],
    org_id: OrgId,
    stop_id: StopId,
    waived: Sequence[str],
    reason: str,
    api_key_id: int | None,
) -> OverrideRow:
    """Record a waiver."""
    row = await fetch_one(
        conn,
        class_row(OverrideRow),
        "INSERT INTO proof_overrides (org_id, stop_id, waived, reason, api_key_id)"
        " VALUES (%s, %s, %s, %s, %s) RETURNING stop_id, waived, reason, at",
        (org_id, stop_id, list(waived), reason, api_key_id),
    )
    return returned(row)


async def overrides(conn: AsyncConnection[Any], stop_ids: Sequence[int]) -> list[OverrideRow]:
    """The waivers of ``stop_ids``, oldest first."""
    return await fetch_all(
        conn,
        class_row(OverrideRow),
        "SELECT stop_id, waived, reason, at FROM proof_overrides WHERE stop_id = ANY(%s)"
        " ORDER BY at, id",
        (list(stop_ids),),
    )


# --- the stop a proof closes -----------------------------------------------------------------


@dataclass(frozen=True)
class StopContext:
    """What capturing a proof needs of the stop."""

    stop_id: StopId
    route_id: RouteId
    order_id: OrderId
    status: str
    day: date
    attempt: int
    lat: float
    lon: float


async def stop_context(
    conn: AsyncConnection[Any],
    org_id: OrgId,
    driver_id: DriverId | None,
    stop_id: StopId,
    *,
    lock: bool = False,
) -> StopContext | None:
    """A live stop of ``org_id`` (on ``driver_id``'s route when given), or None."""
    query: LiteralString = (
        "SELECT s.id AS stop_id, s.route_id, s.order_id, s.status, r.day, o.attempt,"
        " o.lat, o.lon FROM stops s JOIN routes r ON r.id = s.route_id"
        " JOIN orders o ON o.org_id = s.org_id AND o.id = s.order_id"
        " WHERE s.id = %s AND s.org_id = %s AND s.status <> 'removed'"
        " AND (%s::bigint IS NULL OR r.driver_id = %s)"
    )
    if lock:
        query += " FOR UPDATE OF s"
    return await fetch_one(
        conn, class_row(StopContext), query, (stop_id, org_id, driver_id, driver_id)
    )


async def mark_stop(
    conn: AsyncConnection[Any],
    stop_id: StopId,
    *,
    attempt: int,
    failure_code: str | None,
    missing: Sequence[str] = (),
    unexpected: Sequence[str] = (),
) -> None:
    """Record on a closed stop its attempt, failure code and the parcels flagged."""
    await conn.execute(
        "UPDATE stops SET attempt = %s, failure_code = %s, missing_parcels = %s,"
        " unexpected_parcels = %s WHERE id = %s",
        (attempt, failure_code, list(missing), list(unexpected), stop_id),
    )


async def note_close(conn: AsyncConnection[Any], stop_id: StopId, failure_code: str | None) -> None:
    """Record on a stop closed without a proof its failure code and its order's attempt."""
    await conn.execute(
        "UPDATE stops s SET failure_code = %s, attempt = o.attempt FROM orders o"
        " WHERE s.id = %s AND o.org_id = s.org_id AND o.id = s.order_id",
        (failure_code, stop_id),
    )


# --- proofs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewImage:
    """An image of a proof, its blobs already stored."""

    kind: str
    sha256: str
    thumb_sha256: str
    width: int
    height: int
    taken_at: datetime | None = None
    exif_lat: float | None = None
    exif_lon: float | None = None


@dataclass(frozen=True)
class NewProof:
    """A proof about to be stored."""

    org_id: OrgId
    stop: StopContext
    driver_id: DriverId
    outcome: str
    idempotency_key: str
    device_time: datetime | None
    lat: float | None
    lon: float | None
    accuracy_m: float | None
    recipient_name: str | None
    notes: str | None
    age_verified: bool
    scans: list[str]
    decoded_scans: list[str]
    missing_parcels: list[str]
    unexpected_parcels: list[str]
    failure_code: str | None
    failure_text: str | None
    images: list[NewImage] = field(default_factory=list)


async def record_blobs(conn: AsyncConnection[Any], blobs: Sequence[tuple[str, int, str]]) -> None:
    """Note stored blobs, each ``(sha256, size_bytes, content_type)``, once each."""
    async with conn.cursor() as cursor:
        await cursor.executemany(
            "INSERT INTO blobs (sha256, size_bytes, content_type) VALUES (%s, %s, %s)"
            " ON CONFLICT (sha256) DO NOTHING",
            blobs,
        )


async def proof_id_by_key(
    conn: AsyncConnection[Any], org_id: OrgId, driver_id: DriverId, key: str
) -> tuple[int, StopId] | None:
    """The proof an idempotency key already stored, and its stop."""
    row = await fetch_one(
        conn,
        dict_row,
        "SELECT id, stop_id FROM proofs WHERE org_id = %s AND driver_id = %s"
        " AND idempotency_key = %s",
        (org_id, driver_id, key),
    )
    if row is None:
        return None
    return int(row["id"]), StopId(row["stop_id"])


async def insert_proof(conn: AsyncConnection[Any], proof: NewProof) -> int | None:
    """Store ``proof`` and its images; None when its idempotency key is taken."""
    stop = proof.stop
    proof_id = await fetch_one(
        conn,
        scalar_row,
        "INSERT INTO proofs (org_id, stop_id, order_id, route_id, driver_id, day, outcome,"
        " attempt, idempotency_key, device_time, lat, lon, accuracy_m, recipient_name, notes,"
        " age_verified, scans, decoded_scans, missing_parcels, unexpected_parcels,"
        " failure_code, failure_text) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
        " %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (org_id, driver_id, idempotency_key) DO NOTHING RETURNING id",
        (
            proof.org_id,
            stop.stop_id,
            stop.order_id,
            stop.route_id,
            proof.driver_id,
            stop.day,
            proof.outcome,
            stop.attempt,
            proof.idempotency_key,
            proof.device_time,
            proof.lat,
            proof.lon,
            proof.accuracy_m,
            proof.recipient_name,
            proof.notes,
            proof.age_verified,
            proof.scans,
            proof.decoded_scans,
            proof.missing_parcels,
            proof.unexpected_parcels,
            proof.failure_code,
            proof.failure_text,
        ),
    )
    if proof_id is None:
        return None
    if proof.images:
        async with conn.cursor() as cursor:
            await cursor.executemany(
                "INSERT INTO proof_images (proof_id, position, kind, sha256, thumb_sha256,"
                " width, height, taken_at, exif_lat, exif_lon)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (
                        proof_id,
                        n,
                        image.kind,
                        image.sha256,
                        image.thumb_sha256,
                        image.width,
                        image.height,
                        image.taken_at,
                        image.exif_lat,
                        image.exif_lon,
                    )
                    for n, image in enumerate(proof.images)
                ],
            )
    return int(proof_id)


@dataclass(frozen=True)
class ImageRow:
    """A stored image of a proof."""

    proof_id: int
    kind: str
    sha256: str
    thumb_sha256: str
    width: int
    height: int
    taken_at: datetime | None
    exif_lat: float | None
    exif_lon: float | None


@dataclass(frozen=True)
class ProofRow:
    """A stored proof, without its images."""

    id: int
    stop_id: StopId
    order_id: OrderId
    route_id: RouteId
    driver_id: DriverId
    day: date
    outcome: str
    attempt: int
    captured_at: datetime
    device_time: datetime | None
    lat: float | None
    lon: float | None
    accuracy_m: float | None
    recipient_name: str | None
    notes: str | None
    age_verified: bool
    scans: list[str]
    decoded_scans: list[str]
    missing_parcels: list[str]
    unexpected_parcels: list[str]
    failure_code: str | None
    failure_text: str | None


_PROOF_COLUMNS: LiteralString = (
    "p.id, p.stop_id, p.order_id, p.route_id, p.driver_id, p.day, p.outcome, p.attempt,"
    " p.captured_at, p.device_time, p.lat, p.lon, p.accuracy_m, p.recipient_name, p.notes,"
    " p.age_verified, p.scans, p.decoded_scans, p.missing_parcels, p.unexpected_parcels,"
    " p.failure_code, p.failure_text"
)


async def get_proof(conn: AsyncConnection[Any], org_id: OrgId, proof_id: int) -> ProofRow | None:
    """A proof of ``org_id``, or None."""
    return await fetch_one(
        conn,
        class_row(ProofRow),
        f"SELECT {_PROOF_COLUMNS} FROM proofs p WHERE p.id = %s AND p.org_id = %s",
        (proof_id, org_id),
    )


async def proof_of_stop(
    conn: AsyncConnection[Any], org_id: OrgId, stop_id: StopId
) -> ProofRow | None:
    """The proof that closed a stop of ``org_id``, or None."""
    return await fetch_one(
        conn,
        class_row(ProofRow),
        f"SELECT {_PROOF_COLUMNS} FROM proofs p WHERE p.stop_id = %s AND p.org_id = %s",
        (stop_id, org_id),
    )


async def images_of(conn: AsyncConnection[Any], proof_ids: Sequence[int]) -> list[ImageRow]:
    """The images of ``proof_ids``, in their order."""
    return await fetch_all(
        conn,
        class_row(ImageRow),
        "SELECT proof_id, kind, sha256, thumb_sha256, width, height, taken_at, exif_lat,"
        " exif_lon FROM proof_images WHERE proof_id = ANY(%s) ORDER BY proof_id, position",
        (list(proof_ids),),
    )


@dataclass(frozen=True)
class Search:
    """What ``GET /v1/proofs`` filters by; None: any."""

    order_id: OrderId | None = None
    driver_id: DriverId | None = None
    customer: str | None = None
    day_from: date | None = None
    day_to: date | None = None
    outcome: str | None = None
    text: str | None = None
    before_id: int | None = None
    limit: int = 100


def _like(text: str | None) -> str | None:
    """``text`` as an ILIKE pattern matching it anywhere, its wildcards taken literally."""
    if text is None:
        return None
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def search(conn: AsyncConnection[Any], org_id: OrgId, query: Search) -> list[ProofRow]:
    """Proofs of ``org_id`` matching every filter, newest first, at most ``limit``."""
    return await fetch_all(
        conn,
        class_row(ProofRow),
        f"SELECT {_PROOF_COLUMNS} FROM proofs p"
        " JOIN orders o ON o.org_id = p.org_id AND o.id = p.order_id"
        " WHERE p.org_id = %(org)s"
        " AND (%(order)s::bigint IS NULL OR p.order_id = %(order)s)"
        " AND (%(driver)s::bigint IS NULL OR p.driver_id = %(driver)s)"
        " AND (%(customer)s::text IS NULL OR o.customer_name ILIKE %(customer)s"
        "      OR o.external_ref ILIKE %(customer)s)"
        " AND (%(from)s::date IS NULL OR p.day >= %(from)s)"
        " AND (%(to)s::date IS NULL OR p.day <= %(to)s)"
        " AND (%(outcome)s::text IS NULL OR p.outcome = %(outcome)s)"
        " AND (%(text)s::text IS NULL OR p.notes ILIKE %(text)s"
        "      OR p.recipient_name ILIKE %(text)s OR p.failure_text ILIKE %(text)s"
        "      OR p.failure_code ILIKE %(text)s OR o.external_ref ILIKE %(text)s"
        "      OR EXISTS (SELECT 1 FROM unnest(p.scans || p.decoded_scans) AS code"
        "                 WHERE code ILIKE %(text)s))"
        " AND (%(before)s::bigint IS NULL OR p.id < %(before)s)"
        " ORDER BY p.id DESC LIMIT %(limit)s",
        {
            "org": org_id,
            "order": query.order_id,
            "driver": query.driver_id,
            "customer": _like(query.customer),
            "from": query.day_from,
            "to": query.day_to,
            "outcome": query.outcome,
            "text": _like(query.text),
            "before": query.before_id,
            "limit": query.limit,
        },
    )


# --- another attempt -------------------------------------------------------------------------


async def reattempt(
    conn: AsyncConnection[Any], org_id: OrgId, order_id: OrderId, day: date
) -> int | None:
    """Put a failed order back among ``day``'s pending orders, one attempt further, its time
    windows moved by as many days as the order was; returns the new attempt number, or None
    when the order is not failed or ``day`` is not later than its current day."""
    # SET reads the row as it was: ``%(day)s - day`` is the number of days the order moves.
    attempt = await fetch_one(
        conn,
        scalar_row,
        "UPDATE orders SET status = 'pending', day = %(day)s, attempt = attempt + 1,"
        " window_starts = ARRAY(SELECT w + make_interval(days => %(day)s::date - day)"
        "   FROM unnest(window_starts) WITH ORDINALITY AS t(w, n) ORDER BY n),"
        " window_ends = ARRAY(SELECT w + make_interval(days => %(day)s::date - day)"
        "   FROM unnest(window_ends) WITH ORDINALITY AS t(w, n) ORDER BY n),"
        " updated_at = now()"
        " WHERE org_id = %(org)s AND id = %(order)s AND status = 'failed' AND day < %(day)s"
        " RETURNING attempt",
        {"day": day, "org": org_id, "order": order_id},
    )
    return None if attempt is None else int(attempt)


async def order_state(
    conn: AsyncConnection[Any], org_id: OrgId, order_id: OrderId
) -> tuple[str, date] | None:
    """The order's status and day, or None when ``org_id`` has no such order."""
    row = await fetch_one(
        conn,
        dict_row,
        "SELECT status, day FROM orders WHERE org_id = %s AND id = %s",
        (org_id, order_id),
    )
    if row is None:
        return None
    return str(row["status"]), row["day"]
