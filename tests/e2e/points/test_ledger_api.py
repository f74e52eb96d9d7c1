"""Balances, statements and adjustments through the points API of the running stack."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.e2e.test_typical_journey import earn
from tests.helpers import Api, eventually

pytestmark = pytest.mark.e2e


async def _entries(points: Api, account: str) -> list[dict[str, Any]]:
    r = await points.http.get(f"/v1/accounts/{account}/entries", headers=points.auth("auditor"))
    assert r.status_code == 200, r.text
    entries: list[dict[str, Any]] = r.json()["items"]
    return entries


async def test_an_adjustment_needs_a_second_admin_and_then_is_an_entry(
    apis: dict[str, Api],
) -> None:
    tasks, points = apis["tasks"], apis["points"]
    account = f"vol-adj-{uuid.uuid4().hex[:6]}"
    await earn(tasks, account, 30)
    await eventually(lambda: _has(points, account, 1), what="the credit")

    first, second = points.auth("admin", "admin-chen"), points.auth("admin", "admin-zhou")
    r = await points.http.post(
        "/v1/adjustments",
        headers=first,
        json={"account_id": account, "amount": -12, "reason": "paper record entered twice"},
    )
    assert r.status_code == 201, r.text
    adj = r.json()
    assert adj["status"] == "pending"
    assert len(await _entries(points, account)) == 1  # nothing appended by a request alone

    same = await points.http.post(f"/v1/adjustments/{adj['id']}/approve", headers=first)
    assert same.status_code == 409 and same.json()["reason"] == "same_person"
    officer = await points.http.post(
        f"/v1/adjustments/{adj['id']}/approve", headers=points.auth("officer")
    )
    assert officer.status_code == 403
    ok = await points.http.post(
        f"/v1/adjustments/{adj['id']}/approve",
        headers=second,
        json={"note": "checked against the paper log"},
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["status"] == "approved" and ok.json()["decided_by"] == "admin-zhou"
    again = await points.http.post(f"/v1/adjustments/{adj['id']}/approve", headers=second)
    assert again.status_code == 409 and again.json()["reason"] == "already_decided"

    entries = await _entries(points, account)
    assert [(e["kind"], e["amount"], e["balance_after"]) for e in entries] == [
        ("adjustment", -12, 18),
        ("credit", 30, 30),
    ]
    assert entries[0]["cause_event_id"] == ok.json()["event_id"]
    r = await points.http.get(f"/v1/accounts/{account}/balance", headers=points.auth("auditor"))
    assert r.json()["balance"] == 18

    zero = await points.http.post(
        "/v1/adjustments",
        headers=first,
        json={"account_id": account, "amount": 0, "reason": "nothing"},
    )
    assert zero.status_code == 422 and "zero" in zero.json()["detail"]


async def test_the_monthly_statement_adds_up(apis: dict[str, Api]) -> None:
    tasks, points, redeem = apis["tasks"], apis["points"], apis["redeem"]
    account = f"vol-stm-{uuid.uuid4().hex[:6]}"
    for n in (25, 40):
        await earn(tasks, account, n)
    await eventually(lambda: _has(points, account, 2), what="two credits")
    reward = await redeem.http.post(
        "/v1/rewards",
        headers=redeem.auth("admin"),
        json={
            "merchant_id": "union",
            "name_zh": "电影票",
            "name_en": "Cinema",
            "points": 15,
            "stock": 9,
        },
    )
    assert reward.status_code == 201, reward.text
    vol = redeem.auth("volunteer", account)

    async def spendable() -> bool:
        r = await redeem.http.get(f"/v1/wallets/{account}", headers=vol)
        return bool(r.json()["spendable"] == 65)

    await eventually(spendable, what="the wallet learning both credits")
    r = await redeem.http.post(
        "/v1/redemptions",
        json={"reward_id": reward.json()["id"]},
        headers={**vol, "Idempotency-Key": f"stm-{uuid.uuid4()}"},
    )
    assert r.status_code == 201, r.text
    await eventually(lambda: _has(points, account, 3), what="the debit")

    month = datetime.now(UTC).strftime("%Y-%m")
    r = await points.http.get(
        f"/v1/accounts/{account}/statements/{month}", headers=points.auth("volunteer", account)
    )
    assert r.status_code == 200, r.text
    s = r.json()
    assert s["opening_balance"] == 0 and s["entries"] == 3
    assert s["earned_by_category"] == {"meal_delivery": 65}
    assert s["spent_by_reward"] == {reward.json()["id"]: 15}
    assert s["closing_balance"] == 50 == s["opening_balance"] + 65 - 15 + s["adjustments"]
    bad = await points.http.get(
        f"/v1/accounts/{account}/statements/2026-13", headers=points.auth("volunteer", account)
    )
    assert bad.status_code == 422


async def _has(points: Api, account: str, n: int) -> bool:
    r = await points.http.get(f"/v1/accounts/{account}/balance", headers=points.auth("auditor"))
    return r.status_code == 200 and r.json()["entries"] >= n
