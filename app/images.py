"""Proof images, pure: prove a file is an image, make the copy that is served, read labels.

Bytes or a file in, images and metadata out; no I/O beyond the file handed in, no event loop
(the API runs these in a thread). Every refusal is an :class:`ImageRefused` naming the part.

* :func:`load_photo` decodes with Pillow (HEIC and HEIF through ``pillow-heif``), refusing files
  that are no image and images over ``max_pixels`` — a decompression bomb is one of those, and
  is refused from its header, before its pixels are decoded. It applies the EXIF orientation
  and reads the EXIF capture time and GPS position into :class:`PhotoMeta`.
* :func:`served_jpeg` / :func:`served_png` re-encode without any metadata: what is served
  carries no EXIF, so neither the time nor the position leaks with the picture.
* :func:`render_strokes` draws a signature sent as stroke data into a PNG.
* :func:`read_barcodes` reads the barcodes on a label photo with zxing-cpp.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import IO, Annotated, Final, Literal

import msgspec
import pillow_heif
import zxingcpp
from msgspec import Meta
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

SERVED_MAX_SIDE: Final = 2048
"""The long side of a served photo, in pixels (larger photos are scaled down)."""
THUMB_MAX_SIDE: Final = 320
JPEG_QUALITY: Final = 85
FORMATS: Final = ("JPEG", "PNG", "WEBP", "HEIF")
"""What Pillow may read a photo as (``pillow-heif`` reads HEIC as ``HEIF``)."""

_EXIF_IFD: Final = 0x8769
_GPS_IFD: Final = 0x8825
_DATETIME_ORIGINAL: Final = 36867
_OFFSET_TIME_ORIGINAL: Final = 36881

pillow_heif.register_heif_opener()


class ImageRefused(Exception):
    """An uploaded part that is not an acceptable image: ``too_large`` (413) or not an image."""

    def __init__(self, part: str, reason: str, *, too_large: bool = False) -> None:
        super().__init__(f"{part}: {reason}")
        self.part = part
        self.reason = reason
        self.too_large = too_large


@dataclass(frozen=True)
class PhotoMeta:
    """What a photo's EXIF said about when and where it was taken (None when it did not)."""

    taken_at: datetime | None
    lat: float | None
    lon: float | None


@dataclass(frozen=True)
class Photo:
    """A decoded, upright photo and its metadata."""

    image: Image.Image
    meta: PhotoMeta


def load_photo(
    file: IO[bytes], part: str, max_pixels: int, *, default_zone: timezone = UTC
) -> Photo:
    """Decode ``file`` as a photo, upright, scaled to at most :data:`SERVED_MAX_SIDE`.

    ``default_zone`` is the zone of an EXIF time that states none (cameras often do not).
    Raises :class:`ImageRefused`.
    """
    image = _open(file, part, max_pixels)
    # JPEG can decode at 1/2, 1/4 or 1/8 scale: a 12-megapixel photo then never needs its
    # full-size pixels in memory.
    image.draft("RGB", (SERVED_MAX_SIDE, SERVED_MAX_SIDE))
    try:
        exif = image.getexif()
        meta = _meta(exif, default_zone)
        image.load()
        upright = ImageOps.exif_transpose(image)
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageRefused(part, f"expected a decodable image, got a broken one ({exc})") from None
    upright.thumbnail((SERVED_MAX_SIDE, SERVED_MAX_SIDE))
    return Photo(image=_rgb(upright), meta=meta)


def load_png(file: IO[bytes], part: str, max_pixels: int) -> Image.Image:
    """Decode ``file`` as a PNG (a signature); raises :class:`ImageRefused`."""
    image = _open(file, part, max_pixels, formats=("PNG",), expected="a PNG image")
    try:
        image.load()
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageRefused(part, f"expected a decodable PNG, got a broken one ({exc})") from None
    return _rgb(image)


def _open(
    file: IO[bytes],
    part: str,
    max_pixels: int,
    formats: tuple[str, ...] = FORMATS,
    expected: str = "a JPEG, PNG, WebP or HEIC image",
) -> Image.Image:
    file.seek(0)
    try:
        with warnings.catch_warnings():
            # Our own pixel limit decides; Pillow's global one must not warn or refuse first.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(file, formats=list(formats))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRefused(
            part, f"expected a normal image, got a decompression bomb ({exc})", too_large=True
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise ImageRefused(part, f"expected {expected}, got data that is none") from None
    width, height = image.size
    if width * height > max_pixels:
        raise ImageRefused(
            part,
            f"expected at most {max_pixels} pixels, got {width}x{height} = {width * height}",
            too_large=True,
        )
    return image


def _rgb(image: Image.Image) -> Image.Image:
    """``image`` as RGB; transparency over white (a signature drawn on nothing)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")


def served_jpeg(image: Image.Image) -> bytes:
    """``image`` as a JPEG with no metadata at all (no EXIF, no comments, no ICC profile)."""
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def served_png(image: Image.Image) -> bytes:
    """``image`` as a PNG with no metadata chunks."""
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def thumbnail_jpeg(image: Image.Image) -> bytes:
    """A JPEG at most :data:`THUMB_MAX_SIDE` pixels on its long side."""
    small = image.copy()
    small.thumbnail((THUMB_MAX_SIDE, THUMB_MAX_SIDE))
    return served_jpeg(small)


def read_barcodes(image: Image.Image) -> list[str]:
    """The text of every barcode zxing-cpp finds on ``image``, in its order, once each."""
    found: list[str] = []
    for barcode in zxingcpp.read_barcodes(image):
        if barcode.valid and barcode.text and barcode.text not in found:
            found.append(barcode.text)
    return found


# --- signatures as strokes -------------------------------------------------------------------

Coordinate = Annotated[float, Meta(ge=0, le=4000)]


class Strokes(msgspec.Struct, frozen=True, kw_only=True):
    """A signature drawn on a ``width`` × ``height`` pad: lines through points ``[x, y]``."""

    width: Annotated[int, Meta(ge=16, le=4000)]
    height: Annotated[int, Meta(ge=16, le=4000)]
    strokes: Annotated[
        list[Annotated[list[tuple[Coordinate, Coordinate]], Meta(min_length=1, max_length=5000)]],
        Meta(min_length=1, max_length=500),
    ]


_STROKES: Final = msgspec.json.Decoder(Strokes)
MAX_STROKE_POINTS: Final = 20_000


def render_strokes(data: bytes, part: str) -> Image.Image:
    """Draw a signature's strokes, black on white, into an image of the pad's size.

    Raises :class:`ImageRefused` when ``data`` is no such JSON or has too many points.
    """
    try:
        strokes = _STROKES.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ImageRefused(
            part, f'expected {{"width", "height", "strokes": [[[x, y], ...], ...]}}, got: {exc}'
        ) from None
    points = sum(len(stroke) for stroke in strokes.strokes)
    if points > MAX_STROKE_POINTS:
        raise ImageRefused(part, f"expected at most {MAX_STROKE_POINTS} points, got {points}")
    image = Image.new("RGB", (strokes.width, strokes.height), (255, 255, 255))
    pen = ImageDraw.Draw(image)
    for stroke in strokes.strokes:
        if len(stroke) == 1:
            x, y = stroke[0]
            pen.ellipse((x - 1.5, y - 1.5, x + 1.5, y + 1.5), fill=(0, 0, 0))
        else:
            pen.line(stroke, fill=(0, 0, 0), width=3, joint="curve")
    return image


# --- EXIF ------------------------------------------------------------------------------------


def _meta(exif: Image.Exif, default_zone: timezone) -> PhotoMeta:
    taken_at = _taken_at(exif.get_ifd(_EXIF_IFD), default_zone)
    lat, lon = _position(exif.get_ifd(_GPS_IFD))
    return PhotoMeta(taken_at=taken_at, lat=lat, lon=lon)


def _taken_at(ifd: dict[int, object], default_zone: timezone) -> datetime | None:
    raw = ifd.get(_DATETIME_ORIGINAL)
    if not isinstance(raw, str):
        return None
    try:
        local = datetime.strptime(raw.strip("\x00 "), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    zone = default_zone
    offset = ifd.get(_OFFSET_TIME_ORIGINAL)
    if isinstance(offset, str) and len(offset) >= 6 and offset[0] in "+-":
        try:
            hours, minutes = int(offset[1:3]), int(offset[4:6])
        except ValueError:
            return local.replace(tzinfo=zone).astimezone(UTC)
        sign = 1 if offset[0] == "+" else -1
        zone = timezone(sign * timedelta(hours=hours, minutes=minutes))
    return local.replace(tzinfo=zone).astimezone(UTC)


def _position(ifd: dict[int, object]) -> tuple[float | None, float | None]:
    lat = _degrees(ifd.get(2), ifd.get(1), "S")
    lon = _degrees(ifd.get(4), ifd.get(3), "W")
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None, None
    return lat, lon


def _degrees(value: object, ref: object, negative: Literal["S", "W"]) -> float | None:
    if not isinstance(value, tuple) or len(value) != 3:
        return None
    try:
        degrees, minutes, seconds = (float(part) for part in value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    result = degrees + minutes / 60 + seconds / 3600
    return -result if isinstance(ref, str) and ref.strip("\x00").upper() == negative else result
