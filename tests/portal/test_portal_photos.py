"""Photos with a completion and a hazard report, in a real browser against the real stack: a
volunteer (JavaScript off) completes a job with a photo from a phone, its GPS position in the
EXIF; the portal keeps it re-encoded without it and hands the tasks API
``portal-photo/<sha256>.jpg``; the officer sees it beside the note in the queue and verifies;
the volunteer sees it on the job's page; a hazard reported with a photo carries the reference.
A file that is not a photo and one too large are refused with what was typed kept; a photo sent
with a form the API refused is kept for the next try. Attacks: a visitor and another volunteer
cannot fetch the photo, a path that is not a photo's name is refused, a forged CSRF token, a
form from the wrong role and another's photo named in the form store and attach nothing. Pages
are held to the budget, checked by axe and shot in both languages (results/portal/). The tests
run in order on one module's world (the attacks use the first test's photo)."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import os
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pytest
from jifen.portal.photos import BODY_MAX_BYTES, PHOTO_MAX_BYTES, reencode
from PIL import ExifTags, Image
from playwright.async_api import Browser, BrowserContext, Page, expect

from jifen.devtools.devstack import DevStack
from tests.portal.test_portal_journey import Pages, _ops, _phone, _sign_in

pytestmark = pytest.mark.e2e

REF = re.compile(r"portal-photo/([0-9a-f]{64})\.jpg")


def phone_photo(seed: int, size: tuple[int, int] = (2400, 1800)) -> bytes:
    """A JPEG as a phone sends it, with the place it was taken in its EXIF (GPS) and XMP."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "PhoneCo"
    exif[ExifTags.IFD.GPSInfo] = {1: "N", 2: (22.0, 35.0, 12.0), 3: "E", 4: (113.0, 4.0, 48.0)}
    img = Image.new("RGB", size, (seed % 256, 120, 60))
    img.paste((30, 60, 200), (0, 0, size[0] // 3, size[1] // 3))
    buf = BytesIO()
    img.save(buf, "JPEG", exif=exif.tobytes(), xmp=b"<x:xmpmeta>GPSLatitude 22.58</x:xmpmeta>")
    return buf.getvalue()


def png(seed: int) -> bytes:
    buf = BytesIO()
    Image.new("RGBA", (900, 600), (seed % 256, 200, 40, 255)).save(buf, "PNG")
    return buf.getvalue()


def file(name: str, mime: str, data: bytes) -> dict[str, Any]:
    return {"name": name, "mimeType": mime, "buffer": data}


@dataclass
class World:
    base: str
    tag: str
    community: str
    photos: Path
    volunteer: str
    other: str
    jobs: dict[str, dict[str, Any]]
    pages: Pages
    ctx: dict[str, BrowserContext]
    page: dict[str, Page]


def _auth(services: DevStack, role: str, subject: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {services.token(role, subject)}"}


@pytest.fixture(scope="module")
async def world(
    portal: str, services: DevStack, browser: Browser, shots: Path
) -> AsyncIterator[World]:
    tag = uuid.uuid4().hex[:6]
    community = f"photo-grid-{tag}"
    vol, other, officer = f"vol-photo-{tag}", f"vol-photo2-{tag}", f"officer-photo-{tag}"
    phones = {vol: _phone(), other: _phone(), officer: _phone()}
    now = datetime.now(UTC)
    window = {
        "starts_at": max(
            now - timedelta(hours=1), now.replace(day=1, hour=0, minute=0, second=1)
        ).isoformat(),
        "ends_at": (now + timedelta(hours=3)).isoformat(),
    }
    jobs: dict[str, dict[str, Any]] = {}
    async with httpx.AsyncClient(base_url=services.url("tasks"), timeout=20) as http:
        r = await http.post(
            "/v1/communities",
            headers=_auth(services, "officer"),
            json={"id": community, "name": f"拍照网格{tag} Photo grid {tag}"},
        )
        assert r.status_code == 201, r.text
        for person, role in ((vol, "volunteer"), (other, "volunteer"), (officer, "officer")):
            r = await http.post(
                "/v1/people",
                headers=_auth(services, "admin"),
                json={"person_id": person, "phone": phones[person], "role": role},
            )
            assert r.status_code == 201, r.text
        for key, title, verification in (
            ("lunch", f"为独居老人送午餐 Lunch for elders {tag}", "officer"),
            ("refused", f"楼道清理 Stairwell clean-up {tag}", "officer"),
            ("checkin", f"电动车维修日 E-bike repair day {tag}", "checkin"),
            ("attack", f"路口引导 Crossing guide {tag}", "officer"),
        ):
            r = await http.post(
                "/v1/jobs",
                headers=_auth(services, "officer"),
                json={
                    "community_id": community,
                    "title": title,
                    "category": "meal_delivery" if key == "lunch" else "other",
                    "points": 10,
                    "capacity": 5,
                    "verification": verification,
                    **window,
                },
            )
            assert r.status_code == 201, r.text
            jobs[key] = r.json()
    pages = Pages(shots)
    ctx = {
        "volunteer": await browser.new_context(
            viewport={"width": 375, "height": 740}, java_script_enabled=False
        ),
        "other": await browser.new_context(viewport={"width": 375, "height": 740}),
        "officer": await browser.new_context(viewport={"width": 800, "height": 900}),
        "ops": await browser.new_context(),
        "visitor": await browser.new_context(),
    }
    page = {name: await c.new_page() for name, c in ctx.items()}
    await _ops(page["ops"], portal, services.token("operator"))
    w = World(
        portal,
        tag,
        community,
        services.home / "portal" / "photos",
        vol,
        other,
        jobs,
        pages,
        ctx,
        page,
    )
    for who, person in (("volunteer", vol), ("other", other), ("officer", officer)):
        await _sign_in(page[who], page["ops"], w, phones[person])  # type: ignore[arg-type]
    yield w
    for c in ctx.values():
        await c.close()


async def _completions(services: DevStack, account: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=services.url("tasks"), timeout=20) as http:
        r = await http.get(
            "/v1/completions",
            headers=_auth(services, "officer"),
            params={"account_id": account, "limit": 100},
        )
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        return items


def _stored(w: World, ref: str) -> Path:
    found = REF.fullmatch(ref)
    assert found, ref
    path = w.photos / f"{found.group(1)}.jpg"
    assert path.is_file(), path
    assert hashlib.sha256(path.read_bytes()).hexdigest() == found.group(1)  # content-addressed
    return path


def _no_place_in(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    kept = Image.open(BytesIO(data))
    assert kept.format == "JPEG"
    assert not kept.getexif() and "exif" not in kept.info and "xmp" not in kept.info
    assert not kept.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    for marker in (b"Exif", b"GPS", b"PhoneCo", b"xmpmeta", b"22.58"):
        assert marker not in data, marker
    return kept.size


async def test_a_volunteer_completes_with_a_photo_the_officer_sees_it_and_verifies(
    world: World, services: DevStack
) -> None:
    w, vol, officer = world, world.page["volunteer"], world.page["officer"]
    job = w.jobs["lunch"]
    sent = phone_photo(1)
    assert Image.open(BytesIO(sent)).getexif().get_ifd(ExifTags.IFD.GPSInfo)  # as sent: GPS

    await vol.goto(f"{w.base}/jobs/{job['id']}")
    await vol.get_by_role("button", name="我要报名").click()
    await expect(vol.get_by_label("照片（可选）")).to_have_attribute("capture", "environment")
    await expect(vol.get_by_label("照片（可选）")).to_have_attribute("accept", "image/*")
    await w.pages.check(vol, "job-photo-zh", axe=False)
    await vol.get_by_role("link", name="English").click()
    await expect(vol.get_by_label("Photo (optional)")).to_be_visible()
    await w.pages.check(vol, "job-photo-en", axe=False)
    await vol.get_by_role("link", name="中文").click()

    await vol.get_by_label("说明").fill("送餐 6 份，照片为证")
    await vol.get_by_label("照片（可选）").set_input_files(file("IMG_0001.jpg", "image/jpeg", sent))
    await vol.get_by_role("button", name="提交完成").click()
    await expect(vol).to_have_url(re.compile(r"/me\?done=completed$"))

    # the tasks API holds the reference; the portal the photo, without where it was taken
    [done] = [c for c in await _completions(services, w.volunteer) if c["job_id"] == job["id"]]
    assert done["evidence"]["note"] == "送餐 6 份，照片为证"
    ref = done["evidence"]["reference"]
    path = _stored(w, ref)
    assert _no_place_in(path) == (1600, 1200)  # 2400x1800 to 1600 on the long side
    digest = REF.fullmatch(ref).group(1)  # type: ignore[union-attr]
    src = f"/photos/{digest}.jpg"

    # the volunteer sees it on the job's page, and may fetch it (theirs)
    await vol.goto(f"{w.base}/jobs/{job['id']}")
    mine = vol.get_by_test_id("my-photo")
    await expect(mine).to_contain_text("我提交的照片")
    await expect(mine.get_by_role("link")).to_have_attribute("href", src)
    got = await vol.request.get(f"{w.base}{src}")
    assert got.status == 200 and got.headers["content-type"] == "image/jpeg"
    assert got.headers["cache-control"].startswith("private")
    assert await got.body() == path.read_bytes()
    await w.pages.check(vol, "job-photo-mine-zh", axe=False)

    # the officer's queue shows it beside the note, as a link to the photo itself
    await officer.goto(f"{w.base}/officer/queue?community={w.community}")
    item = officer.locator("li.completion", has_text=job["title"]).filter(has_text=w.volunteer)
    await expect(item).to_have_count(1)
    await expect(item).to_contain_text("送餐 6 份，照片为证")
    link = item.get_by_role("link", name=f"{w.volunteer} 提交的照片")
    await expect(link).to_have_attribute("href", src)
    thumb = link.locator("img")
    await thumb.scroll_into_view_if_needed()
    await expect(thumb).to_have_js_property("complete", True)
    assert await thumb.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [320, 240]
    full = await officer.request.get(f"{w.base}{src}")
    assert full.status == 200 and await full.body() == path.read_bytes()
    assert full.headers["cache-control"].startswith("private")
    await w.pages.check(officer, "queue-photo-zh")
    await officer.get_by_role("link", name="English").click()
    en = item.get_by_role("link", name=f"Photo sent by {w.volunteer}")
    await expect(en).to_have_attribute("href", src)
    await w.pages.check(officer, "queue-photo-en")
    await officer.get_by_role("link", name="中文").click()
    await item.get_by_role("button", name=f"核验通过 {w.volunteer}").click()
    await expect(officer.get_by_role("status")).to_have_text("已核验。")
    [done] = [c for c in await _completions(services, w.volunteer) if c["job_id"] == job["id"]]
    assert done["status"] in ("verified", "credited") and done["evidence"]["reference"] == ref
    assert not w.pages.over_budget, w.pages.over_budget
    assert not w.pages.violations, "\n".join(w.pages.violations)


async def test_a_hazard_reported_with_a_photo_carries_its_reference(
    world: World, services: DevStack
) -> None:
    w, vol = world, world.page["volunteer"]
    said = f"楼道堆满纸箱 boxes block the stairs {w.tag}"
    await vol.goto(f"{w.base}/c/{w.community}/hazards")
    await vol.get_by_label("类型").select_option("stairwell_clutter")
    await vol.get_by_label("情况").fill(said)
    await vol.get_by_label("地点").fill("蓬莱路 5 号 1 单元")
    await vol.get_by_label("照片（可选）").set_input_files(file("stairs.png", "image/png", png(7)))
    await w.pages.check(vol, "hazards-photo-zh", axe=False)
    await vol.get_by_role("button", name="上报隐患").click()
    await expect(vol.get_by_role("status")).to_have_text("已上报，谢谢！社区会尽快处理。")

    async with httpx.AsyncClient(base_url=services.url("tasks"), timeout=20) as http:
        r = await http.get(
            "/v1/hazards", headers=_auth(services, "officer"), params={"community_id": w.community}
        )
        assert r.status_code == 200, r.text
        [hazard] = [h for h in r.json()["items"] if h["text"] == said]
    assert hazard["account_id"] == w.volunteer and hazard["place_address"] == "蓬莱路 5 号 1 单元"
    path = _stored(w, hazard["evidence_ref"])
    assert Image.open(path).size == (900, 600)  # a small one is not enlarged
    # the reporter sees their photo on the list; the public list shows none
    item = vol.locator("li.hazard", has_text=said)
    src = f"/photos/{REF.fullmatch(hazard['evidence_ref']).group(1)}.jpg"  # type: ignore[union-attr]
    await expect(item.get_by_role("link", name="隐患现场照片")).to_have_attribute("href", src)
    await vol.get_by_role("link", name="English").click()
    await expect(vol.get_by_label("Photo (optional)")).to_be_visible()
    await w.pages.check(vol, "hazards-photo-en", axe=False)
    await vol.get_by_role("link", name="中文").click()
    visitor = w.page["visitor"]
    await visitor.goto(f"{w.base}/c/{w.community}/hazards")
    await expect(visitor.locator("li.hazard", has_text=said)).to_have_count(1)
    assert src not in await visitor.content()
    assert not w.pages.over_budget, w.pages.over_budget


async def test_a_file_not_a_photo_and_one_too_large_are_refused_what_was_typed_kept(
    world: World, services: DevStack
) -> None:
    w, vol = world, world.page["volunteer"]
    job = w.jobs["refused"]
    before = set(w.photos.glob("*"))
    await vol.goto(f"{w.base}/jobs/{job['id']}")
    await vol.get_by_role("button", name="我要报名").click()
    await vol.get_by_label("说明").fill("清理了 3 层楼道")
    not_a_photo = b"%PDF-1.7\nthis is a document, not a photo\n" * 50
    await vol.get_by_label("照片（可选）").set_input_files(
        file("photo.jpg", "image/jpeg", not_a_photo)
    )
    await vol.get_by_role("button", name="提交完成").click()
    alert = vol.get_by_role("alert")
    await expect(alert).to_contain_text("不是能识别的照片")
    await expect(alert).to_contain_text("请重新选择照片")
    await expect(vol.get_by_label("说明")).to_have_value("清理了 3 层楼道")
    await w.pages.check(vol, "job-photo-refused-zh", axe=False)

    # over 8 MB (within what the portal reads at all): refused, the note kept, in English too
    await vol.get_by_role("link", name="English").click()
    await vol.goto(f"{w.base}/jobs/{job['id']}")
    await vol.get_by_label("Note").fill("cleaned 3 floors")
    big = b"\xff\xd8\xff\xe0" + os.urandom(PHOTO_MAX_BYTES + 1024)
    await vol.get_by_label("Photo (optional)").set_input_files(file("big.jpg", "image/jpeg", big))
    await vol.get_by_role("button", name="Report it done").click()
    await expect(vol.get_by_role("alert")).to_contain_text("too large: 8 MB at most")
    await expect(vol.get_by_label("Note")).to_have_value("cleaned 3 floors")
    await w.pages.check(vol, "job-photo-too-large-en", axe=False)
    await vol.get_by_role("link", name="中文").click()

    # on the hazard form: the text and the place kept
    await vol.goto(f"{w.base}/c/{w.community}/hazards")
    await vol.get_by_label("情况").fill(f"消防通道被堵 {w.tag}")
    await vol.get_by_label("地点").fill("蓬莱路 7 号")
    await vol.get_by_label("照片（可选）").set_input_files(file("big.jpg", "image/jpeg", big))
    await vol.get_by_role("button", name="上报隐患").click()
    await expect(vol.get_by_role("alert")).to_contain_text("照片太大：最多 8 MB")
    await expect(vol.get_by_label("情况")).to_have_value(f"消防通道被堵 {w.tag}")
    await expect(vol.get_by_label("地点")).to_have_value("蓬莱路 7 号")
    await w.pages.check(vol, "hazards-photo-refused-zh", axe=False)

    # nothing was stored, nothing reached the tasks API
    assert set(w.photos.glob("*")) == before
    assert not [c for c in await _completions(services, w.volunteer) if c["job_id"] == job["id"]]

    # a body declared past what the portal reads is refused before a byte of it is read
    cookie = "; ".join(f"{c['name']}={c['value']}" for c in await w.ctx["volunteer"].cookies())
    status, body = await asyncio.to_thread(
        _declared_only, w.base, f"/jobs/{job['id']}/complete", BODY_MAX_BYTES + 1, cookie
    )
    assert status == 413 and "没有读取" in body, (status, body)


def _declared_only(base: str, path: str, length: int, cookie: str) -> tuple[int, str]:
    """A POST whose headers declare ``length`` bytes, none of which is sent: the answer."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=20)
    try:
        conn.putrequest("POST", path)
        conn.putheader("Content-Type", "multipart/form-data; boundary=x")
        conn.putheader("Content-Length", str(length))
        conn.putheader("Cookie", cookie)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


async def test_a_photo_sent_with_a_form_the_api_refused_is_kept_for_the_next_try(
    world: World, services: DevStack
) -> None:
    w, vol = world, world.page["volunteer"]
    job = w.jobs["checkin"]
    await vol.goto(f"{w.base}/jobs/{job['id']}")
    await vol.get_by_role("button", name="我要报名").click()
    async with httpx.AsyncClient(base_url=services.url("tasks"), timeout=20) as http:
        r = await http.get(f"/v1/jobs/{job['id']}/checkin-code", headers=_auth(services, "officer"))
        assert r.status_code == 200, r.text
        code = r.json()["code"]
    await vol.get_by_label("现场签到码").fill("ZZZZ" if code != "ZZZZ" else "YYYY")
    await vol.get_by_label("说明").fill("修好 2 辆")
    await vol.get_by_label("照片（可选）").set_input_files(
        file("bike.jpg", "image/jpeg", phone_photo(3))
    )
    await vol.get_by_role("button", name="提交完成").click()
    await expect(vol.get_by_role("alert")).to_contain_text("出错了")
    await expect(vol.get_by_test_id("photo-kept")).to_contain_text("刚才上传的照片已保留")
    await w.pages.check(vol, "job-photo-kept-zh", axe=False)
    await vol.get_by_label("现场签到码").fill(code)
    await vol.get_by_role("button", name="提交完成").click()  # no file chosen this time
    await expect(vol).to_have_url(re.compile(r"/me\?done=completed$"))
    [done] = [c for c in await _completions(services, w.volunteer) if c["job_id"] == job["id"]]
    assert done["evidence"]["note"] == "修好 2 辆"
    _no_place_in(_stored(w, done["evidence"]["reference"]))


async def test_attacks_on_the_photos(world: World, services: DevStack) -> None:
    w = world
    [lunch] = [
        c for c in await _completions(services, w.volunteer) if c["job_id"] == w.jobs["lunch"]["id"]
    ]
    ref = lunch["evidence"]["reference"]
    digest = REF.fullmatch(ref).group(1)  # type: ignore[union-attr]
    src = f"{w.base}/photos/{digest}.jpg"
    stored = (w.photos / f"{digest}.jpg").read_bytes()

    # a visitor (not signed in) and another volunteer cannot fetch it, nor its small copy
    for url in (src, f"{src}?size=small"):
        anon = await w.ctx["visitor"].request.get(url)
        assert anon.status == 403 and "请先登录" in await anon.text()
        other = await w.page["other"].request.get(url)
        assert other.status == 404 and await other.body() != stored
        assert (await w.page["officer"].request.get(url)).status == 200

    # a path that is not exactly a photo's name is refused, even to an officer
    cookie = "; ".join(f"{c['name']}={c['value']}" for c in await w.ctx["officer"].cookies())
    for raw in (
        "/photos/..%2F..%2Fkeys%2Fportal-app-credential",
        "/photos/%2e%2e/%2e%2e/keys/portal-app-credential",
        "/photos/../keys/portal-app-credential",
        f"/photos/{digest}.jpg%2F..%2F..%2F..%2Fkeys",
        f"/photos/{digest.upper()}.jpg",
        f"/photos/{digest}.small.jpg",
        f"/photos/{digest}.jpg%00",
        f"/photos/{digest}",
        f"/photos/owners%2F{digest}",
        "/photos/%2Fetc%2Fpasswd",
        "/photos/" + "0" * 64 + ".jpg",  # well-formed, never stored
    ):
        status, body = await asyncio.to_thread(_get_raw, w.base, raw, cookie)
        assert status in (400, 404, 422), (raw, status)  # 422: the kernel refuses a NUL
        assert body[:3] != b"\xff\xd8\xff" and b"BEGIN" not in body, raw

    # a forged CSRF token on the multipart form: refused, nothing stored, nothing completed
    other = w.page["other"]
    attack = w.jobs["attack"]
    await _member_and_claim(services, w.other, w.community, attack["id"])
    photo = phone_photo(99)
    forged = await other.request.post(
        f"{w.base}/jobs/{attack['id']}/complete",
        multipart={
            "csrf": "forged",
            "note": "forged",
            "photo": file("p.jpg", "image/jpeg", photo),
        },
    )
    assert forged.status == 403 and "表单已过期" in await forged.text()
    assert not (w.photos / f"{reencode(photo).digest}.jpg").exists()
    assert not [c for c in await _completions(services, w.other) if c["job_id"] == attack["id"]]

    # the officer posting a volunteer's form with their own valid token: refused, nothing kept
    officer = w.page["officer"]
    await officer.goto(f"{w.base}/jobs/{attack['id']}")
    csrf = await officer.locator("input[name=csrf]").first.get_attribute("value")
    assert csrf
    wrong_role = await officer.request.post(
        f"{w.base}/jobs/{attack['id']}/complete",
        multipart={"csrf": csrf, "note": "x", "photo": file("p.jpg", "image/jpeg", photo)},
    )
    assert wrong_role.status == 403
    assert not (w.photos / f"{reencode(photo).digest}.jpg").exists()

    # another volunteer naming the first one's photo as "kept": completed without it
    await other.goto(f"{w.base}/jobs/{attack['id']}")
    csrf = await other.locator("input[name=csrf]").first.get_attribute("value")
    assert csrf
    posted = await other.request.post(
        f"{w.base}/jobs/{attack['id']}/complete",
        multipart={"csrf": csrf, "note": "not mine", "photo_kept": ref},
        max_redirects=0,
    )
    assert posted.status == 303, await posted.text()
    [done] = [c for c in await _completions(services, w.other) if c["job_id"] == attack["id"]]
    assert done["evidence"].get("reference", "") == ""
    assert (await other.request.get(src)).status == 404  # and still may not see it


def _get_raw(base: str, path: str, cookie: str) -> tuple[int, bytes]:
    """A GET of ``path`` exactly as written (no client normalises its dots)."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=20)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.putheader("Cookie", cookie)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


async def _member_and_claim(services: DevStack, account: str, community: str, job: str) -> None:
    headers = _auth(services, "volunteer", account)
    async with httpx.AsyncClient(base_url=services.url("tasks"), timeout=20) as http:
        r = await http.post(
            f"/v1/communities/{community}/members", headers=headers, json={"account_id": account}
        )
        assert r.status_code in (200, 201), r.text
        r = await http.post(f"/v1/jobs/{job}/claims", headers=headers, json={"account_id": account})
        assert r.status_code == 201, r.text
