"""The opt-in honour roll in a real browser against the real stack (#20: "Public, no sign-in:
… and an opt-in honour roll").

A volunteer whose service an officer verified this month is not on their community's public
roll until they opt in on /me; then the public page (no sign-in) shows their name, services and
points — and no phone number or account id; after they opt out it no longer does. A POST of
the /me form without the session's CSRF token changes nothing; an unknown community is a 404
page. Pages are held to the budget, checked by axe and shot in both languages."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from jifen.portal.app import templates
from jifen.portal.texts import Lang, text
from playwright.async_api import Browser, Page, expect

from jifen.devtools.devstack import DevStack
from tests.portal.test_portal_journey import PAGE_BUDGET_BYTES, Pages, _ops, _phone, _sign_in

pytestmark = pytest.mark.e2e


class Site:
    def __init__(self, base: str) -> None:
        self.base = base


async def _verified_service(
    services: DevStack, community: str, account: str, phone: str, name: str, points: int
) -> None:
    """The volunteer on record, a member of the community, with one completion verified now."""
    now = datetime.now(UTC)
    async with httpx.AsyncClient(base_url=services.url("tasks"), timeout=20) as http:

        async def post(path: str, role: str, body: Any, **headers: str) -> Any:
            auth = {"Authorization": f"Bearer {services.token(role)}"}
            r = await http.post(path, headers={**auth, **headers}, json=body)
            assert r.status_code in (200, 201), f"{path}: {r.text}"
            return r.json()

        await post("/v1/communities", "officer", {"id": community, "name": f"光荣网格 {community}"})
        await post(
            "/v1/people",
            "admin",
            {"person_id": account, "phone": phone, "role": "volunteer", "display_name": name},
        )
        await post(f"/v1/communities/{community}/members", "app", {"account_id": account})
        job = await post(
            "/v1/jobs",
            "officer",
            {
                "community_id": community,
                "title": "文明劝导 Civility persuasion",
                "category": "civility_persuasion",
                "points": points,
                "capacity": 3,
                "starts_at": (now - timedelta(hours=1)).isoformat(),
                "ends_at": (now + timedelta(hours=1)).isoformat(),
            },
        )
        await post(f"/v1/jobs/{job['id']}/claims", "app", {"account_id": account})
        done = await post(
            f"/v1/jobs/{job['id']}/completions",
            "app",
            {"account_id": account},
            **{"Idempotency-Key": f"hon-{uuid.uuid4()}"},
        )
        await post(f"/v1/completions/{done['id']}/verify", "officer", None)


async def _roll_text(page: Page, url: str) -> str:
    r = await page.goto(url)
    assert r is not None and r.status == 200, url
    return await page.locator("main").inner_text()


async def test_a_volunteer_opts_in_is_on_the_public_roll_and_opts_out(
    portal: str, services: DevStack, browser: Browser, shots: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    community, account, phone = f"honour-grid-{tag}", f"vol-honour-{tag}", _phone()
    name = f"荣誉{tag}师傅"
    await _verified_service(services, community, account, phone, name, points=35)
    site, pages = Site(portal), Pages(shots)
    ctx_ops, ctx_pub = await browser.new_context(), await browser.new_context()
    ctx_vol = await browser.new_context(
        viewport={"width": 375, "height": 740}, java_script_enabled=False
    )
    ops, public, vol = await ctx_ops.new_page(), await ctx_pub.new_page(), await ctx_vol.new_page()
    await _ops(ops, portal, services.token("operator"))
    roll_url = f"{portal}/c/{community}/honour"

    # verified, but not opted in: not on the roll
    assert name not in await _roll_text(public, roll_url)
    await expect(public.get_by_test_id("honour-empty")).to_be_visible()

    await _sign_in(vol, ops, site, phone)  # type: ignore[arg-type]
    await expect(vol.get_by_test_id("honour-state")).to_contain_text("没有上榜")
    # a POST without the page's CSRF token changes nothing
    forged = await ctx_vol.request.post(f"{portal}/me/honour", form={"listed": "1"})
    assert forged.status == 403, await forged.text()
    assert name not in await _roll_text(public, roll_url)

    await vol.goto(f"{portal}/me")
    await vol.get_by_role("button", name="加入光荣榜").click()
    await expect(vol).to_have_url(re.compile(r"/me\?done=honour_on"))
    await expect(vol.get_by_role("status")).to_have_text("已加入光荣榜。")
    await expect(vol.get_by_test_id("honour-state")).to_contain_text(name)
    await pages.check(vol, "honour-me-zh", axe=False)

    # the public page, signed out: the name, one service, its points; no phone, no account id
    shown = await _roll_text(public, roll_url)
    row = public.locator("[data-testid=honour-roll] tbody tr", has_text=name)
    await expect(row).to_have_count(1)
    assert (await row.locator("td").all_inner_texts()) == ["1", "1", "35"]
    html = await public.content()
    assert phone not in html and phone[-4:] not in shown and account not in html
    await pages.check(public, "honour-zh")
    await public.goto(f"{portal}/lang/en?next=/c/{community}/honour")
    await expect(public.get_by_role("heading", level=1)).to_contain_text("honour roll for")
    await expect(public.get_by_role("columnheader", name="Points earned")).to_be_visible()
    await pages.check(public, "honour-en")
    # another month: not on it
    assert name not in await _roll_text(public, f"{roll_url}?month=2026-01")

    # opting out (in English): gone from the public roll
    await vol.goto(f"{portal}/lang/en?next=/me")
    await expect(vol.get_by_test_id("honour-state")).to_contain_text("You are listed")
    await pages.check(vol, "honour-me-en", axe=False)
    await vol.get_by_role("button", name="Take me off the honour roll").click()
    await expect(vol.get_by_role("status")).to_have_text("You are off the honour roll.")
    assert name not in await _roll_text(public, roll_url)

    # a community the organisation does not have: the not-found page
    r = await public.goto(f"{portal}/c/no-such-{tag}/honour")
    assert r is not None and r.status == 404
    for c in (ctx_ops, ctx_pub, ctx_vol):
        await c.close()
    assert not pages.over_budget, pages.over_budget
    assert not pages.violations, pages.violations


def test_the_longest_honour_roll_is_within_the_budget() -> None:
    from jifen.portal.honour import SHOWN

    roll = {
        "community_id": "c" * 64,
        "community_name": "网" * 100,
        "month": "2026-12",
        "roll": [
            {"rank": i + 1, "display_name": "名" * 100, "services": 999, "points": 9_999_999}
            for i in range(SHOWN)
        ],
    }
    for chosen in ("zh", "en"):
        lang: Lang = "en" if chosen == "en" else "zh"

        def t(key: str, lang: Lang = lang, **values: object) -> str:
            return text(lang, key, **values)

        html = templates.env.get_template("honour.html").render(
            lang=lang,
            t=t,
            s=None,
            me=None,
            csrf="x" * 32,
            here="/c/x/honour",
            role_label=lambda r: t(f"role_{r}"),
            roll=roll,
            community_id="c" * 64,
            month="2026-12",
            prev="2026-11",
            next="2027-01",
        )
        assert len(html.encode()) <= PAGE_BUDGET_BYTES, (lang, len(html.encode()))
        assert html.count("<tr>") == SHOWN + 1
