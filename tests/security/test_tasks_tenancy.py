"""Who may be credited (issue 15), through the real services: every attack is refused with a
clear 4xx problem naming a `reason`, and leaves nothing verified and nothing in the ledger;
the legitimate counterpart of each works.

- an officer creates an automatic job and completes it for an account equal to their own
  subject (any case): refused, nothing credited;
- an app claims and completes for made-up ids that belong to no community: refused; a member
  of another community only for a job that is explicitly open;
- jobs, hazards and needs for communities that do not exist in the caller's organisation;
- organisations ship with limits: a 10,000-point automatic job for a real member is held for
  the admin, not credited unseen; the admin may raise the limits;
- numbers as strings are refused (422);
- data written by the previous schema migrates to these rules."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from tests.helpers import Api, ensure_community, eventually, register

from jifen.devtools.devstack import DevStack
from jifen.kernel.db import migrate
from jifen.tasks.db import MIGRATIONS

pytestmark = pytest.mark.e2e


def _org() -> str:
    return f"ten-{uuid.uuid4().hex[:8]}"


def _window() -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "starts_at": (now - timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(hours=1)).isoformat(),
    }


def _job_body(**over: Any) -> dict[str, Any]:
    return {
        "community_id": "penglai-grid",
        "title": "自动 automatic",
        "category": "hazard_patrol",
        "points": 10,
        "capacity": 3,
        **_window(),
        **over,
    }


async def _publish(tasks: Api, org: str, officer: str = "officer-li", **over: Any) -> Any:
    await ensure_community(tasks, org=org)
    r = await tasks.http.post(
        "/v1/jobs", headers=tasks.auth("officer", officer, org=org), json=_job_body(**over)
    )
    assert r.status_code == 201, r.text
    return r.json()


async def _claim(tasks: Api, org: str, job: Any, account: str, who: str = "app") -> Any:
    headers = tasks.auth(who, account if who == "volunteer" else None, org=org)
    return await tasks.http.post(
        f"/v1/jobs/{job['id']}/claims", headers=headers, json={"account_id": account}
    )


async def _complete(tasks: Api, org: str, job: Any, account: str, who: str = "app") -> Any:
    headers = tasks.auth(who, account if who == "volunteer" else None, org=org)
    return await tasks.http.post(
        f"/v1/jobs/{job['id']}/completions",
        headers={**headers, "Idempotency-Key": f"k-{uuid.uuid4()}"},
        json={"account_id": account},
    )


async def _nothing_verified(tasks: Api, points: Api, org: str, *accounts: str) -> None:
    r = await tasks.http.get("/v1/audit/completions", headers=tasks.auth("auditor", org=org))
    assert r.json()["items"] == [], r.text
    for account in accounts:
        r = await points.http.get(
            f"/v1/accounts/{account}/balance",
            headers=points.auth("volunteer", account, org=org),
        )
        assert r.status_code == 200 and r.json()["balance"] == 0, r.text


def _refused(r: Any, status: int, reason: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["reason"] == reason, r.text


async def test_an_officer_never_credits_themself_through_an_automatic_job(
    apis: dict[str, Api],
) -> None:
    tasks, points = apis["tasks"], apis["points"]
    org = _org()
    job = await _publish(tasks, org, "officer-li", verification="automatic", points=50)
    # the officer's own subject, registered like any volunteer, in any spelling
    for me in ("officer-li", "OFFICER-LI", "Officer-Li"):
        await register(tasks, me, org=org)
        _refused(await _claim(tasks, org, job, me), 409, "own_job")
        _refused(await _claim(tasks, org, job, me, who="volunteer"), 409, "own_job")
        _refused(await _complete(tasks, org, job, me), 409, "own_job")
    r = await tasks.http.get(
        "/v1/completions", headers=tasks.auth("officer", "officer-zhao", org=org)
    )
    assert r.json()["items"] == []
    await _nothing_verified(tasks, points, org, "officer-li", "OFFICER-LI")

    # legitimate: a registered volunteer does the same job and is credited at once
    vol = f"vol-{uuid.uuid4().hex[:8]}"
    await register(tasks, vol, org=org)
    assert (await _claim(tasks, org, job, vol)).status_code == 201
    r = await _complete(tasks, org, job, vol)
    assert r.status_code == 201, r.text
    assert (r.json()["status"], r.json()["verified_by"]) == ("verified", "system:automatic")

    async def credited() -> bool:
        b = await points.http.get(
            f"/v1/accounts/{vol}/balance", headers=points.auth("volunteer", vol, org=org)
        )
        return b.json()["balance"] == 50

    await eventually(credited, what="automatic credit of a real volunteer")


async def test_the_verifier_is_never_the_volunteer_whatever_the_case(
    apis: dict[str, Api],
) -> None:
    tasks, points = apis["tasks"], apis["points"]
    org = _org()
    job = await _publish(tasks, org, "officer-li")
    me = "officer-wang"
    await register(tasks, me, org=org)
    assert (await _claim(tasks, org, job, me)).status_code == 201
    done = await _complete(tasks, org, job, me)
    assert done.status_code == 201, done.text
    for spelling in ("OFFICER-WANG", "Officer-Wang"):
        r = await tasks.http.post(
            f"/v1/completions/{done.json()['id']}/verify",
            headers=tasks.auth("officer", spelling, org=org),
        )
        _refused(r, 409, "self_verification")
    await _nothing_verified(tasks, points, org, me)
    r = await tasks.http.post(
        f"/v1/completions/{done.json()['id']}/verify",
        headers=tasks.auth("officer", "officer-zhao", org=org),
    )
    assert r.status_code == 200 and r.json()["status"] == "verified", r.text


async def test_made_up_and_foreign_accounts_are_never_credited(apis: dict[str, Api]) -> None:
    tasks, points = apis["tasks"], apis["points"]
    org = _org()
    job = await _publish(tasks, org, verification="automatic")
    # ids that belong to no community
    for made_up in ("vol-ghost-1", "vol-ghost-2"):
        r = await _claim(tasks, org, job, made_up)
        _refused(r, 409, "not_a_member")
        assert "penglai-grid" in r.json()["detail"]
    # a member of another community of the organisation: not for this community's job ...
    await register(tasks, "vol-xinhui", "xinhui-grid", org=org)
    _refused(await _claim(tasks, org, job, "vol-xinhui"), 409, "not_a_member")
    # ... nor a member of another organisation's community of the same name
    other_org = _org()
    await register(tasks, "vol-elsewhere", org=other_org)
    _refused(await _claim(tasks, org, job, "vol-elsewhere"), 409, "not_a_member")
    # nor completed: membership is checked again at completion
    _refused(await _complete(tasks, org, job, "vol-ghost-1"), 409, "not_a_member")
    await _nothing_verified(
        tasks, points, org, "vol-ghost-1", "vol-ghost-2", "vol-xinhui", "vol-elsewhere"
    )
    r = await tasks.http.get(f"/v1/jobs/{job['id']}", headers=tasks.auth("officer", org=org))
    assert r.json()["claimed"] == 0

    # an open job takes members of any community of the organisation, still nobody else
    open_job = await _publish(tasks, org, verification="automatic", open_to_all=True)
    assert open_job["open_to_all"] is True
    assert (await _claim(tasks, org, open_job, "vol-xinhui")).status_code == 201
    r = await _complete(tasks, org, open_job, "vol-xinhui")
    assert r.status_code == 201 and r.json()["status"] == "verified", r.text
    _refused(await _claim(tasks, org, open_job, "vol-ghost-1"), 409, "not_a_member")
    _refused(await _claim(tasks, org, open_job, "vol-elsewhere"), 409, "not_a_member")
    # nor completed by them (the open job's membership is checked at completion too)
    _refused(await _complete(tasks, org, open_job, "vol-ghost-1"), 409, "not_a_member")
    _refused(await _complete(tasks, org, open_job, "vol-elsewhere"), 409, "not_a_member")
    for account in ("vol-ghost-1", "vol-elsewhere"):
        r = await points.http.get(
            f"/v1/accounts/{account}/balance",
            headers=points.auth("volunteer", account, org=org),
        )
        assert r.status_code == 200 and r.json()["balance"] == 0, r.text


async def test_communities_must_exist_in_the_callers_organisation(apis: dict[str, Api]) -> None:
    tasks = apis["tasks"]
    org, other = _org(), _org()
    await ensure_community(tasks, "their-grid", org=other)
    officer = tasks.auth("officer", org=org)
    app = tasks.auth("app", org=org)
    for community in ("no-such-grid", "their-grid"):
        r = await tasks.http.post(
            "/v1/jobs", headers=officer, json=_job_body(community_id=community)
        )
        _refused(r, 409, "unknown_community")
        assert community in r.json()["detail"]
        r = await tasks.http.post(
            "/v1/menus",
            headers=officer,
            json={
                "community_id": community,
                "month": datetime.now(UTC).strftime("%Y-%m"),
                "jobs": [{k: v for k, v in _job_body().items() if k != "community_id"}],
            },
        )
        assert r.status_code == 409, r.text  # unknown community (or a job outside the month)
        r = await tasks.http.post(
            "/v1/hazards",
            headers=app,
            json={
                "account_id": "vol-1",
                "community_id": community,
                "kind": "fire_risk",
                "text": "楼道充电 charging in the stairwell",
            },
        )
        _refused(r, 409, "unknown_community")
        r = await tasks.http.post(
            "/v1/needs",
            headers=app,
            json={"community_id": community, "kind": "wish", "title": "修灯 fix the light"},
        )
        _refused(r, 409, "unknown_community")
    r = await tasks.http.get("/v1/jobs", headers=officer)
    assert r.json()["items"] == []
    r = await tasks.http.get("/v1/hazards", headers=officer)
    assert r.json()["items"] == []


async def test_limits_ship_set_and_hold_a_huge_automatic_job_for_the_admin(
    apis: dict[str, Api],
) -> None:
    tasks, points = apis["tasks"], apis["points"]
    org = _org()
    admin = tasks.auth("admin", "admin-chen", org=org)
    r = await tasks.http.get("/v1/organisation", headers=tasks.auth("officer", org=org))
    assert r.status_code == 200, r.text
    limits = r.json()
    assert limits["updated_by"] == "default"
    for name in (
        "daily_points_officer",
        "daily_points_admin",
        "daily_points_per_officer",
        "automatic_job_points",
    ):
        assert isinstance(limits[name], int) and limits[name] > 0, limits

    # the attack: an officer's automatic job worth 10,000 points, done by a real
    # member: held for the admin, not credited unseen
    vol = f"vol-{uuid.uuid4().hex[:8]}"
    await register(tasks, vol, org=org)
    job = await _publish(tasks, org, verification="automatic", points=10_000, capacity=1)
    assert (await _claim(tasks, org, job, vol)).status_code == 201
    r = await _complete(tasks, org, job, vol)
    assert r.status_code == 201, r.text
    held = r.json()
    assert (held["status"], held["hold_level"], held["verified_by"]) == ("held", "admin", None)
    await _nothing_verified(tasks, points, org, vol)
    # an officer (the job's creator or another) may not approve it; an admin may not be
    # talked into it by a string: numbers are integers
    for officer in ("officer-li", "officer-zhao"):
        r = await tasks.http.post(
            f"/v1/completions/{held['id']}/approve",
            headers=tasks.auth("officer", officer, org=org),
            json={"reason": "ok by me"},
        )
        _refused(r, 409, "needs_admin")
    r = await tasks.http.put(
        "/v1/organisation", headers=admin, json={"daily_points_officer": "100000"}
    )
    assert r.status_code == 422, r.text
    await _nothing_verified(tasks, points, org, vol)

    # the admin raises the limits for a big day: the next one counts at once
    r = await tasks.http.put(
        "/v1/organisation",
        headers=admin,
        json={
            "daily_points_officer": 20_000,
            "daily_points_admin": 50_000,
            "daily_points_per_officer": 100_000,
            "automatic_job_points": 20_000,
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["updated_by"] == "admin-chen"
    r = await tasks.http.post(
        f"/v1/completions/{held['id']}/approve",
        headers=admin,
        json={"reason": "台风抢险，名单已核 typhoon clean-up, roster checked"},
    )
    assert r.status_code == 200 and r.json()["status"] == "verified", r.text

    async def credited() -> bool:
        b = await points.http.get(
            f"/v1/accounts/{vol}/balance", headers=points.auth("volunteer", vol, org=org)
        )
        return b.json()["balance"] == 10_000

    await eventually(credited, what="approved credit")


async def test_an_automatic_job_pays_only_so_much_without_a_person(apis: dict[str, Api]) -> None:
    tasks = apis["tasks"]
    org = _org()
    r = await tasks.http.put(
        "/v1/organisation",
        headers=tasks.auth("admin", org=org),
        json={"automatic_job_points": 25},
    )
    assert r.status_code == 200, r.text
    job = await _publish(tasks, org, verification="automatic", points=10, capacity=5)
    statuses = []
    for i in range(3):
        vol = f"vol-auto-{i}"
        await register(tasks, vol, org=org)
        assert (await _claim(tasks, org, job, vol)).status_code == 201
        r = await _complete(tasks, org, job, vol)
        assert r.status_code == 201, r.text
        statuses.append((r.json()["status"], r.json()["hold_level"]))
    # 10 + 10 fit under 25; the third would make 30: an officer looks first
    assert statuses == [("verified", None), ("verified", None), ("held", "officer")]
    # ... not the officer who published the automatic job (nobody else would have looked)
    held = r.json()
    for me in ("officer-li", "OFFICER-LI"):
        r = await tasks.http.post(
            f"/v1/completions/{held['id']}/approve",
            headers=tasks.auth("officer", me, org=org),
            json={"reason": "my own job, fine"},
        )
        _refused(r, 409, "own_decision")
    r = await tasks.http.post(
        f"/v1/completions/{held['id']}/approve",
        headers=tasks.auth("officer", "officer-zhao", org=org),
        json={"reason": "saw the patrol log"},
    )
    assert r.status_code == 200 and r.json()["status"] == "verified", r.text
    assert r.json()["verified_by"] == "officer-zhao"


async def test_an_officer_approving_holds_stays_within_the_per_officer_limit(
    apis: dict[str, Api],
) -> None:
    tasks = apis["tasks"]
    org = _org()
    r = await tasks.http.put(
        "/v1/organisation",
        headers=tasks.auth("admin", org=org),
        json={"daily_points_officer": 10, "daily_points_per_officer": 40},
    )
    assert r.status_code == 200, r.text
    job = await _publish(tasks, org, points=15, capacity=5)
    held = []
    for i in range(3):
        vol = f"vol-b-{i}"
        await register(tasks, vol, org=org)
        assert (await _claim(tasks, org, job, vol)).status_code == 201
        done = await _complete(tasks, org, job, vol)
        r = await tasks.http.post(
            f"/v1/completions/{done.json()['id']}/verify",
            headers=tasks.auth("officer", "officer-zhao", org=org),
        )
        assert (r.json()["status"], r.json()["hold_level"]) == ("held", "officer"), r.text
        held.append(r.json()["id"])
    # officer-zhao approves two (30 points); a third would be 45 > 40: the admin's to decide
    results = []
    for cid in held:
        r = await tasks.http.post(
            f"/v1/completions/{cid}/approve",
            headers=tasks.auth("officer", "officer-zhao", org=org),
            json={"reason": "roster checked"},
        )
        results.append(r.json()["status"] if r.status_code == 200 else r.json()["reason"])
    assert results == ["verified", "verified", "needs_admin"]
    r = await tasks.http.post(
        f"/v1/completions/{held[2]}/approve",
        headers=tasks.auth("admin", org=org),
        json={"reason": "roster checked by the admin"},
    )
    assert r.status_code == 200 and r.json()["status"] == "verified", r.text


@pytest.mark.parametrize(
    ("field", "value"),
    [("points", "10"), ("capacity", "3"), ("points", 10.0), ("open_to_all", "true")],
)
async def test_numbers_as_strings_are_refused(apis: dict[str, Api], field: str, value: Any) -> None:
    tasks = apis["tasks"]
    org = _org()
    await ensure_community(tasks, org=org)
    r = await tasks.http.post(
        "/v1/jobs", headers=tasks.auth("officer", org=org), json=_job_body(**{field: value})
    )
    assert r.status_code == 422 and field in r.json()["detail"], r.text
    r = await tasks.http.get("/v1/jobs", headers=tasks.auth("officer", org=org))
    assert r.json()["items"] == []


async def test_data_of_the_previous_schema_migrates_to_the_new_rules(
    stack: DevStack, tmp_path: Path
) -> None:
    """A tasks database filled by the previous schema (static check-in codes, limits unset,
    jobs naming communities never added): after the migration the static code is void and a
    secret is in its place, the communities exist (with no members), and the limits are set."""
    import shutil

    before = tmp_path / "before"
    before.mkdir()
    for f in sorted(MIGRATIONS.glob("*.sql")):
        if f.name < "0005":
            shutil.copy(f, before / f.name)
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(stack.pg.dsn())
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        dsn = stack.pg.dsn(name)
        await migrate(dsn, before)
        conn = await asyncpg.connect(dsn)
        try:
            job = uuid.uuid4()
            await conn.execute(
                "INSERT INTO job (id, org_id, community_id, title, category, points, capacity,"
                " starts_at, ends_at, verification, created_by, checkin_code)"
                " VALUES ($1, 'org-old', 'old-grid', 'old', 'other', 10, 2, now(),"
                " now() + interval '1 hour', 'checkin', 'officer-li', 'K7QX2M')",
                job,
            )
            await conn.execute(
                "INSERT INTO organisation (id, daily_points_admin, updated_by)"
                " VALUES ('org-old', 100, 'admin-chen'), ('org-none', NULL, 'admin-chen')"
            )
            await migrate(dsn, MIGRATIONS)
            row = await conn.fetchrow("SELECT * FROM job WHERE id = $1", job)
            assert row["checkin_code"] is None and len(row["checkin_secret"]) == 32
            assert row["open_to_all"] is False
            community = await conn.fetchrow(
                "SELECT * FROM community WHERE org_id = 'org-old' AND id = 'old-grid'"
            )
            assert community["created_by"] == "migration:0005"
            assert await conn.fetchval("SELECT count(*) FROM community_member") == 0
            orgs = {
                r["id"]: dict(r) for r in await conn.fetch("SELECT * FROM organisation ORDER BY id")
            }
            # an admin threshold set before is kept, and the first one fits under it
            assert (
                orgs["org-old"]["daily_points_officer"],
                orgs["org-old"]["daily_points_admin"],
            ) == (
                100,
                100,
            )
            assert (
                orgs["org-none"]["daily_points_officer"],
                orgs["org-none"]["daily_points_admin"],
            ) == (
                200,
                500,
            )
            assert all(
                o["daily_points_per_officer"] == 3000 and o["automatic_job_points"] == 300
                for o in orgs.values()
            )
            # the old static code can never be written back
            with pytest.raises(asyncpg.CheckViolationError):
                await conn.execute("UPDATE job SET checkin_code = 'K7QX2M' WHERE id = $1", job)
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_a_hold_appeal_is_decided_by_another_officer_than_the_verifier(
    apis: dict[str, Api],
) -> None:
    tasks = apis["tasks"]
    org = _org()
    r = await tasks.http.put(
        "/v1/organisation",
        headers=tasks.auth("admin", org=org),
        json={"daily_points_officer": 5},
    )
    assert r.status_code == 200, r.text
    vol = "vol-held"
    await register(tasks, vol, org=org)
    job = await _publish(tasks, org, points=10)
    assert (await _claim(tasks, org, job, vol)).status_code == 201
    done = await _complete(tasks, org, job, vol)
    r = await tasks.http.post(
        f"/v1/completions/{done.json()['id']}/verify",
        headers=tasks.auth("officer", "officer-zhao", org=org),
    )
    assert r.json()["status"] == "held", r.text
    r = await tasks.http.post(
        "/v1/appeals",
        headers=tasks.auth("volunteer", vol, org=org),
        json={"completion_id": done.json()["id"], "kind": "hold", "reason": "a long shift"},
    )
    assert r.status_code == 201, r.text
    appeal = r.json()["id"]
    r = await tasks.http.post(
        f"/v1/appeals/{appeal}/decisions",
        headers=tasks.auth("officer", "OFFICER-ZHAO", org=org),
        json={"outcome": "dismissed", "reason": "the hold stands"},
    )
    _refused(r, 409, "own_decision")
    r = await tasks.http.post(
        f"/v1/appeals/{appeal}/decisions",
        headers=tasks.auth("officer", "officer-wang", org=org),
        json={"outcome": "upheld", "reason": "the shift log shows it"},
    )
    assert r.status_code == 201 and r.json()["status"] == "upheld", r.text
    assert [d["decided_by"] for d in r.json()["decisions"]] == ["officer-wang"]
