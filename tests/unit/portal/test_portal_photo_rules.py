"""The portal's photos, their pure parts and the store on disk: what is taken (JPEG, PNG, WebP
within the byte and pixel limits), what is kept (upright, a JPEG at most 1600 px on its long
side, no EXIF, XMP or GPS), the reference and where a page shows it, and who the store says
uploaded a photo."""

from __future__ import annotations

import hashlib
from io import BytesIO
from pathlib import Path

import pytest
from jifen.portal.photos import (
    LONG_SIDE,
    MAX_PIXELS,
    PHOTO_MAX_BYTES,
    SMALL_SIDE,
    PhotoRefused,
    PhotoStore,
    digest_of,
    photo_src,
    reencode,
    reference,
)
from jifen.portal.texts import text
from PIL import ExifTags, Image

GPS = {1: "N", 2: (22.0, 35.0, 12.0), 3: "E", 4: (113.0, 4.0, 48.0)}


def jpeg_with_gps(size: tuple[int, int] = (2400, 1800), orientation: int = 1) -> bytes:
    """A JPEG as a phone sends it: EXIF with a GPS position (and an orientation), and XMP."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "PhoneCo"
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.IFD.GPSInfo] = GPS
    img = Image.new("RGB", size, (200, 40, 30))
    img.paste((20, 40, 200), (0, 0, size[0] // 2, size[1] // 4))  # a blue corner: top left
    buf = BytesIO()
    img.save(buf, "JPEG", exif=exif.tobytes(), xmp=b"<x:xmpmeta>GPSLatitude 22.58</x:xmpmeta>")
    data = buf.getvalue()
    assert Image.open(BytesIO(data)).getexif().get_ifd(ExifTags.IFD.GPSInfo)  # it is in there
    return data


def encoded(fmt: str, mode: str = "RGB", size: tuple[int, int] = (300, 200), **kw: object) -> bytes:
    buf = BytesIO()
    Image.new(mode, size).save(buf, fmt, **kw)
    return buf.getvalue()


def test_a_phone_photo_is_kept_as_a_jpeg_without_its_gps_position() -> None:
    photo = reencode(jpeg_with_gps())
    kept = Image.open(BytesIO(photo.full))
    assert kept.format == "JPEG" and kept.mode == "RGB"
    assert kept.size == (LONG_SIDE, 1200)  # 2400x1800 brought to 1600 on its long side
    assert not kept.getexif() and "exif" not in kept.info and "xmp" not in kept.info
    assert "icc_profile" not in kept.info
    for marker in (b"Exif", b"GPS", b"PhoneCo", b"xmpmeta", b"22.58"):
        assert marker not in photo.full and marker not in photo.small, marker
    small = Image.open(BytesIO(photo.small))
    assert max(small.size) == SMALL_SIDE and not small.getexif()
    # content-addressed: the name is the hash of what is kept, and the same photo the same name
    assert photo.digest == hashlib.sha256(photo.full).hexdigest()
    assert reencode(jpeg_with_gps()).digest == photo.digest


def test_a_photo_is_turned_the_way_the_camera_was_held_before_its_exif_goes() -> None:
    # orientation 6: the sensor's picture is to be turned 90 degrees clockwise to be upright
    kept = Image.open(BytesIO(reencode(jpeg_with_gps(orientation=6)).full))
    assert kept.size == (1200, LONG_SIDE)
    # the blue corner (the sensor's top left) is now at the top right
    r, g, b = kept.convert("RGB").getpixel((kept.width - 10, 10))  # type: ignore[misc]
    assert b > 150 and r < 80, (r, g, b)


def test_png_and_webp_are_taken_transparency_on_white_and_a_small_one_is_not_enlarged() -> None:
    for data in (
        encoded("PNG"),
        encoded("PNG", "RGBA"),
        encoded("PNG", "P"),
        encoded("PNG", "I;16"),
        encoded("WEBP"),
        encoded("JPEG", "L"),
        encoded("JPEG", "CMYK"),
    ):
        kept = Image.open(BytesIO(reencode(data).full))
        assert kept.format == "JPEG" and kept.size == (300, 200)
    clear = Image.open(BytesIO(reencode(encoded("PNG", "RGBA")).full))
    assert min(clear.getpixel((5, 5))) > 240  # type: ignore[type-var]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not a photo at all",
        b"%PDF-1.7\n" + b"0" * 1000,
        jpeg_with_gps()[:2000],  # cut short
        encoded("GIF"),  # a format the portal does not take
        encoded("BMP"),
        encoded("TIFF"),
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
    ],
    ids=["empty", "text", "pdf", "truncated", "gif", "bmp", "tiff", "svg"],
)
def test_what_is_not_a_jpeg_png_or_webp_is_refused(data: bytes) -> None:
    with pytest.raises(PhotoRefused) as refused:
        reencode(data)
    assert (refused.value.key, refused.value.status) == ("photo_not_image", 422)


def test_a_photo_over_the_byte_limit_is_refused_before_it_is_decoded() -> None:
    with pytest.raises(PhotoRefused) as refused:
        reencode(b"\xff\xd8\xff" + b"\0" * PHOTO_MAX_BYTES)
    assert (refused.value.key, refused.value.status) == ("photo_too_large", 413)


def test_a_decompression_bomb_is_refused_from_its_header() -> None:
    # 8000 x 8000 of one grey: 64 megapixels in a few tens of kilobytes
    bomb = encoded("PNG", "L", (8000, 8000))
    assert len(bomb) < 200_000 and 8000 * 8000 > MAX_PIXELS
    with pytest.raises(PhotoRefused) as refused:
        reencode(bomb)
    assert refused.value.key == "photo_too_many_pixels"
    # far past it: Pillow's own limit (twice ours) would refuse it even before ours looks
    with pytest.raises(PhotoRefused) as refused:
        reencode(encoded("PNG", "1", (12000, 12000)))
    assert refused.value.key == "photo_too_many_pixels"


def test_the_refusals_say_the_limits_and_that_the_file_must_be_chosen_again() -> None:
    for key in ("photo_not_image", "photo_too_large", "photo_too_many_pixels"):
        zh, en = PhotoRefused(key, 422).says("zh"), PhotoRefused(key, 422).says("en")
        assert "重新选择" in zh and "choose" in en and "kept" in en, key
    assert "8 MB" in PhotoRefused("photo_too_large", 413).says("en")
    assert "5000 万像素" in PhotoRefused("photo_too_many_pixels", 422).says("zh")
    assert f"{PHOTO_MAX_BYTES // 2**20} MB" in text("zh", "photo_hint")


def test_only_a_portal_reference_of_64_hex_becomes_a_photo_address() -> None:
    h = "ab" * 32
    assert reference(h) == f"portal-photo/{h}.jpg" and digest_of(reference(h)) == h
    assert photo_src(reference(h)) == f"/photos/{h}.jpg"
    assert photo_src(reference(h), small=True) == f"/photos/{h}.jpg?size=small"
    for other in (
        None,
        "",
        "photo/123.jpg",
        f"portal-photo/{h.upper()}.jpg",
        f"portal-photo/{h}.png",
        f"portal-photo/{h[:-1]}.jpg",
        f"portal-photo/../{h}.jpg",
        f"portal-photo/{h}.jpg/../../keys",
        f" portal-photo/{h}.jpg",
        f"portal-photo/{h}.jpg\n",
    ):
        assert digest_of(other) is None and photo_src(other) == "", other


def test_the_store_keeps_a_photo_once_and_knows_who_uploaded_it(tmp_path: Path) -> None:
    store = PhotoStore(tmp_path / "photos")
    photo = reencode(jpeg_with_gps())
    ref = store.keep(photo, "vol-0001")
    assert ref == f"portal-photo/{photo.digest}.jpg"
    full = store.path(photo.digest)
    assert full == tmp_path / "photos" / f"{photo.digest}.jpg"
    assert full.read_bytes() == photo.full
    assert store.path(photo.digest, small=True) is not None
    assert (full.stat().st_mode & 0o777) == 0o600
    # the same photo from another volunteer: one file, two uploaders
    assert store.keep(photo, "vol-0002") == ref
    assert sorted(p.name for p in (tmp_path / "photos").glob("*.jpg")) == sorted(
        [f"{photo.digest}.jpg", f"{photo.digest}.small.jpg"]
    )
    assert store.uploaded_by(photo.digest, "vol-0001")
    assert store.uploaded_by(photo.digest, "vol-0002")
    assert not store.uploaded_by(photo.digest, "vol-0003")
    # nothing but 64 lowercase hex is looked up
    for bad in ("../keys", photo.digest.upper(), photo.digest + "/..", "*", ""):
        assert store.path(bad) is None and not store.uploaded_by(bad, "vol-0001")
    assert store.path("cd" * 32) is None  # never stored
    assert not list((tmp_path / "photos").glob(".part-*"))  # no temporary file left behind
