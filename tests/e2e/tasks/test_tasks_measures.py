"""What a completion counts (issue 21, part 1), through the real processes: categories say
their unit in both languages, a job carries its service time, a completion its quantity in
its category's unit; a quantity where the category counts none is refused (422, in the
caller's language) and records nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.helpers import Api, ensure_community, register

pytestmark = pytest.mark.e2e


def _org() -> str:
    return f"org-{uuid.uuid4().hex[:8]}"


async def _job(tasks: Api, org: str, category: str, **extra: Any) -> dict[str, Any]:
    await ensure_community(tasks, org=org)
    now = datetime.now(UTC)
    r = await tasks.http.post(
        "/v1/jobs",
        headers=tasks.auth("officer", org=org),
        json={
            "community_id": "penglai-grid",
            "title": "助老送餐 Meal delivery",
            "category": category,
            "points": 10,
            "capacity": 3,
            "starts_at": (now - timedelta(hours=1)).isoformat(),
            "ends_at": (now + timedelta(hours=1)).isoformat(),
            **extra,
        },
    )
    assert r.status_code == 201, r.text
    job: dict[str, Any] = r.json()
    return job


async def _complete(
    tasks: Api, org: str, job: dict[str, Any], account: str, lang: str = "zh-CN", **extra: Any
) -> Any:
    await register(tasks, account, org=org)
    app = tasks.auth("app", org=org)
    r = await tasks.http.post(
        f"/v1/jobs/{job['id']}/claims", headers=app, json={"account_id": account}
    )
    assert r.status_code == 201, r.text
    return await tasks.http.post(
        f"/v1/jobs/{job['id']}/completions",
        headers={**app, "Idempotency-Key": f"k-{uuid.uuid4()}", "Accept-Language": lang},
        json={"account_id": account, **extra},
    )


async def test_categories_say_their_unit_in_both_languages(apis: dict[str, Api]) -> None:
    tasks = apis["tasks"]
    org = _org()
    officer = tasks.auth("officer", org=org)
    r = await tasks.http.post(
        "/v1/categories",
        headers=officer,
        json={"code": "flood_watch", "label": "防汛巡查 Flood watch", "unit": "hours"},
    )
    assert r.status_code == 201, r.text
    assert (r.json()["unit"], r.json()["unit_zh"], r.json()["unit_en"]) == (
        "hours",
        "小时",
        "hours",
    )
    r = await tasks.http.post(
        "/v1/categories", headers=officer, json={"code": "flood", "label": "x", "unit": "litres"}
    )
    assert r.status_code == 422, r.text  # only the units reports can add up
    r = await tasks.http.get("/v1/categories", headers=officer)
    units = {c["code"]: (c["unit"], c["unit_zh"]) for c in r.json()["items"]}
    assert units["meal_delivery"] == ("meals", "份")
    assert units["free_repair_day"] == ("bikes", "辆")
    assert units["other"] == (None, None)
    assert units["flood_watch"] == ("hours", "小时")


async def test_a_completion_records_its_quantity_in_the_categorys_unit(
    apis: dict[str, Api],
) -> None:
    tasks = apis["tasks"]
    org = _org()
    job = await _job(tasks, org, "meal_delivery", service_minutes=90)
    assert job["service_minutes"] == 90
    r = await tasks.http.get(f"/v1/jobs/{job['id']}", headers=tasks.auth("officer", org=org))
    assert r.json()["service_minutes"] == 90
    r = await _complete(tasks, org, job, f"vol-{uuid.uuid4().hex[:8]}", quantity=6)
    assert r.status_code == 201, r.text
    assert (r.json()["quantity"], r.json()["unit"]) == (6, "meals")
    r = await tasks.http.get(
        f"/v1/completions/{r.json()['id']}", headers=tasks.auth("officer", org=org)
    )
    assert (r.json()["quantity"], r.json()["unit"]) == (6, "meals")
    # without a quantity: an activity counted, no number invented
    r = await _complete(tasks, org, job, f"vol-{uuid.uuid4().hex[:8]}")
    assert r.status_code == 201, r.text
    assert (r.json()["quantity"], r.json()["unit"]) == (None, None)


async def test_a_quantity_where_the_category_counts_none_is_refused_and_records_nothing(
    apis: dict[str, Api],
) -> None:
    tasks = apis["tasks"]
    org = _org()
    officer = tasks.auth("officer", org=org)
    job = await _job(tasks, org, "other")
    account = f"vol-{uuid.uuid4().hex[:8]}"
    r = await _complete(tasks, org, job, account, quantity=3)
    assert r.status_code == 422, r.text
    assert r.json()["reason"] == "no_quantity"
    assert r.headers["content-language"] == "zh-CN" and "不计数量" in r.json()["detail"]
    r = await tasks.http.get("/v1/completions", headers=officer, params={"account_id": account})
    assert r.json()["items"] == []
    # the same volunteer, the same claim, without the number: accepted
    r = await tasks.http.post(
        f"/v1/jobs/{job['id']}/completions",
        headers={**tasks.auth("app", org=org), "Idempotency-Key": f"k-{uuid.uuid4()}"},
        json={"account_id": account},
    )
    assert r.status_code == 201, r.text
    # a custom category without a unit counts none either; with one, it does
    for code, unit in (("tea_party", None), ("flood_watch", "hours")):
        body = {"code": code, "label": code, **({"unit": unit} if unit else {})}
        r = await tasks.http.post("/v1/categories", headers=officer, json=body)
        assert r.status_code == 201, r.text
    r = await _complete(tasks, org, await _job(tasks, org, "tea_party"), "vol-t1", quantity=1)
    assert r.status_code == 422 and r.json()["reason"] == "no_quantity", r.text
    r = await _complete(tasks, org, await _job(tasks, org, "flood_watch"), "vol-f1", quantity=4)
    assert r.status_code == 201 and r.json()["unit"] == "hours", r.text


async def test_a_rolled_month_keeps_the_series_service_time(apis: dict[str, Api]) -> None:
    tasks = apis["tasks"]
    org = _org()
    officer = tasks.auth("officer", org=org)
    await ensure_community(tasks, org=org)
    r = await tasks.http.post(
        "/v1/jobs",
        headers=officer,
        json={
            "community_id": "penglai-grid",
            "title": "免费维修电动车 Free e-bike repair day",
            "category": "free_repair_day",
            "points": 30,
            "capacity": 4,
            "starts_at": "2027-01-15T01:00:00Z",
            "ends_at": "2027-01-15T09:00:00Z",
            "recurrence": "monthly",
            "service_minutes": 480,
        },
    )
    assert r.status_code == 201, r.text
    r = await tasks.http.post(
        "/v1/menus/roll", headers=officer, json={"community_id": "penglai-grid", "month": "2027-02"}
    )
    assert r.status_code == 201, r.text
    assert [(j["starts_at"][:10], j["service_minutes"]) for j in r.json()] == [
        ("2027-02-15", 480)
    ], r.text
