"""One list convention, through the running services (issue 21, part 3; docs/API.md "Lists").

In an organisation of its own, three or more of every listed thing are made through the APIs
(jobs, completions, credits, redemptions, calls…); then every list of the three services is
paged one item at a time and must give exactly what one large page gives — same items, same
order, none twice, a null ``next_cursor`` only at the end — and every list refuses a limit
out of 1..1,000 and a cursor that is not one of its own, in the caller's language. The
attacks: a cursor handed to another organisation's caller shows that caller nothing of ours,
and another list's cursor of another kind is refused."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from jifen.devtools.devstack import DevStack
from jifen.kernel.pages import MAX_LIMIT
from tests.e2e.test_typical_journey import complete, earn
from tests.helpers import Api, ensure_community, eventually

pytestmark = pytest.mark.e2e


@dataclass
class Listed:
    service: str
    path: str
    role: str
    params: dict[str, Any] = field(default_factory=dict)
    least: int = 3  # made here: the list must hold at least this many
    ident: Callable[[dict[str, Any]], Any] = lambda item: item.get("id")
    subject: str | None = None
    grows_in_front: bool = False  # newest first, and signed on a timer: may grow as it is read


@pytest.fixture
async def org(services: DevStack) -> AsyncIterator[dict[str, Api]]:
    name = f"lists-{uuid.uuid4().hex[:8]}"
    clients = {s: Api(services, s, org=name) for s in ("tasks", "points", "redeem")}
    yield clients
    for c in clients.values():
        await c.close()


async def walk(api: Api, spec: Listed, limit: int) -> tuple[list[dict[str, Any]], int]:
    """Every item of a list, page after page of ``limit``; and how many pages it took."""
    headers = api.auth(spec.role, spec.subject)
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {**spec.params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        r = await api.http.get(spec.path, headers=headers, params=params)
        assert r.status_code == 200, f"{spec.service} {spec.path}: {r.status_code} {r.text}"
        page = r.json()
        assert set(page) == {"items", "next_cursor"}, f"{spec.path}: {sorted(page)}"
        assert len(page["items"]) <= limit, spec.path
        items += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            return items, pages
        assert page["items"], f"{spec.path}: an empty page with a next_cursor"
        assert pages <= 500, f"{spec.path}: no end in sight"


def _cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


async def make_everything(tasks: Api, points: Api, redeem: Api) -> dict[str, Any]:
    """Three or more of each listed thing in the organisation, through the APIs."""
    vols = [f"vol-l{i}-{uuid.uuid4().hex[:4]}" for i in range(3)]
    admin, officer, app = tasks.auth("admin"), tasks.auth("officer"), tasks.auth("app")
    for c in ("lists-a", "lists-b"):
        await ensure_community(tasks, c)
    # webhooks first, so the jobs published below leave deliveries in their logs (nothing
    # listens on port 9: each delivery fails and is tried again; the log is what is listed)
    hooks = []
    for i in range(3):
        r = await tasks.http.post(
            "/v1/webhooks",
            headers=admin,
            json={
                "event_types": ["jifen.tasks.job.published.v1"],
                "url": f"http://127.0.0.1:9/h{i}",
            },
        )
        assert r.status_code == 201, r.text
        hooks.append(r.json()["id"])
    # three volunteers credited; the first three times (three ledger entries)
    verified = [await earn(tasks, v, 20) for v in vols]
    verified += [await earn(tasks, vols[0], 20) for _ in range(2)]
    # three rejected completions, each appealed by its volunteer
    for i in range(3):
        done = await complete(tasks, vols[i], 5)
        r = await tasks.http.post(
            f"/v1/completions/{done['id']}/reject", headers=officer, json={"reason": "没有照片"}
        )
        assert r.status_code == 200, r.text
        r = await tasks.http.post(
            "/v1/appeals",
            headers=tasks.auth("volunteer", vols[i]),
            json={"completion_id": done["id"], "kind": "rejection", "reason": "照片在群里"},
        )
        assert r.status_code == 201, r.text
    for i in range(3):
        for path, who, body in (
            (
                "/v1/hazards",
                app,
                {
                    "account_id": vols[0],
                    "community_id": "penglai-grid",
                    "kind": "stairwell_clutter",
                    "text": f"楼道杂物 {i} boxes on the stairs",
                },
            ),
            (
                "/v1/needs",
                officer,
                {"community_id": "penglai-grid", "kind": "wish", "title": f"修灯 {i}"},
            ),
            (
                "/v1/people",
                admin,
                {
                    "person_id": f"person-{i}",
                    "phone": f"1390000{uuid.uuid4().int % 10000:04d}",
                    "role": "volunteer",
                    "display_name": f"李师傅 {i}",
                },
            ),
            ("/v1/apps/credentials", admin, {"app_id": f"app-lists-{i}", "writes_per_minute": 60}),
            (
                "/v1/mobilisations",
                officer,
                {
                    "community_id": "penglai-grid",
                    "message": f"台风 {i} typhoon",
                    "open_minutes": 60,
                },
            ),
        ):
            r = await tasks.http.post(path, headers=who, json=body)
            assert r.status_code in (201, 202), f"{path}: {r.text}"
            if path == "/v1/people":  # a sign-in code to each: the embedded sender keeps it
                r = await tasks.http.post(
                    "/v1/signin/codes", headers=app, json={"phone": body["phone"]}
                )
                assert r.status_code == 202, r.text
        r = await points.http.post(
            "/v1/adjustments",
            headers=points.auth("admin"),
            json={"account_id": vols[1], "amount": 1 + i, "reason": f"纸质签到表 {i}"},
        )
        assert r.status_code == 201, r.text
        r = await redeem.http.post(
            "/v1/merchants",
            headers=redeem.auth("officer"),
            json={
                "id": f"m-lists-{i}",
                "kind": "station",
                "name_zh": f"站 {i}",
                "name_en": f"S{i}",
            },
        )
        assert r.status_code == 201, r.text
    rewards = []
    for i in range(3):
        r = await redeem.http.post(
            "/v1/rewards",
            headers=redeem.auth("admin"),
            # two at the same price: the order's tie is broken by id
            json={
                "merchant_id": "m-lists-0",
                "name_zh": f"券{i}",
                "name_en": f"V{i}",
                "points": 1 + i // 2,
                "stock": 9,
            },
        )
        assert r.status_code == 201, r.text
        rewards.append(r.json()["id"])

    async def spendable() -> bool | None:
        r = await redeem.http.get(
            f"/v1/wallets/{vols[0]}", headers=redeem.auth("volunteer", vols[0])
        )
        return (r.status_code == 200 and r.json()["spendable"] >= 60) or None

    await eventually(spendable, timeout=90, what=f"{vols[0]}'s three credits in the wallet")
    for reward in rewards:
        r = await redeem.http.post(
            "/v1/redemptions",
            headers={**redeem.auth("volunteer", vols[0]), "Idempotency-Key": str(uuid.uuid4())},
            json={"reward_id": reward},
        )
        assert r.status_code == 201, r.text

    async def debited() -> bool | None:  # the three debits in the ledger: its lists stand still
        r = await points.http.get(
            f"/v1/accounts/{vols[0]}/balance", headers=points.auth("volunteer", vols[0])
        )
        return (r.status_code == 200 and r.json()["entries"] == 6) or None

    await eventually(debited, timeout=90, what=f"{vols[0]}'s three debits in the ledger")
    r = await points.http.post("/v1/audit/checkpoints", headers=points.auth("admin"))
    assert r.status_code in (200, 201), r.text
    return {"vols": vols, "completion": verified[0]["id"], "hook": hooks[0]}


def lists(made: dict[str, Any]) -> list[Listed]:
    vol = made["vols"][0]
    return [
        Listed("tasks", "/v1/jobs", "officer", least=8),
        Listed("tasks", "/v1/completions", "officer", least=8),
        Listed("tasks", f"/v1/completions/{made['completion']}/history", "officer", least=2,
               ident=lambda s: (s["status"], s["at"])),
        Listed("tasks", "/v1/appeals", "officer"),
        Listed("tasks", "/v1/hazards", "officer"),
        Listed("tasks", "/v1/needs", "officer"),
        Listed("tasks", "/v1/communities", "officer"),
        Listed("tasks", "/v1/communities/penglai-grid/members", "officer",
               ident=lambda m: m["account_id"]),
        Listed("tasks", f"/v1/volunteers/{vol}/communities", "officer", least=1),
        Listed("tasks", "/v1/categories", "officer", least=8, ident=lambda c: c["code"]),
        Listed("tasks", "/v1/people", "admin", ident=lambda p: p["person_id"]),
        Listed("tasks", "/v1/signin/messages", "operator"),
        Listed("tasks", "/v1/webhooks", "admin"),
        Listed("tasks", f"/v1/webhooks/{made['hook']}/deliveries", "admin", least=8),
        Listed("tasks", "/v1/calls", "app", params={"account_id": vol}),
        Listed("tasks", "/v1/apps/credentials", "admin"),
        Listed("tasks", "/v1/audit/completions", "auditor", least=5,
               ident=lambda c: c["completion_id"]),
        Listed("points", "/v1/adjustments", "admin"),
        Listed("points", f"/v1/accounts/{vol}/entries", "volunteer", subject=vol,
               ident=lambda e: e["entry_id"]),
        Listed("points", f"/v1/audit/accounts/{vol}/history", "auditor",
               ident=lambda e: e["entry"]["entry_id"]),
        Listed("points", "/v1/audit/keys", "auditor", least=1, ident=lambda k: k["key_id"]),
        Listed("points", "/v1/audit/checkpoints", "auditor", least=1, grows_in_front=True,
               ident=lambda c: c["tree_size"]),
        Listed("redeem", "/v1/merchants", "officer"),
        Listed("redeem", "/v1/rewards", "officer"),
        Listed("redeem", "/v1/redemptions", "officer"),
        Listed("redeem", "/v1/audit/redemptions", "auditor", ident=lambda x: x["redemption_id"]),
        Listed("redeem", "/v1/audit/frozen-wallets", "auditor", least=0,
               ident=lambda w: w["account_id"]),
    ]  # fmt: skip


async def test_every_list_pages_one_item_at_a_time_to_what_one_page_gives(
    org: dict[str, Api],
) -> None:
    made = await make_everything(org["tasks"], org["points"], org["redeem"])

    async def deliveries_logged() -> bool | None:
        r = await org["tasks"].http.get(
            f"/v1/webhooks/{made['hook']}/deliveries", headers=org["tasks"].auth("admin")
        )
        return len(r.json()["items"]) >= 8 or None

    await eventually(deliveries_logged, timeout=60, what="a delivery for each job published")
    not_a_key = _cursor(b"[1,2,3]")  # three values: no list's key has three
    for spec in lists(made):
        api = org[spec.service]
        whole, pages = await walk(api, spec, MAX_LIMIT)
        assert pages == 1 and len(whole) >= spec.least, (spec.path, len(whole))
        want = [spec.ident(i) for i in whole]
        # one at a time (a long list such as the session's checkpoints: ten pages or so), then
        # one more than that, so the last page is short
        for size in (max(1, len(want) // 10), max(1, len(want) // 10) + 1):
            paged, pages = await walk(api, spec, size)
            ids = [spec.ident(i) for i in paged]
            assert len(set(map(repr, ids))) == len(ids), f"{spec.path}: an item given twice"
            assert pages == max(1, -(-len(ids) // size)), spec.path  # no empty page at the end
            if spec.grows_in_front:  # checkpoints signed since: ahead of what was read first
                ids = ids[len(ids) - len(want) :]
            assert ids == want, spec.path  # the same items in the same order

        # what is not a page of this list is refused, in the caller's language
        h = api.auth(spec.role, spec.subject)
        for limit in (0, MAX_LIMIT + 1, -1):
            r = await api.http.get(spec.path, headers={**h, "Accept-Language": "en"},
                                   params={**spec.params, "limit": limit})  # fmt: skip
            assert r.status_code == 422 and "limit" in r.json()["detail"], (spec.path, r.text)
        for lang, said in (("zh-CN", "游标"), ("en", "is not a next_cursor this list gave")):
            r = await api.http.get(spec.path, headers={**h, "Accept-Language": lang},
                                   params={**spec.params, "cursor": not_a_key})  # fmt: skip
            assert r.status_code == 422 and said in r.json()["detail"], (spec.path, r.text)
            assert (lang == "en") == ("游标" not in r.json()["detail"]), r.text  # one language
        r = await api.http.get(spec.path, headers=h, params={**spec.params, "cursor": "a b"})
        assert r.status_code == 422, (spec.path, r.text)  # not base64url: refused by its pattern


async def test_a_cursor_opens_nothing_of_another_kind_or_organisation(
    org: dict[str, Api], services: DevStack
) -> None:
    tasks, redeem = org["tasks"], org["redeem"]
    await ensure_community(tasks, "penglai-grid")
    for i in range(2):
        await complete(tasks, f"vol-x{i}", 3)  # two jobs of ours
    r = await tasks.http.get("/v1/jobs", headers=tasks.auth("officer"), params={"limit": 1})
    ours = r.json()
    assert ours["next_cursor"] and len(ours["items"]) == 1
    # another organisation's officer, given our cursor: a position, not a key to our jobs
    other = Api(services, "tasks", org=f"other-{uuid.uuid4().hex[:8]}")
    try:
        r = await other.http.get(
            "/v1/jobs", headers=other.auth("officer"), params={"cursor": ours["next_cursor"]}
        )
        assert r.status_code == 200 and r.json() == {"items": [], "next_cursor": None}, r.text
    finally:
        await other.close()
    # the jobs' cursor (a time and an id) given to the rewards (points and an id): refused
    r = await redeem.http.get(
        "/v1/rewards", headers=redeem.auth("officer"), params={"cursor": ours["next_cursor"]}
    )
    assert r.status_code == 422 and "游标" in r.json()["detail"], r.text
    # and our own second page is the job the first did not give
    r = await tasks.http.get(
        "/v1/jobs",
        headers=tasks.auth("officer"),
        params={"limit": 1, "cursor": ours["next_cursor"]},
    )
    second = r.json()
    assert len(second["items"]) == 1 and second["items"][0]["id"] != ours["items"][0]["id"]
