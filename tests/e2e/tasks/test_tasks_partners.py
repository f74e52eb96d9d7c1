"""Needs × resources and community partners, through the running services (issue 21, part 4).

A need found on a door-to-door visit and a partner's resource are proposed as a match; the
officer puts the need on the month's menu twice (one need, two jobs), both served by the
partner's resource, so both jobs are the partner's: a volunteer who is not its member cannot
claim them, its member can, and is credited in the ledger; the need and the resource are done
only when both jobs are. A resident posts their own wish; a gig worker cannot post an offer,
nor a merchant a wish, nor one partner manage another; a partner cannot take a job others
already hold places in."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.helpers import Api, ensure_community, eventually, register

pytestmark = pytest.mark.e2e


def _window(hours: int) -> dict[str, str]:
    now = datetime.now(UTC)
    # within this month (UTC), as the menu's month requires: a job of the last hour of a
    # month would start in it and end in the next, which the menu allows
    return {
        "starts_at": max(
            now - timedelta(hours=1), now.replace(day=1, hour=0, minute=0)
        ).isoformat(),
        "ends_at": (now + timedelta(hours=hours)).isoformat(),
    }


async def _ok(r: Any, *codes: int) -> Any:
    assert r.status_code in (codes or (200, 201)), f"{r.request.method} {r.request.url}: {r.text}"
    return r.json()


async def test_a_need_and_a_partners_resource_become_two_jobs_the_partner_does(
    apis: dict[str, Api],
) -> None:
    tasks, points = apis["tasks"], apis["points"]
    org = f"partners-{uuid.uuid4().hex[:8]}"

    def h(role: str, sub: str | None = None) -> dict[str, str]:
        return {**tasks.auth(role, sub, org=org), "Accept-Language": "en"}

    officer, app, shop = h("officer", "officer-li"), h("app"), h("merchant", "m-shop")
    await ensure_community(tasks, "penglai-grid", org=org)
    member, outsider = "vol-shop-1", "vol-walkin-2"
    for v in (member, outsider):
        await register(tasks, v, org=org)

    # the partner, and its own member (the merchant adds it; another partner's it may not)
    for body in (
        {"id": "m-shop", "kind": "organisation", "name": "蓬莱小店 Penglai shop"},
        {"id": "barbers", "kind": "team", "name": "理发志愿队 Barbers"},
    ):
        await _ok(await tasks.http.post("/v1/partners", headers=officer, json=body), 201)
    r = await tasks.http.post("/v1/partners", headers=officer, json=body)
    assert r.status_code == 409 and r.json()["reason"] == "partner_exists", r.text
    await _ok(
        await tasks.http.post(
            "/v1/partners/m-shop/members", headers=shop, json={"account_id": member}
        ),
        201,
    )
    r = await tasks.http.post(
        "/v1/partners/barbers/members", headers=shop, json={"account_id": member}
    )
    assert r.status_code == 403, r.text

    # a need from a visit, a resident's own wish, and the partner's resource
    month = datetime.now(UTC).strftime("%Y-%m")
    when = _window(48)
    visit = await _ok(
        await tasks.http.post(
            "/v1/needs",
            headers=officer,
            json={
                "community_id": "penglai-grid",
                "kind": "wish",
                "title": "独居老人理发 Haircuts for elders living alone",
                "category": "other",
                "place": "蓬莱路 5 号",
                "source": "visit",
                "quantity": 6,
                "wanted_from": when["starts_at"],
                "wanted_until": when["ends_at"],
            },
        ),
        201,
    )
    own = await _ok(
        await tasks.http.post(
            "/v1/needs",
            headers=h("volunteer", outsider),
            json={"community_id": "penglai-grid", "kind": "wish", "title": "修车 fix my e-bike"},
        ),
        201,
    )
    assert (visit["source"], own["source"], own["posted_by"]) == ("visit", "resident", outsider)
    for who, kind in ((h("volunteer", outsider), "offer"), (shop, "wish")):
        r = await tasks.http.post(
            "/v1/needs",
            headers=who,
            json={"community_id": "penglai-grid", "kind": kind, "title": "x"},
        )
        assert r.status_code == 403 and r.json()["reason"] == "not_yours", r.text
    resource = await _ok(
        await tasks.http.post(
            "/v1/needs",
            headers=shop,
            json={
                "community_id": "penglai-grid",
                "kind": "offer",
                "title": "免费理发 Free haircuts",
                "category": "other",
                "place": "蓬莱路 5 号",
            },
        ),
        201,
    )
    assert resource["partner_id"] == "m-shop" and resource["source"] == "partner"
    r = await tasks.http.post(
        "/v1/needs",
        headers=officer,
        json={
            "community_id": "penglai-grid",
            "kind": "offer",
            "title": "x",
            "partner_id": "nobody",
        },
    )
    assert r.status_code == 409 and r.json()["reason"] == "unknown_partner", r.text
    # a merchant that is not (yet) a partner offers as no partner's
    r = await tasks.http.post(
        "/v1/needs",
        headers=h("merchant", "m-walk-in"),
        json={"community_id": "penglai-grid", "kind": "offer", "title": "免费修鞋 shoe repair"},
    )
    assert r.status_code == 201 and r.json()["partner_id"] is None, r.text

    # the proposed match, and the menu made of it: one need, two jobs, the partner's
    r = await tasks.http.get(
        "/v1/menus/proposals",
        headers=officer,
        params={"community_id": "penglai-grid", "month": month},
    )
    [match] = (await _ok(r))["items"]
    assert (match["need"]["id"], match["resource"]["id"]) == (visit["id"], resource["id"])
    assert [x["code"] for x in match["reasons"]] == [
        "same_category",
        "same_community",
        "same_place",
    ]
    job = {"title": "理发 Haircuts", "category": "other", "points": 12, "capacity": 2}
    items = [
        {"need_id": visit["id"], "resource_id": resource["id"], "job": {**job, **_window(2)}},
        {"need_id": visit["id"], "resource_id": resource["id"], "job": {**job, **_window(3)}},
    ]
    jobs = await _ok(
        await tasks.http.post(
            "/v1/menus/from-needs",
            headers=officer,
            json={"community_id": "penglai-grid", "month": month, "items": items},
        ),
        201,
    )
    assert [j["partner_id"] for j in jobs] == ["m-shop", "m-shop"]
    need = await _ok(await tasks.http.get(f"/v1/needs/{visit['id']}", headers=officer))
    # both jobs, made in one transaction: their order in job_ids is not their order of making
    assert need["status"] == "in_progress" and sorted(need["job_ids"]) == sorted(
        j["id"] for j in jobs
    )
    r = await tasks.http.post(
        "/v1/menus/from-needs",
        headers=officer,
        json={
            "community_id": "penglai-grid",
            "month": month,
            "items": [{"need_id": resource["id"], "job": {**job, **_window(2)}}],
        },
    )
    assert r.status_code == 409 and r.json()["reason"] == "not_matchable", r.text

    # only the partner's members claim its jobs; the member does both and is credited
    r = await tasks.http.post(
        f"/v1/jobs/{jobs[0]['id']}/claims", headers=app, json={"account_id": outsider}
    )
    assert r.status_code == 409 and r.json()["reason"] == "not_partner_member", r.text
    for i, j in enumerate(jobs):
        await _ok(
            await tasks.http.post(
                f"/v1/jobs/{j['id']}/claims", headers=app, json={"account_id": member}
            ),
            201,
        )
        done = await _ok(
            await tasks.http.post(
                f"/v1/jobs/{j['id']}/completions",
                headers={**app, "Idempotency-Key": f"p-{uuid.uuid4()}"},
                json={"account_id": member},
            ),
            201,
        )
        await _ok(await tasks.http.post(f"/v1/completions/{done['id']}/verify", headers=officer))
        for item_id in (visit["id"], resource["id"]):
            now = await _ok(await tasks.http.get(f"/v1/needs/{item_id}", headers=officer))
            assert now["status"] == ("done" if i == 1 else "in_progress"), (i, now)

    async def credited() -> bool | None:
        r = await points.http.get(
            f"/v1/accounts/{member}/balance", headers=points.auth("volunteer", member, org=org)
        )
        return (r.status_code == 200 and r.json()["balance"] == 24) or None

    await eventually(credited, timeout=60, what=f"{member}'s two credits in the ledger")

    # a partner takes a plain job only while no one else holds a place in it
    plain = {"community_id": "penglai-grid", **job, **_window(2)}
    held = await _ok(await tasks.http.post("/v1/jobs", headers=officer, json=plain), 201)
    await _ok(
        await tasks.http.post(
            f"/v1/jobs/{held['id']}/claims", headers=app, json={"account_id": outsider}
        ),
        201,
    )
    r = await tasks.http.post(
        f"/v1/jobs/{held['id']}/partner", headers=shop, json={"partner_id": "m-shop"}
    )
    assert r.status_code == 409 and r.json()["reason"] == "partner_taken", r.text
    free = await _ok(await tasks.http.post("/v1/jobs", headers=officer, json=plain), 201)
    r = await tasks.http.post(
        f"/v1/jobs/{free['id']}/partner", headers=shop, json={"partner_id": "barbers"}
    )
    assert r.status_code == 403, r.text  # one partner does not hand jobs to another
    taken = await _ok(
        await tasks.http.post(
            f"/v1/jobs/{free['id']}/partner", headers=shop, json={"partner_id": "m-shop"}
        )
    )
    assert taken["partner_id"] == "m-shop"
    # another organisation's officer finds neither the job nor the partner
    stranger = tasks.auth("officer", org=f"other-{uuid.uuid4().hex[:6]}")
    r = await tasks.http.post(
        f"/v1/jobs/{free['id']}/partner", headers=stranger, json={"partner_id": "m-shop"}
    )
    assert r.status_code == 404, r.text
    r = await tasks.http.get("/v1/partners/m-shop", headers=stranger)
    assert r.status_code == 404, r.text
    r = await tasks.http.get("/v1/partners", headers=h("volunteer", member))
    listed = await _ok(r)
    assert [(p["id"], p["members"]) for p in listed["items"]] == [("barbers", 0), ("m-shop", 1)]
