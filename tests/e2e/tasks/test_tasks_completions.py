"""Tasks: completions under concurrency, rejection and appeals, revocation into a ledger
reversal, organisation limits holding completions for review, and the auditors' listing —
through the real processes, in organisations of their own."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.helpers import Api, ensure_community, eventually, register

pytestmark = pytest.mark.e2e


def _org() -> str:
    return f"org-{uuid.uuid4().hex[:8]}"


def _account() -> str:
    return f"vol-{uuid.uuid4().hex[:8]}"


async def _job(tasks: Api, org: str, points: int = 10, capacity: int = 3) -> dict[str, Any]:
    await ensure_community(tasks, org=org)
    now = datetime.now(UTC)
    r = await tasks.http.post(
        "/v1/jobs",
        headers=tasks.auth("officer", org=org),
        json={
            "community_id": "penglai-grid",
            "title": "探访长者 Elder visit",
            "category": "elder_visit",
            "points": points,
            "capacity": capacity,
            "starts_at": (now - timedelta(hours=1)).isoformat(),
            "ends_at": (now + timedelta(hours=1)).isoformat(),
        },
    )
    assert r.status_code == 201, r.text
    job: dict[str, Any] = r.json()
    return job


async def _submit(tasks: Api, org: str, account: str, points: int = 10) -> dict[str, Any]:
    job = await _job(tasks, org, points)
    await register(tasks, account, org=org)
    app = tasks.auth("app", org=org)
    r = await tasks.http.post(
        f"/v1/jobs/{job['id']}/claims", headers=app, json={"account_id": account}
    )
    assert r.status_code == 201, r.text
    r = await tasks.http.post(
        f"/v1/jobs/{job['id']}/completions",
        headers={**app, "Idempotency-Key": f"k-{uuid.uuid4()}"},
        json={"account_id": account, "evidence": {"note": "visited", "reference": "p/1.jpg"}},
    )
    assert r.status_code == 201, r.text
    done: dict[str, Any] = r.json()
    return done


async def _verify(tasks: Api, org: str, completion_id: str) -> dict[str, Any]:
    r = await tasks.http.post(
        f"/v1/completions/{completion_id}/verify", headers=tasks.auth("officer", org=org)
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def _balance(points: Api, account: str, org: str) -> int:
    r = await points.http.get(
        f"/v1/accounts/{account}/balance", headers=points.auth("volunteer", account, org=org)
    )
    assert r.status_code == 200, r.text
    return int(r.json()["balance"])


async def _credited(tasks: Api, org: str, completion_id: str) -> None:
    async def acked() -> bool:
        r = await tasks.http.get(
            f"/v1/completions/{completion_id}", headers=tasks.auth("officer", org=org)
        )
        return r.json()["credited_at"] is not None

    await eventually(acked, what=f"credit acknowledgement of {completion_id}")


async def test_concurrent_retries_with_one_key_make_one_completion(apis: dict[str, Api]) -> None:
    tasks = apis["tasks"]
    org, account = _org(), _account()
    job = await _job(tasks, org)
    app = tasks.auth("app", org=org)
    await register(tasks, account, org=org)
    await tasks.http.post(f"/v1/jobs/{job['id']}/claims", headers=app, json={"account_id": account})
    key = f"retry-{uuid.uuid4()}"
    results = await asyncio.gather(
        *[
            tasks.http.post(
                f"/v1/jobs/{job['id']}/completions",
                headers={**app, "Idempotency-Key": key},
                json={"account_id": account},
            )
            for _ in range(25)
        ]
    )
    codes = [r.status_code for r in results]
    assert codes.count(201) == 1 and codes.count(200) == 24, codes
    assert len({r.json()["id"] for r in results}) == 1
    r = await tasks.http.get(
        "/v1/completions", headers=tasks.auth("officer", org=org), params={"account_id": account}
    )
    assert len(r.json()["items"]) == 1
    # the same key for another job's completion is a client bug, said plainly
    other = await _job(tasks, org)
    await tasks.http.post(
        f"/v1/jobs/{other['id']}/claims", headers=app, json={"account_id": account}
    )
    r = await tasks.http.post(
        f"/v1/jobs/{other['id']}/completions",
        headers={**app, "Idempotency-Key": key},
        json={"account_id": account},
    )
    assert r.status_code == 409 and r.json()["reason"] == "idempotency_key_reused"
    # a missing key is refused with the header named
    r = await tasks.http.post(
        f"/v1/jobs/{other['id']}/completions", headers=app, json={"account_id": account}
    )
    assert r.status_code == 422 and "Idempotency-Key" in r.json()["detail"]


async def test_a_two_character_chinese_reason_and_errors_in_the_callers_language(
    apis: dict[str, Api],
) -> None:
    """Issue 21 through the running tasks API: a one-character reason is refused in Chinese
    for a caller asking for Chinese (in English for one asking for English, both when neither
    is asked for), a malformed body says it is not JSON, and "重复" is a whole reason."""
    tasks = apis["tasks"]
    org, account = _org(), _account()
    officer = tasks.auth("officer", "officer-qian", org=org)
    done = await _submit(tasks, org, account)
    path = f"/v1/completions/{done['id']}/reject"
    said = {}
    for lang in ("zh-CN,zh;q=0.9", "en-US", None):
        headers = {**officer, **({"Accept-Language": lang} if lang else {})}
        r = await tasks.http.post(path, headers=headers, json={"reason": "否"})
        assert r.status_code == 422, r.text
        said[lang] = (r.headers["content-language"], r.json()["detail"])
    assert said["zh-CN,zh;q=0.9"] == ("zh-CN", "body.reason: 至少 2 个字符")
    assert said["en-US"] == ("en", "body.reason: String should have at least 2 characters")
    assert said[None] == (
        "zh-CN, en",
        "body.reason: 至少 2 个字符 — String should have at least 2 characters",
    )
    r = await tasks.http.post(
        path,
        headers={**officer, "Accept-Language": "zh-CN", "Content-Type": "application/json"},
        content=b'{"reason": "\xe9\x87\x8d\xe5\xa4\x8d",}',
    )
    assert r.status_code == 422 and "请求体不是合法的 JSON" in r.json()["detail"], r.text
    assert "JSON decode error" not in r.text
    r = await tasks.http.post(path, headers=officer, json={"reason": "重复"})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["rejection_reason"]) == ("rejected", "重复")


async def test_rejection_appeal_and_corrected_decision(apis: dict[str, Api]) -> None:
    tasks = apis["tasks"]
    org, account = _org(), _account()
    officer = tasks.auth("officer", "officer-zhao", org=org)
    vol = tasks.auth("volunteer", account, org=org)
    done = await _submit(tasks, org, account)

    r = await tasks.http.post(f"/v1/completions/{done['id']}/reject", headers=officer, json={})
    assert r.status_code == 422 and "reason" in r.json()["detail"]
    r = await tasks.http.post(
        f"/v1/completions/{done['id']}/reject",
        headers=officer,
        json={"reason": "photo shows a different street"},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["rejection_reason"]) == (
        "rejected",
        "photo shows a different street",
    )
    r = await tasks.http.post(f"/v1/completions/{done['id']}/verify", headers=officer)
    assert r.status_code == 409 and r.json()["reason"] == "not_verifiable"

    # the volunteer appeals; a hold appeal of a rejected completion is refused as such
    r = await tasks.http.post(
        "/v1/appeals",
        headers=vol,
        json={"completion_id": done["id"], "kind": "hold", "reason": "it was held?"},
    )
    assert r.status_code == 409 and "rejected" in r.json()["detail"]
    r = await tasks.http.post(
        "/v1/appeals",
        headers=vol,
        json={"completion_id": done["id"], "kind": "rejection", "reason": "wrong photo sent"},
    )
    assert r.status_code == 201, r.text
    appeal = r.json()
    assert appeal["status"] == "open" and appeal["decisions"] == []

    # the officer who rejected it does not decide the appeal against their own decision,
    # whatever the case of their name
    for own in ("officer-zhao", "Officer-Zhao"):
        r = await tasks.http.post(
            f"/v1/appeals/{appeal['id']}/decisions",
            headers=tasks.auth("officer", own, org=org),
            json={"outcome": "dismissed", "reason": "I stand by it"},
        )
        assert r.status_code == 409 and r.json()["reason"] == "own_decision", r.text
        assert r.json()["decided_by"] == "officer-zhao"
    r = await tasks.http.get(f"/v1/appeals/{appeal['id']}", headers=vol)
    assert r.json()["status"] == "open" and r.json()["decisions"] == []

    # dismissed first by another officer, then corrected by a second decision: both stay
    r = await tasks.http.post(
        f"/v1/appeals/{appeal['id']}/decisions",
        headers=tasks.auth("officer", "officer-wang", org=org),
        json={"outcome": "dismissed", "reason": "no other evidence"},
    )
    assert r.status_code == 201, r.text
    r = await tasks.http.post(
        f"/v1/appeals/{appeal['id']}/decisions",
        headers=tasks.auth("admin", "admin-chen", org=org),
        json={"outcome": "upheld", "reason": "the canteen log shows the visit"},
    )
    assert r.status_code == 201, r.text

    # the volunteer sees who decided, when and why
    r = await tasks.http.get(f"/v1/appeals/{appeal['id']}", headers=vol)
    seen = r.json()
    assert seen["status"] == "upheld"
    assert [(d["outcome"], d["decided_by"], d["reason"]) for d in seen["decisions"]] == [
        ("dismissed", "officer-wang", "no other evidence"),
        ("upheld", "admin-chen", "the canteen log shows the visit"),
    ]
    assert all(d["decided_at"] for d in seen["decisions"])
    r = await tasks.http.get("/v1/appeals", headers=vol)
    assert [a["id"] for a in r.json()["items"]] == [appeal["id"]]
    r = await tasks.http.get(
        f"/v1/appeals/{appeal['id']}", headers=tasks.auth("volunteer", "vol-nosy", org=org)
    )
    assert r.status_code == 404

    # upheld: the completion is back for review, and can now be verified
    verified = await _verify(tasks, org, done["id"])
    assert verified["status"] == "verified"
    r = await tasks.http.get(f"/v1/completions/{done['id']}/history", headers=vol)
    assert [h["status"] for h in r.json()["items"]] == [
        "submitted",
        "rejected",
        "submitted",
        "verified",
    ]


async def test_revocation_appends_a_reversal_to_the_ledger(apis: dict[str, Api]) -> None:
    tasks, points = apis["tasks"], apis["points"]
    org, account = _org(), _account()
    officer = tasks.auth("officer", "officer-li", org=org)
    done = await _submit(tasks, org, account, points=25)
    r = await tasks.http.post(
        f"/v1/completions/{done['id']}/revoke", headers=officer, json={"reason": "x"}
    )
    assert r.status_code == 422  # a reason of at least 2 characters ("重复")
    r = await tasks.http.post(
        f"/v1/completions/{done['id']}/revoke", headers=officer, json={"reason": "not yet verified"}
    )
    assert r.status_code == 409 and r.json()["reason"] == "not_revocable"
    await _verify(tasks, org, done["id"])
    await _credited(tasks, org, done["id"])
    assert await _balance(points, account, org) == 25

    # the volunteer themself (were they an officer) may not revoke it
    r = await tasks.http.post(
        f"/v1/completions/{done['id']}/revoke",
        headers=tasks.auth("officer", account, org=org),
        json={"reason": "my own"},
    )
    assert r.status_code == 409 and r.json()["reason"] == "self_verification"
    r = await tasks.http.post(
        f"/v1/completions/{done['id']}/revoke",
        headers=officer,
        json={"reason": "同一时段另有打卡 checked in elsewhere at the same time"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "revoked" and r.json()["revoked_by"] == "officer-li"
    r = await tasks.http.post(
        f"/v1/completions/{done['id']}/revoke", headers=officer, json={"reason": "twice"}
    )
    assert r.status_code == 409 and r.json()["reason"] == "not_revocable"

    async def reversed_() -> list[dict[str, Any]] | None:
        r = await points.http.get(
            f"/v1/accounts/{account}/entries", headers=points.auth("volunteer", account, org=org)
        )
        entries: list[dict[str, Any]] = r.json()["items"]
        return entries if len(entries) == 2 else None

    entries = await eventually(reversed_, what="reversal entry")
    assert [(e["kind"], e["amount"], e["balance_after"]) for e in entries] == [
        ("reversal", -25, 0),
        ("credit", 25, 25),
    ]
    assert {e["completion_id"] for e in entries} == {done["id"]}
    assert await _balance(points, account, org) == 0

    async def acked() -> bool:
        r = await tasks.http.get(f"/v1/completions/{done['id']}", headers=officer)
        return r.json()["reversed_at"] is not None

    await eventually(acked, what="reversal acknowledgement")


async def test_limits_hold_completions_for_an_officer_then_the_admin(
    apis: dict[str, Api],
) -> None:
    tasks, points = apis["tasks"], apis["points"]
    org, account = _org(), _account()
    admin = tasks.auth("admin", "admin-chen", org=org)
    officer = tasks.auth("officer", "officer-li", org=org)
    r = await tasks.http.put(
        "/v1/organisation",
        headers=officer,
        json={"daily_points_officer": 30},
    )
    assert r.status_code == 403  # only the admin sets limits
    r = await tasks.http.put(
        "/v1/organisation",
        headers=admin,
        json={"daily_points_officer": 50, "daily_points_admin": 30},
    )
    assert r.status_code == 422 and "admin threshold" in r.json()["detail"]
    r = await tasks.http.put(
        "/v1/organisation",
        headers=admin,
        json={"name": "试点 pilot", "daily_points_officer": 30, "daily_points_admin": 50},
    )
    assert r.status_code == 200, r.text

    first = await _verify(tasks, org, (await _submit(tasks, org, account, 20))["id"])
    assert first["status"] == "verified"
    # 20 + 20 = 40 > 30: held for an officer, never dropped
    second = await _verify(tasks, org, (await _submit(tasks, org, account, 20))["id"])
    assert (second["status"], second["hold_level"]) == ("held", "officer")
    assert "40 points today" in second["hold_reason"]
    r = await tasks.http.get(
        "/v1/completions", headers=officer, params={"status": "held", "hold_level": "officer"}
    )
    assert [c["id"] for c in r.json()["items"]] == [second["id"]]
    # the volunteer sees the hold and why, and may appeal it
    vol = tasks.auth("volunteer", account, org=org)
    r = await tasks.http.get(f"/v1/completions/{second['id']}", headers=vol)
    assert r.json()["status"] == "held" and r.json()["hold_reason"] == second["hold_reason"]
    r = await tasks.http.post(
        "/v1/appeals",
        headers=vol,
        json={"completion_id": second["id"], "kind": "hold", "reason": "two long visits today"},
    )
    assert r.status_code == 201

    # a held completion is decided with approve (reason required), not verify
    r = await tasks.http.post(f"/v1/completions/{second['id']}/verify", headers=officer)
    assert r.status_code == 409 and "approve" in r.json()["detail"]
    r = await tasks.http.post(
        f"/v1/completions/{second['id']}/approve",
        headers=officer,
        json={"reason": "typhoon week: extra visits agreed"},
    )
    assert r.status_code == 200 and r.json()["status"] == "verified", r.text

    # now 40 today; +20 = 60 > 50: held for the admin; an officer may not approve it
    third = await _verify(tasks, org, (await _submit(tasks, org, account, 20))["id"])
    assert (third["status"], third["hold_level"]) == ("held", "admin")
    r = await tasks.http.post(
        f"/v1/completions/{third['id']}/approve", headers=officer, json={"reason": "ok by me"}
    )
    assert r.status_code == 409 and r.json()["reason"] == "needs_admin"
    assert r.json()["hold_level"] == "admin"
    r = await tasks.http.post(
        f"/v1/completions/{third['id']}/approve",
        headers=admin,
        json={"reason": "checked the roster with the grid leader"},
    )
    assert r.status_code == 200 and r.json()["status"] == "verified", r.text

    async def all_credited() -> bool:
        return await _balance(points, account, org) == 60

    await eventually(all_credited, what="three credits after approvals")
    r = await tasks.http.get(f"/v1/completions/{third['id']}/history", headers=vol)
    hist = [(h["status"], h["actor"]) for h in r.json()["items"]]
    assert hist == [
        ("submitted", "app-qishou"),
        ("held:admin", "officer-li"),
        ("verified", "admin-chen"),
    ]
    assert r.json()["items"][-1]["reason"] == "checked the roster with the grid leader"


async def test_hourly_completion_limit_holds_automatic_jobs(apis: dict[str, Api]) -> None:
    tasks = apis["tasks"]
    org, account = _org(), _account()
    r = await tasks.http.put(
        "/v1/organisation",
        headers=tasks.auth("admin", org=org),
        json={"hourly_completions_officer": 1},
    )
    assert r.status_code == 200
    app = tasks.auth("app", org=org)
    await register(tasks, account, org=org)
    statuses = []
    for _ in range(2):
        now = datetime.now(UTC)
        r = await tasks.http.post(
            "/v1/jobs",
            headers=tasks.auth("officer", org=org),
            json={
                "community_id": "penglai-grid",
                "title": "自动 automatic",
                "category": "hazard_patrol",
                "points": 5,
                "capacity": 1,
                "verification": "automatic",
                "starts_at": (now - timedelta(hours=1)).isoformat(),
                "ends_at": (now + timedelta(hours=1)).isoformat(),
            },
        )
        job = r.json()
        await tasks.http.post(
            f"/v1/jobs/{job['id']}/claims", headers=app, json={"account_id": account}
        )
        r = await tasks.http.post(
            f"/v1/jobs/{job['id']}/completions",
            headers={**app, "Idempotency-Key": f"k-{uuid.uuid4()}"},
            json={"account_id": account},
        )
        assert r.status_code == 201, r.text
        statuses.append((r.json()["status"], r.json()["hold_level"]))
    assert statuses == [("verified", None), ("held", "officer")]


async def test_auditors_list_every_verified_completion_oldest_first(apis: dict[str, Api]) -> None:
    tasks = apis["tasks"]
    org = _org()
    accounts = [_account() for _ in range(3)]
    ids = []
    for a in accounts:
        done = await _submit(tasks, org, a, points=7)
        await _verify(tasks, org, done["id"])
        ids.append(done["id"])
    unverified = await _submit(tasks, org, accounts[0])
    r = await tasks.http.post(
        f"/v1/completions/{ids[1]}/revoke",
        headers=tasks.auth("officer", org=org),
        json={"reason": "duplicate of another visit"},
    )
    assert r.status_code == 200

    auditor = tasks.auth("auditor", org=org)
    r = await tasks.http.get("/v1/audit/completions", headers=tasks.auth("officer", org=org))
    assert r.status_code == 403
    page1 = await tasks.http.get("/v1/audit/completions", headers=auditor, params={"limit": 2})
    assert page1.status_code == 200, page1.text
    body1 = page1.json()
    assert [i["completion_id"] for i in body1["items"]] == ids[:2]
    assert isinstance(body1["next_cursor"], str)
    page2 = await tasks.http.get(
        "/v1/audit/completions",
        headers=auditor,
        params={"limit": 2, "cursor": body1["next_cursor"]},
    )
    body2 = page2.json()
    assert [i["completion_id"] for i in body2["items"]] == ids[2:]
    assert body2["next_cursor"] is None
    items = {i["completion_id"]: i for i in body1["items"] + body2["items"]}
    assert unverified["id"] not in items
    first, revoked = items[ids[0]], items[ids[1]]
    assert set(first) == {
        "completion_id",
        "account_id",
        "job_id",
        "points",
        "status",
        "verified_event_id",
        "revoked_event_id",
        "verified_at",
        "revoked_at",
    }
    assert (first["status"], first["points"], first["revoked_event_id"]) == ("verified", 7, None)
    assert first["account_id"] == accounts[0] and first["verified_at"]
    assert revoked["status"] == "revoked" and revoked["revoked_event_id"] and revoked["revoked_at"]
    assert revoked["revoked_event_id"] != revoked["verified_event_id"]
    # the ids are the events' ids, as the ledger records them as cause_event_id
    points = apis["points"]

    async def credit_cause() -> str | None:
        r = await points.http.get(
            f"/v1/accounts/{accounts[0]}/entries",
            headers=points.auth("volunteer", accounts[0], org=org),
        )
        entries = r.json()["items"]
        return entries[0]["cause_event_id"] if entries else None

    assert await eventually(credit_cause, what="credit") == first["verified_event_id"]
    # another organisation's auditor sees none of it; a bad cursor says what is wrong
    r = await tasks.http.get("/v1/audit/completions", headers=tasks.auth("auditor", org=_org()))
    assert r.json() == {"items": [], "next_cursor": None}
    r = await tasks.http.get("/v1/audit/completions", headers=auditor, params={"cursor": "abc"})
    assert r.status_code == 422 and "cursor" in r.json()["detail"]


async def test_completions_listed_by_job_only_that_jobs_and_only_ones_own(
    apis: dict[str, Api],
) -> None:
    """``job_id`` narrows the list to one job's completions (the portal's job page asks for
    the volunteer's own there); a volunteer still sees only their own, another organisation's
    job lists nothing, and an id that is not one is refused."""
    tasks, org = apis["tasks"], _org()
    me, other = _account(), _account()
    first = await _submit(tasks, org, me)
    await _submit(tasks, org, me)  # on another job
    app = tasks.auth("app", org=org)
    await register(tasks, other, org=org)
    r = await tasks.http.post(
        f"/v1/jobs/{first['job_id']}/claims", headers=app, json={"account_id": other}
    )
    assert r.status_code == 201, r.text
    r = await tasks.http.post(
        f"/v1/jobs/{first['job_id']}/completions",
        headers={**app, "Idempotency-Key": f"k-{uuid.uuid4()}"},
        json={"account_id": other},
    )
    assert r.status_code == 201, r.text

    async def listed(role: str, subject: str | None = None, **params: Any) -> Any:
        headers = tasks.auth(role, subject, org=org)
        return await tasks.http.get("/v1/completions", headers=headers, params=params)

    r = await listed("officer", job_id=first["job_id"])
    assert r.status_code == 200, r.text
    assert sorted(c["account_id"] for c in r.json()["items"]) == sorted([me, other])
    assert {c["job_id"] for c in r.json()["items"]} == {first["job_id"]}
    # the volunteer, asking for the job: their own completion of it, not the other's
    r = await listed("volunteer", me, job_id=first["job_id"])
    assert [c["id"] for c in r.json()["items"]] == [first["id"]]
    r = await listed("volunteer", me)
    assert len(r.json()["items"]) == 2  # without the filter: both of their jobs
    # another organisation's officer asking for this job: nothing of it
    r = await tasks.http.get(
        "/v1/completions",
        headers=tasks.auth("officer", org=_org()),
        params={"job_id": first["job_id"]},
    )
    assert r.status_code == 200 and r.json()["items"] == []
    r = await listed("officer", job_id="not-a-job")
    assert r.status_code == 422 and "job_id" in r.text


async def test_completions_newest_first_page_by_page(apis: dict[str, Api]) -> None:
    """``order=newest`` lists a volunteer's record latest first, and its cursor goes on to
    older ones (the portal's home page shows the latest work); the default stays oldest first
    (the review queue's order); another order is refused."""
    tasks, org, me = apis["tasks"], _org(), _account()
    done = [(await _submit(tasks, org, me))["id"] for _ in range(3)]
    mine = tasks.auth("volunteer", me, org=org)

    async def page(**params: Any) -> Any:
        r = await tasks.http.get("/v1/completions", headers=mine, params=params)
        assert r.status_code == 200, r.text
        return r.json()

    first = await page(order="newest", limit=2)
    assert [c["id"] for c in first["items"]] == done[:0:-1]  # the third, then the second
    rest = await page(order="newest", limit=2, cursor=first["next_cursor"])
    assert [c["id"] for c in rest["items"]] == done[:1] and rest["next_cursor"] is None
    assert [c["id"] for c in (await page())["items"]] == done
    r = await tasks.http.get("/v1/completions", headers=mine, params={"order": "random"})
    assert r.status_code == 422, r.text
