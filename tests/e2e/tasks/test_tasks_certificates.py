"""A volunteer's service certificate (issue 21, part 2), through the real processes: issued
for a period from the verified record, checked by anyone with its code (no token), the same
figures in its PDF; nobody issues one in another's name, and another organisation's record
shows none of this one's."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.helpers import Api, ensure_community, register

pytestmark = pytest.mark.e2e


async def _served(tasks: Api, org: str, account: str, minutes: int, points: int) -> None:
    await ensure_community(tasks, org=org)
    await register(tasks, account, org=org)
    now = datetime.now(UTC)
    officer = tasks.auth("officer", org=org)
    r = await tasks.http.post(
        "/v1/jobs",
        headers=officer,
        json={
            "community_id": "penglai-grid", "title": "助老送餐 Meal delivery",
            "category": "meal_delivery", "points": points, "capacity": 2,
            "starts_at": (now - timedelta(hours=1)).isoformat(),
            "ends_at": (now + timedelta(hours=1)).isoformat(), "service_minutes": minutes,
        },
    )  # fmt: skip
    assert r.status_code == 201, r.text
    job = r.json()["id"]
    app = tasks.auth("app", org=org)
    r = await tasks.http.post(f"/v1/jobs/{job}/claims", headers=app, json={"account_id": account})
    assert r.status_code == 201, r.text
    r = await tasks.http.post(
        f"/v1/jobs/{job}/completions",
        headers={**app, "Idempotency-Key": f"k-{uuid.uuid4()}"},
        json={"account_id": account},
    )
    assert r.status_code == 201, r.text
    r = await tasks.http.post(f"/v1/completions/{r.json()['id']}/verify", headers=officer)
    assert r.status_code == 200, r.text


async def test_a_certificate_says_the_verified_record_and_anyone_checks_it_by_its_code(
    apis: dict[str, Api],
) -> None:
    tasks = apis["tasks"]
    org = f"org-{uuid.uuid4().hex[:8]}"
    account = f"vol-{uuid.uuid4().hex[:8]}"
    await _served(tasks, org, account, 90, 20)
    await _served(tasks, org, account, 480, 30)
    year = datetime.now(UTC).year
    period = {"from": f"{year}-01-01", "until": f"{year + 1}-01-01"}
    me = tasks.auth("volunteer", account, org=org)
    r = await tasks.http.post(
        "/v1/certificates", headers=me, json={"account_id": account, **period}
    )
    assert r.status_code == 201, r.text
    cert: dict[str, Any] = r.json()
    assert (cert["jobs"], cert["service_minutes"], cert["service_hours"], cert["points"]) == (
        2, 570, 9.5, 50
    )  # fmt: skip
    assert (cert["from"], cert["until"]) == (period["from"], period["until"])

    # anyone, with no token at all, checks the code; the PDF is the same certificate
    anyone = tasks.http  # sends no Authorization header of its own
    r = await anyone.get(f"/v1/certificates/{cert['code']}")
    assert r.status_code == 200, r.text
    checked = r.json()
    assert {k: checked[k] for k in ("jobs", "service_minutes", "points", "account_id")} == {
        k: cert[k] for k in ("jobs", "service_minutes", "points", "account_id")
    }
    pdf = await anyone.get(cert["pdf"])
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-")
    # a code changed on paper is no certificate; a malformed one is refused
    forged = cert["code"][:-1] + ("0" if cert["code"][-1] != "0" else "1")
    assert (await anyone.get(f"/v1/certificates/{forged}")).status_code == 404
    assert (await anyone.get("/v1/certificates/JF-1234")).status_code == 422
    # issuing needs a token
    r = await anyone.post("/v1/certificates", json={"account_id": account, **period})
    assert r.status_code == 401


async def test_nobody_issues_a_certificate_in_anothers_name_or_from_another_organisation(
    apis: dict[str, Api],
) -> None:
    tasks = apis["tasks"]
    org, other = f"org-{uuid.uuid4().hex[:8]}", f"org-{uuid.uuid4().hex[:8]}"
    account = f"vol-{uuid.uuid4().hex[:8]}"
    await _served(tasks, org, account, 60, 10)
    period = {"from": "2026-01-01", "until": "2028-01-01"}
    body = {"account_id": account, **period}
    r = await tasks.http.post(
        "/v1/certificates", headers=tasks.auth("volunteer", "vol-someone", org=org), json=body
    )
    assert r.status_code == 403, r.text
    for role in ("merchant", "auditor", "operator"):
        r = await tasks.http.post("/v1/certificates", headers=tasks.auth(role, org=org), json=body)
        assert r.status_code == 403, (role, r.text)
    r = await tasks.http.post("/v1/certificates", headers=tasks.auth("officer", org=org), json=body)
    assert r.status_code == 201 and r.json()["jobs"] == 1, r.text
    # another organisation's officer: that organisation's record of the id, which is empty
    r = await tasks.http.post(
        "/v1/certificates", headers=tasks.auth("officer", org=other), json=body
    )
    assert r.status_code == 201 and (r.json()["jobs"], r.json()["points"]) == (0, 0), r.text
    assert r.json()["org_id"] == other
    r = await tasks.http.post(
        "/v1/certificates",
        headers={**tasks.auth("officer", org=org), "Accept-Language": "zh-CN"},
        json={**body, "until": "2025-01-01"},
    )
    assert r.status_code == 422 and r.json()["detail"] == "until 必须晚于 from", r.text
