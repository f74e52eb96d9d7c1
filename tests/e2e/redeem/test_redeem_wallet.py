"""Wallets through the real processes: a revoked completion that takes an account below what
it has spent freezes it for redemptions until it is back above zero; young points wait out
the organisation's fraud window before they can be spent."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.e2e.test_typical_journey import earn
from tests.helpers import Api, eventually

pytestmark = pytest.mark.e2e


async def wallet_when(redeem: Api, account: str, **want: Any) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        r = await redeem.http.get(
            f"/v1/wallets/{account}", headers=redeem.auth("volunteer", account)
        )
        w: dict[str, Any] = r.json()
        return w if all(w[k] == v for k, v in want.items()) else None

    return await eventually(probe, timeout=60, what=f"wallet of {account} with {want}")


async def frozen_wallets(redeem: Api) -> list[dict[str, Any]]:
    """Every frozen wallet the auditors see, page after page (next_cursor)."""
    found: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 1000}
    while True:
        r = await redeem.http.get(
            "/v1/audit/frozen-wallets", headers=redeem.auth("auditor"), params=params
        )
        assert r.status_code == 200, r.text
        page = r.json()
        found += page["items"]
        if page["next_cursor"] is None:
            return found
        params["cursor"] = page["next_cursor"]


async def redeem_once(redeem: Api, account: str, reward_id: str) -> Any:
    return await redeem.http.post(
        "/v1/redemptions",
        headers={**redeem.auth("volunteer", account), "Idempotency-Key": f"w-{uuid.uuid4()}"},
        json={"reward_id": reward_id},
    )


async def add_reward(redeem: Api, points: int, stock: int = 50) -> str:
    r = await redeem.http.post(
        "/v1/rewards",
        headers=redeem.auth("admin"),
        json={
            "merchant_id": "merchant-wallet-tests",
            "name_zh": "毛巾",
            "name_en": "Towel",
            "points": points,
            "stock": stock,
        },
    )
    assert r.status_code == 201, r.text
    reward_id: str = r.json()["id"]
    return reward_id


async def test_a_reversal_below_what_is_spent_freezes_until_back_above_zero(
    apis: dict[str, Api],
) -> None:
    tasks, redeem = apis["tasks"], apis["redeem"]
    account = f"vol-freeze-{uuid.uuid4().hex[:6]}"
    dear, cheap = await add_reward(redeem, 40), await add_reward(redeem, 1)
    completion = await earn(tasks, account, 50)
    await wallet_when(redeem, account, spendable=50)
    r = await redeem_once(redeem, account, dear)
    assert r.status_code == 201, r.text
    await wallet_when(redeem, account, ledger_balance=10, held=0)

    # the officer revokes the completion after the points were spent: the ledger reverses it
    async def revoked() -> bool:
        r = await tasks.http.post(
            f"/v1/completions/{completion['id']}/revoke",
            headers=tasks.auth("officer"),
            json={"reason": "the photo shows another street"},
        )
        return r.status_code == 200

    await eventually(revoked, timeout=30, what="revocation accepted")
    w = await wallet_when(redeem, account, ledger_balance=-40)
    assert (w["spendable"], w["frozen"]) == (-40, True)
    r = await redeem_once(redeem, account, cheap)
    assert r.status_code == 409 and r.json()["reason"] == "account_frozen", r.text
    assert r.json()["spendable"] == -40
    # and the auditors see it
    [frozen] = [x for x in await frozen_wallets(redeem) if x["account_id"] == account]
    assert (frozen["ledger_balance"], frozen["shortfall"]) == (-40, 40)

    # new work brings it back above zero: redemptions resume
    await earn(tasks, account, 45)
    w = await wallet_when(redeem, account, ledger_balance=5)
    assert (w["spendable"], w["frozen"]) == (5, False)
    r = await redeem_once(redeem, account, cheap)
    assert r.status_code == 201, r.text
    assert account not in {x["account_id"] for x in await frozen_wallets(redeem)}


async def test_young_points_wait_out_the_fraud_window(apis: dict[str, Api]) -> None:
    tasks, redeem = apis["tasks"], apis["redeem"]
    account = f"vol-young-{uuid.uuid4().hex[:6]}"
    towel = await add_reward(redeem, 5)
    officer = redeem.auth("officer")
    r = await redeem.http.put("/v1/settings", headers=officer, json={"fraud_window_seconds": 3600})
    assert r.status_code == 200, r.text
    try:
        await earn(tasks, account, 20)
        w = await wallet_when(redeem, account, ledger_balance=20)
        assert (w["maturing"], w["spendable"], w["fraud_window_seconds"]) == (20, 0, 3600)
        r = await redeem_once(redeem, account, towel)
        assert r.status_code == 409, r.text
        body = r.json()
        assert (body["reason"], body["spendable"], body["maturing"]) == (
            "insufficient_points",
            0,
            20,
        )
    finally:
        # the session's other tests share this organisation
        r = await redeem.http.put("/v1/settings", headers=officer, json={"fraud_window_seconds": 0})
        assert r.status_code == 200, r.text
    w = await wallet_when(redeem, account, spendable=20)
    assert w["maturing"] == 0
    r = await redeem_once(redeem, account, towel)
    assert r.status_code == 201, r.text
