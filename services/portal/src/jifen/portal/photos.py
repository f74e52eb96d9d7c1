"""The photos people attach to a completion or a hazard report (#20: "complete with a note and
a photo; report a hazard (photo, place)"), kept by the portal itself: the tasks API is handed
only a reference, ``portal-photo/<sha256>.jpg``, as any community app would hand it its own
storage key.

A photo is optional. It is taken only if it decodes as a JPEG, PNG or WebP of at most
``PHOTO_MAX_BYTES`` and ``MAX_PIXELS`` (a decompression bomb is refused before it is decoded), and
it is never kept as sent: it is turned upright, re-encoded as a JPEG at most ``LONG_SIDE`` pixels
on its long side, with no EXIF, XMP or ICC data (a resident's GPS position stays on their phone),
and stored content-addressed as ``<sha256 of the JPEG>.jpg`` under the portal's data folder, with
a small copy for lists (``<sha256>.small.jpg``). Who uploaded it is kept beside it, one empty file
per uploader named by a hash of their account (``owners/<sha256>/<hash>``): a photo is served
(``GET /photos/<sha256>.jpg``, ``?size=small`` for the small copy) to a signed-in officer or
admin, who verify completions and triage hazards, and to whoever uploaded it; to anyone else it
does not exist (404), and to a visitor not signed in it is refused (403).

A multipart form (the portal's only ones are those with a photo) is read by ``MultipartForms``, in
front of the kernel's body bound (256 KB, read whole, for the JSON the services take): streamed,
its file to a temporary file, only once its declared length is known to be at most
``BODY_MAX_BYTES`` (a browser always declares it; the server holds a body to it), one file and a
few fields at most. The handler behind it gets the parsed form, its CSRF token checked before
anything else, and a photo over the limit but within that bound is refused with what was typed
kept; a form past the bound is refused unread."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, Response
from jifen.portal.apis import ApiError
from jifen.portal.sessions import COOKIE
from jifen.portal.texts import Lang, text
from PIL import Image, ImageOps, UnidentifiedImageError
from python_multipart.multipart import parse_options_header
from starlette.datastructures import FormData, Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from jifen.portal.app import Pages

PHOTO_MAX_BYTES = 8 * 1024 * 1024  # a phone's photo is 2-6 MB; 8 MB as sent at most
BODY_MAX_BYTES = 24 * 1024 * 1024  # a form past this is not read at all
MAX_PIXELS = 50_000_000  # a 48-megapixel phone's full-size shot still fits
LONG_SIDE = 1600  # enough to read a stairwell's clutter or a meal count on a phone screen
SMALL_SIDE = 320  # the copy a list shows (the officer's queue: 20 at a time)
QUALITY = 85
SMALL_QUALITY = 80
ACCEPTED = ("JPEG", "PNG", "WEBP")
FIELD = "photo"  # the form's file input
KEPT = "photo_kept"  # the reference of a photo already uploaded, when the API refused the form
PREFIX = "portal-photo/"
OFFICERS = ("officer", "admin")

_REF = re.compile(r"portal-photo/([0-9a-f]{64})\.jpg")
_NAME = re.compile(r"([0-9a-f]{64})\.jpg")

# Pillow's own check, a second net behind the explicit one in reencode (it warns past this many
# pixels and refuses past twice as many)
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class PhotoRefused(Exception):
    """A photo the portal does not take, in the words of ``texts`` (``key``)."""

    def __init__(self, key: str, status: int) -> None:
        super().__init__(key)
        self.key = key
        self.status = status

    def says(self, lang: Lang) -> str:
        return text(
            lang,
            self.key,
            mb=PHOTO_MAX_BYTES // (1024 * 1024),
            body_mb=BODY_MAX_BYTES // (1024 * 1024),
            megapixels=MAX_PIXELS // 1_000_000,
        )


NOT_AN_IMAGE = ("photo_not_image", 422)
TOO_LARGE = ("photo_too_large", 413)
TOO_MANY_PIXELS = ("photo_too_many_pixels", 422)


@dataclass(frozen=True)
class Encoded:
    """A photo as the portal keeps it: the JPEG, its small copy, the JPEG's SHA-256 (hex)."""

    full: bytes
    small: bytes
    digest: str


def reencode(data: bytes) -> Encoded:
    """``data`` checked and re-encoded (pure: no I/O). Raises ``PhotoRefused``."""
    if len(data) > PHOTO_MAX_BYTES:
        raise PhotoRefused(*TOO_LARGE)
    if not data:
        raise PhotoRefused(*NOT_AN_IMAGE)
    try:
        with Image.open(BytesIO(data), formats=ACCEPTED) as img:
            # the header tells the size: a bomb is refused before a pixel is decoded
            if img.width * img.height > MAX_PIXELS:
                raise PhotoRefused(*TOO_MANY_PIXELS)
            # a JPEG may be decoded at 1/2, 1/4 or 1/8 scale straight away (far less memory)
            scale = max(img.width, img.height) / LONG_SIDE
            if scale > 1:
                img.draft("RGB", (int(img.width / scale), int(img.height / scale)))
            img.load()
            upright = ImageOps.exif_transpose(img)  # the way the camera was held
            flat = _rgb(upright)
    except PhotoRefused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise PhotoRefused(*TOO_MANY_PIXELS) from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as e:
        raise PhotoRefused(*NOT_AN_IMAGE) from e
    flat.thumbnail((LONG_SIDE, LONG_SIDE), Image.Resampling.LANCZOS)
    # a fresh image: nothing of the original's metadata (EXIF, XMP, ICC, comments) comes along
    out = Image.new("RGB", flat.size)
    out.paste(flat)
    full = _jpeg(out, QUALITY)
    out.thumbnail((SMALL_SIDE, SMALL_SIDE), Image.Resampling.LANCZOS)
    return Encoded(full, _jpeg(out, SMALL_QUALITY), hashlib.sha256(full).hexdigest())


def _rgb(img: Image.Image) -> Image.Image:
    """Three channels; transparency laid on white (a JPEG has none)."""
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGB", rgba.size, (255, 255, 255))
        white.paste(rgba, mask=rgba.getchannel("A"))
        return white
    if img.mode.startswith("I"):  # a 16-bit greyscale PNG: scaled down to 8 bits
        return img.convert("I").point(lambda v: v * (1 / 256)).convert("L").convert("RGB")
    return img.convert("RGB")


def _jpeg(img: Image.Image, quality: int) -> bytes:
    buf = BytesIO()
    img.save(buf, "JPEG", quality=quality, optimize=True, progressive=True)
    return buf.getvalue()


def reference(digest: str) -> str:
    return f"{PREFIX}{digest}.jpg"


def digest_of(ref: str | None) -> str | None:
    """The SHA-256 a portal reference names, or None for anything else."""
    found = _REF.fullmatch(ref or "")
    return found.group(1) if found else None


def photo_src(ref: str | None, small: bool = False) -> str:
    """A template filter: where a page shows the photo a reference names ("" if it names none
    of the portal's): ``/photos/<sha256>.jpg``."""
    digest = digest_of(ref)
    if digest is None:
        return ""
    return f"/photos/{digest}.jpg" + ("?size=small" if small else "")


def _who(subject: str) -> str:
    # an account id becomes a file name of fixed shape, whatever characters it has
    return hashlib.sha256(subject.encode()).hexdigest()[:32]


class PhotoStore:
    """The photos on disk under ``root``: ``<sha256>.jpg``, ``<sha256>.small.jpg`` and
    ``owners/<sha256>/<uploader's hash>``. Writes are atomic (a temporary file renamed), and a
    photo stored twice is the same file."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def keep(self, photo: Encoded, uploader: str) -> str:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        full = self.root / f"{photo.digest}.jpg"
        if not full.exists():
            # the small copy first: the full one's presence says the photo is complete
            _write(self.root / f"{photo.digest}.small.jpg", photo.small)
            _write(full, photo.full)
        mark = self.root / "owners" / photo.digest / _who(uploader)
        mark.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        mark.touch(mode=0o600)
        return reference(photo.digest)

    def path(self, digest: str, *, small: bool = False) -> Path | None:
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            return None
        found = self.root / (f"{digest}.small.jpg" if small else f"{digest}.jpg")
        return found if found.is_file() else None

    def uploaded_by(self, digest: str, subject: str) -> bool:
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            return False
        return (self.root / "owners" / digest / _who(subject)).is_file()


def _write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


FORM = "jifen.portal.multipart"  # where MultipartForms leaves the parsed form in the scope


class MultipartForms:
    """A POST of ``multipart/form-data``, read here: its declared length checked, streamed into
    Starlette's parser (one file, spooled to a temporary file; 40 fields), and left parsed (or
    the refusal, a ``PhotoRefused``) in ``scope[FORM]`` for the handler; the app behind sees an
    empty body. Outermost, so the kernel's bound on bodies read whole stays as it is for all
    else."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        kind, _ = parse_options_header(headers.get("content-type", ""))
        if kind != b"multipart/form-data":
            await self.app(scope, receive, send)
            return
        declared = headers.get("content-length", "")
        parsed: FormData | PhotoRefused
        if not declared.isdigit():
            parsed = PhotoRefused("photo_unsized", 411)
        elif int(declared) > BODY_MAX_BYTES:
            parsed = PhotoRefused("photo_form_too_large", 413)  # not read at all
        else:
            try:
                parsed = await MultiPartParser(
                    headers, _chunks(receive), max_files=1, max_fields=40
                ).parse()
            except MultiPartException:
                parsed = PhotoRefused("photo_form_unreadable", 400)
        kept = [
            (k, v) for k, v in scope["headers"] if k not in (b"content-type", b"content-length")
        ]
        inner = {**scope, "headers": [*kept, (b"content-length", b"0")], FORM: parsed}
        read = False

        async def nothing_more() -> Message:
            nonlocal read
            if not read:  # the body, read above
                read = True
                return {"type": "http.request", "body": b"", "more_body": False}
            return await receive()  # then only a disconnect

        try:
            await self.app(inner, nothing_more, send)
        finally:
            if isinstance(parsed, FormData):
                await parsed.close()


async def _chunks(receive: Receive) -> AsyncGenerator[bytes, None]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


class Photos:
    """What a form that takes a photo needs: ``form`` reads it (as ``MultipartForms`` parsed
    it; its CSRF token checked first, as ``pages.form`` does), ``keep`` takes its photo."""

    def __init__(self, pages: Pages, store: PhotoStore) -> None:
        self.pages = pages
        self.store = store

    async def form(self, request: Request) -> dict[str, str]:
        """The posted form's text fields, CSRF checked. Raises ``PhotoRefused`` for a form
        not read (declared longer than ``BODY_MAX_BYTES``: nothing typed can be kept)."""
        parsed = request.scope.get(FORM)
        if parsed is None:  # not multipart: an ordinary form
            return await self.pages.form(request)
        if isinstance(parsed, PhotoRefused):
            raise parsed
        fields = {k: v for k, v in parsed.items() if isinstance(v, str)}
        if not self.pages.session(request).csrf_ok(fields.get("csrf")):
            lang: Lang = "en" if request.cookies.get("lang") == "en" else "zh"
            raise ApiError(403, text(lang, "csrf"), "csrf")
        return fields

    async def keep(self, request: Request, fields: dict[str, str], uploader: str) -> str:
        """The reference of the form's photo, stored ("" when none was chosen); or of the one
        ``uploader`` already sent with this form, when the API refused it the first time."""
        parsed = request.scope.get(FORM)
        upload = parsed.get(FIELD) if isinstance(parsed, FormData) else None
        if isinstance(upload, UploadFile) and (upload.size or upload.filename):
            if (upload.size or 0) > PHOTO_MAX_BYTES:
                raise PhotoRefused(*TOO_LARGE)
            data = await upload.read(PHOTO_MAX_BYTES + 1)
            photo = await asyncio.to_thread(reencode, data)
            return await asyncio.to_thread(self.store.keep, photo, uploader)
        digest = digest_of(fields.get(KEPT))
        if digest and self.store.path(digest) and self.store.uploaded_by(digest, uploader):
            return reference(digest)
        return ""


def add_photo_pages(app: FastAPI, pages: Pages) -> Photos:
    """``GET /photos/<sha256>.jpg``; the ``Photos`` the forms that take a photo use."""
    photos = Photos(pages, PhotoStore(pages.settings.data_path() / "photos"))
    app.add_middleware(MultipartForms)

    def refused(request: Request, status: int, key: str) -> Response:
        lang: Lang = "en" if request.cookies.get("lang") == "en" else "zh"
        return Response(
            text(lang, key),
            status_code=status,
            media_type="text/plain; charset=utf-8",
            headers={"Cache-Control": "no-store"},
        )

    @app.get(
        "/photos/{name}",
        summary="A photo attached to a completion or a hazard (officers, admins, its uploader)",
        response_class=Response,
    )
    async def photo(request: Request, name: str, size: str | None = None) -> Response:
        found = _NAME.fullmatch(name)
        if found is None:
            return refused(request, 404, "not_found")
        # the session as it is: a visitor's request for a photo makes none
        s = pages.sessions.get(request.cookies.get(COOKIE))
        me = s.current if s is not None else None
        if me is None:
            return refused(request, 403, "photo_forbidden")
        digest = found.group(1)
        if me.role not in OFFICERS and not photos.store.uploaded_by(digest, me.subject):
            return refused(request, 404, "not_found")  # whether it exists is not told
        path = photos.store.path(digest, small=size == "small")
        if path is None:
            return refused(request, 404, "not_found")
        return FileResponse(
            path,
            media_type="image/jpeg",
            headers={
                # a photo is the same for ever (its name is its hash), but only for this person
                "Cache-Control": "private, max-age=86400",
                "X-Content-Type-Options": "nosniff",
            },
        )

    return photos
