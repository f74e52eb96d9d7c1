"""The portal's journeys in a real browser (Debian's Chromium, driven by Playwright) against the
real stack: a volunteer signs in with the code the operator's page shows, claims a check-in job,
checks in with the code on the officer's screen and reports it done; claims and completes a job
an officer verifies; the officer verifies it in the queue; the points appear on the volunteer's
page; the public menu shows the places taken. The volunteer's browser runs with JavaScript off
(the core flows need none). Every page is checked by axe-core, held to the page budget, and
kept as a screenshot in both languages (results/portal/)."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import segno
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, BrowserContext, Page, Response, expect

from jifen.devtools.devstack import DevStack
from tests.helpers import eventually

pytestmark = pytest.mark.e2e

# the page budget: what a cheap phone on a slow link downloads for one page, stated and held
PAGE_BUDGET_BYTES = 30_000  # the HTML of any page
CSS_BUDGET_BYTES = 8_000  # the one stylesheet; no script, no web font, no image but inline SVG
AXE = Axe()


@dataclass
class World:
    base: str
    tag: str
    community: str
    community_name: str
    volunteer: str
    volunteer_phone: str
    officer_phone: str
    checkin_job: dict[str, Any]
    officer_job: dict[str, Any]
    merchant: str
    merchant_phone: str
    reward: dict[str, Any]


def _phone() -> str:
    return "136" + "".join(secrets.choice("0123456789") for _ in range(8))


@pytest.fixture(scope="module")
async def world(portal: str, services: DevStack) -> World:
    tag = uuid.uuid4().hex[:6]
    tasks = services.url("tasks")

    def auth(role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {services.token(role)}"}

    community, name = f"portal-grid-{tag}", f"海滨网格{tag} Seaside grid {tag}"
    vol, vol_phone, off_phone = f"vol-portal-{tag}", _phone(), _phone()
    merchant, merchant_phone = f"merchant-portal-{tag}", _phone()
    now = datetime.now(UTC)
    window = {
        "starts_at": (now - timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(hours=2)).isoformat(),
    }
    async with httpx.AsyncClient(base_url=tasks, timeout=20) as http:

        async def post(path: str, role: str, body: Any) -> Any:
            r = await http.post(path, headers=auth(role), json=body)
            assert r.status_code == 201, r.text
            return r.json()

        await post("/v1/communities", "officer", {"id": community, "name": name})
        await post(
            "/v1/people",
            "admin",
            {"person_id": vol, "phone": vol_phone, "role": "volunteer", "display_name": "赵师傅"},
        )
        await post(
            "/v1/people",
            "admin",
            {
                "person_id": f"officer-portal-{tag}",
                "phone": off_phone,
                "role": "officer",
                "display_name": "钱主任",
            },
        )
        checkin_job = await post(
            "/v1/jobs",
            "officer",
            {
                "community_id": community,
                "title": f"电动车免费维修日 Free e-bike repair day {tag}",
                "category": "free_repair_day",
                "points": 40,
                "capacity": 20,
                "verification": "checkin",
                "place": {"address": "海滨路 3 号骑手驿站"},
                **window,
            },
        )
        officer_job = await post(
            "/v1/jobs",
            "officer",
            {
                "community_id": community,
                "title": f"为独居老人送午餐 Lunch for isolated elders {tag}",
                "category": "meal_delivery",
                "points": 20,
                "capacity": 6,
                **window,
            },
        )
        await post(
            "/v1/people",
            "admin",
            {"person_id": merchant, "phone": merchant_phone, "role": "merchant"},
        )
    async with httpx.AsyncClient(base_url=services.url("redeem"), timeout=20) as http:
        r = await http.post(
            "/v1/merchants",
            headers=auth("officer"),
            json={
                "id": merchant,
                "name_zh": f"骑手驿站小卖部{tag}",
                "name_en": f"Station shop {tag}",
            },
        )
        assert r.status_code == 201, r.text
        merchant_auth = {"Authorization": f"Bearer {services.token('merchant', merchant)}"}
        r = await http.post(
            "/v1/rewards",
            headers=merchant_auth,
            json={
                "merchant_id": merchant,
                "name_zh": f"头盔一顶{tag}",
                "name_en": f"A helmet {tag}",
                "points": 30,
                "stock": 5,
            },
        )
        assert r.status_code == 201, r.text
        reward = r.json()
    return World(
        portal,
        tag,
        community,
        name,
        vol,
        vol_phone,
        off_phone,
        checkin_job,
        officer_job,
        merchant,
        merchant_phone,
        reward,
    )


class Pages:
    """Every page visited is held to the budget, checked by axe where scripts may run, and
    shot; the failures are gathered and asserted at the end."""

    def __init__(self, shots: Path) -> None:
        self.shots = shots
        self.over_budget: list[str] = []
        self.violations: list[str] = []

    async def check(self, page: Page, name: str, *, axe: bool = True) -> None:
        html = await page.content()
        size = len(html.encode())
        if size > PAGE_BUDGET_BYTES:
            self.over_budget.append(f"{name}: {size} bytes")
        if "<script" in html:
            self.over_budget.append(f"{name}: has a script")
        await page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)
        if axe:
            results = await AXE.run(page)
            if results.violations_count:
                self.violations.append(f"{name}: {results.generate_report()}")


@pytest.fixture(scope="module")
async def contexts(browser: Browser) -> AsyncIterator[dict[str, BrowserContext]]:
    made = {
        # a phone-sized screen; the volunteer's without JavaScript
        "public": await browser.new_context(viewport={"width": 375, "height": 740}),
        "volunteer": await browser.new_context(
            viewport={"width": 375, "height": 740}, java_script_enabled=False
        ),
        "officer": await browser.new_context(viewport={"width": 800, "height": 900}),
        "operator": await browser.new_context(),
        "merchant": await browser.new_context(viewport={"width": 375, "height": 740}),
    }
    yield made
    for c in made.values():
        await c.close()


async def _ops(page: Page, base: str, token: str) -> None:
    await page.goto(f"{base}/ops")
    await page.get_by_label("运维令牌").fill(token)
    await page.get_by_role("button", name="查看").click()


async def _code_on_ops_page(page: Page, base: str, phone: str) -> str:
    async def shown() -> str | None:
        await page.goto(f"{base}/ops")
        row = page.locator("tr", has_text=phone)
        if await row.count() == 0:
            return None
        found = re.search(r"\b(\d{6})\b", await row.first.locator("td.sms").inner_text())
        return found.group(1) if found else None

    return await eventually(shown, timeout=30, what=f"a code for {phone} on the operator's page")


async def _sign_in(page: Page, ops: Page, w: World, phone: str) -> None:
    await page.goto(f"{w.base}/signin")
    await page.get_by_label("手机号").fill(phone)
    await page.get_by_role("button", name="获取验证码").click()
    await expect(page.get_by_role("status")).to_contain_text("验证码已发出")
    code = await _code_on_ops_page(ops, w.base, phone)
    await page.get_by_label("验证码").fill(code)
    await page.get_by_role("button", name="登录", exact=True).click()
    await expect(page).to_have_url(re.compile(r"/me$"))


async def test_volunteer_officer_and_public_journeys(
    world: World, contexts: dict[str, BrowserContext], services: DevStack, shots: Path
) -> None:
    w = world
    pages = Pages(shots)
    public = await contexts["public"].new_page()
    vol = await contexts["volunteer"].new_page()
    officer = await contexts["officer"].new_page()
    ops = await contexts["operator"].new_page()
    await _ops(ops, w.base, services.token("operator"))

    # -- the public menu, in Chinese and in English
    await public.goto(w.base)
    await pages.check(public, "home-zh")
    await public.get_by_role("link", name=w.community_name).click()
    await expect(public.get_by_role("heading", level=1)).to_contain_text("服务菜单")
    await expect(public.get_by_role("link", name=w.checkin_job["title"])).to_be_visible()
    await expect(public.get_by_text("剩余名额 20/20")).to_be_visible()
    await pages.check(public, "menu-zh")
    await public.get_by_role("link", name="English").click()
    await expect(public.get_by_role("heading", level=1)).to_contain_text("service menu")
    await pages.check(public, "menu-en")
    await public.get_by_role("link", name="中文").click()
    await expect(public.get_by_role("heading", level=1)).to_contain_text("服务菜单")

    # -- the volunteer signs in (no JavaScript); the session id changes at sign-in
    before = {c["name"]: c for c in await contexts["volunteer"].cookies()}
    await vol.goto(f"{w.base}/signin")
    await pages.check(vol, "signin-zh", axe=False)
    await _sign_in(vol, ops, w, w.volunteer_phone)
    after = {c["name"]: c for c in await contexts["volunteer"].cookies()}
    session = after["jifen_portal"]
    assert session["httpOnly"] and session["sameSite"] == "Lax"
    assert before.get("jifen_portal", {}).get("value") != session["value"]
    await expect(vol.get_by_test_id("balance")).to_have_text("0 分")
    await pages.check(vol, "me-volunteer-zh", axe=False)

    # -- the officer signs in and opens the check-in screen of the job
    await _sign_in(officer, ops, w, w.officer_phone)
    await pages.check(officer, "me-officer-zh")
    await officer.goto(f"{w.base}/officer/jobs/{w.checkin_job['id']}/checkin")
    code = (await officer.get_by_test_id("checkin-code").inner_text()).strip()
    await expect(officer.locator("meta[http-equiv=refresh]")).to_have_count(0)
    assert re.fullmatch(r"[A-Z0-9]{4,16}", code), code
    await expect(officer.locator("figure.qr svg")).to_be_visible()
    screen_qr = await officer.locator("figure.qr svg path").get_attribute("d") or ""
    await pages.check(officer, "checkin-zh")
    await officer.get_by_role("link", name="到点自动刷新（现场屏幕）").click()
    await expect(officer.locator("meta[http-equiv=refresh]")).to_have_count(1)

    # -- the volunteer claims the check-in job; a wrong code is refused and the note kept
    await vol.goto(f"{w.base}/jobs/{w.checkin_job['id']}")
    await pages.check(vol, "job-zh", axe=False)
    await vol.get_by_role("button", name="我要报名").click()
    await expect(vol.get_by_role("status")).to_have_text("你已报名这项服务。")
    wrong = "ZZZZ" if code != "ZZZZ" else "YYYY"
    await vol.get_by_label("现场签到码").fill(wrong)
    await vol.get_by_label("说明").fill("修好 3 辆电动车")
    await vol.get_by_role("button", name="提交完成").click()
    await expect(vol.get_by_role("alert")).to_contain_text("出错了")
    await expect(vol.get_by_label("说明")).to_have_value("修好 3 辆电动车")
    await pages.check(vol, "job-error-zh", axe=False)
    # scanned instead of typed: the screen's QR code is this job's page with the code in it,
    # so the phone's camera opens the form with the code filled in
    scanned = f"{w.base}/jobs/{w.checkin_job['id']}?" + urlencode({"code": code})
    assert _modules(screen_qr) == _drawn_for(scanned)
    await vol.goto(scanned)
    await expect(vol.get_by_label("现场签到码")).to_have_value(code)
    await vol.get_by_label("说明").fill("修好 3 辆电动车")
    await vol.get_by_role("button", name="提交完成").click()
    await expect(vol).to_have_url(re.compile(r"/me\?done=completed$"))
    await expect(vol.get_by_role("cell", name="已核验")).to_be_visible()

    # -- and the officer-verified job: claimed, reported done
    await vol.goto(f"{w.base}/jobs/{w.officer_job['id']}")
    await vol.get_by_role("button", name="我要报名").click()
    await vol.get_by_label("说明").fill("送餐 6 份")
    await vol.get_by_role("button", name="提交完成").click()
    await expect(vol.get_by_role("cell", name="待审核")).to_be_visible()

    # -- the officer verifies it from the queue
    await officer.goto(f"{w.base}/officer/queue")
    await officer.get_by_label("社区").select_option(w.community)
    await officer.get_by_role("button", name="查看").click()
    item = officer.locator("li.completion", has_text=w.officer_job["title"]).filter(
        has_text=w.volunteer
    )
    await expect(item).to_have_count(1)
    await pages.check(officer, "queue-zh")
    await item.get_by_role("button", name=f"核验通过 {w.volunteer}").click()
    await expect(officer.get_by_role("status")).to_have_text("已核验。")

    # -- the points reach the volunteer's page through the ledger
    async def credited() -> bool:
        await vol.goto(f"{w.base}/me")
        return (await vol.get_by_test_id("balance").inner_text()).strip() == "60 分"

    await eventually(credited, timeout=60, what="60 points on the volunteer's page")
    await pages.check(vol, "me-volunteer-credited-zh", axe=False)
    await vol.get_by_role("link", name="English").click()
    await expect(vol.get_by_test_id("balance")).to_have_text("60 points")
    await pages.check(vol, "me-volunteer-credited-en", axe=False)
    await vol.get_by_role("link", name="中文").click()
    await expect(vol.get_by_test_id("balance")).to_have_text("60 分")
    await officer.get_by_role("link", name="English").click()
    await pages.check(officer, "queue-en")

    # -- the volunteer redeems in the supermarket; the voucher appears once the ledger debited
    await vol.goto(f"{w.base}/shop?merchant={w.merchant}")
    await expect(vol.get_by_test_id("spendable")).to_have_text("可用积分 60")
    await pages.check(vol, "shop-zh", axe=False)
    await vol.get_by_role("button", name=f"兑换 {w.reward['name_zh']}").click()
    await expect(vol).to_have_url(re.compile(r"/vouchers/[0-9a-f-]+$"))

    async def voucher() -> str | None:
        await vol.reload()
        code = vol.get_by_test_id("voucher-code")
        return (await code.inner_text()).strip() if await code.count() else None

    voucher_code = await eventually(voucher, timeout=60, what="the voucher code")
    await expect(vol.get_by_test_id("voucher-status")).to_have_text("待领取")
    await pages.check(vol, "voucher-zh", axe=False)

    # -- the merchant signs in and hands it over at the counter; a wrong code is refused
    merchant = await contexts["merchant"].new_page()
    await _sign_in(merchant, ops, w, w.merchant_phone)
    await merchant.goto(f"{w.base}/merchant")
    item = merchant.locator("li.redemption", has_text=w.volunteer)
    await expect(item).to_have_count(1)
    await pages.check(merchant, "merchant-zh")
    await item.get_by_label("兑换码").fill("WRONG-CODE")
    await item.get_by_role("button", name=f"核销 {w.volunteer}").click()
    await expect(merchant.get_by_role("alert")).to_contain_text("出错了")
    item = merchant.locator("li.redemption", has_text=w.volunteer)
    await item.get_by_label("兑换码").fill(voucher_code)
    await item.get_by_role("button", name=f"核销 {w.volunteer}").click()
    await expect(merchant.get_by_role("status")).to_have_text("已核销。")
    await expect(merchant.get_by_test_id(f"stock-{w.reward['id']}")).to_have_text("4")
    await vol.reload()
    await expect(vol.get_by_test_id("voucher-status")).to_have_text("已领取")

    # -- a second voucher handed over by scanning: its QR code holds the counter's address at
    #    that voucher, so the merchant's phone camera opens it (through sign-in when signed
    #    out) with the code filled in; opening it hands nothing over, the form's POST does
    await vol.goto(f"{w.base}/shop?merchant={w.merchant}")
    await vol.get_by_role("button", name=f"兑换 {w.reward['name_zh']}").click()
    await expect(vol).to_have_url(re.compile(r"/vouchers/[0-9a-f-]+$"))
    second_code = await eventually(voucher, timeout=60, what="the second voucher's code")
    second_id = vol.url.rsplit("/", 1)[1]
    scan = f"{w.base}/merchant/scan?" + urlencode({"r": second_id, "code": second_code})
    drawn = await vol.locator("figure.qr svg path").get_attribute("d")
    assert drawn is not None and _modules(drawn) == _drawn_for(scan)
    assert _modules(drawn) != _drawn_for(second_code)  # not the bare code any more
    for role in ("officer", "volunteer"):  # the counter is the merchant's alone
        answer = await (officer if role == "officer" else vol).goto(scan)
        assert answer is not None and answer.status == 403, role
    signed_out = await contexts["public"].new_page()  # a phone not signed in: after sign-in,
    await signed_out.goto(scan)  # back to this voucher, its query kept
    next_page = parse_qs(urlsplit(signed_out.url).query)["next"]
    assert urlsplit(signed_out.url).path == "/signin" and next_page == [scan.removeprefix(w.base)]
    await signed_out.close()
    scanner = await browser_with(contexts, "merchant")  # the merchant's phone, signed in
    await scanner.goto(scan)
    await expect(scanner.get_by_label("兑换码")).to_have_value(second_code)
    await expect(scanner.get_by_test_id("scan-status")).to_have_text("待领取")
    await pages.check(scanner, "merchant-scan-zh")
    await scanner.get_by_role("link", name="English").click()  # the same voucher, in English
    await expect(scanner.get_by_label("Voucher code")).to_have_value(second_code)
    await pages.check(scanner, "merchant-scan-en")
    await scanner.get_by_role("link", name="中文").click()
    # another merchant with the link and the code: the voucher is not theirs to open or to
    # hand over (the redeem API's 404 and 403 as pages); nothing changes
    rival, rival_phone = f"merchant-rival-{w.tag}", _phone()
    async with httpx.AsyncClient(timeout=20) as http:
        r = await http.post(
            f"{services.url('tasks')}/v1/people",
            headers={"Authorization": f"Bearer {services.token('admin')}"},
            json={"person_id": rival, "phone": rival_phone, "role": "merchant"},
        )
        assert r.status_code == 201, r.text
        r = await http.post(
            f"{services.url('redeem')}/v1/merchants",
            headers={"Authorization": f"Bearer {services.token('officer')}"},
            json={"id": rival, "name_zh": f"对面小店{w.tag}", "name_en": f"Shop opposite {w.tag}"},
        )
        assert r.status_code == 201, r.text
    other = await browser_with(contexts, "public")
    await _sign_in(other, ops, w, rival_phone)
    answer = await other.goto(scan)
    assert answer is not None and answer.status == 404
    csrf = await other.locator("input[name=csrf]").first.get_attribute("value")
    forged = await other.context.request.post(
        f"{w.base}/merchant/redemptions/{second_id}/fulfil",
        form={"csrf": csrf or "", "voucher_code": second_code},
        max_redirects=0,
    )
    assert forged.status in (403, 404), await forged.text()
    await other.context.close()
    await vol.goto(f"{w.base}/vouchers/{second_id}")
    await expect(vol.get_by_test_id("voucher-status")).to_have_text("待领取")
    await scanner.get_by_role("button", name="核销").click()
    await expect(scanner.get_by_role("status")).to_have_text("已核销。")
    await expect(scanner.get_by_test_id(f"stock-{w.reward['id']}")).to_have_text("3")
    await vol.reload()
    await expect(vol.get_by_test_id("voucher-status")).to_have_text("已领取")
    await scanner.context.close()

    async def spent() -> bool:
        await vol.goto(f"{w.base}/me")
        return (await vol.get_by_test_id("balance").inner_text()).strip() == "0 分"

    await eventually(spent, timeout=60, what="no points left after the two redemptions")

    # -- the public menu now shows the places taken
    await public.reload()
    await expect(public.get_by_text("剩余名额 19/20")).to_be_visible()
    await expect(public.get_by_text("剩余名额 5/6")).to_be_visible()

    # -- axe on the volunteer's pages too, in a browser that runs its script (same session)
    seen = await browser_with(contexts, "volunteer")
    for path, name in ((f"/jobs/{w.checkin_job['id']}", "job-axe"), ("/me", "me-axe")):
        await seen.goto(f"{w.base}{path}")
        await pages.check(seen, name)
    await seen.context.close()

    # -- the checks of every page visited
    css = await public.request.get(f"{w.base}/static/portal.css")
    assert len(await css.body()) <= CSS_BUDGET_BYTES
    assert not pages.over_budget, pages.over_budget
    assert not pages.violations, "\n".join(pages.violations)


def _modules(svg_path: str) -> str:
    return re.sub(r"\s+", "", svg_path)


def _drawn_for(text: str) -> str:
    """The modules of the QR code segno draws for ``text`` as the voucher and check-in pages
    do."""
    found = re.search(r' d="([^"]+)"', segno.make(text, error="m").svg_inline(scale=6))
    assert found is not None
    return _modules(found.group(1))


async def browser_with(contexts: dict[str, BrowserContext], whose: str) -> Page:
    """A new page with JavaScript on, holding the cookies of ``whose`` context."""
    source = contexts[whose]
    assert source.browser is not None
    ctx = await source.browser.new_context()
    await ctx.add_cookies(await source.cookies())  # type: ignore[arg-type]
    return await ctx.new_page()


async def test_pages_a_role_may_not_use_and_forms_without_their_token_are_refused(
    world: World, contexts: dict[str, BrowserContext], services: DevStack, browser: Browser
) -> None:
    w = world
    ctx = await browser.new_context(java_script_enabled=False)
    try:
        page = await ctx.new_page()
        # signed out: the officer's queue sends to the sign-in page
        await page.goto(f"{w.base}/officer/queue")
        await expect(page).to_have_url(re.compile(r"/signin\?next=/officer/queue$"))
        ops = await contexts["operator"].new_page()
        phone, second = _phone(), _phone()
        tasks = services.url("tasks")
        async with httpx.AsyncClient(base_url=tasks) as http:
            for who, number in ((f"vol-attack-{w.tag}", phone), (f"vol-typo-{w.tag}", second)):
                r = await http.post(
                    "/v1/people",
                    headers={"Authorization": f"Bearer {services.token('admin')}"},
                    json={"person_id": who, "phone": number, "role": "volunteer"},
                )
                assert r.status_code == 201, r.text
        await _sign_in(page, ops, w, phone)
        # a volunteer on the officer's pages
        for path in ("/officer/queue", f"/officer/jobs/{w.checkin_job['id']}/checkin"):
            response: Response | None = await page.goto(f"{w.base}{path}")
            assert response is not None and response.status == 403, path
            await expect(page.get_by_role("alert")).to_have_text("当前身份不能使用这个页面。")
        # a form posted without the session's CSRF token (as a forged cross-site form would)
        forged = await page.request.post(
            f"{w.base}/jobs/{w.officer_job['id']}/claim", form={"csrf": "forged"}
        )
        assert forged.status == 403 and "表单已过期" in await forged.text()
        # a wrong sign-in code says how many tries are left, and the phone stays filled in
        other = await browser.new_context(java_script_enabled=False)
        p2 = await other.new_page()
        await p2.goto(f"{w.base}/signin")
        await p2.get_by_label("手机号").fill(second)
        await p2.get_by_role("button", name="获取验证码").click()
        await expect(p2.get_by_role("status")).to_contain_text("验证码已发出")
        await p2.get_by_label("验证码").fill("000000")
        await p2.get_by_role("button", name="登录", exact=True).click()
        alert = p2.get_by_role("alert")
        await expect(alert).to_contain_text("验证码不对或已过期")
        await expect(p2.locator("input[name=phone]").first).to_have_value(second)
        await other.close()
        # an open redirect after sign-in is not followed
        await page.goto(f"{w.base}/signin?next=//evil.example/")
        assert await page.locator("input[name=next]").get_attribute("value") == "/me"
    finally:
        await ctx.close()


async def test_the_chinese_text_renders_as_glyphs_not_boxes(portal: str, browser: Browser) -> None:
    """The same span with Chinese and with private-use characters (which no font has): the two
    box renders are identical, the Chinese ones differ from them and from each other, so the
    fonts the Makefile installs draw the text."""
    ctx = await browser.new_context()
    try:
        page = await ctx.new_page()
        await page.goto(portal)
        shots = []
        for text in (
            "积分家园",
            "服务菜单",
            "\ue000\ue001\ue002\ue003",
            "\ue004\ue005\ue006\ue007",
        ):
            await page.evaluate(
                "t => { const s = document.createElement('span'); s.id = 'probe';"
                " s.style.fontSize = '32px'; s.textContent = t;"
                " document.getElementById('probe')?.remove(); document.body.prepend(s); }",
                text,
            )
            shots.append(await page.locator("#probe").screenshot())
        zh1, zh2, box1, box2 = shots
        assert box1 == box2, "the method must see identical boxes for missing glyphs"
        assert zh1 != box1 and zh2 != box1 and zh1 != zh2, "Chinese text renders as boxes"
    finally:
        await ctx.close()
