"""Demo data for ``make run``, created through the public APIs (so it exercises the real path):
one union branch, two grids, a month of jobs, a few rewards, and three volunteers who report
in to the first grid and are credited for a job there."""

from __future__ import annotations

import calendar
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from jifen.devtools.devstack import DevStack

COMMUNITIES = ("penglai-grid", "dongcheng-grid")
COMMUNITY_NAMES = ("蓬莱路网格 Penglai grid", "东成网格 Dongcheng grid")
# (day rule, category, title, points, capacity, start hour UTC, hours)
MENU = [
    ("daily", "meal_delivery", "为独居老人送午餐 Lunch delivery to isolated elders", 20, 6, 3, 2),
    (
        "weekday",
        "traffic_guidance",
        "学校路口交通引导 School-crossing traffic guidance",
        15,
        4,
        23,
        1,
    ),
    ("saturday", "hazard_patrol", "楼道消防隐患巡查 Stairwell fire-hazard patrol", 25, 5, 6, 3),
    ("sunday", "elder_visit", "探访独居老人 Visiting isolated elders", 20, 4, 6, 2),
    ("15th", "free_repair_day", "电动车免费维修日 Free e-bike repair day", 40, 8, 1, 8),
    ("wednesday", "civility_persuasion", "文明劝导 Civility persuasion", 10, 6, 10, 2),
]
REWARDS = [
    ("merchant-battery", "电池更换券", "Battery swap voucher", 50, 30),
    ("merchant-shop", "大米一袋 (5kg)", "Bag of rice (5 kg)", 80, 20),
    ("merchant-clinic", "免费体检", "Free health check", 120, None),
    ("union", "工会电影票", "Union cinema ticket", 30, 50),
]


# the organisation's records of people, which the portal's sign-in takes roles from:
# (person id, phone, role, display name); the ids are the development tokens' subjects
PEOPLE = [
    ("vol-0001", "13800000001", "volunteer", "李师傅（骑手）"),
    ("vol-0002", "13800000002", "volunteer", "王师傅（骑手）"),
    ("officer-li", "13900000001", "officer", "李主任"),
    ("admin-chen", "13900000002", "admin", "陈管理员"),
    ("merchant-battery", "13900000003", "merchant", "电池店"),
    ("auditor-union", "13900000004", "auditor", "工会审计"),
    # a second admin: an adjustment one admin proposes only another may approve
    ("admin-wang", "13900000005", "admin", "王管理员"),
]


def seed_people(stack: DevStack) -> None:
    """Record the demo people (a person already on record is kept as is)."""
    admin = {"Authorization": f"Bearer {stack.token('admin')}"}
    with httpx.Client(timeout=30) as http:
        for person_id, phone, role, name in PEOPLE:
            r = http.post(
                f"{stack.url('tasks')}/v1/people",
                headers=admin,
                json={"person_id": person_id, "phone": phone, "role": role, "display_name": name},
            )
            if r.status_code != 409:
                _ok(r)
    stack.say(f"  {len(PEOPLE)} people on record for the portal's sign-in")


def _days(rule: str, year: int, month: int) -> list[int]:
    n = calendar.monthrange(year, month)[1]
    weekday = {"saturday": 5, "sunday": 6, "wednesday": 2}
    if rule == "daily":
        return list(range(1, n + 1))
    if rule == "weekday":
        return [d for d in range(1, n + 1) if calendar.weekday(year, month, d) < 5]
    if rule == "15th":
        return [15]
    return [d for d in range(1, n + 1) if calendar.weekday(year, month, d) == weekday[rule]]


def _ok(r: httpx.Response) -> dict[str, Any]:
    if r.status_code >= 400:
        raise RuntimeError(f"{r.request.method} {r.request.url}: {r.status_code} {r.text}")
    body: dict[str, Any] = r.json()
    return body


def seed(stack: DevStack) -> None:
    officer = {"Authorization": f"Bearer {stack.token('officer')}"}
    app = {"Authorization": f"Bearer {stack.token('app')}"}
    admin = {"Authorization": f"Bearer {stack.token('admin')}"}
    now = datetime.now(UTC)
    month = f"{now.year}-{now.month:02d}"
    with httpx.Client(timeout=30) as http:
        existing = http.get(
            f"{stack.url('tasks')}/v1/jobs", params={"month": month, "limit": 1}, headers=officer
        )
        if existing.status_code == 200 and existing.json()["items"]:
            stack.say(f"  demo data already there (jobs for {month}); kept as is")
            return
        for community, name in zip(COMMUNITIES, COMMUNITY_NAMES, strict=True):
            r = http.post(
                f"{stack.url('tasks')}/v1/communities",
                headers=officer,
                json={"id": community, "name": name},
            )
            if r.status_code != 409:  # there from an earlier seed: fine
                _ok(r)
        jobs = 0
        for community in COMMUNITIES:
            for rule, category, title, points, capacity, hour, hours in MENU:
                for day in _days(rule, now.year, now.month):
                    start = datetime(now.year, now.month, day, hour, tzinfo=UTC)
                    _ok(
                        http.post(
                            f"{stack.url('tasks')}/v1/jobs",
                            headers=officer,
                            json={
                                "community_id": community,
                                "title": title,
                                "category": category,
                                "points": points,
                                "capacity": capacity,
                                "starts_at": start.isoformat(),
                                "ends_at": (start + timedelta(hours=hours)).isoformat(),
                            },
                        )
                    )
                    jobs += 1
        stack.say(f"  seeded {jobs} jobs for {month} in {len(COMMUNITIES)} communities")
        for merchant, zh, en, points, stock in REWARDS:
            _ok(
                http.post(
                    f"{stack.url('redeem')}/v1/rewards",
                    headers=admin,
                    json={
                        "merchant_id": merchant,
                        "name_zh": zh,
                        "name_en": en,
                        "points": points,
                        "stock": stock,
                    },
                )
            )
        stack.say(f"  seeded {len(REWARDS)} rewards")
        # a job happening now, done and verified by three volunteers: real credits in the ledger
        job = _ok(
            http.post(
                f"{stack.url('tasks')}/v1/jobs",
                headers=officer,
                json={
                    "community_id": COMMUNITIES[0],
                    "title": "寻找走失老人 Search for a missing elder",
                    "category": "lost_person_search",
                    "points": 60,
                    "capacity": 5,
                    "starts_at": (now - timedelta(hours=2)).isoformat(),
                    "ends_at": (now + timedelta(hours=2)).isoformat(),
                },
            )
        )
        # and one verified by the rotating code on the officer's check-in screen (the portal)
        _ok(
            http.post(
                f"{stack.url('tasks')}/v1/jobs",
                headers=officer,
                json={
                    "community_id": COMMUNITIES[0],
                    "title": "电动车免费维修日签到 Free e-bike repair day (check in on site)",
                    "category": "free_repair_day",
                    "points": 40,
                    "capacity": 20,
                    "verification": "checkin",
                    "starts_at": (now - timedelta(hours=1)).isoformat(),
                    "ends_at": (now + timedelta(hours=6)).isoformat(),
                    "place": {"address": "蓬莱路 12 号骑手驿站 Rider station, 12 Penglai Rd"},
                },
            )
        )
        volunteers = ["vol-0001", "vol-0002", "vol-0003"]
        for vol in volunteers:
            # only volunteers registered with the job's community (report-in) are credited
            r = http.post(
                f"{stack.url('tasks')}/v1/communities/{COMMUNITIES[0]}/members",
                headers=app,
                json={"account_id": vol},
            )
            _ok(r)
            _ok(
                http.post(
                    f"{stack.url('tasks')}/v1/jobs/{job['id']}/claims",
                    headers=app,
                    json={"account_id": vol},
                )
            )
            done = _ok(
                http.post(
                    f"{stack.url('tasks')}/v1/jobs/{job['id']}/completions",
                    headers={**app, "Idempotency-Key": f"seed-{uuid.uuid4()}"},
                    json={"account_id": vol, "evidence": {"note": "found at the market, safe"}},
                )
            )
            _ok(
                http.post(
                    f"{stack.url('tasks')}/v1/completions/{done['id']}/verify", headers=officer
                )
            )
        # one of them chose to be on the public honour roll (the others did not: not listed)
        _ok(
            http.put(
                f"{stack.url('tasks')}/v1/me/honour-roll",
                headers={"Authorization": f"Bearer {stack.token('volunteer', 'vol-0002')}"},
                json={"listed": True},
            )
        )
        deadline = time.monotonic() + 60
        auditor = {"Authorization": f"Bearer {stack.token('auditor')}"}
        for vol in volunteers:
            while True:
                r = http.get(f"{stack.url('points')}/v1/accounts/{vol}/balance", headers=auditor)
                if r.status_code == 200 and r.json()["balance"] >= 60:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"demo credit for {vol} did not reach the ledger in 60s")
                time.sleep(0.2)
        stack.say(f"  credited 60 points each to {', '.join(volunteers)} through the ledger")
        _seed_board(http, stack)
        _seed_voucher(http, stack)


def _seed_board(http: httpx.Client, stack: DevStack) -> None:
    """Wishes and hazards for the public wall and the officer's board: one of each still open,
    one of each already taken up (a wish claimed, a hazard triaged into a job)."""
    tasks = stack.url("tasks")
    officer = {"Authorization": f"Bearer {stack.token('officer')}"}
    rider = {"Authorization": f"Bearer {stack.token('volunteer', 'vol-0001')}"}
    now = datetime.now(UTC)
    for title, place in (
        ("修好 5 号楼楼道灯 Fix the stairwell light of building 5", "蓬莱路 5 号"),
        ("给独居的张奶奶装扶手 A handrail for Granny Zhang, who lives alone", "蓬莱路 9 号"),
    ):
        wish = _ok(
            http.post(
                f"{tasks}/v1/needs",
                headers=officer,
                json={"community_id": COMMUNITIES[0], "kind": "wish", "title": title,
                      "place": place, "source": "visit"},
            )
        )  # fmt: skip
    _ok(
        http.post(
            f"{tasks}/v1/needs/{wish['id']}/claim", headers=officer, json={"claimed_by": "vol-0002"}
        )
    )
    hazards = [
        _ok(
            http.post(
                f"{tasks}/v1/hazards",
                headers=rider,
                json={
                    "account_id": "vol-0001",
                    "community_id": COMMUNITIES[0],
                    "kind": kind,
                    "text": text,
                    "place": {"address": address},
                },
            )
        )
        for kind, text, address in (
            (
                "fire_risk",
                "楼道里有电动车在充电 An e-bike charging in the stairwell",
                "蓬莱路 3 号",
            ),
            (
                "traffic_hazard",
                "路口井盖松动 A loose manhole cover at the crossing",
                "蓬莱路与海滨路口",
            ),
        )
    ]
    _ok(
        http.post(
            f"{tasks}/v1/hazards/{hazards[0]['id']}/triage",
            headers=officer,
            json={
                "reason": "今天处理 today",
                "job": {
                    "title": "清理楼道充电 Clear the stairwell charging",
                    "category": "hazard_patrol",
                    "points": 15,
                    "capacity": 2,
                    "starts_at": now.isoformat(),
                    "ends_at": (now + timedelta(hours=4)).isoformat(),
                },
            },
        )
    )
    stack.say("  seeded 2 wishes and 2 hazard reports (one of each taken up)")


def _seed_voucher(http: httpx.Client, stack: DevStack) -> None:
    """A voucher waiting at the demo merchant's counter: vol-0001 redeems a battery swap once
    the redeem service's wallet has learned the credit (a minute at most; else said, not
    fatal: the demo works without it)."""
    redeem = stack.url("redeem")
    rider = {"Authorization": f"Bearer {stack.token('volunteer', 'vol-0001')}"}
    rewards = _ok(
        http.get(f"{redeem}/v1/rewards", headers=rider, params={"merchant_id": "merchant-battery"})
    )["items"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        wallet = http.get(f"{redeem}/v1/wallets/vol-0001", headers=rider)
        if wallet.status_code == 200 and wallet.json()["spendable"] >= rewards[0]["points"]:
            break
        time.sleep(0.2)  # polling the deadline above
    r = http.post(
        f"{redeem}/v1/redemptions",
        headers={**rider, "Idempotency-Key": f"seed-{uuid.uuid4()}"},
        json={"reward_id": rewards[0]["id"]},
    )
    if r.status_code >= 400:
        stack.say(f"  no demo voucher: {r.status_code} {r.text[:200]}")
        return
    stack.say("  vol-0001 redeemed a battery swap: a voucher waits at merchant-battery's counter")
