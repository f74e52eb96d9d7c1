"""Claim reminders through the real worker (issue 21: "no one can be told anything … a claim
reminder"): a volunteer holding a place in a job that starts within the lead time
(JIFEN_TASKS_REMIND_BEFORE_MINUTES, 120) is told once through the sender; a job further off
gets nothing yet. (A place given back, a job already reported done and no phone on record:
tests/integration/tasks/test_tasks_reminders.py, the pass itself, with no worker racing it —
here the worker may remind a place in the moment before it is given back.)"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.helpers import Api, ensure_community, eventually, register

pytestmark = pytest.mark.e2e


async def test_a_place_held_is_reminded_once_before_the_job_starts(apis: dict[str, Api]) -> None:
    tasks = apis["tasks"]
    org = f"remind-{uuid.uuid4().hex[:8]}"
    officer, app = tasks.auth("officer", org=org), tasks.auth("app", org=org)
    await ensure_community(tasks, "grid-r", org=org)
    # the reminder says when on the organisation's clock (not UTC, not always Shanghai)
    r = await tasks.http.put(
        "/v1/organisation",
        headers=tasks.auth("admin", org=org),
        json={"name": "蓬莱社区", "timezone": "Europe/Berlin"},
    )
    assert r.status_code == 200, r.text
    phones = {}
    for who in ("vol-soon", "vol-later", "vol-second"):
        phones[who] = f"137{uuid.uuid4().int % 10**8:08d}"
        r = await tasks.http.post(
            "/v1/people",
            headers=tasks.auth("admin", org=org),
            json={"person_id": who, "phone": phones[who], "role": "volunteer"},
        )
        assert r.status_code == 201, r.text
    for who in (*phones, "vol-no-phone"):
        await register(tasks, who, "grid-r", org=org)
    now = datetime.now(UTC)

    async def job(starts_in: timedelta, title: str) -> dict[str, Any]:
        r = await tasks.http.post(
            "/v1/jobs",
            headers=officer,
            json={
                "community_id": "grid-r",
                "title": title,
                "category": "meal_delivery",
                "points": 5,
                "capacity": 5,
                "starts_at": (now + starts_in).isoformat(),
                "ends_at": (now + starts_in + timedelta(hours=1)).isoformat(),
                "place": {"address": "蓬莱路 3 号"},
            },
        )
        assert r.status_code == 201, r.text
        made: dict[str, Any] = r.json()
        return made

    async def claim(j: dict[str, Any], who: str) -> None:
        r = await tasks.http.post(
            f"/v1/jobs/{j['id']}/claims", headers=app, json={"account_id": who}
        )
        assert r.status_code == 201, r.text

    soon = await job(timedelta(minutes=40), "为独居老人送午餐 Lunch for elders")
    later = await job(timedelta(hours=5), "晚些的送餐 A later delivery")
    await claim(later, "vol-later")
    await claim(soon, "vol-no-phone")
    await claim(soon, "vol-soon")

    async def reminders() -> dict[str, list[str]]:
        r = await tasks.http.get(
            "/v1/signin/messages", headers=tasks.auth("operator", org=org), params={"limit": 100}
        )
        assert r.status_code == 200, r.text
        got: dict[str, list[str]] = {}
        for m in r.json()["items"]:
            got.setdefault(m["recipient"], []).append(m["body"])
        return got

    async def reminded(who: str) -> dict[str, list[str]] | None:
        got = await reminders()
        return got if phones[who] in got else None

    got = await eventually(lambda: reminded("vol-soon"), timeout=60, what="vol-soon's reminder")
    [text] = got[phones["vol-soon"]]
    assert "提醒" in text and "为独居老人送午餐" in text and "蓬莱路 3 号" in text, text
    local = datetime.fromisoformat(soon["starts_at"]).astimezone(ZoneInfo("Europe/Berlin"))
    assert text.startswith("【蓬莱社区】"), text
    assert f"将于 {local:%m-%d %H:%M} 开始" in text and "UTC" not in text, text
    # another place taken later is reminded by a later pass: the first is not told again
    await claim(soon, "vol-second")
    got = await eventually(lambda: reminded("vol-second"), timeout=60, what="a second reminder")
    assert len(got[phones["vol-soon"]]) == 1, got
    assert phones["vol-later"] not in got  # five hours off: not yet
