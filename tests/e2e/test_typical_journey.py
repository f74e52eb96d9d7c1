"""The thin path, through real processes: an officer publishes a job, an app claims and
completes it, the officer verifies, the ledger credits, the volunteer redeems."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.helpers import Api, ensure_community, eventually, register

pytestmark = pytest.mark.e2e


def _window(hours: int = 1) -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "starts_at": (now - timedelta(hours=hours)).isoformat(),
        "ends_at": (now + timedelta(hours=hours)).isoformat(),
    }


async def publish_job(tasks: Api, *, points: int, capacity: int = 3) -> dict[str, Any]:
    await ensure_community(tasks)
    r = await tasks.http.post(
        "/v1/jobs",
        headers=tasks.auth("officer"),
        json={
            "community_id": "penglai-grid",
            "title": "为独居老人送餐 Meal delivery",
            "category": "meal_delivery",
            "points": points,
            "capacity": capacity,
            **_window(),
        },
    )
    assert r.status_code == 201, r.text
    job: dict[str, Any] = r.json()
    return job


async def complete(tasks: Api, account: str, points: int) -> dict[str, Any]:
    """Register ``account`` with the job's community, claim and complete one job for it;
    return the completion, not yet verified."""
    await register(tasks, account)
    job = await publish_job(tasks, points=points)
    app = tasks.auth("app")
    r = await tasks.http.post(
        f"/v1/jobs/{job['id']}/claims", headers=app, json={"account_id": account}
    )
    assert r.status_code == 201, r.text
    r = await tasks.http.post(
        f"/v1/jobs/{job['id']}/completions",
        headers={**app, "Idempotency-Key": f"k-{uuid.uuid4()}"},
        json={"account_id": account},
    )
    assert r.status_code == 201, r.text
    completion: dict[str, Any] = r.json()
    return completion


async def earn(tasks: Api, account: str, points: int) -> dict[str, Any]:
    """Claim, complete and verify one job for ``account``; return the verified completion.

    Beyond the organisation's default limits (a test earning a large amount at once) the
    completion is held, and the admin approves it, as a scheme does on a big day."""
    done = await complete(tasks, account, points)
    r = await tasks.http.post(f"/v1/completions/{done['id']}/verify", headers=tasks.auth("officer"))
    assert r.status_code == 200, r.text
    completion: dict[str, Any] = r.json()
    if completion["status"] == "held":
        r = await tasks.http.post(
            f"/v1/completions/{done['id']}/approve",
            headers=tasks.auth("admin"),
            json={"reason": "测试中一次性记分 a test earns this at once"},
        )
        assert r.status_code == 200, r.text
        completion = r.json()
    assert completion["status"] == "verified", completion
    return completion


async def balance(points: Api, account: str) -> dict[str, Any]:
    r = await points.http.get(
        f"/v1/accounts/{account}/balance", headers=points.auth("volunteer", account)
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_one_completion_flows_into_the_ledger_and_is_spent(apis: dict[str, Api]) -> None:
    tasks, points, redeem = apis["tasks"], apis["points"], apis["redeem"]
    account = f"vol-{uuid.uuid4().hex[:8]}"
    app = tasks.auth("app")
    await register(tasks, account)

    # 1. an officer publishes a job
    job = await publish_job(tasks, points=40, capacity=2)
    assert job["points"] == 40 and job["claimed"] == 0

    # 2. an app claims it for a volunteer and posts the completion with an Idempotency-Key
    r = await tasks.http.post(
        f"/v1/jobs/{job['id']}/claims", headers=app, json={"account_id": account}
    )
    assert r.status_code == 201, r.text
    key = f"done-{uuid.uuid4()}"
    body = {"account_id": account, "evidence": {"note": "六份午餐已送达 six lunches delivered"}}
    first = await tasks.http.post(
        f"/v1/jobs/{job['id']}/completions", headers={**app, "Idempotency-Key": key}, json=body
    )
    assert first.status_code == 201, first.text
    again = await tasks.http.post(
        f"/v1/jobs/{job['id']}/completions", headers={**app, "Idempotency-Key": key}, json=body
    )
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    other_key = await tasks.http.post(
        f"/v1/jobs/{job['id']}/completions",
        headers={**app, "Idempotency-Key": f"other-{uuid.uuid4()}"},
        json=body,
    )
    assert other_key.status_code == 409 and other_key.json()["reason"] == "already_completed"
    completion_id = first.json()["id"]

    # 3. an officer verifies it; the event leaves through the outbox (an officer of its own,
    # so the points other tests had verified today cannot reach the per-officer limit)
    r = await tasks.http.post(
        f"/v1/completions/{completion_id}/verify", headers=tasks.auth("officer", "officer-zhang")
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "verified"

    # 4. the ledger worker credits it; the balance shows it
    async def credited() -> dict[str, Any] | None:
        b = await balance(points, account)
        return b if b["balance"] == 40 else None

    b = await eventually(credited, what="credit of 40 points")
    assert b == {"account_id": account, "balance": 40, "earned": 40, "spent": 0, "entries": 1}

    # ... and the tasks service hears back that the completion is credited (end-to-end ack)
    async def acked() -> bool:
        r = await tasks.http.get(f"/v1/completions/{completion_id}", headers=tasks.auth("officer"))
        return r.json()["credited_at"] is not None

    await eventually(acked, what="credited acknowledgement")

    # 5. redeeming: refused with a clear 409 when short, accepted when enough
    admin = redeem.auth("admin")
    dear = await redeem.http.post(
        "/v1/rewards",
        headers=admin,
        json={
            "merchant_id": "merchant-shop",
            "name_zh": "大米",
            "name_en": "Rice",
            "points": 50,
            "stock": 3,
        },
    )
    cheap = await redeem.http.post(
        "/v1/rewards",
        headers=admin,
        json={
            "merchant_id": "merchant-battery",
            "name_zh": "电池更换券",
            "name_en": "Battery swap",
            "points": 30,
            "stock": 3,
        },
    )
    assert dear.status_code == cheap.status_code == 201
    vol = redeem.auth("volunteer", account)

    async def wallet_knows() -> bool:
        r = await redeem.http.get(f"/v1/wallets/{account}", headers=vol)
        return r.json()["spendable"] == 40

    await eventually(wallet_knows, what="wallet learning the credit")
    refused = await redeem.http.post(
        "/v1/redemptions",
        headers={**vol, "Idempotency-Key": f"r-{uuid.uuid4()}"},
        json={"reward_id": dear.json()["id"]},
    )
    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert problem["reason"] == "insufficient_points"
    assert (problem["needed"], problem["spendable"]) == (50, 40)
    assert refused.headers["content-type"].startswith("application/problem+json")

    key = f"r-{uuid.uuid4()}"
    placed = await redeem.http.post(
        "/v1/redemptions",
        headers={**vol, "Idempotency-Key": key},
        json={"reward_id": cheap.json()["id"]},
    )
    assert placed.status_code == 201, placed.text
    same = await redeem.http.post(
        "/v1/redemptions",
        headers={**vol, "Idempotency-Key": key},
        json={"reward_id": cheap.json()["id"]},
    )
    assert same.status_code == 200 and same.json()["id"] == placed.json()["id"]
    redemption_id = placed.json()["id"]

    # the debit appears in the ledger, the balance drops, the redemption is confirmed
    async def debited() -> dict[str, Any] | None:
        b = await balance(points, account)
        return b if b["balance"] == 10 else None

    b = await eventually(debited, what="debit of 30 points")
    assert (b["earned"], b["spent"], b["entries"]) == (40, 30, 2)

    async def confirmed() -> dict[str, Any] | None:
        r = await redeem.http.get(f"/v1/redemptions/{redemption_id}", headers=vol)
        body: dict[str, Any] = r.json()
        return body if body["status"] == "confirmed" else None

    red = await eventually(confirmed, what="redemption confirmed")
    assert red["voucher_code"] and len(red["voucher_code"]) >= 20

    r = await points.http.get(f"/v1/accounts/{account}/entries", headers=points.auth("auditor"))
    assert r.status_code == 200, r.text
    entries = r.json()["items"]
    assert [(e["kind"], e["amount"], e["balance_after"]) for e in entries] == [
        ("debit", -30, 10),
        ("credit", 40, 40),
    ]
    assert entries[0]["redemption_id"] == redemption_id
    assert entries[1]["completion_id"] == completion_id

    # stock was taken exactly once
    r = await redeem.http.get("/v1/rewards", headers=vol)
    stock = {x["id"]: x["stock"] for x in r.json()["items"]}
    assert stock[cheap.json()["id"]] == 2 and stock[dear.json()["id"]] == 3


async def test_capacity_holds_under_concurrent_claims(apis: dict[str, Api]) -> None:
    import asyncio

    tasks = apis["tasks"]
    job = await publish_job(tasks, points=5, capacity=5)
    app = tasks.auth("app")
    for i in range(30):
        await register(tasks, f"vol-race-{i:03d}")
    results = await asyncio.gather(
        *[
            tasks.http.post(
                f"/v1/jobs/{job['id']}/claims",
                headers=app,
                json={"account_id": f"vol-race-{i:03d}"},
            )
            for i in range(30)
        ]
    )
    codes = sorted(r.status_code for r in results)
    assert codes.count(201) == 5 and codes.count(409) == 25
    assert {r.json()["reason"] for r in results if r.status_code == 409} == {"job_full"}
    r = await tasks.http.get(f"/v1/jobs/{job['id']}", headers=tasks.auth("officer"))
    assert r.json()["claimed"] == 5


async def test_an_officer_cannot_verify_their_own_completion(apis: dict[str, Api]) -> None:
    tasks = apis["tasks"]
    job = await publish_job(tasks, points=5)
    officer_self = "officer-wang"
    vol = tasks.auth("volunteer", officer_self)
    await register(tasks, officer_self)
    r = await tasks.http.post(
        f"/v1/jobs/{job['id']}/claims", headers=vol, json={"account_id": officer_self}
    )
    assert r.status_code == 201, r.text
    r = await tasks.http.post(
        f"/v1/jobs/{job['id']}/completions",
        headers={**vol, "Idempotency-Key": f"k-{uuid.uuid4()}"},
        json={"account_id": officer_self},
    )
    assert r.status_code == 201, r.text
    r = await tasks.http.post(
        f"/v1/completions/{r.json()['id']}/verify", headers=tasks.auth("officer", officer_self)
    )
    assert r.status_code == 409 and r.json()["reason"] == "self_verification"
