"""Tasks: organisations, communities and categories, the monthly service menu, check-in codes,
claim withdrawal and the capacity race, through the real processes. Each test works in an
organisation of its own, so its limits and lists are not disturbed by other tests."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from jifen.tasks.domain.checkin import code_for, step_of
from jifen.tasks.settings import TasksSettings
from tests.helpers import Api, ensure_community, eventually, register

pytestmark = pytest.mark.e2e


def _org() -> str:
    return f"org-{uuid.uuid4().hex[:8]}"


def _window(start_in: timedelta = timedelta(hours=-1), hours: int = 2) -> dict[str, str]:
    start = datetime.now(UTC) + start_in
    return {
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=hours)).isoformat(),
    }


async def _job(tasks: Api, org: str, **over: Any) -> dict[str, Any]:
    await ensure_community(tasks, org=org)
    body = {
        "community_id": "penglai-grid",
        "title": "交通劝导 Traffic guidance",
        "category": "traffic_guidance",
        "points": 10,
        "capacity": 3,
        **_window(),
        **over,
    }
    r = await tasks.http.post("/v1/jobs", headers=tasks.auth("officer", org=org), json=body)
    assert r.status_code == 201, r.text
    job: dict[str, Any] = r.json()
    return job


async def test_communities_registration_and_categories(apis: dict[str, Api]) -> None:
    tasks = apis["tasks"]
    org = _org()
    officer = tasks.auth("officer", org=org)
    r = await tasks.http.post(
        "/v1/communities", headers=officer, json={"id": "penglai-grid", "name": "蓬莱路网格"}
    )
    assert r.status_code == 201, r.text
    again = await tasks.http.post(
        "/v1/communities", headers=officer, json={"id": "penglai-grid", "name": "again"}
    )
    assert again.status_code == 409 and again.json()["reason"] == "community_exists"
    await tasks.http.post(
        "/v1/communities", headers=officer, json={"id": "xinhui-grid", "name": "新会网格"}
    )

    # a volunteer reports to two communities; registering twice is harmless
    vol = tasks.auth("volunteer", "vol-reg-1", org=org)
    for community in ("penglai-grid", "xinhui-grid"):
        r = await tasks.http.post(
            f"/v1/communities/{community}/members", headers=vol, json={"account_id": "vol-reg-1"}
        )
        assert r.status_code == 201, r.text
    r = await tasks.http.post(
        "/v1/communities/penglai-grid/members", headers=vol, json={"account_id": "vol-reg-1"}
    )
    assert r.status_code == 200
    # not for somebody else, and not in a community that does not exist
    r = await tasks.http.post(
        "/v1/communities/penglai-grid/members", headers=vol, json={"account_id": "vol-other"}
    )
    assert r.status_code == 403 and "own account" in r.json()["detail"]
    r = await tasks.http.post(
        "/v1/communities/nowhere/members", headers=vol, json={"account_id": "vol-reg-1"}
    )
    assert r.status_code == 409 and r.json()["reason"] == "unknown_community"
    assert "nowhere" in r.json()["detail"]

    r = await tasks.http.get("/v1/volunteers/vol-reg-1/communities", headers=vol)
    assert [c["id"] for c in r.json()["items"]] == ["penglai-grid", "xinhui-grid"]
    r = await tasks.http.get("/v1/communities", headers=officer)
    assert {c["id"]: c["members"] for c in r.json()["items"]} == {
        "penglai-grid": 1,
        "xinhui-grid": 1,
    }

    # categories: an unknown one is refused until the organisation adds it
    r = await tasks.http.post(
        "/v1/jobs",
        headers=officer,
        json={
            "community_id": "penglai-grid",
            "title": "防汛巡查 Flood watch",
            "category": "flood_watch",
            "points": 15,
            "capacity": 2,
            **_window(),
        },
    )
    assert r.status_code == 409 and r.json()["reason"] == "unknown_category"
    assert "meal_delivery" in r.json()["known"]
    r = await tasks.http.post(
        "/v1/categories", headers=officer, json={"code": "flood_watch", "label": "防汛巡查"}
    )
    assert r.status_code == 201, r.text
    job = await _job(tasks, org, category="flood_watch")
    assert job["category"] == "flood_watch"
    r = await tasks.http.get("/v1/categories", headers=officer)
    codes = {c["code"]: c["built_in"] for c in r.json()["items"]}
    assert codes["flood_watch"] is False and codes["meal_delivery"] is True
    meals = next(c for c in r.json()["items"] if c["code"] == "meal_delivery")
    assert (meals["label"], meals["label_zh"], meals["label_en"]) == (
        "助老送餐 Meal delivery",
        "助老送餐",
        "Meal delivery",
    )
    # another organisation does not see it
    r = await tasks.http.get("/v1/categories", headers=tasks.auth("officer", org=_org()))
    assert "flood_watch" not in {c["code"] for c in r.json()["items"]}


async def test_the_monthly_menu_is_published_at_once_and_listed(apis: dict[str, Api]) -> None:
    tasks = apis["tasks"]
    org = _org()
    officer = tasks.auth("officer", org=org)

    def day(d: int, hour: int = 2) -> dict[str, str]:
        start = datetime(2031, 3, d, hour, tzinfo=UTC)
        return {
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(hours=3)).isoformat(),
        }

    menu = {
        "community_id": "penglai-grid",
        "month": "2031-03",
        "jobs": [
            {
                "title": "免费维修电动车 Repair day",
                "category": "free_repair_day",
                "points": 30,
                "capacity": 1,
                **day(15),
            },
            {
                "title": "为独居老人送餐 Meals",
                "category": "meal_delivery",
                "points": 20,
                "capacity": 4,
                **day(3),
            },
            {
                "title": "文明劝导 Civility",
                "category": "civility_persuasion",
                "points": 10,
                "capacity": 2,
                **day(20),
            },
        ],
    }
    # one job outside the month: nothing of the menu is published
    bad = {
        **menu,
        "jobs": [
            *menu["jobs"],
            {**menu["jobs"][0], **day(1)}
            | {"starts_at": "2031-04-01T02:00:00Z", "ends_at": "2031-04-01T05:00:00Z"},
        ],
    }
    # a menu for a community the organisation does not have is refused, naming it
    r = await tasks.http.post("/v1/menus", headers=officer, json=menu)
    assert r.status_code == 409 and r.json()["reason"] == "unknown_community", r.text
    assert "penglai-grid" in r.json()["detail"]
    await register(tasks, "vol-m-1", org=org)  # makes the community too
    r = await tasks.http.post("/v1/menus", headers=officer, json=bad)
    assert r.status_code == 409 and "jobs[3]" in r.json()["detail"], r.text
    r = await tasks.http.get("/v1/jobs", headers=officer, params={"month": "2031-03"})
    assert r.json()["items"] == []

    r = await tasks.http.post("/v1/menus", headers=officer, json=menu)
    assert r.status_code == 201, r.text
    assert len(r.json()) == 3
    repair = next(j for j in r.json() if j["category"] == "free_repair_day")

    # anyone of the organisation lists the menu by community and month, oldest first
    app = tasks.auth("app", org=org)
    r = await tasks.http.get(
        "/v1/jobs", headers=app, params={"community_id": "penglai-grid", "month": "2031-03"}
    )
    assert [j["category"] for j in r.json()["items"]] == [
        "meal_delivery",
        "free_repair_day",
        "civility_persuasion",
    ]
    r = await tasks.http.get(
        "/v1/jobs", headers=app, params={"month": "2031-03", "category": "meal_delivery"}
    )
    assert [j["title"] for j in r.json()["items"]] == ["为独居老人送餐 Meals"]
    # the single repair place is taken: `open` leaves it out
    r = await tasks.http.post(
        f"/v1/jobs/{repair['id']}/claims", headers=app, json={"account_id": "vol-m-1"}
    )
    assert r.status_code == 201
    r = await tasks.http.get("/v1/jobs", headers=app, params={"month": "2031-03", "open": "true"})
    jobs = r.json()["items"]
    assert repair["id"] not in {j["id"] for j in jobs} and len(jobs) == 2
    # other months and other organisations see none of it
    r = await tasks.http.get("/v1/jobs", headers=app, params={"month": "2031-04"})
    assert r.json()["items"] == []
    r = await tasks.http.get(
        "/v1/jobs", headers=tasks.auth("app", org=_org()), params={"month": "2031-03"}
    )
    assert r.json()["items"] == []
    r = await tasks.http.get("/v1/jobs", headers=app, params={"month": "2031-13"})
    assert r.status_code == 422 and "month" in r.json()["detail"]


async def _code_steps_ago(tasks: Api, job_id: str, steps: int) -> str:
    """The code the job showed ``steps`` steps ago: what a photo of the screen holds. Read with
    the job's secret from the database, as only the service itself can."""
    conn = await asyncpg.connect(tasks.stack.owner_dsn("tasks"))
    try:
        secret = await conn.fetchval(
            "SELECT checkin_secret FROM job WHERE id = $1", uuid.UUID(job_id)
        )
    finally:
        await conn.close()
    now = datetime.now(UTC)
    return code_for(secret, job_id, step_of(now, TasksSettings().checkin_step_seconds) - steps)


async def test_checkin_code_rotates_and_a_photo_of_it_does_not_work(apis: dict[str, Api]) -> None:
    tasks, points = apis["tasks"], apis["points"]
    org = _org()
    account, other_account = (f"vol-{uuid.uuid4().hex[:8]}" for _ in range(2))
    officer = tasks.auth("officer", org=org)
    job = await _job(tasks, org, verification="checkin", points=12)
    other = await _job(tasks, org, verification="checkin")
    assert "checkin_code" not in job and "checkin_secret" not in job  # never in a job

    # an officer fetches the code to show at the place; apps and volunteers may not
    r = await tasks.http.get(f"/v1/jobs/{job['id']}/checkin-code", headers=officer)
    assert r.status_code == 200, r.text
    shown = r.json()
    code = shown["code"]
    assert len(code) == 6 and shown["job_id"] == job["id"]
    assert shown["valid_from"] < shown["refresh_at"] < shown["expires_at"]
    assert shown["qr_payload"] == f"jifen:checkin?job={job['id']}&code={code}"
    assert r.headers["cache-control"] == "no-store"
    app = tasks.auth("app", org=org)
    for who in (app, tasks.auth("volunteer", account, org=org)):
        r = await tasks.http.get(f"/v1/jobs/{job['id']}/checkin-code", headers=who)
        assert r.status_code == 403
    r = await tasks.http.get(
        f"/v1/jobs/{job['id']}/checkin-code", headers=tasks.auth("officer", org=_org())
    )
    assert r.status_code == 404  # another organisation's job
    plain = await _job(tasks, org)
    r = await tasks.http.get(f"/v1/jobs/{plain['id']}/checkin-code", headers=officer)
    assert r.status_code == 409 and r.json()["reason"] == "not_checkin"
    r = await tasks.http.get(f"/v1/jobs/{other['id']}/checkin-code", headers=officer)
    other_code = r.json()["code"]

    for a in (account, other_account):
        await register(tasks, a, org=org)
        r = await tasks.http.post(
            f"/v1/jobs/{job['id']}/claims", headers=app, json={"account_id": a}
        )
        assert r.status_code == 201, r.text

    async def complete(code: str | None, who: str = account) -> Any:
        body: dict[str, Any] = {"account_id": who}
        if code is not None:
            body["checkin_code"] = code
        return await tasks.http.post(
            f"/v1/jobs/{job['id']}/completions",
            headers={**app, "Idempotency-Key": f"k-{uuid.uuid4()}"},
            json=body,
        )

    # no code: said, and not counted as a guess
    r = await complete(None)
    assert r.status_code == 409 and r.json()["reason"] == "wrong_checkin_code"
    # the photo of the poster: the code of an earlier window is refused
    photo = await _code_steps_ago(tasks, job["id"], 2)
    r = await complete(photo)
    assert r.status_code == 409 and r.json()["reason"] == "wrong_checkin_code", r.text
    assert "expired" in r.json()["detail"] and r.json()["attempts_left"] == 4
    # another job's code, and guesses: five wrong codes in all, then 429 with Retry-After
    r = await complete(other_code)
    assert r.status_code == 409 and r.json()["reason"] == "wrong_checkin_code"
    for guess in ("AAAAAA", "BBBBBB", "CCCCCC"):
        r = await complete(guess)
        assert r.status_code == 409, r.text
    assert r.json()["attempts_left"] == 0
    r = await complete(code)  # locked out now: even the right code waits
    assert r.status_code == 429, r.text
    assert r.json()["reason"] == "too_many_attempts"
    assert int(r.headers["retry-after"]) == r.json()["retry_after"] > 0
    assert r.headers["content-type"].startswith("application/problem+json")
    r = await tasks.http.get("/v1/completions", headers=officer, params={"account_id": account})
    assert r.json()["items"] == []  # nothing recorded, nothing credited

    # the right current code works for another volunteer at the place, verified at once;
    # typed in lower case off the screen is fine
    r = await tasks.http.get(f"/v1/jobs/{job['id']}/checkin-code", headers=officer)
    r = await complete(r.json()["code"].lower(), other_account)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "verified" and r.json()["verified_by"] == "system:checkin"

    async def credited() -> bool:
        b = await points.http.get(
            f"/v1/accounts/{other_account}/balance",
            headers=points.auth("volunteer", other_account, org=org),
        )
        return b.json()["balance"] == 12

    await eventually(credited, what="check-in credit")
    b = await points.http.get(
        f"/v1/accounts/{account}/balance", headers=points.auth("volunteer", account, org=org)
    )
    assert b.json()["balance"] == 0


async def test_a_claim_is_withdrawn_before_the_window_and_the_place_released(
    apis: dict[str, Api],
) -> None:
    tasks = apis["tasks"]
    org = _org()
    app = tasks.auth("app", org=org)
    later = await _job(tasks, org, capacity=1, **_window(timedelta(hours=5)))
    for a in ("vol-w-1", "vol-w-2"):
        await register(tasks, a, org=org)
    r = await tasks.http.post(
        f"/v1/jobs/{later['id']}/claims", headers=app, json={"account_id": "vol-w-1"}
    )
    assert r.status_code == 201
    r = await tasks.http.post(
        f"/v1/jobs/{later['id']}/claims", headers=app, json={"account_id": "vol-w-2"}
    )
    assert r.status_code == 409 and r.json()["reason"] == "job_full"

    # a volunteer withdraws only their own claim
    r = await tasks.http.post(
        f"/v1/jobs/{later['id']}/claims/vol-w-1/withdraw",
        headers=tasks.auth("volunteer", "vol-w-2", org=org),
    )
    assert r.status_code == 403
    r = await tasks.http.post(
        f"/v1/jobs/{later['id']}/claims/vol-w-1/withdraw",
        headers=tasks.auth("volunteer", "vol-w-1", org=org),
    )
    assert r.status_code == 200, r.text
    assert r.json()["withdrawn_at"] is not None and r.json()["withdrawn_by"] == "vol-w-1"
    r = await tasks.http.get(f"/v1/jobs/{later['id']}", headers=app)
    assert r.json()["claimed"] == 0
    r = await tasks.http.post(f"/v1/jobs/{later['id']}/claims/vol-w-1/withdraw", headers=app)
    assert r.status_code == 409 and r.json()["reason"] == "no_claim"
    # the place went back: another volunteer takes it, and the first may claim again later
    r = await tasks.http.post(
        f"/v1/jobs/{later['id']}/claims", headers=app, json={"account_id": "vol-w-2"}
    )
    assert r.status_code == 201

    # once the window has started, a claim stays
    running = await _job(tasks, org)
    await tasks.http.post(
        f"/v1/jobs/{running['id']}/claims", headers=app, json={"account_id": "vol-w-1"}
    )
    r = await tasks.http.post(f"/v1/jobs/{running['id']}/claims/vol-w-1/withdraw", headers=app)
    assert r.status_code == 409 and r.json()["reason"] == "not_withdrawable"
    assert "before its window starts" in r.json()["detail"]
    # the refusal a person reads says when on the organisation's clock (Asia/Shanghai until
    # its admin sets another), the fact an app reads stays UTC
    local = datetime.fromisoformat(running["starts_at"]).astimezone(ZoneInfo("Asia/Shanghai"))
    assert f"{local:%Y-%m-%d %H:%M} local time" in r.json()["detail"], r.text
    assert datetime.fromisoformat(r.json()["starts_at"]) == datetime.fromisoformat(
        running["starts_at"]
    )

    # a completion before the window: its start, on the clock the organisation now sets
    r = await tasks.http.put(
        "/v1/organisation", headers=tasks.auth("admin", org=org), json={"timezone": "Asia/Kolkata"}
    )
    assert r.status_code == 200, r.text
    r = await tasks.http.post(  # vol-w-2 took the place vol-w-1 gave back
        f"/v1/jobs/{later['id']}/completions",
        headers={**app, "Idempotency-Key": f"k-{uuid.uuid4()}", "Accept-Language": "zh"},
        json={"account_id": "vol-w-2", "evidence": {"note": "早到了 too early"}},
    )
    assert r.status_code == 409 and r.json()["reason"] == "outside_window", r.text
    local = datetime.fromisoformat(later["starts_at"]).astimezone(ZoneInfo("Asia/Kolkata"))
    assert f"岗位 {local:%Y-%m-%d %H:%M}（当地时间）才开始" in r.json()["detail"], r.text


async def test_fifty_concurrent_claims_on_five_places(apis: dict[str, Api]) -> None:
    tasks = apis["tasks"]
    org = _org()
    job = await _job(tasks, org, capacity=5)
    app = tasks.auth("app", org=org)
    for i in range(50):
        await register(tasks, f"vol-c-{i:03d}", org=org)
    results = await asyncio.gather(
        *[
            tasks.http.post(
                f"/v1/jobs/{job['id']}/claims", headers=app, json={"account_id": f"vol-c-{i:03d}"}
            )
            for i in range(50)
        ]
    )
    codes = [r.status_code for r in results]
    assert codes.count(201) == 5 and codes.count(409) == 45, codes
    assert {r.json()["reason"] for r in results if r.status_code == 409} == {"job_full"}
    r = await tasks.http.get(f"/v1/jobs/{job['id']}", headers=app)
    assert r.json()["claimed"] == 5


async def test_a_monthly_repair_day_rolls_into_the_next_months_once(apis: dict[str, Api]) -> None:
    tasks = apis["tasks"]
    org = _org()
    officer = tasks.auth("officer", org=org)
    start = datetime(2032, 5, 15, 1, tzinfo=UTC)
    repair = await _job(
        tasks,
        org,
        title="免费维修电动车 Free e-bike repair day",
        category="free_repair_day",
        points=30,
        capacity=4,
        recurrence="monthly",
        place={"address": "蓬莱路 1 号"},
        starts_at=start.isoformat(),
        ends_at=(start + timedelta(hours=8)).isoformat(),
    )
    assert repair["recurrence"] == "monthly" and repair["series_id"] == repair["id"]
    await _job(
        tasks, org, starts_at=start.isoformat(), ends_at=(start + timedelta(hours=1)).isoformat()
    )

    r = await tasks.http.post(
        "/v1/menus/roll", headers=officer, json={"community_id": "penglai-grid", "month": "2032-06"}
    )
    assert r.status_code == 201, r.text
    [june] = r.json()  # only the recurring job rolls
    assert june["starts_at"].startswith("2032-06-15T01:00:00")
    assert june["ends_at"].startswith("2032-06-15T09:00:00")
    assert (june["series_id"], june["points"], june["capacity"], june["claimed"]) == (
        repair["id"],
        30,
        4,
        0,
    )
    assert june["place_address"] == "蓬莱路 1 号"
    # rolling the same month again adds nothing
    r = await tasks.http.post(
        "/v1/menus/roll", headers=officer, json={"community_id": "penglai-grid", "month": "2032-06"}
    )
    assert r.status_code == 201 and r.json() == []
    r = await tasks.http.get("/v1/jobs", headers=officer, params={"month": "2032-06"})
    assert [j["id"] for j in r.json()["items"]] == [june["id"]]

    # a monthly job on the 30th could not recur in February: refused, said why
    late = datetime(2032, 5, 30, 1, tzinfo=UTC)
    r = await tasks.http.post(
        "/v1/jobs",
        headers=officer,
        json={
            "community_id": "penglai-grid",
            "title": "月底 month end",
            "category": "other",
            "points": 5,
            "capacity": 1,
            "recurrence": "monthly",
            "starts_at": late.isoformat(),
            "ends_at": (late + timedelta(hours=1)).isoformat(),
        },
    )
    assert r.status_code == 409 and "day 1-28" in r.json()["detail"]
