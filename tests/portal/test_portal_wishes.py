"""The wish wall (心愿墙) and the hazards page in a real browser against the real stack: the
public sees a community's wishes with how far each has got; a volunteer (JavaScript off) signs
in and makes a wish — one the API refuses is shown in their language with what they typed
kept; the officer finds it on the board, it becomes a job, and the public wall shows it being
done; the volunteer reports a hazard and the public page shows it, without who reported it.
Pages are held to the budget, checked by axe and shot in both languages (results/portal/)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, expect

from jifen.devtools.devstack import DevStack
from tests.portal.test_portal_journey import Pages, _ops, _phone, _sign_in

pytestmark = pytest.mark.e2e


@dataclass
class Site:
    base: str


async def test_a_wish_is_made_on_the_wall_and_followed_to_being_done(
    portal: str, services: DevStack, browser: Browser, shots: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    community, name = f"wish-grid-{tag}", f"心愿网格{tag} Wish grid {tag}"
    vol, vol_phone, off_phone = f"vol-wish-{tag}", _phone(), _phone()

    def auth(role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {services.token(role)}"}

    async with httpx.AsyncClient(base_url=services.url("tasks"), timeout=20) as http:
        for path, role, body in (
            ("/v1/communities", "officer", {"id": community, "name": name}),
            ("/v1/people", "admin", {"person_id": vol, "phone": vol_phone, "role": "volunteer"}),
            (
                "/v1/people",
                "admin",
                {"person_id": f"officer-wish-{tag}", "phone": off_phone, "role": "officer"},
            ),
        ):
            r = await http.post(path, headers=auth(role), json=body)
            assert r.status_code == 201, r.text

    site = Site(portal)
    pages = Pages(shots)
    public_ctx = await browser.new_context(viewport={"width": 375, "height": 740})
    vol_ctx = await browser.new_context(
        viewport={"width": 375, "height": 740}, java_script_enabled=False
    )
    off_ctx = await browser.new_context(viewport={"width": 800, "height": 900})
    ops_ctx = await browser.new_context()
    try:
        public, volunteer, officer = (
            await public_ctx.new_page(),
            await vol_ctx.new_page(),
            await off_ctx.new_page(),
        )
        ops = await ops_ctx.new_page()
        await _ops(ops, portal, services.token("operator"))

        # the public wall, empty, from the community's menu
        await public.goto(f"{portal}/c/{community}/menu")
        await public.get_by_role("link", name="心愿墙").click()
        await expect(public.get_by_role("heading", level=1)).to_have_text(f"{name} · 心愿墙")
        await expect(public.get_by_text("还没有心愿。")).to_be_visible()
        await expect(public.get_by_role("link", name="登录后许愿")).to_be_visible()
        await pages.check(public, "wishes-empty-zh")

        # a volunteer signs in and makes a wish; one the API refuses keeps what was typed
        await _sign_in(volunteer, ops, site, vol_phone)  # type: ignore[arg-type]
        await volunteer.goto(f"{portal}/c/{community}/wishes")
        await volunteer.get_by_label("心愿", exact=True).fill(" ")  # only a space: no wish
        await volunteer.get_by_label("说明").fill("3 号楼三楼，黑了一周")
        await volunteer.get_by_role("button", name="许一个心愿").click()
        await expect(volunteer.get_by_role("alert")).to_contain_text("出错了")
        await expect(volunteer.get_by_label("说明")).to_have_value("3 号楼三楼，黑了一周")
        await pages.check(volunteer, "wishes-error-zh", axe=False)
        title = f"修好楼道灯 {tag}"
        await volunteer.get_by_label("心愿", exact=True).fill(title)
        await volunteer.get_by_label("地点").fill("蓬莱路 3 号")
        await volunteer.get_by_role("button", name="许一个心愿").click()
        await expect(volunteer).to_have_url(re.compile(r"/wishes\?done=posted$"))
        await expect(volunteer.get_by_role("status")).to_have_text("心愿已发布，社区会尽快安排。")
        wish = volunteer.locator("li.wish", has_text=title)
        await expect(wish.get_by_test_id("wish-status")).to_have_text("已提出")
        await expect(wish).to_contain_text("3 号楼三楼，黑了一周")

        # the officer finds it on the board; it becomes a job
        await _sign_in(officer, ops, site, off_phone)  # type: ignore[arg-type]
        await officer.goto(f"{portal}/officer/board")
        await officer.get_by_label("社区").select_option(community)
        await officer.get_by_role("button", name="查看").click()
        row = officer.locator("tr", has_text=title)
        await expect(row).to_contain_text("需求")
        await expect(row).to_contain_text("已提出")
        await pages.check(officer, "board-zh")
        async with httpx.AsyncClient(base_url=services.url("tasks"), timeout=20) as http:
            r = await http.get(
                "/v1/needs", headers=auth("officer"), params={"community_id": community}
            )
            [made] = [n for n in r.json()["items"] if n["title"] == title]
            assert (made["posted_by"], made["source"], made["place"]) == (
                vol,
                "resident",
                "蓬莱路 3 号",
            )
            now = datetime.now(UTC)
            job: dict[str, Any] = {
                "title": f"换楼道灯 {tag}",
                "category": "other",
                "points": 10,
                "capacity": 1,
                "starts_at": (now + timedelta(hours=1)).isoformat(),
                "ends_at": (now + timedelta(hours=3)).isoformat(),
            }
            r = await http.post(
                f"/v1/needs/{made['id']}/job", headers=auth("officer"), json={"job": job}
            )
            assert r.status_code == 200, r.text

        # the public wall shows it being done, in both languages
        await public.reload()
        wish = public.locator("li.wish", has_text=title)
        await expect(wish.get_by_test_id("wish-status")).to_have_text("进行中")
        await expect(wish.locator(".steps li.reached")).to_have_count(2)  # asked, being done
        await pages.check(public, "wishes-zh")
        await public.get_by_role("link", name="English").click()
        await expect(public.get_by_role("heading", level=1)).to_have_text(f"{name} · wish wall")
        await expect(wish.get_by_test_id("wish-status")).to_have_text("being done")
        await pages.check(public, "wishes-en")
        await public.get_by_role("link", name="中文").click()  # back to Chinese for the rest
        await expect(public.get_by_role("heading", level=1)).to_have_text(f"{name} · 心愿墙")
        await officer.reload()
        await expect(officer.locator("tr", has_text=title)).to_contain_text("进行中")

        # a hazard reported on the community's page: the public sees it reported, then fixed
        await volunteer.goto(f"{portal}/c/{community}/hazards")
        await volunteer.get_by_label("类型").select_option("fire_risk")
        await volunteer.get_by_label("情况").fill(f"楼道里给电动车充电 {tag}")
        await volunteer.get_by_label("地点").fill("蓬莱路 3 号 2 单元")
        await volunteer.get_by_role("button", name="上报隐患").click()
        await expect(volunteer.get_by_role("status")).to_have_text("已上报，谢谢！社区会尽快处理。")
        await public.goto(f"{portal}/c/{community}/hazards")
        hazard = public.locator("li.hazard", has_text=f"楼道里给电动车充电 {tag}")
        await expect(hazard.get_by_role("heading")).to_have_text("消防隐患 · 蓬莱路 3 号 2 单元")
        await expect(hazard.get_by_test_id("hazard-status")).to_have_text("已上报")
        assert vol not in await public.content()  # the public page does not name who reported
        await pages.check(public, "hazards-zh")

        # the board is the officers': a volunteer gets 403
        response = await volunteer.goto(f"{portal}/officer/board")
        assert response is not None and response.status == 403
        assert not pages.over_budget, pages.over_budget
        assert not pages.violations, "\n".join(pages.violations)
    finally:
        for c in (public_ctx, vol_ctx, off_ctx, ops_ctx):
            await c.close()
