"""The admin's page at its longest — every list as full as the page shows it, every field as long
as the APIs allow (a reason of 500 Chinese characters is 1.5 KB) — stays within the page
budget the browser tests hold the pages they visit to (a busy organisation would otherwise be
the first to go over it)."""

from __future__ import annotations

import uuid
from typing import Any

from jifen.portal.app import templates
from jifen.portal.staff import (
    CREDENTIALS_SHOWN,
    DECIDED_SHOWN,
    LIMITS,
    OPTIONAL_LIMITS,
    PENDING_SHOWN,
)
from jifen.portal.texts import Lang, text

from tests.portal.test_portal_journey import PAGE_BUDGET_BYTES

AT = "2026-12-02T23:00:00+00:00"


def _credential(i: int) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "app_id": "a" * 64,
        "writes_per_minute": 60_000,
        "created_by": "b" * 64,
        "created_at": AT,
        "revoked_at": AT if i % 2 else None,
    }


def _adjustment(status: str) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "account_id": "v" * 64,
        "amount": -1_000_000,
        "reason": "纸" * 500,
        "requested_by": "r" * 64,
        "requested_at": AT,
        "status": status,
        "decided_by": "d" * 64,
        "decided_at": AT,
    }


class _Me:
    role = "admin"
    subject = "r" * 64


class _Session:
    name = "甲" * 50
    roles = {"admin": _Me()}


def test_the_longest_admin_page_is_within_the_budget() -> None:
    for lang in ("zh", "en"):
        chosen: Lang = "en" if lang == "en" else "zh"

        def t(key: str, chosen: Lang = chosen, **values: object) -> str:
            return text(chosen, key, **values)

        org: dict[str, Any] = dict.fromkeys(LIMITS, 1_000_000)
        org.update(name="", timezone="Asia/Shanghai", updated_by="u" * 64, updated_at=AT)
        html = templates.env.get_template("admin.html").render(
            lang=lang,
            t=t,
            s=_Session(),
            me=_Me(),
            csrf="x" * 32,
            here="/admin",
            role_label=lambda r: t(f"role_{r}"),
            org=org,
            limits=LIMITS,
            optional=OPTIONAL_LIMITS,
            creds=[_credential(i) for i in range(CREDENTIALS_SHOWN)],
            creds_next="c" * 80,
            portal_app="app-portal",
            pending=[_adjustment("pending") for _ in range(PENDING_SHOWN)],
            pending_next="c" * 80,
            decided=[_adjustment("approved") for _ in range(DECIDED_SHOWN)],
            me_subject="r" * 64,
            notice="limits",
            refused=("limits", "y" * 500),
            typed={},
            issued={"id": str(uuid.uuid4()), "app_id": "a" * 64, "secret": "jfa_" + "x" * 43},
        )
        assert len(html.encode()) <= PAGE_BUDGET_BYTES, (lang, len(html.encode()))
        assert html.count('class="adjustment"') == PENDING_SHOWN
