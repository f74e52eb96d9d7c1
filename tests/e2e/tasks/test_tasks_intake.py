"""Tasks: hazard reports and micro-wishes followed from request to task to done, duplicates
merged, items closed with a reason — each step visible in the item's history."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.helpers import Api, ensure_community, register

pytestmark = pytest.mark.e2e


def _org() -> str:
    return f"org-{uuid.uuid4().hex[:8]}"


def _job(title: str, points: int = 15) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "title": title,
        "category": "hazard_patrol",
        "points": points,
        "capacity": 2,
        "starts_at": (now - timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(hours=2)).isoformat(),
    }


async def _do_job(tasks: Api, org: str, job_id: str, account: str) -> dict[str, Any]:
    app = tasks.auth("app", org=org)
    await register(tasks, account, org=org)
    r = await tasks.http.post(
        f"/v1/jobs/{job_id}/claims", headers=app, json={"account_id": account}
    )
    assert r.status_code == 201, r.text
    r = await tasks.http.post(
        f"/v1/jobs/{job_id}/completions",
        headers={**app, "Idempotency-Key": f"k-{uuid.uuid4()}"},
        json={"account_id": account, "evidence": {"reference": "photo/after.jpg"}},
    )
    assert r.status_code == 201, r.text
    r = await tasks.http.post(
        f"/v1/completions/{r.json()['id']}/verify", headers=tasks.auth("officer", org=org)
    )
    assert r.status_code == 200, r.text
    done: dict[str, Any] = r.json()
    return done


async def test_a_hazard_report_is_followed_from_report_to_done(apis: dict[str, Api]) -> None:
    tasks = apis["tasks"]
    org = _org()
    reporter = "vol-rider-7"
    vol = tasks.auth("volunteer", reporter, org=org)
    officer = tasks.auth("officer", "officer-li", org=org)
    hazard = {
        "account_id": reporter,
        "community_id": "penglai-grid",
        "kind": "fire_risk",
        "text": "楼道电动车充电 e-bike charging in the stairwell",
    }
    # a community the organisation does not have, and a reporter who is a member of nothing
    r = await tasks.http.post("/v1/hazards", headers=vol, json=hazard)
    assert r.status_code == 409 and r.json()["reason"] == "unknown_community", r.text
    await ensure_community(tasks, org=org)
    r = await tasks.http.post("/v1/hazards", headers=vol, json=hazard)
    assert r.status_code == 409 and r.json()["reason"] == "not_a_member", r.text
    r = await tasks.http.get("/v1/hazards", headers=officer)
    assert r.json()["items"] == []
    await register(tasks, reporter, org=org)

    r = await tasks.http.post(
        "/v1/hazards",
        headers=vol,
        json={
            "account_id": reporter,
            "community_id": "penglai-grid",
            "kind": "fire_risk",
            "text": "楼道电动车充电 e-bike charging in the stairwell of building 3",
            "place": {"address": "蓬莱路 3 号", "lat": 22.58, "lng": 113.08},
            "evidence_ref": "photo/stair-3.jpg",
        },
    )
    assert r.status_code == 201, r.text
    report = r.json()
    assert report["status"] == "reported" and report["history"][0]["actor"] == reporter
    r = await tasks.http.post(
        "/v1/hazards",
        headers=vol,
        json={"account_id": reporter, "community_id": "penglai-grid", "kind": "flood", "text": "x"},
    )
    assert r.status_code == 422 and "kind" in r.json()["detail"]

    # the officer sees it in the queue and triages it into a job in the same community
    r = await tasks.http.get("/v1/hazards", headers=officer, params={"status": "reported"})
    assert [h["id"] for h in r.json()["items"]] == [report["id"]]
    r = await tasks.http.post(
        f"/v1/hazards/{report['id']}/triage",
        headers=officer,
        json={"job": _job("清理楼道充电 Clear the stairwell"), "reason": "fire risk: today"},
    )
    assert r.status_code == 200, r.text
    triaged = r.json()
    assert triaged["status"] == "in_progress" and triaged["job_id"]
    r = await tasks.http.get(f"/v1/jobs/{triaged['job_id']}", headers=officer)
    assert r.json()["community_id"] == "penglai-grid"
    # a report is triaged once
    r = await tasks.http.post(
        f"/v1/hazards/{report['id']}/triage", headers=officer, json={"job": _job("again")}
    )
    assert r.status_code == 409 and r.json()["reason"] == "wrong_state"
    assert r.json()["current_status"] == "in_progress"

    # a volunteer does the job; its verification closes the loop
    await _do_job(tasks, org, triaged["job_id"], "vol-fixer-1")
    r = await tasks.http.get(f"/v1/hazards/{report['id']}", headers=vol)
    assert r.status_code == 200
    done = r.json()
    assert done["status"] == "done"
    assert [(h["status"], h["actor"]) for h in done["history"]] == [
        ("reported", reporter),
        ("in_progress", "officer-li"),
        ("done", "officer-li"),
    ]
    assert done["history"][1]["job_id"] == triaged["job_id"]
    assert done["history"][1]["reason"] == "fire risk: today"
    # another volunteer does not see someone else's report
    r = await tasks.http.get(
        f"/v1/hazards/{report['id']}", headers=tasks.auth("volunteer", "vol-else", org=org)
    )
    assert r.status_code == 404


async def test_duplicates_are_merged_and_reports_closed_with_a_reason(
    apis: dict[str, Api],
) -> None:
    tasks = apis["tasks"]
    org = _org()
    app = tasks.auth("app", org=org)
    officer = tasks.auth("officer", org=org)
    await register(tasks, "vol-1", "xinhui-grid", org=org)

    async def report(text: str) -> dict[str, Any]:
        r = await tasks.http.post(
            "/v1/hazards",
            headers=app,
            json={
                "account_id": "vol-1",
                "community_id": "xinhui-grid",
                "kind": "sanitation_blind_spot",
                "text": text,
            },
        )
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body

    first, second, third = [await report(t) for t in ("垃圾堆 rubbish", "same rubbish", "bins")]
    r = await tasks.http.post(
        f"/v1/hazards/{second['id']}/merge",
        headers=officer,
        json={"duplicate_of": second["id"]},
    )
    assert r.status_code == 409 and "itself" in r.json()["detail"]
    r = await tasks.http.post(
        f"/v1/hazards/{second['id']}/merge",
        headers=officer,
        json={"duplicate_of": first["id"], "reason": "same corner, same day"},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["duplicate_of"]) == ("duplicate", first["id"])
    # merging into a duplicate points at the original instead
    r = await tasks.http.post(
        f"/v1/hazards/{third['id']}/merge", headers=officer, json={"duplicate_of": second["id"]}
    )
    assert r.status_code == 409 and r.json()["duplicate_of"] == first["id"]

    r = await tasks.http.post(f"/v1/hazards/{third['id']}/close", headers=officer, json={})
    assert r.status_code == 422 and "reason" in r.json()["detail"]
    r = await tasks.http.post(
        f"/v1/hazards/{third['id']}/close",
        headers=officer,
        json={"reason": "bins belong to the market: referred to its manager"},
    )
    assert r.status_code == 200 and r.json()["status"] == "closed"
    assert r.json()["history"][-1]["reason"].startswith("bins belong")
    r = await tasks.http.post(
        f"/v1/hazards/{third['id']}/triage", headers=officer, json={"job": _job("late")}
    )
    assert r.status_code == 409 and "closed" in r.json()["detail"]
    # apps cannot triage
    r = await tasks.http.post(
        f"/v1/hazards/{first['id']}/close", headers=app, json={"reason": "not mine"}
    )
    assert r.status_code == 403


async def test_a_micro_wish_is_claimed_turned_into_a_job_and_done(apis: dict[str, Api]) -> None:
    tasks = apis["tasks"]
    org = _org()
    officer = tasks.auth("officer", "officer-li", org=org)
    partner = tasks.auth("merchant", "partner-hardware", org=org)
    wish_body = {
        "community_id": "penglai-grid",
        "kind": "wish",
        "title": "修好楼道灯 Fix the stairwell light",
    }
    r = await tasks.http.post("/v1/needs", headers=tasks.auth("app", org=org), json=wish_body)
    assert r.status_code == 409 and r.json()["reason"] == "unknown_community", r.text
    await ensure_community(tasks, org=org)

    r = await tasks.http.post(
        "/v1/needs",
        headers=tasks.auth("app", org=org),
        json={
            "community_id": "penglai-grid",
            "kind": "wish",
            "title": "修好楼道灯 Fix the stairwell light",
            "description": "Building 5, third floor, dark for a week",
        },
    )
    assert r.status_code == 201, r.text
    wish = r.json()
    r = await tasks.http.post(
        "/v1/needs",
        headers=officer,
        json={"community_id": "penglai-grid", "kind": "offer", "title": "免费理发 Free haircuts"},
    )
    offer = r.json()
    r = await tasks.http.get(
        "/v1/needs", headers=partner, params={"kind": "wish", "status": "open"}
    )
    assert [n["id"] for n in r.json()["items"]] == [wish["id"]]

    # a partner claims it for themselves only; a second claim is refused, naming the first
    r = await tasks.http.post(
        f"/v1/needs/{wish['id']}/claim", headers=partner, json={"claimed_by": "partner-other"}
    )
    assert r.status_code == 403
    r = await tasks.http.post(
        f"/v1/needs/{wish['id']}/claim", headers=partner, json={"claimed_by": "partner-hardware"}
    )
    assert r.status_code == 200 and r.json()["status"] == "claimed", r.text
    r = await tasks.http.post(
        f"/v1/needs/{wish['id']}/claim",
        headers=tasks.auth("volunteer", "vol-9", org=org),
        json={"claimed_by": "vol-9"},
    )
    assert r.status_code == 409 and r.json()["claimed_by"] == "partner-hardware"

    r = await tasks.http.post(
        f"/v1/needs/{wish['id']}/job",
        headers=officer,
        json={"job": _job("换楼道灯 Replace the light", 8), "reason": "partner gives the bulb"},
    )
    assert r.status_code == 200, r.text
    job_id = r.json()["job_id"]
    await _do_job(tasks, org, job_id, "vol-9")
    r = await tasks.http.get(f"/v1/needs/{wish['id']}", headers=partner)
    assert r.json()["status"] == "done"
    assert [h["status"] for h in r.json()["history"]] == ["open", "claimed", "in_progress", "done"]

    r = await tasks.http.post(
        f"/v1/needs/{offer['id']}/close", headers=officer, json={"reason": "barber moved away"}
    )
    assert r.status_code == 200 and r.json()["status"] == "closed"


async def test_a_list_page_shows_each_item_as_its_own_read_does(apis: dict[str, Api]) -> None:
    """The lists read every item's history (and a wish's jobs) for the whole page at once;
    each listed item is still exactly what reading it alone gives, across pages."""
    tasks = apis["tasks"]
    org = _org()
    officer = tasks.auth("officer", "officer-li", org=org)
    await ensure_community(tasks, org=org)
    reporter = "vol-lister-1"
    await register(tasks, reporter, org=org)
    vol = tasks.auth("volunteer", reporter, org=org)

    needs = []
    for title in ("灯 Light", "椅子 Chairs", "门 Door"):
        r = await tasks.http.post(
            "/v1/needs",
            headers=officer,
            json={"community_id": "penglai-grid", "kind": "wish", "title": title},
        )
        assert r.status_code == 201, r.text
        needs.append(r.json()["id"])
    r = await tasks.http.post(
        f"/v1/needs/{needs[0]}/job",
        headers=officer,
        json={"job": _job("换灯 Replace it", 8), "reason": "today"},
    )
    assert r.status_code == 200, r.text
    r = await tasks.http.post(
        f"/v1/needs/{needs[1]}/close", headers=officer, json={"reason": "already done"}
    )
    assert r.status_code == 200, r.text

    hazards = []
    for text in ("电线 loose wires", "积水 standing water"):
        r = await tasks.http.post(
            "/v1/hazards",
            headers=vol,
            json={
                "account_id": reporter,
                "community_id": "penglai-grid",
                "kind": "fire_risk",
                "text": text,
            },
        )
        assert r.status_code == 201, r.text
        hazards.append(r.json()["id"])
    r = await tasks.http.post(
        f"/v1/hazards/{hazards[0]}/triage",
        headers=officer,
        json={"job": _job("修电线 Fix the wires"), "reason": "now"},
    )
    assert r.status_code == 200, r.text

    for path, made in (("/v1/needs", needs), ("/v1/hazards", hazards)):
        listed: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 2}
        while True:
            r = await tasks.http.get(path, headers=officer, params=params)
            assert r.status_code == 200, r.text
            listed += r.json()["items"]
            if not r.json()["next_cursor"]:
                break
            params["cursor"] = r.json()["next_cursor"]
        assert [i["id"] for i in listed] == made
        for item in listed:
            r = await tasks.http.get(f"{path}/{item['id']}", headers=officer)
            assert item == r.json()
    # the histories are each item's own: the triaged and the closed carry two steps
    assert any(len(i["history"]) > 1 for i in listed)
