"""Proof images, pure: what is an image, what is too big, what the served copy keeps."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import numpy as np
import pillow_heif
import pytest
import zxingcpp
from PIL import Image

from app import images

MAX_PIXELS = 4_000_000


def jpeg(size: tuple[int, int] = (64, 32), *, exif: Image.Exif | None = None) -> io.BytesIO:
    out = io.BytesIO()
    picture = Image.new("RGB", size, (200, 30, 30))
    picture.paste((20, 20, 220), (0, 0, size[0] // 2, size[1]))
    picture.save(out, format="JPEG", exif=exif.tobytes() if exif is not None else b"")
    out.seek(0)
    return out


def camera_exif() -> Image.Exif:
    """EXIF as a phone writes it: rotated 90° (orientation 6), a time with offset, a position."""
    exif = Image.Exif()
    exif[0x0112] = 6
    sub = exif.get_ifd(0x8769)
    sub[36867] = "2026:12:06 10:15:30"
    sub[36881] = "+01:00"
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (52.0, 31.0, 12.0)
    gps[3] = "W"
    gps[4] = (13.0, 24.0, 36.0)
    return exif


def test_a_text_file_named_jpg_is_refused_naming_the_part() -> None:
    """Bytes that are no image are refused as not an image, with the part's name."""
    with pytest.raises(images.ImageRefused) as refused:
        images.load_photo(io.BytesIO(b"hello, I am text\n" * 50), "photo[0]", MAX_PIXELS)
    assert refused.value.part == "photo[0]"
    assert not refused.value.too_large
    assert "JPEG, PNG, WebP or HEIC" in refused.value.reason


def test_a_decompression_bomb_is_refused_from_its_header() -> None:
    """A tiny PNG claiming 400 million pixels is refused as too large, before decoding."""
    bomb = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(bomb, format="PNG")
    assert bomb.tell() < 200_000
    with pytest.raises(images.ImageRefused) as refused:
        images.load_photo(bomb, "photo[1]", MAX_PIXELS)
    assert refused.value.too_large
    assert refused.value.part == "photo[1]"


def test_an_image_over_the_configured_pixels_is_refused() -> None:
    """An ordinary image with more pixels than configured is refused, saying how many."""
    with pytest.raises(images.ImageRefused) as refused:
        images.load_photo(jpeg((2100, 2000)), "photo[0]", MAX_PIXELS)
    assert refused.value.too_large
    assert "2100x2000" in refused.value.reason


def test_orientation_is_applied_and_exif_kept_as_metadata_but_not_served() -> None:
    """The served copy is upright and carries no EXIF; time and position become metadata."""
    photo = images.load_photo(jpeg((64, 32), exif=camera_exif()), "photo[0]", MAX_PIXELS)
    assert photo.image.size == (32, 64)
    assert photo.meta.taken_at == datetime(2026, 12, 6, 9, 15, 30, tzinfo=UTC)
    assert photo.meta.lat == pytest.approx(52.52)
    assert photo.meta.lon == pytest.approx(-13.41)
    served = Image.open(io.BytesIO(images.served_jpeg(photo.image)))
    assert served.size == (32, 64)
    assert dict(served.getexif()) == {}
    assert "exif" not in served.info


def test_heic_photos_are_read() -> None:
    """A HEIC file (made with pillow-heif) decodes like any photo, and is served as JPEG."""
    heic = io.BytesIO()
    pillow_heif.from_pillow(Image.new("RGB", (96, 64), (10, 120, 40))).save(heic, quality=80)
    heic.seek(0)
    photo = images.load_photo(heic, "photo[0]", MAX_PIXELS)
    assert photo.image.size == (96, 64)
    assert Image.open(io.BytesIO(images.served_jpeg(photo.image))).format == "JPEG"


def test_large_photos_are_served_scaled_down_with_a_thumbnail() -> None:
    """A photo wider than the served size is scaled to it, and the thumbnail to 320 px."""
    photo = images.load_photo(jpeg((3000, 1000)), "photo[0]", 10_000_000)
    assert max(photo.image.size) <= images.SERVED_MAX_SIDE
    thumb = Image.open(io.BytesIO(images.thumbnail_jpeg(photo.image)))
    assert max(thumb.size) == images.THUMB_MAX_SIDE


def test_a_signature_png_must_be_a_png() -> None:
    """A JPEG sent as the signature is refused; a PNG with transparency is flattened on white."""
    with pytest.raises(images.ImageRefused):
        images.load_png(jpeg(), "signature", MAX_PIXELS)
    drawn = io.BytesIO()
    Image.new("RGBA", (40, 20), (0, 0, 0, 0)).save(drawn, format="PNG")
    flat = images.load_png(drawn, "signature", MAX_PIXELS)
    assert flat.mode == "RGB"
    assert flat.getpixel((5, 5)) == (255, 255, 255)


def test_stroke_signatures_are_rendered_and_bad_strokes_refused() -> None:
    """Strokes draw black lines on a white pad of their size; malformed strokes are refused."""
    data = b'{"width": 300, "height": 100, "strokes": [[[10, 50], [290, 50]], [[150, 20]]]}'
    pad = images.render_strokes(data, "signature_strokes")
    assert pad.size == (300, 100)
    assert pad.getpixel((150, 50)) == (0, 0, 0)
    assert pad.getpixel((150, 90)) == (255, 255, 255)
    with pytest.raises(images.ImageRefused) as refused:
        images.render_strokes(b'{"width": 300, "height": 100, "strokes": []}', "signature_strokes")
    assert refused.value.part == "signature_strokes"


def test_a_barcode_is_read_from_a_generated_label_photo() -> None:
    """A Code 128 label generated with zxing-cpp, pasted into a photo, is read back."""
    code = zxingcpp.create_barcode("PKG-301-2", zxingcpp.BarcodeFormat.Code128)
    label = Image.fromarray(np.array(code.to_image(scale=4))).convert("RGB")
    photo = Image.new("RGB", (1200, 900), (235, 232, 225))
    photo.paste(label, (300, 350))
    assert images.read_barcodes(photo) == ["PKG-301-2"]
    assert images.read_barcodes(Image.new("RGB", (200, 200), (255, 255, 255))) == []
