"""The officer acts on hazards and wishes from the board, in a real browser against the real
stack, from report to done: a hazard is triaged into a job (a job whose end is before its
start is refused first, the field named, what was typed kept), the job's verified completion
makes it fixed; another is merged into it as a duplicate, another closed with a reason; a wish
becomes a job and is done when the job is; another is taken up for a volunteer and closed. The
public hazards page and wish wall show each change. A photo the portal kept with a report is
shown. While the officer's form is open the item is closed through the API: the officer's
submission is refused beside the form in the page's language (Chinese, then English), what
they typed kept. The attacks through the portal: a volunteer can neither open these pages nor
post their forms, a forged CSRF token changes nothing, and another organisation's hazard or
wish is not found (404) and cannot be closed. Pages are held to the budget, checked by axe and
shot in both languages (results/portal/)."""

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
from tests.helpers import eventually
from tests.portal.test_portal_journey import Pages, _ops, _phone, _sign_in

pytestmark = pytest.mark.e2e

SHANGHAI_HOURS = 8


class Site:
    def __init__(self, base: str) -> None:
        self.base = base


class Api:
    """The tasks API as a given role of a given organisation (the test's side door)."""

    def __init__(self, services: DevStack) -> None:
        self.services = services

    async def call(
        self,
        method: str,
        path: str,
        role: str,
        *,
        subject: str | None = None,
        org: str | None = None,
        json: Any = None,
        ok: tuple[int, ...] = (200, 201),
        key: bool = False,
    ) -> Any:
        kw: dict[str, Any] = {"org": org} if org else {}
        headers = {"Authorization": f"Bearer {self.services.token(role, subject, **kw)}"}
        if key:
            headers["Idempotency-Key"] = f"test-{uuid.uuid4()}"
        async with httpx.AsyncClient(base_url=self.services.url("tasks"), timeout=20) as http:
            r = await http.request(method, path, headers=headers, json=json)
        assert r.status_code in ok, (method, path, r.status_code, r.text)
        return r.json()


def _local(at: datetime) -> str:
    """``at`` as Asia/Shanghai wall-clock time, as a datetime-local input takes it."""
    return (at + timedelta(hours=SHANGHAI_HOURS)).strftime("%Y-%m-%dT%H:%M")


async def _fill(page: Page, **values: str) -> None:
    for name, value in values.items():
        field = page.locator(f"#{name}")
        if name in ("category", "verification", "duplicate_of"):
            await field.select_option(value)
        else:
            await field.fill(value)


async def _complete_and_verify(api: Api, vol: str, community: str, job_id: str) -> None:
    """The job done by the volunteer and verified by an officer (the tasks API)."""
    await api.call(
        "POST",
        f"/v1/communities/{community}/members",
        "volunteer",
        subject=vol,
        json={"account_id": vol},
    )
    await api.call(
        "POST", f"/v1/jobs/{job_id}/claims", "volunteer", subject=vol, json={"account_id": vol}
    )
    done = await api.call(
        "POST",
        f"/v1/jobs/{job_id}/completions",
        "volunteer",
        subject=vol,
        json={"account_id": vol, "evidence": {"note": "done"}},
        key=True,
    )
    verified = await api.call("POST", f"/v1/completions/{done['id']}/verify", "officer")
    if verified["status"] == "held":  # an organisation limit the session's other tests used up
        await api.call(
            "POST",
            f"/v1/completions/{done['id']}/approve",
            "admin",
            json={"reason": "board test: approved"},
        )


async def test_an_officer_takes_hazards_and_wishes_from_report_to_done(
    portal: str, services: DevStack, browser: Browser, shots: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    api = Api(services)
    community, name = f"board-grid-{tag}", f"看板网格{tag} Board grid {tag}"
    vol, vol_phone = f"vol-board-{tag}", _phone()
    helper = f"vol-helper-{tag}"
    off_phone = _phone()
    photo = "ab" * 32
    await api.call("POST", "/v1/communities", "officer", json={"id": community, "name": name})
    for person, phone, role in (
        (vol, vol_phone, "volunteer"),
        (helper, _phone(), "volunteer"),
        (f"officer-board-{tag}", off_phone, "officer"),
    ):
        await api.call(
            "POST",
            "/v1/people",
            "admin",
            json={"person_id": person, "phone": phone, "role": role},
        )
    await api.call(
        "POST",
        f"/v1/communities/{community}/members",
        "volunteer",
        subject=vol,
        json={"account_id": vol},
    )

    async def hazard(text: str, **extra: Any) -> dict[str, Any]:
        made: dict[str, Any] = await api.call(
            "POST",
            "/v1/hazards",
            "volunteer",
            subject=vol,
            json={
                "account_id": vol,
                "community_id": community,
                "kind": "fire_risk",
                "text": f"{text} {tag}",
                **extra,
            },
        )
        return made

    async def wish(title: str) -> dict[str, Any]:
        made: dict[str, Any] = await api.call(
            "POST",
            "/v1/needs",
            "volunteer",
            subject=vol,
            json={
                "community_id": community,
                "kind": "wish",
                "title": f"{title} {tag}",
                "place": "蓬莱路 5 号",
            },
        )
        return made

    fire = await hazard(
        "楼道里给电动车充电",
        place={"address": "蓬莱路 3 号"},
        evidence_ref=f"portal-photo/{photo}.jpg",
    )
    clutter = await hazard("楼道堆放纸箱")
    again = await hazard("3 号楼又有人充电")
    raced = await hazard("消防通道被占")
    kept = await hazard("路灯不亮")  # the attacks' target: it stays reported
    light = await wish("修好楼道灯")
    walk = await wish("陪老人散步")
    raced_wish = await wish("帮忙搬家")

    # another organisation's hazard and wish: this portal's officer must not reach them
    other = f"other-org-{tag}"
    await api.call(
        "POST", "/v1/communities", "officer", org=other, json={"id": f"o-{tag}", "name": "别处"}
    )
    await api.call(
        "POST",
        "/v1/people",
        "admin",
        org=other,
        json={"person_id": f"o-vol-{tag}", "phone": _phone(), "role": "volunteer"},
    )
    await api.call(
        "POST",
        f"/v1/communities/o-{tag}/members",
        "volunteer",
        subject=f"o-vol-{tag}",
        org=other,
        json={"account_id": f"o-vol-{tag}"},
    )
    foreign = await api.call(
        "POST",
        "/v1/hazards",
        "volunteer",
        subject=f"o-vol-{tag}",
        org=other,
        json={
            "account_id": f"o-vol-{tag}",
            "community_id": f"o-{tag}",
            "kind": "other",
            "text": "别处的隐患",
        },
    )
    foreign_wish = await api.call(
        "POST",
        "/v1/needs",
        "officer",
        org=other,
        json={"community_id": f"o-{tag}", "kind": "wish", "title": "别处的心愿"},
    )

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
        await _sign_in(officer, ops, site, off_phone)  # type: ignore[arg-type]

        # -- from the board to the hazard's page: its photo, its history, its three forms
        await officer.get_by_role("link", name="心愿与隐患看板").click()
        await officer.get_by_label("社区").select_option(community)
        await officer.get_by_role("button", name="查看").click()
        await officer.get_by_role("link", name=fire["text"]).click()
        await expect(officer).to_have_url(re.compile(rf"/officer/hazards/{fire['id']}$"))
        await expect(officer.get_by_role("heading", level=1)).to_have_text("消防隐患 · 蓬莱路 3 号")
        await expect(officer.get_by_test_id("item-status")).to_have_text("已上报")
        img = officer.get_by_role("img", name="上报时附的现场照片")
        await expect(img).to_have_attribute("src", f"/photos/{photo}.jpg")
        for form in ("转为服务任务", "合并为重复报告", "关闭"):
            await expect(officer.get_by_role("heading", name=form, exact=True)).to_be_visible()
        # the photo store is another part's: its picture may not load here, so axe is not run
        # on a page with a broken image; the same page without a photo is checked below
        await pages.check(officer, "officer-hazard-zh", axe=False)

        # -- triage: an end before the start is refused, the field named, everything kept
        # a job under way now, so that it can be done and verified within the test
        start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
        typed = {
            "title": f"清理楼道充电电动车 {tag}",
            "category": "hazard_patrol",
            "starts": _local(start),
            "ends": _local(start - timedelta(minutes=30)),
            "points": "15",
            "capacity": "2",
            "triage-reason": "消防通道：本周内",
        }
        await _fill(officer, **typed)
        await officer.get_by_role("button", name="转为服务任务").click()
        refused = officer.get_by_test_id("refused-triage")
        await expect(refused).to_contain_text("结束时间：必须晚于开始时间")
        for field, value in typed.items():
            await expect(officer.locator(f"#{field}")).to_have_value(value)
        await officer.locator("#ends").fill(_local(start + timedelta(hours=3)))
        await officer.get_by_role("button", name="转为服务任务").click()
        await expect(officer.get_by_role("status")).to_have_text("已转为服务任务。")
        await expect(officer.get_by_test_id("item-status")).to_have_text("处理中")
        now_fire = await api.call("GET", f"/v1/hazards/{fire['id']}", "officer")
        job = await api.call("GET", f"/v1/jobs/{now_fire['job_id']}", "officer")
        assert datetime.fromisoformat(job["starts_at"]) == start  # typed local, held in UTC
        assert (job["title"], job["points"], job["capacity"]) == (typed["title"], 15, 2)
        assert job["place_address"] == "蓬莱路 3 号"  # the report's place, kept
        assert now_fire["history"][-1]["reason"] == "消防通道：本周内"
        await expect(officer.get_by_role("link", name="查看服务")).to_have_attribute(
            "href", f"/jobs/{job['id']}"
        )
        await expect(officer.get_by_role("heading", name="合并为重复报告")).to_have_count(0)

        # -- another report of the same thing merged into it; one closed with a reason
        await officer.goto(f"{portal}/officer/hazards/{again['id']}")
        await _fill(officer, duplicate_of=fire["id"])
        await officer.locator("#merge-reason").fill("同一处，同一天上报")
        await officer.get_by_role("button", name="合并为重复报告").click()
        await expect(officer.get_by_test_id("item-status")).to_have_text("重复")
        await expect(officer.get_by_text("这一项已处理完毕，无需再操作。")).to_be_visible()
        await officer.goto(f"{portal}/officer/hazards/{clutter['id']}")
        await officer.get_by_label("关闭理由").fill("已现场清理")
        await officer.get_by_role("button", name="关闭", exact=True).click()
        await expect(officer.get_by_role("status")).to_have_text("已关闭。")
        await expect(officer.get_by_test_id("item-status")).to_have_text("已关闭")
        await expect(officer.get_by_role("cell", name="已现场清理")).to_be_visible()
        await pages.check(officer, "officer-hazard-closed-zh")

        # -- the job done and verified: the hazard is fixed, the public page says so
        await _complete_and_verify(api, helper, community, job["id"])
        await public.goto(f"{portal}/c/{community}/hazards")

        def status_of(text: str) -> Any:
            return public.locator("li.hazard", has_text=text).get_by_test_id("hazard-status")

        await expect(status_of(fire["text"])).to_have_text("已处理")
        await expect(status_of(clutter["text"])).to_have_text("已关闭")
        await expect(status_of(again["text"])).to_have_text("重复")
        await officer.goto(f"{portal}/officer/hazards/{fire['id']}")
        await expect(officer.get_by_test_id("item-status")).to_have_text("已处理")
        await expect(officer.locator("tbody tr")).to_have_count(3)  # reported, fixing, fixed

        # -- a wish becomes a job (its title and place offered), and is done when the job is
        await officer.goto(f"{portal}/officer/board?community={community}")
        await officer.get_by_role("link", name=light["title"]).click()
        await expect(officer).to_have_url(re.compile(rf"/officer/needs/{light['id']}$"))
        await expect(officer.get_by_test_id("item-status")).to_have_text("已提出")
        await expect(officer.locator("#title")).to_have_value(light["title"])
        await expect(officer.locator("#place")).to_have_value("蓬莱路 5 号")
        await pages.check(officer, "officer-need-zh")
        await _fill(
            officer,
            category="other",
            starts=_local(start),
            ends=_local(start + timedelta(hours=3)),
            points="10",
        )
        await officer.get_by_role("button", name="转为服务任务").click()
        await expect(officer.get_by_test_id("item-status")).to_have_text("进行中")
        await public.goto(f"{portal}/c/{community}/wishes")
        wall = public.locator("li.wish", has_text=light["title"]).get_by_test_id("wish-status")
        await expect(wall).to_have_text("进行中")
        now_light = await api.call("GET", f"/v1/needs/{light['id']}", "officer")
        await _complete_and_verify(api, helper, community, now_light["job_id"])
        await public.reload()
        await expect(wall).to_have_text("已完成")

        # -- another taken up for a volunteer, then closed; the wall shows it closed
        await officer.goto(f"{portal}/officer/needs/{walk['id']}")
        await officer.get_by_label("认领人").fill(helper)
        await officer.get_by_role("button", name="代为认领").click()
        await expect(officer.get_by_test_id("item-status")).to_have_text("有人认领")
        await expect(officer.get_by_role("heading", name="代为认领")).to_have_count(0)
        await officer.get_by_label("关闭理由").fill("老人已搬去子女家")
        await officer.get_by_role("button", name="关闭", exact=True).click()
        await expect(officer.get_by_test_id("item-status")).to_have_text("已关闭")
        await public.reload()
        await expect(
            public.locator("li.wish", has_text=walk["title"]).get_by_test_id("wish-status")
        ).to_have_text("已关闭")
        await pages.check(public, "wishes-after-board-zh")

        # -- closed through the API while the officer's form is open: refused, typed kept
        await officer.goto(f"{portal}/officer/needs/{raced_wish['id']}")
        await _fill(
            officer,
            title=f"搬家帮手 {tag}",
            starts=_local(start),
            ends=_local(start + timedelta(hours=2)),
            points="12",
        )
        await officer.locator("#job-reason").fill("周六上午")
        await api.call(
            "POST", f"/v1/needs/{raced_wish['id']}/close", "officer", json={"reason": "已搬完"}
        )
        await officer.get_by_role("button", name="转为服务任务").click()
        refused = officer.get_by_test_id("refused-job")
        await expect(refused).to_contain_text("状态为 closed 的事项不能改为 in_progress")
        await expect(refused).to_contain_text("填写的内容已保留")
        await expect(officer.get_by_test_id("item-status")).to_have_text("已关闭")
        await expect(officer.locator("#title")).to_have_value(f"搬家帮手 {tag}")
        await expect(officer.locator("#points")).to_have_value("12")
        await expect(officer.locator("#job-reason")).to_have_value("周六上午")
        await pages.check(officer, "officer-need-refused-zh")

        # ... and in English
        await officer.goto(f"{portal}/officer/hazards/{raced['id']}")
        await officer.get_by_role("link", name="English").click()
        await expect(officer.get_by_role("heading", name="Close it")).to_be_visible()
        await pages.check(officer, "officer-hazard-en")
        await officer.get_by_label("Reason for closing").fill("cleared by the property office")
        await api.call(
            "POST", f"/v1/hazards/{raced['id']}/close", "officer", json={"reason": "已清理"}
        )
        await officer.get_by_role("button", name="Close it").click()
        refused = officer.get_by_test_id("refused-close")
        await expect(refused).to_contain_text("a hazard report that is closed cannot become closed")
        await expect(refused).to_contain_text("What you typed is kept")
        await expect(officer.get_by_label("Reason for closing")).to_have_value(
            "cleared by the property office"
        )
        await expect(officer.get_by_test_id("item-status")).to_have_text("closed")
        await pages.check(officer, "officer-hazard-refused-en")
        await officer.goto(f"{portal}/officer/needs/{light['id']}")
        await expect(officer.get_by_test_id("item-status")).to_have_text("done")
        await expect(officer.get_by_text("Nothing more to do here.")).to_be_visible()
        await pages.check(officer, "officer-need-en")
        await officer.get_by_role("link", name="中文").click()

        # -- the attacks: a forged CSRF token; another organisation's items are not found
        forged = await officer.request.post(
            f"{portal}/officer/hazards/{kept['id']}/close",
            form={"csrf": "forged", "reason": "伪造的关闭"},
        )
        assert forged.status == 403 and "表单已过期" in await forged.text()
        csrf = await officer.locator("input[name=csrf]").first.get_attribute("value")
        assert csrf
        for path in (f"/officer/hazards/{foreign['id']}", f"/officer/needs/{foreign_wish['id']}"):
            response = await officer.goto(f"{portal}{path}")
            assert response is not None and response.status == 404, path
        for path in (
            f"/officer/hazards/{foreign['id']}/close",
            f"/officer/needs/{foreign_wish['id']}/close",
        ):
            posted = await officer.request.post(
                f"{portal}{path}", form={"csrf": csrf, "reason": "跨组织关闭"}
            )
            assert posted.status == 404, (path, posted.status)
        theirs = await api.call("GET", f"/v1/hazards/{foreign['id']}", "officer", org=other)
        assert theirs["status"] == "reported"
        theirs = await api.call("GET", f"/v1/needs/{foreign_wish['id']}", "officer", org=other)
        assert theirs["status"] == "open"

        # -- a volunteer can neither open these pages nor post their forms
        await _sign_in(volunteer, ops, site, vol_phone)  # type: ignore[arg-type]
        for path in (f"/officer/hazards/{kept['id']}", f"/officer/needs/{walk['id']}"):
            response = await volunteer.goto(f"{portal}{path}")
            assert response is not None and response.status == 403, path
            await expect(volunteer.get_by_role("alert")).to_have_text("当前身份不能使用这个页面。")
        vol_csrf = await volunteer.locator("input[name=csrf]").first.get_attribute("value")
        assert vol_csrf
        for path, form in (
            (f"/officer/hazards/{kept['id']}/close", {"reason": "志愿者关闭"}),
            (f"/officer/hazards/{kept['id']}/merge", {"duplicate_of": fire["id"]}),
            (f"/officer/needs/{raced_wish['id']}/claim", {"claimed_by": vol}),
        ):
            posted = await volunteer.request.post(
                f"{portal}{path}", form={"csrf": vol_csrf, **form}
            )
            assert posted.status == 403, (path, posted.status)
            assert "当前身份不能使用这个页面。" in await posted.text()

        async def still_reported() -> bool:
            got = await api.call("GET", f"/v1/hazards/{kept['id']}", "officer")
            return bool(got["status"] == "reported" and len(got["history"]) == 1)

        assert await eventually(still_reported, timeout=5, what="the hazard untouched")
        assert not pages.over_budget, pages.over_budget
        assert not pages.violations, "\n".join(pages.violations)
    finally:
        for c in (off_ctx, vol_ctx, public_ctx, ops_ctx):
            await c.close()
