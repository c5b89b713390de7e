"""A proof capture's multipart body, read and checked: the parts of ``docs/proofs.md``, each
refused (400, 413 or 415) naming the part at fault.

:func:`read_form` streams the body through Starlette's multipart parser, files spooled to disk
past 64 KiB, and counts what it reads, so a request over its limit is refused (413) as soon as
it gets there, whatever its ``Content-Length`` said. :func:`parse_capture` turns the parts into
a :class:`Capture`; the images in it are decoded later, by :mod:`app.api.proofs`.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Final

from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from app.errors import InvalidField
from app.http import ascii_int
from realtime.errors import MalformedBody, PayloadTooLarge, UnsupportedMediaType
from schemas.proofs import FAILURE_CODES

MAX_PHOTOS: Final = 8
MAX_LABELS: Final = 4
MAX_SCANS: Final = 200
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


class _SpoolingParser(MultiPartParser):
    """Starlette's parser, keeping at most 64 KiB of each file part in memory (not 1 MiB)
    before it goes to a temporary file: twenty uploads waiting for the image threads then hold
    about a megabyte between them, not twenty."""

    spool_max_size = 64 * 1024


async def read_form(request: Request, limit: int) -> FormData:
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

    parser = _SpoolingParser(
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


def parse_capture(form: FormData) -> Capture:
    """The capture's parts, or 400 naming the first one at fault."""
    texts: dict[str, str] = {}
    files: dict[str, list[IO[bytes]]] = {name: [] for name in _FILES}
    scans: list[str] = []
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            if name not in _FILES:
                raise InvalidField(
                    name or "part", f"expected a file part only as one of {sorted(_FILES)}"
                )
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
            raise InvalidField(
                name or "part",
                "expected a part named in docs/proofs.md, got "
                + (f"one named {name[:60]!r}" if name else "one with an empty name"),
            )
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
