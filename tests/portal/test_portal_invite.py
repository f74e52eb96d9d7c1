"""Invitation links in a real browser against the real stack (#20: "A person signs in with a
phone number and a one-time code (or an invitation link from an officer)").

An officer signs in, invites a person on the records (a volunteer who is also a merchant) and
sees the link and its QR code once; a refused invitation (nobody on record) is said beside the
form with what was typed kept. The invited person opens the link in a fresh browser (no
JavaScript): opening it spends nothing (a preview opened it first); a POST without the page's
CSRF token is refused and spends nothing; the confirm button signs them in with their recorded
roles. Opening the link again is refused, in Chinese and in English. A volunteer cannot reach
the officer's page. Pages are held to the budget, checked by axe and shot in both languages."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from jifen.portal.app import templates
from jifen.portal.texts import Lang, text
from playwright.async_api import Browser, expect

from jifen.devtools.devstack import DevStack
from tests.portal.test_portal_journey import PAGE_BUDGET_BYTES, Pages, _ops, _phone, _sign_in

pytestmark = pytest.mark.e2e


class Site:
    def __init__(self, base: str) -> None:
        self.base = base


async def _record(services: DevStack, *people: tuple[str, str, str, str]) -> None:
    admin = {"Authorization": f"Bearer {services.token('admin')}"}
    async with httpx.AsyncClient(base_url=services.url("tasks"), timeout=20) as http:
        for pid, phone, role, name in people:
            r = await http.post(
                "/v1/people",
                headers=admin,
                json={"person_id": pid, "phone": phone, "role": role, "display_name": name},
            )
            assert r.status_code == 201, r.text


async def test_an_officer_invites_and_the_person_signs_in_once_with_the_link(
    portal: str, services: DevStack, browser: Browser, shots: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    officer, officer_phone = f"officer-inv-{tag}", _phone()
    vol, vol_phone, name = f"vol-inv-{tag}", _phone(), f"邀请{tag}师傅"
    await _record(
        services,
        (officer, officer_phone, "officer", "邀请主任"),
        (vol, vol_phone, "volunteer", name),
        (f"shop-inv-{tag}", vol_phone, "merchant", name),
    )
    site, pages = Site(portal), Pages(shots)
    ctx_ops = await browser.new_context()
    ctx_off = await browser.new_context(viewport={"width": 800, "height": 1000})
    ops, off = await ctx_ops.new_page(), await ctx_off.new_page()
    await _ops(ops, portal, services.token("operator"))
    await _sign_in(off, ops, site, officer_phone)  # type: ignore[arg-type]

    await off.goto(f"{portal}/me")
    await off.get_by_role("link", name="邀请登录").click()
    await expect(off).to_have_url(re.compile(r"/officer/invitations$"))
    # refused: nobody of that id on record; what was typed stays in the form
    await off.get_by_label("人员编号").fill(f"nobody-{tag}")
    await off.get_by_role("button", name="生成邀请链接").click()
    await expect(off.get_by_test_id("invite-error")).to_contain_text("没有")
    await expect(off.get_by_label("人员编号")).to_have_value(f"nobody-{tag}")
    await off.get_by_label("人员编号").fill("")
    await off.get_by_label("手机号").fill(f"{vol_phone[:3]} {vol_phone[3:7]} {vol_phone[7:]}")
    await off.get_by_role("button", name="生成邀请链接").click()
    await expect(off).to_have_url(re.compile(r"/officer/invitations\?done=issued$"))
    box = off.get_by_test_id("invited")
    await expect(box).to_contain_text("志愿者")
    await expect(box).to_contain_text("商户")
    link = (await off.get_by_test_id("invite-link").inner_text()).strip()
    assert re.fullmatch(rf"{re.escape(portal)}/invite/[A-Za-z0-9_-]{{40,}}", link), link
    assert await box.locator("svg").count() == 1  # its QR code
    await pages.check(off, "invite-officer-zh")
    # shown once: the page again holds no link
    await off.reload()
    assert await off.get_by_test_id("invite-link").count() == 0
    await expect(off.locator("table")).to_contain_text(vol)

    # a link preview (or a prefetch) opens it first: nothing is spent
    ctx_preview = await browser.new_context()
    preview = await ctx_preview.new_page()
    r = await preview.goto(link)
    assert r is not None and r.status == 200 and r.headers.get("referrer-policy") == "no-referrer"
    # a POST without the page's CSRF token (a cross-site form) is refused and spends nothing
    forged = await ctx_preview.request.post(link, form={"csrf": "forged"})
    assert forged.status == 403, await forged.text()
    await ctx_preview.close()

    # the invited person, in a fresh browser without JavaScript
    ctx_vol = await browser.new_context(
        viewport={"width": 375, "height": 740}, java_script_enabled=False
    )
    page = await ctx_vol.new_page()
    await page.goto(link)
    await expect(page.get_by_role("heading", level=1)).to_have_text("社区邀请登录")
    await pages.check(page, "invite-confirm-zh", axe=False)
    await page.get_by_role("button", name="确认，登录").click()
    await expect(page).to_have_url(re.compile(r"/me$"))
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"{name}（志愿者）")
    roles = await page.locator("#role option").all_inner_texts()
    assert sorted(roles) == ["商户", "志愿者"], roles
    assert await page.get_by_test_id("balance").count() == 1  # acting as the volunteer

    # opened again: refused, in the page's language (Chinese, then English)
    for lang, button, said in (
        ("zh", "确认，登录", "已经用过"),
        ("en", "Yes, sign me in", "already used"),
    ):
        ctx = await browser.new_context()
        again = await ctx.new_page()
        await again.goto(f"{portal}/lang/{lang}?next={link[len(portal) :]}")
        await pages.check(again, f"invite-confirm-{lang}")
        await again.get_by_role("button", name=button).click()
        await expect(again.get_by_test_id("invite-refused")).to_contain_text(said)
        await pages.check(again, f"invite-refused-{lang}")
        await again.goto(f"{portal}/me")
        await expect(again).to_have_url(re.compile(r"/signin"))  # not signed in
        await ctx.close()

    # the officer's list says it was used; in English too
    await off.goto(f"{portal}/lang/en?next=/officer/invitations")
    await expect(off.locator("tr", has_text=vol)).to_contain_text("used")
    await pages.check(off, "invite-officer-en")

    # a volunteer cannot reach the officer's page, nor post its form
    await page.goto(f"{portal}/officer/invitations")
    await expect(page.get_by_role("alert")).to_have_text("当前身份不能使用这个页面。")
    for c in (ctx_ops, ctx_off, ctx_vol):
        await c.close()
    assert not pages.over_budget, pages.over_budget
    assert not pages.violations, pages.violations


class _Me:
    role = "officer"
    subject = "o" * 64


class _Session:
    name = "甲" * 50
    roles = {"officer": _Me()}


def test_the_longest_invitations_page_is_within_the_budget() -> None:
    from jifen.portal.invite import SHOWN

    at = "2026-12-02T23:00:00+00:00"
    rows: list[dict[str, Any]] = [
        {
            "id": str(uuid.uuid4()),
            "person_id": "p" * 64,
            "phone": "138****0001",
            "expires_at": at,
            "used_at": None,
            "revoked_at": None,
        }
        for _ in range(SHOWN)
    ]
    import segno

    link = "https://portal.example.org/invite/" + "x" * 43
    for chosen in ("zh", "en"):
        lang: Lang = "en" if chosen == "en" else "zh"

        def t(key: str, lang: Lang = lang, **values: object) -> str:
            return text(lang, key, **values)

        html = templates.env.get_template("invite_officer.html").render(
            lang=lang,
            t=t,
            s=_Session(),
            me=_Me(),
            csrf="x" * 32,
            here="/officer/invitations",
            role_label=lambda r: t(f"role_{r}"),
            invitations=rows,
            notice="issued",
            issued={
                "link": link,
                "who": "p" * 64,
                "phone": "138****0001",
                "roles": ["volunteer", "merchant", "officer"],
                "expires_at": at,
                "qr": segno.make(link, error="m").svg_inline(scale=4, title="QR"),
            },
            refusal="y" * 500,
            typed={"phone": "1" * 24, "person_id": "p" * 64},
        )
        assert len(html.encode()) <= PAGE_BUDGET_BYTES, (lang, len(html.encode()))
        assert html.count("/revoke") == SHOWN
