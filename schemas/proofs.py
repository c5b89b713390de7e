"""Proof of delivery on the wire: proofs, requirements, overrides, failure codes, the audit check.

The capture itself is a multipart upload (see ``docs/proofs.md``), read part by part by
``app/api/proof_upload.py``; what it answers, and every JSON body around it, is here.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Final, Literal, get_args

import msgspec
from msgspec import Meta

from schemas.ids import DriverId, OrderId, OrgId, RouteId, StopId

Outcome = Literal["delivered", "failed"]
FailureCode = Literal[
    "not_home",
    "refused",
    "address_not_found",
    "access_problem",
    "damaged",
    "unsafe_to_leave",
    "other",
]
"""Why a stop failed; ``other`` comes with a text saying what happened."""
FAILURE_CODES: Final[tuple[str, ...]] = get_args(FailureCode)

Requirement = Literal["photo", "signature", "recipient_name", "parcels", "age_verified"]
"""What closing a stop as delivered may require (``parcels``: every parcel scanned)."""

Text500 = Annotated[str, Meta(max_length=500)]


class ProofRequirements(msgspec.Struct, frozen=True, kw_only=True):
    """What an order needs before its stop may be closed as delivered."""

    photo: bool = False
    signature: bool = False
    all_parcels: bool = False
    """Every parcel of the order scanned (typed, read by the camera, or read from a label)."""
    recipient_name: bool = False
    min_age: Annotated[int, Meta(ge=1, le=99)] | None = None
    """The recipient's ID was checked for at least this age (``age_verified`` at capture)."""


class OverrideIn(msgspec.Struct, frozen=True, kw_only=True):
    """Body of ``POST /v1/stops/{stop_id}/proof-override``: a dispatcher waives requirements."""

    reason: Annotated[str, Meta(min_length=1, max_length=500)]
    waive: list[Requirement] | None = None
    """What is waived; absent: everything the order requires."""


class Override(msgspec.Struct, frozen=True, kw_only=True):
    """A recorded waiver of a stop's requirements."""

    stop_id: StopId
    waived: list[Requirement]
    reason: str
    at: datetime


class FailStopIn(msgspec.Struct, frozen=True, kw_only=True):
    """Body of ``POST /v1/driver/stops/{id}/fail``: a code and, for ``other``, a text; ``at``
    as in :class:`DriverActionIn`."""

    code: FailureCode = "other"
    reason: Text500 = ""
    at: Annotated[datetime, Meta(tz=True)] | None = None


class DriverActionIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Body of the driver's start, arrive and deliver (it may be empty): when it happened.

    A phone that was offline sends its commands later; ``at`` keeps the time the driver acted
    (none: when the server gets it). At most five minutes ahead of the server's clock, and not
    older than a day."""

    at: Annotated[datetime, Meta(tz=True)] | None = None


class ReattemptIn(msgspec.Struct, frozen=True, kw_only=True):
    """Body of ``POST /v1/orders/{order_id}/reattempt``: try a failed order again that day."""

    day: date


class Reattempt(msgspec.Struct, frozen=True, kw_only=True):
    """A failed order back in the pending orders of a later day."""

    order_id: OrderId
    day: date
    attempt: int


class ProofImage(msgspec.Struct, frozen=True, kw_only=True):
    """A photo (or label photo) of a proof: signed URLs of the served copy and thumbnail."""

    sha256: str
    url: str
    thumbnail_url: str
    width: int
    height: int
    taken_at: datetime | None = None
    """From the photo's EXIF, when it said."""
    exif_lat: float | None = None
    exif_lon: float | None = None


class Proof(msgspec.Struct, frozen=True, kw_only=True):
    """A stop's proof of delivery (or of a failed attempt), as stored."""

    id: int
    stop_id: StopId
    order_id: OrderId
    route_id: RouteId
    driver_id: DriverId
    day: date
    outcome: Outcome
    attempt: int
    captured_at: datetime
    device_time: datetime | None = None
    lat: float | None = None
    lon: float | None = None
    accuracy_m: float | None = None
    recipient_name: str | None = None
    notes: str | None = None
    age_verified: bool = False
    scans: list[str] = []
    decoded_scans: list[str] = []
    """Barcodes read by the server from label photos."""
    missing_parcels: list[str] = []
    unexpected_parcels: list[str] = []
    failure_code: FailureCode | None = None
    failure_text: str | None = None
    photos: list[ProofImage] = []
    labels: list[ProofImage] = []
    signature_url: str | None = None
    overrides: list[Override] = []


class ProofList(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /v1/proofs``: newest first."""

    proofs: list[Proof]
    truncated: bool
    """True when ``limit`` cut the list: ask again with ``before`` = the last id."""


class AuditCheck(msgspec.Struct, frozen=True, kw_only=True):
    """The result of walking one organisation's audit chain."""

    org_id: OrgId
    ok: bool
    entries: int
    """How many entries were checked."""
    first_bad_seq: int | None = None
    reason: str | None = None
