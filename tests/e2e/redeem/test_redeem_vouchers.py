"""Merchants, the catalogue and vouchers through the real processes: a merchant fulfils only
its own rewards' vouchers, only with the code, and only once; the catalogue filters; an
organisation's settings and the auditors' feed are guarded by role and organisation."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.e2e.test_typical_journey import earn
from tests.helpers import Api, eventually

pytestmark = pytest.mark.e2e


async def register(redeem: Api, merchant: str, kind: str = "shop") -> None:
    r = await redeem.http.post(
        "/v1/merchants",
        headers=redeem.auth("officer"),
        json={"id": merchant, "name_zh": "小店", "name_en": "Corner shop", "kind": kind},
    )
    assert r.status_code == 201, r.text


async def add_reward(redeem: Api, role: str = "admin", **body: Any) -> dict[str, Any]:
    subject = body["merchant_id"] if role == "merchant" else None
    r = await redeem.http.post(
        "/v1/rewards",
        headers=redeem.auth(role, subject),
        json={"name_zh": "大米", "name_en": "Rice", "points": 10, "stock": 5, **body},
    )
    assert r.status_code == 201, r.text
    reward: dict[str, Any] = r.json()
    return reward


async def test_a_merchant_fulfils_only_its_own_vouchers_and_only_once(
    apis: dict[str, Api],
) -> None:
    tasks, points, redeem = apis["tasks"], apis["points"], apis["redeem"]
    run = uuid.uuid4().hex[:6]
    account, mine, theirs = f"vol-v-{run}", f"shop-{run}", f"clinic-{run}"
    await register(redeem, mine)
    await register(redeem, theirs, "clinic")
    dup = await redeem.http.post(
        "/v1/merchants",
        headers=redeem.auth("officer"),
        json={"id": mine, "name_zh": "x", "name_en": "x"},
    )
    assert dup.status_code == 409 and dup.json()["reason"] == "merchant_exists"
    rice = await add_reward(redeem, "merchant", merchant_id=mine)
    await earn(tasks, account, 30)
    vol = redeem.auth("volunteer", account)

    async def funded() -> bool:
        r = await redeem.http.get(f"/v1/wallets/{account}", headers=vol)
        return bool(r.json()["spendable"] == 30)

    await eventually(funded, timeout=60, what="wallet learning the credit")
    r = await redeem.http.post(
        "/v1/redemptions",
        headers={**vol, "Idempotency-Key": f"v-{run}"},
        json={"reward_id": rice["id"]},
    )
    assert r.status_code == 201, r.text
    rid = r.json()["id"]

    async def voucher() -> str | None:
        r = await redeem.http.get(f"/v1/redemptions/{rid}", headers=vol)
        code: str | None = r.json()["voucher_code"]
        return code

    code = await eventually(voucher, timeout=60, what="voucher issued")
    # the merchant sees the redemption but never the code: it must be shown it
    seen = await redeem.http.get(f"/v1/redemptions/{rid}", headers=redeem.auth("merchant", mine))
    assert seen.status_code == 200 and seen.json()["voucher_code"] is None
    hidden = await redeem.http.get(
        f"/v1/redemptions/{rid}", headers=redeem.auth("merchant", theirs)
    )
    assert hidden.status_code == 404

    url = f"/v1/redemptions/{rid}/fulfil"
    other = await redeem.http.post(
        url, headers=redeem.auth("merchant", theirs), json={"voucher_code": code}
    )
    assert other.status_code == 403 and other.json()["reason"] == "not_your_reward", other.text
    wrong = await redeem.http.post(
        url, headers=redeem.auth("merchant", mine), json={"voucher_code": "AAAAA-BBBBB-CCCCC"}
    )
    assert wrong.status_code == 409 and wrong.json()["reason"] == "wrong_voucher", wrong.text
    by_member = await redeem.http.post(url, headers=vol, json={"voucher_code": code})
    assert by_member.status_code == 403
    # the counter's app retries, two tills scan the same code: one hand-over, whatever the race
    tries = await asyncio.gather(
        *[
            redeem.http.post(
                url, headers=redeem.auth("merchant", mine), json={"voucher_code": code}
            )
            for _ in range(8)
        ]
    )
    done = [t for t in tries if t.status_code == 200]
    assert len(done) == 1 and done[0].json()["status"] == "fulfilled", [t.text for t in tries]
    assert {(t.status_code, t.json()["reason"]) for t in tries if t not in done} == {
        (409, "already_fulfilled")
    }
    twice = await redeem.http.post(
        url, headers=redeem.auth("merchant", mine), json={"voucher_code": code}
    )
    assert twice.status_code == 409 and twice.json()["reason"] == "already_fulfilled"
    late = await redeem.http.post(f"/v1/redemptions/{rid}/cancel", headers=vol)
    assert late.status_code == 409 and late.json()["reason"] == "already_fulfilled"

    # the ledger holds its one debit and no refund
    r = await points.http.get(f"/v1/accounts/{account}/entries", headers=points.auth("auditor"))
    kinds = [(e["kind"], e["redemption_id"]) for e in r.json()["items"]]
    assert kinds.count(("debit", rid)) == 1 and ("refund", rid) not in kinds


async def test_the_catalogue_filters_and_refuses_what_is_not_on_offer(
    apis: dict[str, Api],
) -> None:
    redeem = apis["redeem"]
    run = uuid.uuid4().hex[:6]
    shop, station = f"shop-{run}", f"station-{run}"
    rice = await add_reward(redeem, merchant_id=shop, points=40)
    check = await add_reward(
        redeem,
        merchant_id=station,
        kind="service",
        stock=None,
        daily_quota=5,
        community_id=f"grid-{run}",
    )
    soon = await add_reward(
        redeem, merchant_id=shop, valid_from=(datetime.now(UTC) + timedelta(days=1)).isoformat()
    )
    vol = redeem.auth("volunteer", f"vol-c-{run}")

    async def listed(**params: Any) -> set[str]:
        r = await redeem.http.get("/v1/rewards", headers=vol, params=params)
        assert r.status_code == 200, r.text
        return {x["id"] for x in r.json()["items"]} & {rice["id"], check["id"], soon["id"]}

    assert await listed(merchant_id=shop) == {rice["id"], soon["id"]}
    assert await listed(kind="service") == {check["id"]}
    assert await listed(community_id=f"grid-{run}") == {rice["id"], check["id"], soon["id"]}
    assert await listed(community_id="elsewhere") == {rice["id"], soon["id"]}
    assert await listed(available="true") == {rice["id"], check["id"]}
    assert await listed(max_points=20) == {check["id"], soon["id"]}
    bad = await redeem.http.get("/v1/rewards", headers=vol, params={"kind": "cars"})
    assert bad.status_code == 422

    # incoherent rules are refused with what is wrong
    r = await redeem.http.post(
        "/v1/rewards",
        headers=redeem.auth("admin"),
        json={
            "merchant_id": shop,
            "name_zh": "x",
            "name_en": "x",
            "points": 5,
            "stock": 3,
            "daily_quota": 2,
        },
    )
    assert r.status_code == 422 and "daily_quota" in r.text

    # taken off the shelf (by its own merchant only): refused as inactive, whatever the wallet
    r = await redeem.http.patch(
        f"/v1/rewards/{rice['id']}",
        headers=redeem.auth("merchant", station),
        json={"active": False},
    )
    assert r.status_code == 404
    r = await redeem.http.patch(
        f"/v1/rewards/{rice['id']}", headers=redeem.auth("merchant", shop), json={"active": False}
    )
    assert r.status_code == 200 and r.json()["active"] is False
    r = await redeem.http.patch(
        f"/v1/rewards/{soon['id']}",
        headers=redeem.auth("merchant", shop),
        json={"valid_until": datetime.now(UTC).isoformat()},
    )
    assert r.status_code == 422 and "valid_from" in r.text
    r = await redeem.http.get("/v1/redemptions", headers=vol, params={"status": "lost"})
    assert r.status_code == 422
    for reward_id in (rice["id"], soon["id"]):
        r = await redeem.http.post(
            "/v1/redemptions",
            headers={**vol, "Idempotency-Key": f"off-{uuid.uuid4()}"},
            json={"reward_id": reward_id},
        )
        assert r.status_code == 409 and r.json()["reason"] == "reward_inactive", r.text
    r = await redeem.http.post(
        "/v1/redemptions",
        headers={**vol, "Idempotency-Key": f"far-{uuid.uuid4()}"},
        json={"reward_id": check["id"], "community_id": "elsewhere"},
    )
    assert r.status_code == 409 and r.json()["reason"] == "community_restricted", r.text


async def test_settings_and_the_auditors_feed_are_guarded(apis: dict[str, Api]) -> None:
    redeem = apis["redeem"]
    org = f"org-{uuid.uuid4().hex[:6]}"
    r = await redeem.http.put(
        "/v1/settings",
        headers=redeem.auth("volunteer", "v1", org),
        json={"fraud_window_seconds": 1},
    )
    assert r.status_code == 403
    r = await redeem.http.put(
        "/v1/settings", headers=redeem.auth("officer", None, org), json={"fraud_window_days": 7}
    )
    assert r.status_code == 422
    r = await redeem.http.put(
        "/v1/settings",
        headers=redeem.auth("officer", None, org),
        json={"fraud_window_seconds": 3600},
    )
    assert r.status_code == 200 and r.json()["fraud_window_seconds"] == 3600
    r = await redeem.http.get("/v1/wallets/vol-x", headers=redeem.auth("volunteer", "vol-x", org))
    assert r.json()["fraud_window_seconds"] == 3600
    # another organisation keeps its own window
    r = await redeem.http.get("/v1/settings", headers=redeem.auth("officer", None, f"{org}-b"))
    assert r.json()["fraud_window_seconds"] == 0

    feed = "/v1/audit/redemptions"
    assert (await redeem.http.get(feed, headers=redeem.auth("volunteer", "v1"))).status_code == 403
    assert (await redeem.http.get(feed, headers=redeem.auth("merchant", "m1"))).status_code == 403
    r = await redeem.http.get(feed, headers=redeem.auth("auditor"), params={"cursor": "%%%"})
    assert r.status_code == 422
    # an organisation with no redemptions shows none of anyone else's
    r = await redeem.http.get(feed, headers=redeem.auth("auditor", None, org))
    assert r.status_code == 200 and r.json() == {"items": [], "next_cursor": None}
