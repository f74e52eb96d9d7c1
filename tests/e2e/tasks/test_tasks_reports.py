"""The activity report (issue 21, part 2), through the real processes: an organisation's
verified work per community and category — activities, attendances, distinct volunteers,
quantities, service hours, points — as JSON and CSV; the points it says were issued are what
the ledger credited (a revoked completion leaves both); only the scheme's officers, admin and
auditors read it, and only their own organisation's."""

from __future__ import annotations

import csv
import io
import uuid
import zipfile
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.helpers import Api, ensure_community, eventually, register

pytestmark = pytest.mark.e2e


async def _job(
    tasks: Api, org: str, community: str, category: str, points: int, minutes: int
) -> str:
    await ensure_community(tasks, community, org=org)
    now = datetime.now(UTC)
    r = await tasks.http.post(
        "/v1/jobs",
        headers=tasks.auth("officer", org=org),
        json={
            "community_id": community,
            "title": "社区服务 Community service",
            "category": category,
            "points": points,
            "capacity": 10,
            "starts_at": (now - timedelta(hours=1)).isoformat(),
            "ends_at": (now + timedelta(hours=1)).isoformat(),
            "service_minutes": minutes,
        },
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _done(tasks: Api, org: str, community: str, job: str, account: str, **extra: Any) -> str:
    await register(tasks, account, community, org=org)
    app = tasks.auth("app", org=org)
    r = await tasks.http.post(f"/v1/jobs/{job}/claims", headers=app, json={"account_id": account})
    assert r.status_code == 201, r.text
    r = await tasks.http.post(
        f"/v1/jobs/{job}/completions",
        headers={**app, "Idempotency-Key": f"k-{uuid.uuid4()}"},
        json={"account_id": account, **extra},
    )
    assert r.status_code == 201, r.text
    cid = str(r.json()["id"])
    r = await tasks.http.post(
        f"/v1/completions/{cid}/verify", headers=tasks.auth("officer", org=org)
    )
    assert r.status_code == 200, r.text
    return cid


async def test_the_report_counts_the_verified_work_and_reconciles_with_the_ledger(
    apis: dict[str, Api],
) -> None:
    tasks, points = apis["tasks"], apis["points"]
    org = f"org-{uuid.uuid4().hex[:8]}"
    vols = [f"vol-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    meals_a = await _job(tasks, org, "grid-a", "meal_delivery", 20, 90)
    repair_a = await _job(tasks, org, "grid-a", "free_repair_day", 30, 480)
    meals_b = await _job(tasks, org, "grid-b", "meal_delivery", 20, 60)
    await _done(tasks, org, "grid-a", meals_a, vols[0], quantity=6)
    await _done(tasks, org, "grid-a", meals_a, vols[1], quantity=4)
    await _done(tasks, org, "grid-a", repair_a, vols[0], quantity=3)
    await _done(tasks, org, "grid-b", meals_b, vols[2], quantity=5)
    revoked = await _done(tasks, org, "grid-b", meals_b, vols[0], quantity=9)

    async def credited() -> bool:
        r = await tasks.http.get(
            f"/v1/completions/{revoked}", headers=tasks.auth("officer", org=org)
        )
        return r.json()["credited_at"] is not None

    await eventually(credited, timeout=90, what="the ledger crediting the completion")
    r = await tasks.http.post(
        f"/v1/completions/{revoked}/revoke",
        headers=tasks.auth("admin", org=org),
        json={"reason": "未送达 not delivered"},
    )
    assert r.status_code == 200, r.text
    auditor = tasks.auth("auditor", org=org)
    r = await tasks.http.get("/v1/reports/activity", headers=auditor)
    assert r.status_code == 200, r.text
    report = r.json()
    total = report["total"]
    assert (total["activities"], total["attendances"], total["volunteers"]) == (3, 4, 3)
    assert total["service_minutes"] == 90 * 2 + 480 + 60 and total["points"] == 90
    assert {q["unit"]: q["quantity"] for q in total["quantities"]} == {"meals": 15, "bikes": 3}
    rows = {(x["community_id"], x["category"]): x for x in report["rows"]}
    meal_a = rows[("grid-a", "meal_delivery")]
    assert (meal_a["attendances"], meal_a["volunteers"], meal_a["quantity"], meal_a["unit_zh"]) == (
        2, 2, 10, "份"
    )  # fmt: skip
    assert rows[("grid-a", "free_repair_day")]["category_zh"] == "义务维修日"
    community = {c["community_id"]: c for c in report["communities"]}
    assert (community["grid-a"]["volunteers"], community["grid-b"]["attendances"]) == (2, 1)

    # the ledger credited exactly the points the report says were issued
    async def ledger_total() -> int | None:
        got = 0
        for v in vols:
            b = await points.http.get(
                f"/v1/accounts/{v}/balance", headers=points.auth("auditor", org=org)
            )
            got += int(b.json()["balance"])
        return got if got == total["points"] else None

    await eventually(
        ledger_total, timeout=90, what="the ledger's credits equal the report's points"
    )
    # and the points service's report says the same of its ledger: 110 issued, 20 taken back
    r = await points.http.get("/v1/reports/points", headers=points.auth("auditor", org=org))
    assert r.status_code == 200, r.text
    moved = r.json()
    assert (moved["total"]["issued"], moved["total"]["reversed"]) == (110, 20), moved
    assert (moved["opening_outstanding"], moved["closing_outstanding"]) == (0, total["points"])
    by_category = {c["category"]: c for c in moved["categories"]}
    assert by_category["free_repair_day"]["issued"] == 30
    assert by_category["meal_delivery"]["category_zh"] == "助老送餐"

    # one community, and the CSV of the same figures
    r = await tasks.http.get(
        "/v1/reports/activity", headers=auditor, params={"community_id": "grid-b", "format": "csv"}
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv"), r.text
    lines = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert lines[0][0] == "社区 community_id" and lines[-1][0] == "合计 total"
    assert lines[-1][4:9] == ["1", "1", "1", "1.0", "20"]
    r = await tasks.http.get("/v1/reports/activity", headers=auditor, params={"format": "xlsx"})
    assert r.status_code == 200 and r.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    ), r.text
    book = zipfile.ZipFile(io.BytesIO(r.content))
    assert "义务维修日" in book.read("xl/sharedStrings.xml").decode()
    # last month holds none of it
    last = (datetime.now(UTC).replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    r = await tasks.http.get("/v1/reports/activity", headers=auditor, params={"month": last})
    assert r.json()["total"]["attendances"] == 0 and r.json()["rows"] == []


async def test_only_the_schemes_officers_admin_and_auditors_read_their_own_report(
    apis: dict[str, Api],
) -> None:
    tasks = apis["tasks"]
    org, other = f"org-{uuid.uuid4().hex[:8]}", f"org-{uuid.uuid4().hex[:8]}"
    job = await _job(tasks, org, "grid-a", "meal_delivery", 10, 30)
    await _done(tasks, org, "grid-a", job, f"vol-{uuid.uuid4().hex[:8]}", quantity=2)
    for role in ("officer", "admin", "auditor"):
        r = await tasks.http.get("/v1/reports/activity", headers=tasks.auth(role, org=org))
        assert r.status_code == 200 and r.json()["total"]["attendances"] == 1, (role, r.text)
    for role in ("volunteer", "app", "merchant", "operator"):
        r = await tasks.http.get("/v1/reports/activity", headers=tasks.auth(role, org=org))
        assert r.status_code == 403, (role, r.text)
    # another organisation's auditor sees its own (empty) scheme, nothing of this one
    r = await tasks.http.get("/v1/reports/activity", headers=tasks.auth("auditor", org=other))
    assert r.status_code == 200 and r.json()["total"]["attendances"] == 0
    assert "grid-a" not in r.text and org not in r.text
    r = await tasks.http.get(
        "/v1/reports/activity",
        headers={**tasks.auth("auditor", org=org), "Accept-Language": "zh-CN"},
        params={"month": "2026-11", "from": "2026-11-01"},
    )
    assert r.status_code == 422 and r.json()["reason"] == "bad_period", r.text
    assert r.json()["detail"] == "请给出 month，或 from 与 until，不要同时给"
