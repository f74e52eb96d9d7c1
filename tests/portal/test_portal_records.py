"""The volunteer's points statement (the month's totals from the points service and the
ledger's entries, newest first) and the officer's report-in list of a community, in Chromium
against the real stack: the credited points appear on the statement as the ledger recorded
them; the officer sees who reported in; a volunteer may not open the officer's list, and a
community the organisation does not have is a not-found page."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, expect

from jifen.devtools.devstack import DevStack
from tests.helpers import eventually
from tests.portal.test_portal_honour import Site, _verified_service
from tests.portal.test_portal_journey import Pages, _ops, _phone, _sign_in

pytestmark = pytest.mark.e2e


async def test_the_statement_shows_the_credit_and_the_officer_the_report_ins(
    portal: str, services: DevStack, browser: Browser, shots: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    community, account, phone = f"stmt-grid-{tag}", f"vol-stmt-{tag}", _phone()
    await _verified_service(services, community, account, phone, f"明细{tag}", points=35)

    async def credited() -> bool:
        async with httpx.AsyncClient(base_url=services.url("points"), timeout=10) as http:
            r = await http.get(
                f"/v1/accounts/{account}/balance",
                headers={"Authorization": f"Bearer {services.token('volunteer', account)}"},
            )
            return r.status_code == 200 and r.json()["balance"] == 35

    await eventually(credited, timeout=60, what="the 35 points credited")
    site, pages = Site(portal), Pages(shots)
    ctx_ops, ctx_vol, ctx_off = (
        await browser.new_context(),
        await browser.new_context(
            viewport={"width": 375, "height": 740}, java_script_enabled=False
        ),
        await browser.new_context(),
    )
    try:
        ops, vol, off = await ctx_ops.new_page(), await ctx_vol.new_page(), await ctx_off.new_page()
        await _ops(ops, portal, services.token("operator"))

        # the volunteer: from "mine" to the statement of this month
        await _sign_in(vol, ops, site, phone)  # type: ignore[arg-type]
        await vol.get_by_role("link", name="积分明细").click()
        await expect(vol.get_by_test_id("stmt-opening")).to_have_text("0")
        await expect(vol.get_by_test_id("stmt-closing")).to_have_text("35")
        earned = vol.get_by_test_id("stmt-earned").locator("tbody tr")
        await expect(earned).to_have_count(1)
        assert await earned.locator("td").all_inner_texts() == ["civility_persuasion", "35"]
        entry = vol.get_by_test_id("stmt-entries").locator("tbody tr")
        await expect(entry).to_have_count(1)
        cells = await entry.locator("td").all_inner_texts()
        assert cells[1:] == ["服务积分 · civility_persuasion", "+35", "35"], cells
        await pages.check(vol, "statement-zh", axe=False)
        # the language switch keeps the page; the month before holds nothing of it
        await vol.get_by_role("link", name="English").click()
        await expect(vol.get_by_role("heading", level=1)).to_contain_text("Points statement for")
        await expect(vol.get_by_test_id("stmt-entries").locator("tbody tr")).to_have_count(1)
        await pages.check(vol, "statement-en", axe=False)
        await vol.get_by_role("link", name="中文").click()
        await vol.locator("a[rel=prev]").first.click()
        await expect(vol.get_by_test_id("stmt-closing")).to_have_text("0")
        await expect(vol.get_by_test_id("stmt-earned")).to_have_count(0)

        # a volunteer may not open the officer's report-in list
        answer = await vol.goto(f"{portal}/officer/members?community={community}")
        assert answer is not None and answer.status == 403

        # the officer: the community's report-ins, the volunteer among them
        off_phone = _phone()
        async with httpx.AsyncClient(base_url=services.url("tasks"), timeout=20) as http:
            r = await http.post(
                "/v1/people",
                headers={"Authorization": f"Bearer {services.token('admin')}"},
                json={"person_id": f"officer-stmt-{tag}", "phone": off_phone, "role": "officer"},
            )
            assert r.status_code == 201, r.text
        await _sign_in(off, ops, site, off_phone)  # type: ignore[arg-type]
        await off.get_by_role("link", name="报到名单").click()
        await off.get_by_label("社区").select_option(community)
        await off.get_by_role("button", name="查看").click()
        row = off.get_by_test_id("members").locator("tbody tr", has_text=account)
        await expect(row).to_have_count(1)
        await pages.check(off, "members-zh")
        await off.get_by_role("link", name="English").click()
        await expect(
            off.get_by_test_id("members").locator("tbody tr", has_text=account)
        ).to_have_count(1)
        await pages.check(off, "members-en")
        # a community the organisation does not have: the not-found page
        answer = await off.goto(f"{portal}/officer/members?community=no-such-{tag}")
        assert answer is not None and answer.status == 404
    finally:
        for c in (ctx_ops, ctx_vol, ctx_off):
            await c.close()
    assert not pages.over_budget, pages.over_budget
    assert not pages.violations, pages.violations
