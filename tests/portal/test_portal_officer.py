"""The officer's bulk verification and held completions, a community's printable poster and its
public figures, in a real browser against the real stack.

The poster (public): one card per job of the month with a QR code of the job's portal page;
each code is the one segno draws for that URL (no QR decoder is installed: the SVG's modules
are compared with the code made from the expected URL), the link it carries opens the job, and
the print is one A4 page without the site's navigation. The figures (public) count the
community's verified work and change once a volunteer's completion is verified. The officer
selects several completions and verifies them with one POST: each one's outcome is shown (one
verified, one held by the organisation's limit, one refused — the officer's own — and still
selected); the held one is approved from the held list. A volunteer posting the bulk form, and
a form with a forged CSRF token, are refused and change nothing. Pages are held to the budget,
checked by axe and shot in both languages (results/portal/)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import segno
from playwright.async_api import Browser, expect

from jifen.devtools.devstack import DevStack
from tests.helpers import eventually
from tests.portal.test_portal_journey import Pages, _ops, _phone, _sign_in

pytestmark = pytest.mark.e2e

A4_POINTS = (595.28, 841.89)  # 210 mm x 297 mm


class Site:
    def __init__(self, base: str) -> None:
        self.base = base


def _auth(services: DevStack, role: str, subject: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {services.token(role, subject)}"}


def _window(hours: int = 2) -> dict[str, str]:
    # this month's: a job starting an hour ago is in this month unless the month began since
    now = datetime.now(UTC)
    start = max(now - timedelta(hours=1), now.replace(day=1, hour=0, minute=0, second=1))
    return {"starts_at": start.isoformat(), "ends_at": (now + timedelta(hours=hours)).isoformat()}


async def _community_with_jobs(
    services: DevStack, tag: str, jobs: list[dict[str, Any]], people: list[dict[str, str]]
) -> tuple[str, str, list[dict[str, Any]]]:
    community, name = f"officer-grid-{tag}", f"北街网格{tag} North St grid {tag}"
    made = []
    async with httpx.AsyncClient(base_url=services.url("tasks"), timeout=20) as http:
        r = await http.post(
            "/v1/communities",
            headers=_auth(services, "officer"),
            json={"id": community, "name": name},
        )
        assert r.status_code == 201, r.text
        for person in people:
            r = await http.post("/v1/people", headers=_auth(services, "admin"), json=person)
            assert r.status_code == 201, r.text
        for job in jobs:
            r = await http.post(
                "/v1/jobs",
                headers=_auth(services, "officer"),
                json={"community_id": community, "category": "meal_delivery", **job},
            )
            assert r.status_code == 201, r.text
            made.append(r.json())
    return community, name, made


async def _done_by(
    services: DevStack, account: str, community: str, job: dict[str, Any], note: str
) -> dict[str, Any]:
    """A completion reported through the tasks API with the volunteer's own token."""
    headers = _auth(services, "volunteer", account)
    async with httpx.AsyncClient(base_url=services.url("tasks"), timeout=20) as http:
        r = await http.post(
            f"/v1/communities/{community}/members", headers=headers, json={"account_id": account}
        )
        assert r.status_code in (200, 201), r.text
        r = await http.post(
            f"/v1/jobs/{job['id']}/claims", headers=headers, json={"account_id": account}
        )
        assert r.status_code == 201, r.text
        r = await http.post(
            f"/v1/jobs/{job['id']}/completions",
            headers={**headers, "Idempotency-Key": f"test-{uuid.uuid4()}"},
            json={"account_id": account, "evidence": {"note": note}},
        )
        assert r.status_code == 201, r.text
        made: dict[str, Any] = r.json()
        assert made["status"] == "submitted", made
        return made


async def _status_of(services: DevStack, completion_id: str) -> str:
    async with httpx.AsyncClient(base_url=services.url("tasks"), timeout=20) as http:
        r = await http.get(f"/v1/completions/{completion_id}", headers=_auth(services, "officer"))
        assert r.status_code == 200, r.text
        status: str = r.json()["status"]
        return status


def _modules(svg_path: str) -> str:
    return re.sub(r"\s+", "", svg_path)


def _drawn_for(url: str) -> str:
    """The modules of the QR code segno draws for ``url`` (the SVG path's ``d``)."""
    found = re.search(r' d="([^"]+)"', segno.make(url, error="m").svg_inline(scale=3))
    assert found is not None
    return _modules(found.group(1))


async def test_a_month_poster_prints_on_one_a4_sheet_with_a_code_per_job(
    portal: str, services: DevStack, browser: Browser, shots: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    community, name, jobs = await _community_with_jobs(
        services,
        tag,
        [
            {
                "title": f"为独居老人送午餐 {tag}",
                "points": 20,
                "capacity": 6,
                "place": {"address": "北街 12 号社区食堂"},
                **_window(),
            },
            {"title": f"路口交通引导 {tag}", "points": 15, "capacity": 4, **_window(3)},
            {"title": f"消防隐患巡查 {tag}", "points": 25, "capacity": 2, **_window(4)},
        ],
        [],
    )
    pages = Pages(shots)
    ctx = await browser.new_context(viewport={"width": 375, "height": 740})
    try:
        page = await ctx.new_page()
        # from the public menu, no sign-in
        await page.goto(f"{portal}/c/{community}/menu")
        await page.get_by_role("link", name="打印海报").click()
        await expect(page).to_have_url(
            re.compile(rf"/c/{community}/poster\?month=\d{{4}}-\d{{2}}$")
        )
        await expect(page.get_by_role("heading", level=1)).to_contain_text(f"{name} · ")
        cards = page.get_by_test_id("poster-job")
        await expect(cards).to_have_count(3)
        for job in jobs:
            card = cards.filter(has_text=job["title"])
            await expect(card).to_have_count(1)
            await expect(card).to_contain_text(f"{job['points']} 积分")
            await expect(card).to_contain_text(f"剩余名额 {job['capacity']}/{job['capacity']}")
            url = f"{portal}/jobs/{job['id']}"
            figure = card.locator("figure.qr")
            assert await figure.get_attribute("data-url") == url
            await expect(card).to_contain_text(url)
            # the code on the page is the one drawn for exactly that URL (module for module)
            drawn = await figure.locator("svg path").get_attribute("d")
            assert drawn is not None
            assert _modules(drawn) == _drawn_for(url), job["title"]
            assert _modules(drawn) != _drawn_for(f"{portal}/jobs/{uuid.uuid4()}")
        await expect(cards.filter(has_text=jobs[0]["title"])).to_contain_text("北街 12 号社区食堂")
        await pages.check(page, "poster-zh")

        # printed: one A4 sheet, the site's navigation not on it
        pdf = await page.pdf(format="A4", prefer_css_page_size=True, print_background=True)
        boxes = re.findall(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", pdf)
        assert boxes, "no page in the PDF"
        assert len(re.findall(rb"/Type\s*/Page\b", pdf)) == 1
        for w, h in boxes:
            assert abs(float(w) - A4_POINTS[0]) < 1.5 and abs(float(h) - A4_POINTS[1]) < 1.5
        await page.emulate_media(media="print")
        await page.set_viewport_size({"width": 794, "height": 1123})  # A4 at 96 dpi
        await expect(page.locator("header")).to_be_hidden()
        await expect(page.get_by_text("用浏览器的“打印”打印本页")).to_be_hidden()
        await expect(cards).to_have_count(3)
        await expect(cards.first).to_be_visible()
        await pages.check(page, "poster-print-zh")
        await page.emulate_media(media="screen")
        await page.set_viewport_size({"width": 375, "height": 740})

        # the code's link opens the job's page
        await page.goto(f"{portal}/jobs/{jobs[1]['id']}")
        await expect(page.get_by_role("heading", level=1)).to_have_text(jobs[1]["title"])

        # in English
        await page.goto(f"{portal}/c/{community}/poster")
        await page.get_by_role("link", name="English").click()
        await expect(page.get_by_role("heading", level=1)).to_contain_text("volunteer jobs")
        await expect(cards.first).to_contain_text("Scan to claim")
        await pages.check(page, "poster-en")
        await page.get_by_role("link", name="中文").click()
        await expect(page.get_by_role("heading", level=1)).to_contain_text("志愿服务")
        assert not pages.over_budget, pages.over_budget
        assert not pages.violations, "\n".join(pages.violations)
    finally:
        await ctx.close()


async def test_bulk_verification_held_completions_and_the_public_figures(
    portal: str, services: DevStack, browser: Browser, shots: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    vol1, vol1_phone = f"vol-bulk-{tag}", _phone()
    vol2 = f"vol-bulk2-{tag}"
    off, off_phone = f"officer-bulk-{tag}", _phone()
    community, name, (lunch, patrol, typhoon) = await _community_with_jobs(
        services,
        tag,
        [
            {"title": f"送午餐 {tag}", "points": 20, "capacity": 6, **_window()},
            {"title": f"楼道巡查 {tag}", "points": 30, "capacity": 6, **_window()},
            # beyond the organisation's first daily limit (200) for one volunteer: held
            {"title": f"台风后清理 {tag}", "points": 250, "capacity": 2, **_window()},
        ],
        [
            {"person_id": vol1, "phone": vol1_phone, "role": "volunteer", "display_name": "孙师傅"},
            {"person_id": vol2, "phone": _phone(), "role": "volunteer"},
            {"person_id": off, "phone": off_phone, "role": "officer", "display_name": "周主任"},
        ],
    )
    # in this order (the queue's): the second volunteer's lunch, their typhoon clean-up, and a
    # lunch the officer did themselves (an officer may volunteer, never verify their own)
    v2_lunch = await _done_by(services, vol2, community, lunch, "送餐 6 份")
    v2_typhoon = await _done_by(services, vol2, community, typhoon, "清理倒伏树木 5 小时")
    own = await _done_by(services, off, community, lunch, "送餐 4 份")

    site = Site(portal)
    pages = Pages(shots)
    public_ctx = await browser.new_context(viewport={"width": 375, "height": 740})
    vol_ctx = await browser.new_context(
        viewport={"width": 375, "height": 740}, java_script_enabled=False
    )
    off_ctx = await browser.new_context(viewport={"width": 800, "height": 1000})
    ops_ctx = await browser.new_context()
    try:
        public, volunteer, officer = (
            await public_ctx.new_page(),
            await vol_ctx.new_page(),
            await off_ctx.new_page(),
        )
        ops = await ops_ctx.new_page()
        await _ops(ops, portal, services.token("operator"))

        # -- the public figures, before anything is verified, from the menu
        await public.goto(f"{portal}/c/{community}/menu")
        await public.get_by_role("link", name="公开数据").click()
        await expect(public.get_by_role("heading", level=1)).to_contain_text(f"{name} · ")
        for figure in ("points-issued", "activities", "attendances", "volunteers"):
            await expect(public.get_by_test_id(f"fig-{figure}")).to_have_text("0")
        await expect(public.get_by_test_id("fig-menu")).to_contain_text("本月菜单上有 3 项服务")

        # -- a volunteer (no JavaScript) claims the patrol and reports it done in the portal
        await _sign_in(volunteer, ops, site, vol1_phone)  # type: ignore[arg-type]
        await volunteer.goto(f"{portal}/jobs/{patrol['id']}")
        await volunteer.get_by_role("button", name="我要报名").click()
        await volunteer.get_by_label("说明").fill("巡查 3 栋楼")
        await volunteer.get_by_role("button", name="提交完成").click()
        await expect(volunteer.get_by_role("cell", name="待审核")).to_be_visible()

        # -- the attack: the volunteer posts the officer's bulk form with their own valid token
        csrf = await volunteer.locator("input[name=csrf]").first.get_attribute("value")
        assert csrf
        refused = await volunteer.request.post(
            f"{portal}/officer/queue/verify", form={"csrf": csrf, "ids": v2_lunch["id"]}
        )
        assert refused.status == 403
        assert "当前身份不能使用这个页面。" in await refused.text()
        assert await _status_of(services, v2_lunch["id"]) == "submitted"

        # -- the officer signs in; a forged CSRF token on the bulk form changes nothing
        await _sign_in(officer, ops, site, off_phone)  # type: ignore[arg-type]
        forged = await officer.request.post(
            f"{portal}/officer/queue/verify",
            form={"csrf": "forged", "ids": v2_lunch["id"], "community": community},
        )
        assert forged.status == 403 and "表单已过期" in await forged.text()
        assert await _status_of(services, v2_lunch["id"]) == "submitted"

        # -- the queue of the community: four waiting; all four selected, verified in one POST
        await officer.goto(f"{portal}/officer/queue?community={community}")
        items = officer.locator("li.completion")
        await expect(items).to_have_count(4)
        await expect(officer.get_by_role("link", name="待审核（4）")).to_be_visible()
        picks = {
            "v2_lunch": f"选择：{lunch['title']}（{vol2}）",
            "v2_typhoon": f"选择：{typhoon['title']}（{vol2}）",
            "own": f"选择：{lunch['title']}（{off}）",
            "v1_patrol": f"选择：{patrol['title']}（{vol1}）",
        }
        for label in picks.values():
            await officer.get_by_label(label).check()
        await pages.check(officer, "queue-select-zh")
        await officer.get_by_role("button", name="核验所选").first.click()
        await expect(officer).to_have_url(re.compile(r"/officer/queue\?done=bulk&community="))
        results = officer.get_by_test_id("bulk-results")
        await expect(results).to_contain_text("已核验 2 条，转入待复核 1 条，未能核验 1 条。")
        await expect(officer.get_by_test_id(f"bulk-{v2_lunch['id']}")).to_contain_text("已核验")
        await expect(officer.get_by_test_id(f"bulk-{v2_typhoon['id']}")).to_contain_text(
            "超出限额，已转入待复核"
        )
        mine = officer.get_by_test_id(f"bulk-{own['id']}")
        await expect(mine).to_contain_text("未能核验")
        await expect(mine).to_contain_text(off)
        await expect(mine).to_contain_text("自己的完成记录")  # the API's reason, in Chinese
        # the refused one is still waiting and still selected; the others have left the queue
        await expect(items).to_have_count(1)
        await expect(officer.get_by_label(picks["own"])).to_be_checked()
        await pages.check(officer, "queue-bulk-zh")
        assert await _status_of(services, v2_lunch["id"]) == "verified"
        assert await _status_of(services, v2_typhoon["id"]) == "held"
        assert await _status_of(services, own["id"]) == "submitted"

        # -- in English, the same refusal is said in English
        await officer.get_by_role("link", name="English").click()
        await officer.goto(f"{portal}/officer/queue?community={community}")
        await officer.get_by_label(f"Select: {lunch['title']} ({off})").check()
        await officer.get_by_role("button", name="Verify selected").first.click()
        mine = officer.get_by_test_id(f"bulk-{own['id']}")
        await expect(mine).to_contain_text("refused")
        await expect(mine).to_contain_text("own completion")
        await expect(officer.get_by_test_id("bulk-results")).to_contain_text(
            "0 verified, 0 held for review, 1 refused."
        )
        await pages.check(officer, "queue-bulk-en")
        await officer.get_by_role("link", name="Held for review (1)").click()
        await expect(officer.locator("li.held")).to_have_count(1)
        await pages.check(officer, "queue-held-en")
        await officer.get_by_role("link", name="中文").click()

        # -- the held one, approved from the held list with a reason
        await officer.goto(f"{portal}/officer/queue?community={community}")
        await officer.get_by_role("link", name="待复核（1）").click()
        held = officer.locator("li.held", has_text=typhoon["title"])
        await expect(held).to_contain_text("超出第一道限额：工作人员可以批准")
        await expect(held).to_contain_text(vol2)
        await pages.check(officer, "queue-held-zh")
        await held.get_by_label("批准理由").fill("台风后加班清理，已现场核实")
        await held.get_by_role("button", name=f"批准 {vol2}").click()
        await expect(officer.get_by_role("status")).to_have_text("已批准，积分即将到账。")
        await expect(officer.locator("li.held")).to_have_count(0)
        await expect(officer.get_by_text("没有待复核的记录。")).to_be_visible()
        assert await _status_of(services, v2_typhoon["id"]) == "verified"

        # -- the public figures now count what was verified (remembered up to 10 s: polled)
        async def counted() -> dict[str, str] | None:
            await public.reload()
            seen = {
                k: (await public.get_by_test_id(f"fig-{k}").inner_text()).strip()
                for k in ("points-issued", "activities", "attendances", "volunteers")
            }
            return seen if seen["attendances"] != "0" and seen["points-issued"] == "300" else None

        seen = await eventually(counted, timeout=60, what="the verified work in the figures")
        # 20 + 250 (the second volunteer), 30 (the patrol); three jobs; two volunteers
        assert seen == {
            "points-issued": "300",
            "activities": "3",
            "attendances": "3",
            "volunteers": "2",
        }
        # points redeemed: the organisation's month, as the redeem service's public figure says
        async with httpx.AsyncClient(base_url=services.url("redeem"), timeout=10) as http:
            r = await http.get(
                "/v1/reports/redemptions/figure",
                headers={"Authorization": f"Bearer {services.token('app')}"},
            )
            assert r.status_code == 200, r.text
        await expect(public.get_by_test_id("fig-redeemed")).to_have_text(str(r.json()["points"]))
        await expect(public.get_by_text("积分在全组织通用")).to_be_visible()
        await pages.check(public, "figures-zh")
        # the month picker: last month had none of it
        await public.get_by_label("月份").fill(_last_month())
        await public.get_by_role("button", name="查看").click()
        await expect(public).to_have_url(re.compile(rf"\?month={_last_month()}$"))
        await expect(public.get_by_test_id("fig-attendances")).to_have_text("0")
        await public.get_by_role("link", name="下个月").click()
        await expect(public.get_by_test_id("fig-attendances")).to_have_text("3")
        await public.get_by_role("link", name="English").click()
        await expect(public.get_by_role("heading", level=1)).to_contain_text("figures for")
        await expect(public.get_by_test_id("fig-points-issued")).to_have_text("300")
        await pages.check(public, "figures-en")
        await public.get_by_role("link", name="中文").click()
        await expect(public.get_by_role("heading", level=1)).to_contain_text("公开数据")

        assert not pages.over_budget, pages.over_budget
        assert not pages.violations, "\n".join(pages.violations)
    finally:
        for c in (public_ctx, vol_ctx, off_ctx, ops_ctx):
            await c.close()


def _last_month() -> str:
    first = datetime.now(UTC).replace(day=1)
    return (first - timedelta(days=1)).strftime("%Y-%m")
