"""The officer publishes the month's menu from the portal (``/officer/menu``), in a real browser
against the real stack: a row with an end before its start, a missing title and points that
are not a whole number is refused with each field named in the person's language and
everything typed kept, and nothing is published; corrected, the two jobs are published (all or
none) and the public menu shows them at the local times as typed (the API holds them in UTC,
eight hours earlier in Asia/Shanghai); the same in English. The attacks through the portal: a
volunteer can neither open the page nor post its form, a forged CSRF token is refused, and a
community of another organisation cannot be published to. Pages are held to the budget,
checked by axe and shot in both languages (results/portal/)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from jifen.devtools.devstack import DevStack
from tests.portal.test_portal_journey import Pages, _ops, _phone, _sign_in

pytestmark = pytest.mark.e2e


class Site:
    def __init__(self, base: str) -> None:
        self.base = base


def _next_month() -> str:
    # next month: every job typed in it is in the future, whatever the day today
    first = datetime.now(UTC).replace(day=1) + timedelta(days=32)
    return first.strftime("%Y-%m")


async def _jobs_of(services: DevStack, community: str, org: str | None = None) -> list[Any]:
    kw = {"org": org} if org else {}
    async with httpx.AsyncClient(base_url=services.url("tasks"), timeout=20) as http:
        r = await http.get(
            "/v1/jobs",
            headers={"Authorization": f"Bearer {services.token('officer', **kw)}"},
            params={"community_id": community, "limit": 100},
        )
        assert r.status_code == 200, r.text
        items: list[Any] = r.json()["items"]
        return items


async def _fill_row(page: Page, i: int, **values: str) -> None:
    for name, value in values.items():
        field = page.locator(f"#{name}-{i}")
        if name in ("category", "verification"):
            await field.select_option(value)
        else:
            await field.fill(value)


async def test_an_officer_publishes_the_months_menu_in_both_languages(
    portal: str, services: DevStack, browser: Browser, shots: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    community, name = f"menu-grid-{tag}", f"菜单网格{tag} Menu grid {tag}"
    off_phone, vol_phone = _phone(), _phone()
    other_org, other_community = f"other-org-{tag}", f"other-grid-{tag}"
    month = _next_month()

    def auth(role: str, org: str | None = None) -> dict[str, str]:
        kw = {"org": org} if org else {}
        return {"Authorization": f"Bearer {services.token(role, **kw)}"}

    async with httpx.AsyncClient(base_url=services.url("tasks"), timeout=20) as http:
        for path, headers, body in (
            ("/v1/communities", auth("officer"), {"id": community, "name": name}),
            (
                "/v1/people",
                auth("admin"),
                {"person_id": f"officer-menu-{tag}", "phone": off_phone, "role": "officer"},
            ),
            (
                "/v1/people",
                auth("admin"),
                {"person_id": f"vol-menu-{tag}", "phone": vol_phone, "role": "volunteer"},
            ),
            # another organisation's community, which this portal's officer must not fill
            (
                "/v1/communities",
                auth("officer", other_org),
                {"id": other_community, "name": "别人的网格"},
            ),
        ):
            r = await http.post(path, headers=headers, json=body)
            assert r.status_code == 201, r.text

    site = Site(portal)
    pages = Pages(shots)
    off_ctx = await browser.new_context(viewport={"width": 800, "height": 1000})
    vol_ctx = await browser.new_context(
        viewport={"width": 375, "height": 740}, java_script_enabled=False
    )
    public_ctx = await browser.new_context(viewport={"width": 375, "height": 740})
    ops_ctx = await browser.new_context()
    try:
        officer, volunteer, public = (
            await off_ctx.new_page(),
            await vol_ctx.new_page(),
            await public_ctx.new_page(),
        )
        ops = await ops_ctx.new_page()
        await _ops(ops, portal, services.token("operator"))

        # -- from the officer's page to the menu form
        await _sign_in(officer, ops, site, off_phone)  # type: ignore[arg-type]
        await officer.get_by_role("link", name="发布服务菜单").click()
        await expect(officer).to_have_url(re.compile(r"/officer/menu$"))
        await expect(officer.get_by_role("heading", level=1)).to_have_text("发布本月服务菜单")
        await expect(officer.locator("fieldset.job-row")).to_have_count(5)
        await expect(officer.get_by_text("Asia/Shanghai")).to_be_visible()
        await pages.check(officer, "officer-menu-zh")

        # -- a bad row and a bad field: refused, each named, everything typed kept
        await officer.get_by_label("社区").select_option(community)
        await officer.get_by_label("月份").fill(month)
        first = {
            "title": f"免费维修电动车 {tag}",
            "category": "free_repair_day",
            "place": "骑手驿站",
            "starts": f"{month}-10T09:00",
            "ends": f"{month}-10T08:30",  # before the start
            "points": "30",
            "capacity": "4",
            "verification": "checkin",
        }
        second = {
            "title": "",  # missing
            "category": "meal_delivery",
            "place": "社区食堂",
            "starts": f"{month}-01T11:00",
            "ends": f"{month}-01T12:30",
            "points": "2.5",  # not a whole number
            "capacity": "",
        }
        await _fill_row(officer, 0, **first)
        await _fill_row(officer, 2, **second)  # a row left empty in between is ignored
        await officer.get_by_role("button", name="发布").click()
        errors = officer.get_by_test_id("pub-errors")
        await expect(errors).to_contain_text("第 1 项 · 结束时间：必须晚于开始时间")
        await expect(errors).to_contain_text("第 3 项 · 名称：请填写")
        await expect(errors).to_contain_text("第 3 项 · 积分：请填写大于 0 的整数")
        await expect(errors).to_contain_text("填写的内容已保留")
        await expect(errors.locator("li")).to_have_count(3)
        for i, row in ((0, first), (2, second)):
            for field, value in row.items():
                await expect(officer.locator(f"#{field}-{i}")).to_have_value(value)
        await expect(officer.get_by_label("社区")).to_have_value(community)
        await expect(officer.get_by_label("月份")).to_have_value(month)
        await expect(officer.locator("#ends-0")).to_have_attribute("aria-invalid", "true")
        await pages.check(officer, "officer-menu-refused-zh")
        assert await _jobs_of(services, community) == []

        # -- corrected: both published, all at once
        await officer.locator("#ends-0").fill(f"{month}-10T17:00")
        await officer.locator("#title-2").fill(f"为独居老人送午餐 {tag}")
        await officer.locator("#points-2").fill("20")
        await officer.get_by_role("button", name="发布").click()
        await expect(officer.get_by_role("status")).to_contain_text("已发布 2 项服务。")
        made = {j["title"]: j for j in await _jobs_of(services, community)}
        assert set(made) == {first["title"], f"为独居老人送午餐 {tag}"}
        repair, lunch = made[first["title"]], made[f"为独居老人送午餐 {tag}"]
        # typed in Asia/Shanghai, held in UTC: eight hours earlier (the 1st's 11:00 is 03:00)
        assert datetime.fromisoformat(repair["starts_at"]) == datetime.fromisoformat(
            f"{month}-10T01:00:00+00:00"
        )
        assert datetime.fromisoformat(lunch["ends_at"]) == datetime.fromisoformat(
            f"{month}-01T04:30:00+00:00"
        )
        assert (repair["points"], repair["capacity"], repair["verification"]) == (30, 4, "checkin")
        assert (lunch["capacity"], lunch["verification"], lunch["category"]) == (
            1,
            "officer",
            "meal_delivery",
        )
        assert repair["place_address"] == "骑手驿站"

        # -- the public menu shows them at the local times as typed
        await officer.get_by_role("link", name="查看公开的服务菜单").click()
        await expect(officer).to_have_url(re.compile(rf"/c/{community}/menu\?month={month}$"))
        await public.goto(f"{portal}/c/{community}/menu?month={month}")
        card = public.locator("li.job", has_text=first["title"])
        await expect(card).to_contain_text(f"{month}-10 09:00 – {month}-10 17:00")
        await expect(card).to_contain_text("骑手驿站")
        await expect(card).to_contain_text("30 积分")
        await expect(public.locator("li.job", has_text=f"送午餐 {tag}")).to_contain_text(
            f"{month}-01 11:00 – {month}-01 12:30"
        )

        # -- in English: a refusal said in English, then two more jobs
        await officer.goto(f"{portal}/officer/menu")
        await officer.get_by_role("link", name="English").click()
        await expect(officer.get_by_role("heading", level=1)).to_have_text(
            "Publish the month's service menu"
        )
        await officer.get_by_label("Community", exact=True).select_option(community)
        await officer.get_by_label("Month", exact=True).fill(month)
        third = {
            "title": f"Traffic guidance {tag}",
            "category": "traffic_guidance",
            "starts": f"{month}-20T07:30",
            "ends": f"{month}-20T09:00",
            "points": "ten",
        }
        fourth = {
            "title": f"Stairwell patrol {tag}",
            "category": "hazard_patrol",
            "starts": f"{month}-21T19:00",
            "ends": f"{month}-21T18:00",
            "points": "15",
            "capacity": "2",
        }
        await _fill_row(officer, 0, **third)
        await _fill_row(officer, 1, **fourth)
        await officer.get_by_role("button", name="Publish").click()
        errors = officer.get_by_test_id("pub-errors")
        await expect(errors).to_contain_text("job 1 · Points: please give a whole number above 0")
        await expect(errors).to_contain_text("job 2 · Ends: must be after the start")
        await expect(errors).to_contain_text("What you typed is kept")
        for i, row in ((0, third), (1, fourth)):
            for field, value in row.items():
                await expect(officer.locator(f"#{field}-{i}")).to_have_value(value)
        await pages.check(officer, "officer-menu-refused-en")
        await officer.locator("#points-0").fill("10")
        await officer.locator("#ends-1").fill(f"{month}-21T21:00")
        await officer.get_by_role("button", name="Publish").click()
        await expect(officer.get_by_role("status")).to_contain_text("2 jobs published.")
        await pages.check(officer, "officer-menu-en")
        await public.goto(f"{portal}/c/{community}/menu?month={month}")
        await public.get_by_role("link", name="English").click()
        await expect(public.locator("li.job")).to_have_count(4)
        await expect(public.locator("li.job", has_text=third["title"])).to_contain_text(
            f"{month}-20 07:30 – {month}-20 09:00"
        )
        await expect(public.locator("li.job", has_text=fourth["title"])).to_contain_text(
            f"{month}-21 19:00 – {month}-21 21:00"
        )
        await pages.check(public, "menu-published-en")
        await officer.get_by_role("link", name="中文").click()
        await public.get_by_role("link", name="中文").click()

        # -- the attacks: a forged CSRF token, another organisation's community
        row = {
            "community": community,
            "month": month,
            "title-0": f"伪造 {tag}",
            "starts-0": f"{month}-11T09:00",
            "ends-0": f"{month}-11T10:00",
            "points-0": "500",
        }
        forged = await officer.request.post(f"{portal}/officer/menu", form={**row, "csrf": "x"})
        assert forged.status == 403 and "表单已过期" in await forged.text()
        csrf = await officer.locator("input[name=csrf]").first.get_attribute("value")
        assert csrf
        missing = await officer.request.post(f"{portal}/officer/menu", form=row)
        assert missing.status == 403
        await officer.goto(f"{portal}/officer/menu")
        await officer.get_by_label("社区").select_option(community)
        # the select offers only this organisation's communities: the option is forged
        await officer.locator("#community").evaluate(
            "(s, v) => { s.options[0].value = v; s.selectedIndex = 0; }", other_community
        )
        await officer.get_by_label("月份").fill(month)
        await _fill_row(
            officer,
            0,
            title=f"别人的社区 {tag}",
            starts=f"{month}-11T09:00",
            ends=f"{month}-11T10:00",
            points="10",
        )
        await officer.get_by_role("button", name="发布").click()
        await expect(officer.get_by_test_id("pub-errors")).to_contain_text(other_community)
        await expect(officer.locator("#title-0")).to_have_value(f"别人的社区 {tag}")
        assert await _jobs_of(services, other_community, org=other_org) == []
        assert len(await _jobs_of(services, community)) == 4

        # -- a volunteer can neither open the page nor post its form (with their own token)
        await _sign_in(volunteer, ops, site, vol_phone)  # type: ignore[arg-type]
        response = await volunteer.goto(f"{portal}/officer/menu")
        assert response is not None and response.status == 403
        await expect(volunteer.get_by_role("alert")).to_have_text("当前身份不能使用这个页面。")
        vol_csrf = await volunteer.locator("input[name=csrf]").first.get_attribute("value")
        assert vol_csrf
        refused = await volunteer.request.post(
            f"{portal}/officer/menu", form={**row, "csrf": vol_csrf}
        )
        assert refused.status == 403
        assert "当前身份不能使用这个页面。" in await refused.text()
        assert len(await _jobs_of(services, community)) == 4

        assert not pages.over_budget, pages.over_budget
        assert not pages.violations, "\n".join(pages.violations)
    finally:
        for c in (off_ctx, vol_ctx, public_ctx, ops_ctx):
            await c.close()
