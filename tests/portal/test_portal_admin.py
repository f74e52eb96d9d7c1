"""The admin's and the auditor's pages in a real browser against the real stack (#20: "Admin
and auditor: organisation limits, app credentials, adjustments with the second admin's
approval; checkpoint status and the audit report").

Admin A changes a limit (a refused change first: the form keeps what was typed) and sees it;
issues an app credential, whose secret is shown once and works, and revokes it, after which it
no longer works; proposes an adjustment of a volunteer's points; cannot approve it (the points
API's refusal, shown in Chinese and in English); admin B approves it and the volunteer's
balance shows it. The auditor signs checkpoints and sees the latest one, its signature and its
consistency with the one before checked by the portal, and the month's points report as the
points API gives it. A volunteer is refused both pages, and posting the admin's forms with the
session's valid CSRF token changes nothing (nor does the volunteer's own token on the API).
Pages are held to the budget, checked by axe and shot in both languages (results/portal/)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.async_api import Browser, Page, Response, expect

from jifen.devtools.devstack import DevStack
from tests.helpers import eventually
from tests.portal.test_portal_journey import Pages, _ops, _phone, _sign_in

pytestmark = pytest.mark.e2e

LOCAL = ZoneInfo("Asia/Shanghai")  # the portal shows times in local time


class Site:
    def __init__(self, base: str) -> None:
        self.base = base


def _auth(services: DevStack, role: str, subject: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {services.token(role, subject)}"}


async def _get(services: DevStack, service: str, path: str, role: str, **params: Any) -> Any:
    async with httpx.AsyncClient(base_url=services.url(service), timeout=20) as http:
        r = await http.get(path, headers=_auth(services, role), params=params)
        assert r.status_code == 200, r.text
        return r.json()


async def _pending_for(services: DevStack, account: str) -> list[dict[str, Any]]:
    page = await _get(services, "points", "/v1/adjustments", "admin", status="pending", limit=1000)
    return [a for a in page["items"] if a["account_id"] == account]


async def _adjust(
    services: DevStack, by: str, account: str, amount: int, reason: str, approver: str | None
) -> dict[str, Any]:
    """An adjustment through the points API (admin ``by`` proposes, ``approver`` approves)."""
    async with httpx.AsyncClient(base_url=services.url("points"), timeout=20) as http:
        r = await http.post(
            "/v1/adjustments",
            headers=_auth(services, "admin", by),
            json={"account_id": account, "amount": amount, "reason": reason},
        )
        assert r.status_code == 201, r.text
        made: dict[str, Any] = r.json()
        if approver is not None:
            r = await http.post(
                f"/v1/adjustments/{made['id']}/approve",
                headers=_auth(services, "admin", approver),
                json={"note": "test"},
            )
            assert r.status_code == 200, r.text
            made = r.json()
        return made


async def _exchange(services: DevStack, secret: str) -> int:
    async with httpx.AsyncClient(base_url=services.url("tasks"), timeout=20) as http:
        r = await http.post("/v1/apps/token", json={"credential": secret})
        return r.status_code


async def _refused(page: Page, url: str, text: str) -> None:
    response: Response | None = await page.goto(url)
    assert response is not None and response.status == 403, url
    await expect(page.get_by_role("alert")).to_have_text(text)


async def test_admin_limits_credentials_adjustments_and_the_auditor(
    portal: str, services: DevStack, browser: Browser, shots: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    people = {
        "a": (f"admin-a-{tag}", _phone(), "admin", "甲管理员"),
        "b": (f"admin-b-{tag}", _phone(), "admin", "乙管理员"),
        "auditor": (f"auditor-{tag}", _phone(), "auditor", "工会审计"),
        "vol": (f"vol-adj-{tag}", _phone(), "volunteer", "周师傅"),
    }
    async with httpx.AsyncClient(base_url=services.url("tasks"), timeout=20) as http:
        for pid, phone, role, name in people.values():
            r = await http.post(
                "/v1/people",
                headers=_auth(services, "admin"),
                json={"person_id": pid, "phone": phone, "role": role, "display_name": name},
            )
            assert r.status_code == 201, r.text
    vol = people["vol"][0]
    original = await _get(services, "tasks", "/v1/organisation", "admin")
    site = Site(portal)
    pages = Pages(shots)
    ctxs = {
        "ops": await browser.new_context(),
        "vol": await browser.new_context(
            viewport={"width": 375, "height": 740}, java_script_enabled=False
        ),
        "a": await browser.new_context(viewport={"width": 800, "height": 1000}),
        "b": await browser.new_context(viewport={"width": 375, "height": 740}),
        "auditor": await browser.new_context(viewport={"width": 800, "height": 1000}),
    }
    try:
        ops = await ctxs["ops"].new_page()
        await _ops(ops, portal, services.token("operator"))
        volunteer, a, b, auditor = [await ctxs[k].new_page() for k in ("vol", "a", "b", "auditor")]

        # -- the volunteer: no link to either page, refused both, and the forms change nothing
        await _sign_in(volunteer, ops, site, people["vol"][1])  # type: ignore[arg-type]
        await expect(volunteer.get_by_test_id("balance")).to_have_text("0 分")
        await expect(volunteer.get_by_role("link", name="管理")).to_have_count(0)
        await expect(volunteer.get_by_role("link", name="审计")).to_have_count(0)
        await _refused(volunteer, f"{portal}/admin", "当前身份不能使用这个页面。")
        await _refused(volunteer, f"{portal}/audit", "当前身份不能使用这个页面。")
        csrf = await volunteer.locator("input[name=csrf]").first.get_attribute("value")
        assert csrf
        for path, form in (
            ("/admin/adjustments", {"account_id": vol, "amount": "1000", "reason": "自己加分"}),
            ("/admin/limits", {k: "1" for k in ("daily_points_officer", "daily_points_admin")}),
            ("/admin/credentials", {"app_id": f"app-vol-{tag}", "writes_per_minute": "600"}),
            (f"/admin/credentials/{uuid.uuid4()}/revoke", {}),
            (f"/admin/adjustments/{uuid.uuid4()}/approve", {}),
            ("/audit/checkpoints", {}),
        ):
            refused = await volunteer.request.post(f"{portal}{path}", form={"csrf": csrf, **form})
            assert refused.status == 403, path
            assert "当前身份不能使用这个页面。" in await refused.text(), path
        # and the volunteer's own token on the points API is refused as well
        async with httpx.AsyncClient(base_url=services.url("points"), timeout=20) as http:
            r = await http.post(
                "/v1/adjustments",
                headers=_auth(services, "volunteer", vol),
                json={"account_id": vol, "amount": 1000, "reason": "自己加分"},
            )
            assert r.status_code == 403, r.text
        assert await _pending_for(services, vol) == []
        assert await _get(services, "tasks", "/v1/organisation", "admin") == original
        creds = await _get(services, "tasks", "/v1/apps/credentials", "admin", limit=1000)
        assert not [c for c in creds["items"] if c["app_id"] == f"app-vol-{tag}"]

        # -- the auditor signs a checkpoint of a tree of two entries at least (another account's
        # adjustments through the API), so the one after it is proved consistent by a real proof
        a_id, b_id = people["a"][0], people["b"][0]
        # the organisation's month so far (other tests adjust its accounts too, either way)
        month = datetime.now(UTC).strftime("%Y-%m")
        earlier = await _get(services, "points", "/v1/reports/points", "auditor", month=month)
        for amount in (3, 4):
            await _adjust(services, a_id, f"vol-other-{tag}", amount, "补录", approver=b_id)
        await _sign_in(auditor, ops, site, people["auditor"][1])  # type: ignore[arg-type]
        await auditor.get_by_role("link", name="审计", exact=True).click()
        await expect(auditor).to_have_url(re.compile(r"/audit$"))

        async def signed(at_least: int) -> int | None:
            await auditor.goto(f"{portal}/audit")
            await auditor.get_by_role("button", name="现在签一个检查点").click()
            await expect(auditor.get_by_role("status")).to_have_text("已按账本现状签名检查点。")
            size = int(await auditor.get_by_test_id("cp-tree-size").inner_text())
            return size if size >= at_least else None

        before = await eventually(lambda: signed(2), timeout=60, what="a checkpoint of 2 entries")

        # -- admin A: the menu links the admin's page
        await _sign_in(a, ops, site, people["a"][1])  # type: ignore[arg-type]
        await a.get_by_role("link", name="管理", exact=True).click()
        await expect(a).to_have_url(re.compile(r"/admin$"))
        await expect(a.get_by_role("heading", level=1)).to_have_text(
            "管理：限额、应用凭证与积分调整"
        )
        await pages.check(a, "admin-zh")

        # a refused change: the second daily limit below the first; what was typed is kept
        first = a.get_by_label("每人每天积分（第一道）")
        second = a.get_by_label("每人每天积分（第二道）")
        await expect(first).to_have_value(str(original["daily_points_officer"]))
        low = str(original["daily_points_officer"] - 1)
        await second.fill(low)
        await a.get_by_role("button", name="保存限额").click()
        alert = a.get_by_test_id("refused-limits")
        await expect(alert).to_contain_text("出错了")
        await expect(alert).to_contain_text("取值不符合要求")  # the tasks API's words, in Chinese
        await expect(a.get_by_label("每人每天积分（第二道）")).to_have_value(low)
        await pages.check(a, "admin-limits-refused-zh")
        assert await _get(services, "tasks", "/v1/organisation", "admin") == original

        # a change that is taken (a higher per-officer limit: nothing is held that was not)
        raised = original["daily_points_per_officer"] + 7
        await a.get_by_label("每人每天积分（第二道）").fill(str(original["daily_points_admin"]))
        await a.get_by_label("每位工作人员每天核验积分").fill(str(raised))
        await a.get_by_role("button", name="保存限额").click()
        await expect(a.get_by_role("status")).to_have_text("限额已保存。")
        await expect(a.get_by_label("每位工作人员每天核验积分")).to_have_value(str(raised))
        await expect(a.get_by_test_id("limits-updated")).to_contain_text(f"最近由 {people['a'][0]}")
        now = await _get(services, "tasks", "/v1/organisation", "admin")
        assert now["daily_points_per_officer"] == raised
        assert now["daily_points_officer"] == original["daily_points_officer"]

        # -- an app credential: issued (the secret shown once, and it works), then revoked
        app_id = f"app-test-{tag}"
        await a.get_by_label("应用名").fill(app_id)
        await a.get_by_label("每分钟写入上限").fill("120")
        await a.get_by_role("button", name="签发凭证").click()
        await expect(a.get_by_test_id("issued")).to_contain_text(f"已为 {app_id} 签发凭证")
        secret = (await a.get_by_test_id("secret").inner_text()).strip()
        assert secret.startswith("jfa_")
        assert await _exchange(services, secret) == 200
        await pages.check(a, "admin-credential-issued-zh")
        await a.reload()
        await expect(a.get_by_test_id("issued")).to_have_count(0)
        assert secret not in await a.content()
        row = a.locator("tr", has_text=app_id)
        await expect(row).to_contain_text("每分钟 120 次写入")
        await expect(row).to_contain_text("有效")
        await row.get_by_role("button", name=f"吊销 {app_id}").click()
        await expect(a.get_by_role("status")).to_have_text("凭证已吊销。")
        await expect(a.locator("tr", has_text=app_id)).to_contain_text("吊销")
        await expect(a.get_by_role("button", name=f"吊销 {app_id}")).to_have_count(0)
        assert await _exchange(services, secret) == 401
        # the portal's own credential is not offered for revoking
        await expect(a.get_by_role("button", name="吊销 app-portal")).to_have_count(0)

        # -- an adjustment proposed by A, which A cannot approve
        await a.get_by_label("账户（志愿者编号）").fill(vol)
        await a.get_by_label("积分（整数，扣减填负数）").fill("15")
        await a.get_by_label("理由").fill("纸质记录漏记一次送餐")
        await a.get_by_role("button", name="提出调整").click()
        await expect(a.get_by_role("status")).to_have_text("调整已提出，等待另一位管理员批准。")
        (proposed,) = await _pending_for(services, vol)
        assert proposed["amount"] == 15 and proposed["requested_by"] == people["a"][0]
        item = a.get_by_test_id(f"adj-{proposed['id']}")
        await expect(item).to_contain_text(f"{vol}：+15 分")
        await expect(item).to_contain_text("（你提出的）")
        await item.get_by_label("备注").fill("已核对纸质记录")
        await item.get_by_role("button", name=f"批准 {vol} +15").click()
        refusal = a.get_by_test_id(f"refused-adj-{proposed['id']}")
        await expect(refusal).to_contain_text("申请人不能审批自己的调整")  # the API's, in Chinese
        await expect(item.get_by_label("备注")).to_have_value("已核对纸质记录")
        await pages.check(a, "admin-own-approval-refused-zh")
        # in English, the same refusal in English
        await a.get_by_role("link", name="English").click()
        await expect(a).to_have_url(re.compile(r"/admin$"))  # back to the page, not the POST
        item = a.get_by_test_id(f"adj-{proposed['id']}")
        await item.get_by_role("button", name=f"Approve {vol} +15").click()
        await expect(a.get_by_test_id(f"refused-adj-{proposed['id']}")).to_contain_text(
            "cannot also decide it"
        )
        await pages.check(a, "admin-own-approval-refused-en")
        await a.goto(f"{portal}/admin")
        await expect(a.get_by_role("heading", level=1)).to_have_text(
            "Admin: limits, app credentials, adjustments"
        )
        await pages.check(a, "admin-en")
        await a.get_by_role("link", name="中文").click()
        assert [x["status"] for x in await _pending_for(services, vol)] == ["pending"]

        # -- admin B approves it (a phone-sized screen)
        await _sign_in(b, ops, site, people["b"][1])  # type: ignore[arg-type]
        await b.goto(f"{portal}/admin")
        item = b.get_by_test_id(f"adj-{proposed['id']}")
        await expect(item).to_contain_text(f"{people['a'][0]} 于")
        await expect(item).not_to_contain_text("（你提出的）")
        await item.get_by_label("备注").fill("同意")
        await item.get_by_role("button", name=f"批准 {vol} +15").click()
        await expect(b.get_by_role("status")).to_have_text("已批准，积分已记账。")
        await expect(b.get_by_test_id(f"adj-{proposed['id']}")).to_have_count(0)
        decided = b.get_by_test_id(f"decided-{proposed['id']}")
        await expect(decided).to_contain_text("已批准")
        await expect(decided).to_contain_text(people["b"][0])
        await pages.check(b, "admin-approved-zh")
        assert await _pending_for(services, vol) == []
        # and rejects another of A's (entered twice by mistake): nothing is entered
        twice = await _adjust(services, a_id, vol, 100, "重复录入", approver=None)
        await b.goto(f"{portal}/admin")
        await (
            b.get_by_test_id(f"adj-{twice['id']}")
            .get_by_role("button", name=f"驳回 {vol} +100")
            .click()
        )
        await expect(b.get_by_role("status")).to_have_text("已驳回。")
        await expect(b.get_by_test_id(f"decided-{twice['id']}")).to_contain_text("已驳回")

        # -- the volunteer's balance shows it
        async def credited() -> bool:
            await volunteer.goto(f"{portal}/me")
            return (await volunteer.get_by_test_id("balance").inner_text()).strip() == "15 分"

        await eventually(credited, timeout=60, what="the adjustment on the volunteer's page")

        # -- the auditor: a new checkpoint holds the adjustment, consistent with the one before
        size = await eventually(
            lambda: signed(before + 1), timeout=60, what="a checkpoint past the adjustment"
        )
        latest = await _get(services, "points", "/v1/audit/checkpoints/latest", "auditor")
        assert latest["tree_size"] == size
        await expect(auditor.get_by_test_id("cp-root")).to_have_text(latest["root_hash"])
        signed_at = datetime.fromisoformat(latest["issued_at"]).astimezone(LOCAL)
        await expect(auditor.get_by_test_id("cp-signed-at")).to_have_text(
            signed_at.strftime("%Y-%m-%d %H:%M")
        )
        await expect(auditor.get_by_test_id("cp-signature")).to_have_text("✓ 用公布的公钥验证通过")
        history = await _get(services, "points", "/v1/audit/checkpoints", "auditor", limit=2)
        previous = history["items"][1]["tree_size"]
        assert before <= previous < size
        proof = await _get(
            services, "points", "/v1/audit/consistency", "auditor", first=previous, second=size
        )
        assert proof["proof"], "a real proof was checked, not the trivial one from an empty tree"
        await expect(auditor.get_by_test_id("cp-consistency")).to_have_text(
            f"✓ 与树大小 {previous} 的检查点一致：只追加，没有改写"
        )
        # the month's report as the points API gives it, in whole numbers
        report = await _get(services, "points", "/v1/reports/points", "auditor", month=month)
        # this test's adjustments, 3 + 4 + 15 approved (the 100 rejected), and nothing else
        assert report["total"]["adjusted"] - earlier["total"]["adjusted"] == 22
        await expect(auditor.get_by_role("heading", name=f"{month} 积分报表")).to_be_visible()
        for k in ("issued", "reversed", "redeemed", "refunded", "adjusted"):
            await expect(auditor.get_by_test_id(f"rep-{k}")).to_have_text(str(report["total"][k]))
        for k, field in (("opening", "opening_outstanding"), ("closing", "closing_outstanding")):
            await expect(auditor.get_by_test_id(f"rep-{k}")).to_have_text(str(report[field]))
        await pages.check(auditor, "audit-zh")
        await auditor.get_by_role("link", name="English").click()
        await expect(auditor).to_have_url(re.compile(rf"/audit\?month={month}$"))
        await expect(auditor.get_by_role("heading", level=1)).to_have_text(
            "Audit: the checkpoint and the points report"
        )
        await expect(auditor.get_by_test_id("cp-signature")).to_have_text(
            "✓ verifies with the published key"
        )
        await expect(auditor.get_by_test_id("cp-consistency")).to_contain_text(
            f"consistent with the checkpoint of tree size {previous}"
        )
        await pages.check(auditor, "audit-en")
        await auditor.get_by_role("link", name="中文").click()
        # the auditor is refused the admin's page, the admin the auditor's
        await _refused(auditor, f"{portal}/admin", "当前身份不能使用这个页面。")
        await _refused(b, f"{portal}/audit", "当前身份不能使用这个页面。")

        assert not pages.over_budget, pages.over_budget
        assert not pages.violations, "\n".join(pages.violations)
    finally:
        # the organisation's limits as they were (other tests count on them)
        async with httpx.AsyncClient(base_url=services.url("tasks"), timeout=20) as http:
            body = {k: original[k] for k in original if k not in ("id", "updated_by", "updated_at")}
            r = await http.put("/v1/organisation", headers=_auth(services, "admin"), json=body)
            assert r.status_code == 200, r.text
        for c in ctxs.values():
            await c.close()
