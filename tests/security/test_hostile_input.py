"""Hostile input through the real services: every case in the table of docs/SECURITY.md is
sent, and each answer is the 4xx the table says, as problem+json whose detail says what was
wrong. Nothing here may produce a 5xx."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.helpers import Api, ensure_community
from tests.security.matrix import SECURITY_MD

pytestmark = pytest.mark.e2e

NOW = datetime.now(UTC)


def job(**over: Any) -> dict[str, Any]:
    body = {
        "community_id": "penglai-grid",
        "title": "为独居老人送餐",
        "category": "meal_delivery",
        "points": 10,
        "capacity": 1,
        "starts_at": (NOW - timedelta(hours=1)).isoformat(),
        "ends_at": (NOW + timedelta(hours=1)).isoformat(),
    }
    body.update(over)
    return body


def reward(**over: Any) -> dict[str, Any]:
    body = {"merchant_id": "merchant-shop", "name_zh": "大米", "name_en": "Rice", "points": 5}
    body.update(over)
    return body


@dataclass(frozen=True)
class Case:
    name: str  # as it appears in the table of docs/SECURITY.md
    service: str
    method: str
    path: str
    role: str
    status: int
    says: str  # a fragment of the problem's detail (case-insensitive)
    body: Any = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


DEEP = 50_000
CASES = [
    Case("malformed JSON", "tasks", "POST", "/v1/jobs", "officer", 422, "json", raw=b'{"title": '),
    Case(
        "JSON array instead of object",
        "redeem",
        "POST",
        "/v1/rewards",
        "admin",
        422,
        "valid dictionary",
        body=[1, 2],
    ),
    Case(
        "body not JSON (text/plain)",
        "points",
        "POST",
        "/v1/adjustments",
        "admin",
        422,
        "body",
        raw=b"amount=5",
        headers={"content-type": "text/plain"},
    ),
    Case(
        "deeply nested JSON (50,000 levels)",
        "tasks",
        "POST",
        "/v1/jobs",
        "officer",
        400,
        "could not be parsed",
        raw=b'{"title": ' + b"[" * DEEP + b"]" * DEEP + b"}",
    ),
    Case(
        "wrong type: points as text",
        "tasks",
        "POST",
        "/v1/jobs",
        "officer",
        422,
        "body.points",
        body=job(points="forty"),
    ),
    Case(
        "wrong type: points as float",
        "redeem",
        "POST",
        "/v1/rewards",
        "admin",
        422,
        "body.points",
        body=reward(points=5.5),
    ),
    Case(
        "wrong type: boolean for an integer",
        "points",
        "POST",
        "/v1/adjustments",
        "admin",
        422,
        "body.amount",
        body={"account_id": "vol-1", "amount": True, "reason": "x" * 5},
    ),
    Case(
        "oversize body (300 KiB; bound 256 KiB)",
        "tasks",
        "POST",
        "/v1/jobs",
        "officer",
        413,
        "exceeds 262144",
        body=job(description="x" * 300_000),
    ),
    Case(
        "oversize body on redeem (bound 16 KiB)",
        "redeem",
        "POST",
        "/v1/rewards",
        "admin",
        413,
        "exceeds 16384",
        body=reward(name_en="x" * 300_000),
    ),
    Case(
        "oversize body on points (bound 16 KiB)",
        "points",
        "POST",
        "/v1/adjustments",
        "admin",
        413,
        "exceeds 16384",
        body={"account_id": "v", "amount": 1, "reason": "x" * 300_000},
    ),
    Case(
        "oversize body on the token exchange (bound 1 KiB)",
        "tasks",
        "POST",
        "/v1/apps/token",
        "app",
        413,
        "exceeds 1024",
        body={"credential": "jfa_" + "A" * 2000},
    ),
    Case(
        "huge string (title of 10,000 chars)",
        "tasks",
        "POST",
        "/v1/jobs",
        "officer",
        422,
        "body.title",
        body=job(title="送" * 10_000),
    ),
    Case(
        "huge string (reward name 3,000 chars)",
        "redeem",
        "POST",
        "/v1/rewards",
        "admin",
        422,
        "body.name_zh",
        body=reward(name_zh="米" * 3_000),
    ),
    Case(
        "zero points on a job",
        "tasks",
        "POST",
        "/v1/jobs",
        "officer",
        422,
        "body.points",
        body=job(points=0),
    ),
    Case(
        "negative points on a job",
        "tasks",
        "POST",
        "/v1/jobs",
        "officer",
        422,
        "body.points",
        body=job(points=-40),
    ),
    Case(
        "zero points on a reward",
        "redeem",
        "POST",
        "/v1/rewards",
        "admin",
        422,
        "body.points",
        body=reward(points=0),
    ),
    Case(
        "negative stock",
        "redeem",
        "POST",
        "/v1/rewards",
        "admin",
        422,
        "body.stock",
        body=reward(stock=-1),
    ),
    Case(
        "zero adjustment",
        "points",
        "POST",
        "/v1/adjustments",
        "admin",
        422,
        "zero",
        body={"account_id": "vol-1", "amount": 0, "reason": "nothing"},
    ),
    Case(
        "overflow integer (10^30 points)",
        "tasks",
        "POST",
        "/v1/jobs",
        "officer",
        422,
        "body.points",
        body=job(points=10**30),
    ),
    Case(
        "overflow integer (2^63 adjustment)",
        "points",
        "POST",
        "/v1/adjustments",
        "admin",
        422,
        "body.amount",
        body={"account_id": "vol-1", "amount": 2**63, "reason": "big"},
    ),
    Case(
        "overflow integer in a query (limit=10^30)",
        "tasks",
        "GET",
        f"/v1/jobs?limit={10**30}",
        "officer",
        422,
        "query.limit",
    ),
    Case(
        "overflow integer in a path (tree size 10^30)",
        "points",
        "GET",
        f"/v1/audit/checkpoints/{10**30}",
        "auditor",
        422,
        "path.tree_size",
    ),
    Case(
        "overflow fraud window (10^12 s)",
        "redeem",
        "PUT",
        "/v1/settings",
        "officer",
        422,
        "body.fraud_window_seconds",
        body={"fraud_window_seconds": 10**12},
    ),
    Case(
        "unknown field",
        "tasks",
        "POST",
        "/v1/jobs",
        "officer",
        422,
        "extra inputs",
        body=job(org_id="someone-else"),
    ),
    Case(
        "unknown field on a redemption",
        "redeem",
        "POST",
        "/v1/redemptions",
        "volunteer",
        422,
        "extra inputs",
        body={"reward_id": str(uuid.uuid4()), "points": 0},
        headers={"Idempotency-Key": "hostile-1"},
    ),
    Case(
        "bad UUID in a path", "tasks", "GET", "/v1/jobs/not-a-uuid", "officer", 422, "path.job_id"
    ),
    Case(
        "bad UUID in a body",
        "redeem",
        "POST",
        "/v1/redemptions",
        "volunteer",
        422,
        "body.reward_id",
        body={"reward_id": "12345"},
        headers={"Idempotency-Key": "hostile-2"},
    ),
    Case(
        "bad account id (spaces, 200 chars)",
        "points",
        "GET",
        "/v1/accounts/" + "a%20" * 50 + "/balance",
        "officer",
        422,
        "path.account_id",
    ),
    Case(
        "timestamp in year 1",
        "tasks",
        "POST",
        "/v1/jobs",
        "officer",
        422,
        "body.starts_at",
        body=job(starts_at="0001-01-01T00:00:00Z"),
    ),
    Case(
        "timestamp in year 9999",
        "tasks",
        "POST",
        "/v1/jobs",
        "officer",
        422,
        "body.ends_at",
        body=job(ends_at="9999-12-31T23:59:59Z"),
    ),
    Case(
        "timestamp without a timezone",
        "tasks",
        "POST",
        "/v1/jobs",
        "officer",
        422,
        "body.starts_at",
        body=job(starts_at="2026-11-23T08:00:00"),
    ),
    Case(
        "impossible date (month 13)",
        "redeem",
        "POST",
        "/v1/rewards",
        "admin",
        422,
        "body.valid_until",
        body=reward(valid_until="2026-13-45T00:00:00Z"),
    ),
    Case(
        "NUL in Chinese text (JSON \\u0000)",
        "tasks",
        "POST",
        "/v1/jobs",
        "officer",
        422,
        "nul",
        raw=b'{"title": "\\u9001\\u0000\\u9910"}',
    ),
    Case(
        "NUL in a reward name",
        "redeem",
        "POST",
        "/v1/rewards",
        "admin",
        422,
        "nul",
        raw=json.dumps(reward(name_zh="大\x00米")).encode(),
    ),
    Case(
        "lone surrogate escape (\\ud800)",
        "redeem",
        "POST",
        "/v1/merchants",
        "officer",
        422,
        "lone surrogate",
        raw=b'{"id": "m-x", "name_zh": "\\ud800", "name_en": "x"}',
    ),
    Case(
        "lone low surrogate in points reason",
        "points",
        "POST",
        "/v1/adjustments",
        "admin",
        422,
        "lone surrogate",
        raw=b'{"account_id": "v-1", "amount": 1, "reason": "ab\\udc00"}',
    ),
    Case(
        "NUL in a query parameter",
        "redeem",
        "GET",
        "/v1/redemptions?account_id=a%00b",
        "officer",
        422,
        "query.account_id",
    ),
    Case(
        "control character in Chinese text",
        "tasks",
        "POST",
        "/v1/jobs",
        "officer",
        422,
        "control characters",
        body=job(title="送餐\x07"),
    ),
    Case(
        "duplicate JSON key (last would win)",
        "redeem",
        "POST",
        "/v1/rewards",
        "admin",
        422,
        "duplicate key 'points'",
        raw=b'{"merchant_id": "merchant-shop", "name_zh": "\\u5927\\u7c73", "name_en": "Rice",'
        b' "points": 500, "points": 5}',
    ),
    Case(
        "duplicate JSON key in a nested object",
        "tasks",
        "POST",
        "/v1/jobs",
        "officer",
        422,
        "duplicate key 'note'",
        raw=json.dumps(job())[:-1].encode() + b', "extra": {"note": "a", "note": "b"}}',
    ),
    Case(
        "points as a JSON string",
        "tasks",
        "POST",
        "/v1/jobs",
        "officer",
        422,
        "points",
        body=job(points="10"),
    ),
    Case(
        "stock as a JSON string",
        "redeem",
        "POST",
        "/v1/rewards",
        "admin",
        422,
        "stock",
        body=reward(stock="10"),
    ),
    Case(
        "adjustment amount as a JSON string",
        "points",
        "POST",
        "/v1/adjustments",
        "admin",
        422,
        "amount",
        body={"account_id": "vol-0001", "amount": "5", "reason": "paper sheet"},
    ),
    Case(
        "invalid UTF-8 bytes",
        "tasks",
        "POST",
        "/v1/jobs",
        "officer",
        400,
        "could not be parsed",
        raw=b'{"title": "\xff\xfe"}',
    ),
]

# Unicode that is fine: accepted and given back byte for byte.
ACCEPTED = [
    ("combining marks", "为独居老人送餐 e\u0301\u0301\u0301 a\u030a"),
    ("RTL override and isolates", "\u202e送餐\u202c \u2067老人\u2069"),
    ("astral plane (emoji, CJK extension B)", "\U0001f6b2 \U00020000\U0002a6d6"),
    ("zero-width joiner and variation selector", "送\u200d餐\ufe0f"),
    ("full-width and ideographic space", "ＡＢＣ\u3000送餐"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_hostile_input_gets_a_4xx_that_says_why(apis: dict[str, Api], case: Case) -> None:
    api = apis[case.service]
    headers = {**api.auth(case.role), **case.headers}
    kwargs: dict[str, Any] = {"headers": headers}
    if case.raw is not None:
        headers.setdefault("content-type", "application/json")
        kwargs["content"] = case.raw
    elif case.body is not None:
        kwargs["json"] = case.body
    r = await api.http.request(case.method, case.path, **kwargs)
    assert r.status_code == case.status, r.text[:500]
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["status"] == case.status
    assert case.says.lower() in str(problem["detail"]).lower(), problem


@pytest.mark.parametrize(("name", "text"), ACCEPTED, ids=[a[0] for a in ACCEPTED])
async def test_unusual_but_valid_unicode_is_stored_and_returned_as_sent(
    apis: dict[str, Api], name: str, text: str
) -> None:
    tasks = apis["tasks"]
    await ensure_community(tasks)
    r = await tasks.http.post("/v1/jobs", headers=tasks.auth("officer"), json=job(title=text))
    assert r.status_code == 201, r.text
    got = await tasks.http.get(f"/v1/jobs/{r.json()['id']}", headers=tasks.auth("officer"))
    assert got.json()["title"] == text


def test_every_case_is_in_the_table_of_security_md() -> None:
    doc = SECURITY_MD.read_text(encoding="utf-8")
    missing = [c.name for c in CASES if f"| {c.name} |" not in doc]
    missing += [a[0] for a in ACCEPTED if f"| {a[0]} |" not in doc]
    assert not missing, f"hostile-input cases not in docs/SECURITY.md: {missing}"
