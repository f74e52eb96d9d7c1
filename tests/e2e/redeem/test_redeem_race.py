"""The points supermarket under a crowd, through the real processes: hundreds of concurrent
redemptions on a handful of accounts and scarce stock never overdraw or oversell; then
cancellations (before and after the debit) and an expiry; and everything reconciles against
the ledger: exactly one debit per accepted redemption, exactly one refund per cancellation or
expiry, each caused by the event the auditors' feed names."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.e2e.test_typical_journey import earn
from tests.helpers import Api, eventually

pytestmark = pytest.mark.e2e

EARNED = 60  # 300 points in all, against 460 of stock and quota: both are scarce
ACCOUNTS = 5
REQUESTS = 300


async def add_reward(redeem: Api, **body: Any) -> dict[str, Any]:
    r = await redeem.http.post(
        "/v1/rewards",
        headers=redeem.auth("admin"),
        json={"name_zh": "奖品", "name_en": "Prize", **body},
    )
    assert r.status_code == 201, r.text
    reward: dict[str, Any] = r.json()
    return reward


async def entries(points: Api, account: str) -> list[dict[str, Any]]:
    r = await points.http.get(
        f"/v1/accounts/{account}/entries", headers=points.auth("auditor"), params={"limit": 500}
    )
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["items"]
    return found


async def audit_feed(redeem: Api) -> dict[str, dict[str, Any]]:
    """The whole auditors' feed of the organisation, page by page."""
    items: dict[str, dict[str, Any]] = {}
    cursor: str | None = None
    last = datetime.min.replace(tzinfo=UTC)
    while True:
        params: dict[str, Any] = {"limit": 25}  # several pages: the cursor is exercised
        if cursor:
            params["cursor"] = cursor
        r = await redeem.http.get(
            "/v1/audit/redemptions", headers=redeem.auth("auditor"), params=params
        )
        assert r.status_code == 200, r.text
        page = r.json()
        for item in page["items"]:
            assert item["redemption_id"] not in items, "a redemption on two pages"
            created = datetime.fromisoformat(item["created_at"].replace("Z", "+00:00"))
            assert created >= last, "not oldest first"
            last = created
            items[item["redemption_id"]] = item
        cursor = page["next_cursor"]
        if cursor is None:
            return items


async def test_a_crowd_never_overdraws_or_oversells_and_all_reconciles(
    apis: dict[str, Api],
) -> None:
    tasks, points, redeem = apis["tasks"], apis["points"], apis["redeem"]
    run = uuid.uuid4().hex[:6]
    accounts = [f"vol-crowd-{run}-{i}" for i in range(ACCOUNTS)]
    spare = f"vol-spare-{run}"  # for the late cancellation and the expiry
    earned = {**{a: EARNED for a in accounts}, spare: 10}
    await asyncio.gather(*[earn(tasks, a, n) for a, n in earned.items()])

    shop, station = f"shop-{run}", f"station-{run}"
    rice = await add_reward(redeem, merchant_id=shop, points=30, stock=6)
    swap = await add_reward(redeem, merchant_id=station, points=20, stock=8)
    repair = await add_reward(
        redeem,
        merchant_id=station,
        kind="service",
        points=10,
        stock=None,
        daily_quota=12,
        monthly_limit=3,
    )
    rewards = [rice, swap, repair]
    price = {r["id"]: r["points"] for r in rewards}

    async def wallets_know() -> bool:
        for a, n in earned.items():
            r = await redeem.http.get(f"/v1/wallets/{a}", headers=redeem.auth("volunteer", a))
            if r.json()["spendable"] != n:
                return False
        return True

    await eventually(wallets_know, timeout=60, what="wallets learning the credits")

    # 300 requests at once; every tenth repeats the key of the one before (a client retry)
    plan: list[tuple[str, str, str]] = []
    for i in range(REQUESTS):
        if i % 10 == 9:
            plan.append(plan[-1])
        else:
            plan.append((accounts[i % ACCOUNTS], rewards[i % 3]["id"], f"crowd-{run}-{i}"))
    limits = httpx.Limits(max_connections=40, max_keepalive_connections=40)
    async with httpx.AsyncClient(base_url=redeem.base, timeout=60, limits=limits) as client:
        tokens = {a: redeem.auth("volunteer", a) for a in accounts}
        responses = await asyncio.gather(
            *[
                client.post(
                    "/v1/redemptions",
                    headers={**tokens[a], "Idempotency-Key": key},
                    json={"reward_id": reward_id},
                )
                for a, reward_id, key in plan
            ]
        )

    by_key: dict[str, list[httpx.Response]] = defaultdict(list)
    for (_, _, key), resp in zip(plan, responses, strict=True):
        by_key[key].append(resp)
    accepted: dict[str, tuple[str, str]] = {}  # redemption id -> (account, reward id)
    reasons: Counter[str] = Counter()
    for (a, reward_id, _), resp in zip(plan, responses, strict=True):
        assert resp.status_code in (200, 201, 409), resp.text
        if resp.status_code == 409:
            body = resp.json()
            reasons[body["reason"]] += 1
            if body["reason"] == "insufficient_points":
                assert body["spendable"] < body["needed"] == price[reward_id]
        else:
            accepted[resp.json()["id"]] = (a, reward_id)
    assert set(reasons) <= {"insufficient_points", "out_of_stock", "member_limit"}, reasons
    # a repeated key returns the original: one redemption per key, the same id to both calls
    for key, resps in by_key.items():
        if any(r.status_code in (200, 201) for r in resps):
            assert [r.status_code for r in resps].count(201) == 1, key
            assert len({r.json()["id"] for r in resps}) == 1, key
        else:
            assert {r.status_code for r in resps} == {409}
    assert sum(1 for r in responses if r.status_code == 201) == len(accepted)

    # nothing oversold, no quota or member limit exceeded, no balance below zero
    taken = Counter(reward_id for _, reward_id in accepted.values())
    assert taken[rice["id"]] <= 6 and taken[swap["id"]] <= 8 and taken[repair["id"]] <= 12
    per_member = Counter(a for a, reward_id in accepted.values() if reward_id == repair["id"])
    assert max(per_member.values(), default=0) <= 3
    spent = Counter[str]()
    for a, reward_id in accepted.values():
        spent[a] += price[reward_id]
    assert all(spent[a] <= EARNED for a in accounts), spent
    r = await redeem.http.get("/v1/rewards", headers=redeem.auth("volunteer", accounts[0]))
    stock = {x["id"]: x["stock"] for x in r.json()["items"]}
    assert stock[rice["id"]] == 6 - taken[rice["id"]] >= 0
    assert stock[swap["id"]] == 8 - taken[swap["id"]] >= 0

    # ... and nothing refused without cause: during the crowd stock and spendable points only
    # fell and counts only rose, so the cause of every refusal must still hold at the end
    left = {a: EARNED - spent[a] for a in accounts}
    for (a, reward_id, _), resp in zip(plan, responses, strict=True):
        if resp.status_code != 409:
            continue
        body = resp.json()
        if body["reason"] == "insufficient_points":
            assert left[a] <= body["spendable"] < price[reward_id], (body, left[a])
        elif body["reason"] == "out_of_stock" and reward_id == repair["id"]:
            assert taken[repair["id"]] == 12, body
        elif body["reason"] == "out_of_stock":
            assert stock[reward_id] == 0, body
        else:
            assert reward_id == repair["id"] and per_member[a] == 3, body
    assert sum(reasons.values()) > REQUESTS / 2, reasons  # the crowd met real scarcity

    # every accepted redemption is debited once and confirmed with a voucher
    async def all_confirmed() -> bool:
        r = await redeem.http.get(
            "/v1/redemptions", headers=redeem.auth("officer"), params={"limit": 500}
        )
        status = {x["id"]: x["status"] for x in r.json()["items"]}
        return all(status.get(rid) == "confirmed" for rid in accepted)

    await eventually(all_confirmed, timeout=60, what="every redemption confirmed")

    # a second wave: members cancel every other redemption (each twice, at once) while the
    # crowd keeps redeeming what is released: no deadlock, one refund per cancellation
    confirmed_ids = sorted(accepted)
    to_cancel = confirmed_ids[2::2]
    wave: list[tuple[str, str]] = [
        (accounts[i % ACCOUNTS], rewards[i % 3]["id"]) for i in range(REQUESTS // 5)
    ]
    async with httpx.AsyncClient(base_url=redeem.base, timeout=60, limits=limits) as client:
        tokens = {a: redeem.auth("volunteer", a) for a in accounts}
        results = await asyncio.gather(
            *[
                client.post(
                    f"/v1/redemptions/{rid}/cancel",
                    headers=tokens[accepted[rid][0]],
                    json={"reason": "changed my mind"},
                )
                for rid in to_cancel
                for _ in range(2)
            ],
            *[
                client.post(
                    "/v1/redemptions",
                    headers={**tokens[a], "Idempotency-Key": f"wave-{run}-{i}"},
                    json={"reward_id": reward_id},
                )
                for i, (a, reward_id) in enumerate(wave)
            ],
        )
    cancels, second = results[: 2 * len(to_cancel)], results[2 * len(to_cancel) :]
    assert all(c.status_code == 200 and c.json()["status"] == "cancelled" for c in cancels), [
        c.text for c in cancels if c.status_code != 200
    ]
    for (a, reward_id), resp in zip(wave, second, strict=True):
        assert resp.status_code in (201, 409), resp.text
        if resp.status_code == 201:
            accepted[resp.json()["id"]] = (a, reward_id)
        else:
            assert resp.json()["reason"] in {"insufficient_points", "out_of_stock", "member_limit"}

    # the merchant of the reward may cancel too; another merchant may not
    by_merchant = confirmed_ids[1]
    merchant_of = {rice["id"]: shop, swap["id"]: station, repair["id"]: station}
    owner = merchant_of[accepted[by_merchant][1]]
    stranger = station if owner == shop else shop
    r = await redeem.http.post(
        f"/v1/redemptions/{by_merchant}/cancel", headers=redeem.auth("merchant", stranger)
    )
    assert r.status_code == 404, r.text
    r = await redeem.http.post(
        f"/v1/redemptions/{by_merchant}/cancel",
        headers=redeem.auth("merchant", owner),
        json={"reason": "out of this colour"},
    )
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text

    # one cancelled at once, most likely before its debit (the refund then waits for the
    # debit), and one left to expire
    penny = await add_reward(redeem, merchant_id=shop, points=1, stock=5)
    brief = await add_reward(redeem, merchant_id=shop, points=1, stock=5, voucher_ttl_seconds=1)
    vol = redeem.auth("volunteer", spare)
    quick = await redeem.http.post(
        "/v1/redemptions",
        headers={**vol, "Idempotency-Key": f"quick-{run}"},
        json={"reward_id": penny["id"]},
    )
    assert quick.status_code == 201, quick.text
    r = await redeem.http.post(f"/v1/redemptions/{quick.json()['id']}/cancel", headers=vol)
    assert r.status_code == 200 and r.json()["status"] in ("cancelling", "cancelled"), r.text
    lapsing = await redeem.http.post(
        "/v1/redemptions",
        headers={**vol, "Idempotency-Key": f"lapsing-{run}"},
        json={"reward_id": brief["id"]},
    )
    assert lapsing.status_code == 201, lapsing.text
    accepted[quick.json()["id"]] = (spare, penny["id"])
    accepted[lapsing.json()["id"]] = (spare, brief["id"])
    price[penny["id"]] = price[brief["id"]] = 1
    refunded = {*to_cancel, by_merchant, quick.json()["id"], lapsing.json()["id"]}

    final = {
        rid: "expired"
        if rid == lapsing.json()["id"]
        else "cancelled"
        if rid in refunded
        else "confirmed"
        for rid in accepted
    }

    async def settled() -> bool:
        r = await redeem.http.get(
            "/v1/redemptions", headers=redeem.auth("officer"), params={"limit": 500}
        )
        status = {x["id"]: x["status"] for x in r.json()["items"]}
        return all(status.get(rid) == want for rid, want in final.items())

    await eventually(settled, timeout=60, what="every redemption settled")

    # the ledger: one debit per accepted redemption, one refund per cancellation or expiry
    expected = {
        a: n
        - sum(price[w] for rid, (acc, w) in accepted.items() if acc == a and rid not in refunded)
        for a, n in earned.items()
    }

    async def ledger_settled() -> dict[str, list[dict[str, Any]]] | None:
        got = {a: await entries(points, a) for a in earned}
        ok = all(es and es[0]["balance_after"] == expected[a] for a, es in got.items())
        return got if ok else None

    ledger = await eventually(ledger_settled, timeout=60, what="ledger balances reconciled")
    feed = await eventually(
        lambda: _feed_has(redeem, set(accepted)), timeout=30, what="the auditors' feed"
    )
    for a, es in ledger.items():
        debits = Counter(e["redemption_id"] for e in es if e["kind"] == "debit")
        refunds = Counter(e["redemption_id"] for e in es if e["kind"] == "refund")
        mine = {rid for rid, (acc, _) in accepted.items() if acc == a}
        assert debits == Counter(mine), a
        assert refunds == Counter(mine & refunded), a
        assert sum(e["amount"] for e in es) == es[0]["balance_after"] == expected[a]
        assert min(e["balance_after"] for e in es) >= 0, "a balance went below zero"
        for e in es:
            if e["kind"] in ("debit", "refund"):
                item = feed[e["redemption_id"]]
                cause = item["placed_event_id" if e["kind"] == "debit" else "cancelled_event_id"]
                assert cause == e["cause_event_id"], (e, item)
    for rid in accepted:
        item = feed[rid]
        assert item["points"] == price[accepted[rid][1]]
        assert (item["cancelled_event_id"] is not None) == (rid in refunded)
        assert item["status"] == final[rid]

    # the wallets agree with the ledger; the stock is back for what was cancelled
    async def wallets_agree() -> bool:
        for a in earned:
            r = await redeem.http.get(f"/v1/wallets/{a}", headers=redeem.auth("volunteer", a))
            w = r.json()
            if (w["ledger_balance"], w["held"], w["spendable"]) != (expected[a], 0, expected[a]):
                return False
        return True

    await eventually(wallets_agree, timeout=30, what="wallets agreeing with the ledger")
    r = await redeem.http.get("/v1/rewards", headers=redeem.auth("volunteer", accounts[0]))
    stock = {x["id"]: x["stock"] for x in r.json()["items"]}
    taken = Counter(reward_id for _, reward_id in accepted.values())
    back = Counter(accepted[rid][1] for rid in refunded)
    assert stock[rice["id"]] == 6 - taken[rice["id"]] + back[rice["id"]] >= 0
    assert stock[swap["id"]] == 8 - taken[swap["id"]] + back[swap["id"]] >= 0
    live = Counter(accepted[rid][1] for rid in accepted if rid not in refunded)
    assert live[repair["id"]] <= 12
    assert stock[penny["id"]] == stock[brief["id"]] == 5


async def _feed_has(redeem: Api, ids: set[str]) -> dict[str, dict[str, Any]] | None:
    feed = await audit_feed(redeem)
    return feed if ids <= set(feed) else None
