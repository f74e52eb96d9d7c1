"""The opt-in honour roll, through the real tasks API: a community's roll for a month lists the
volunteers who opted in, by the name on the records, with their completions verified in the
month and the jobs' points, highest first; nobody who has not opted in ever appears, and opting
out removes one. Attacks: a person cannot set another's consent (there is no account to name,
and no other role may set it), another organisation's token gets 404 for this community, and
the roll shows no account id and no phone number."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.helpers import Api

pytestmark = pytest.mark.e2e


def _phone() -> str:
    return "134" + "".join(secrets.choice("0123456789") for _ in range(8))


class Grid:
    """A community with volunteers on record whose work an officer verified this month."""

    def __init__(self, tasks: Api) -> None:
        self.tasks = tasks
        tag = uuid.uuid4().hex[:6]
        self.tag = tag
        self.community = f"honour-{tag}"
        self.people: dict[str, tuple[str, str, str]] = {}  # key -> (account, phone, name)

    async def post(self, path: str, role: str, body: Any, **headers: str) -> Any:
        r = await self.tasks.http.post(
            path, headers={**self.tasks.auth(role), **headers}, json=body
        )
        assert r.status_code in (200, 201), f"{path}: {r.status_code} {r.text}"
        return r.json()

    async def build(self, names: dict[str, str]) -> None:
        await self.post("/v1/communities", "officer", {"id": self.community, "name": "荣誉网格"})
        for key, name in names.items():
            account, phone = f"vol-{key}-{self.tag}", _phone()
            self.people[key] = (account, phone, name)
            await self.post(
                "/v1/people",
                "admin",
                {"person_id": account, "phone": phone, "role": "volunteer", "display_name": name},
            )
            await self.post(
                f"/v1/communities/{self.community}/members", "app", {"account_id": account}
            )

    async def verified(self, key: str, points: int) -> None:
        now = datetime.now(UTC)
        job = await self.post(
            "/v1/jobs",
            "officer",
            {
                "community_id": self.community,
                "title": "为独居老人送餐 Meal delivery",
                "category": "meal_delivery",
                "points": points,
                "capacity": 5,
                "starts_at": (now - timedelta(hours=1)).isoformat(),
                "ends_at": (now + timedelta(hours=1)).isoformat(),
            },
        )
        account = self.people[key][0]
        await self.post(f"/v1/jobs/{job['id']}/claims", "app", {"account_id": account})
        done = await self.post(
            f"/v1/jobs/{job['id']}/completions",
            "app",
            {"account_id": account},
            **{"Idempotency-Key": f"h-{uuid.uuid4()}"},
        )
        await self.post(f"/v1/completions/{done['id']}/verify", "officer", None)

    async def consent(self, key: str, listed: bool, lang: str = "en") -> Any:
        return await self.tasks.http.put(
            "/v1/me/honour-roll",
            headers={**self.tasks.auth("volunteer", self.people[key][0]), "Accept-Language": lang},
            json={"listed": listed},
        )

    async def roll(self, role: str = "app", org: str | None = None, **params: Any) -> Any:
        return await self.tasks.http.get(
            f"/v1/public/communities/{self.community}/honour-roll",
            headers=self.tasks.auth(role, org=org),
            params=params,
        )

    async def names(self) -> list[tuple[str, int, int]]:
        r = await self.roll()
        assert r.status_code == 200, r.text
        return [(e["display_name"], e["services"], e["points"]) for e in r.json()["roll"]]


async def test_only_those_who_opted_in_are_listed_highest_first(apis: dict[str, Api]) -> None:
    g = Grid(apis["tasks"])
    await g.build({"a": "甲师傅", "b": "乙师傅", "c": "丙师傅", "d": "丁师傅"})
    await g.verified("a", 40)
    await g.verified("a", 10)
    for key in ("b", "c", "d"):
        await g.verified(key, 40)
    assert await g.names() == []  # nobody opted in yet
    for key in ("a", "c", "d"):
        r = await g.consent(key, True)
        assert r.status_code == 200 and r.json()["listed"] is True, r.text
    names = await g.names()
    assert names[0] == ("甲师傅", 2, 50)  # the tied two in the database's order of names
    assert sorted(names[1:]) == sorted([("丙师傅", 1, 40), ("丁师傅", 1, 40)])
    r = await g.roll(role="volunteer")  # any member of the organisation reads it too
    entries = r.json()["roll"]
    assert [e["rank"] for e in entries] == [1, 2, 2]  # equal points share a rank
    # no account id and no phone number on the roll
    for account, phone, _ in g.people.values():
        assert account not in r.text and phone not in r.text and phone[-4:] not in r.text
    # opting out removes one at once; the one who never opted in never appears
    r = await g.consent("c", False)
    assert r.status_code == 200 and r.json()["listed"] is False, r.text
    assert await g.names() == [("甲师傅", 2, 50), ("丁师傅", 1, 40)]
    mine = await apis["tasks"].http.get(
        "/v1/me/honour-roll", headers=apis["tasks"].auth("volunteer", g.people["c"][0])
    )
    assert mine.json()["listed"] is False and mine.json()["display_name"] == "丙师傅"
    # another month: nothing verified in it
    r = await g.roll(month="2026-01")
    assert r.status_code == 200 and r.json()["roll"] == [], r.text
    assert r.json()["since"].startswith("2026-01-01T00:00:00")
    assert (await g.roll(month="2026-13")).status_code == 422
    assert (await g.roll(limit=1)).json()["roll"][0]["display_name"] == "甲师傅"
    assert len((await g.roll(limit=1)).json()["roll"]) == 1


async def test_nobody_sets_anothers_consent(apis: dict[str, Api]) -> None:
    tasks = apis["tasks"]
    g = Grid(tasks)
    await g.build({"me": "我师傅", "other": "他师傅"})
    await g.verified("me", 20)
    assert (await g.consent("me", True)).status_code == 200
    # the body cannot name an account: the token's own is the only one
    r = await tasks.http.put(
        "/v1/me/honour-roll",
        headers=tasks.auth("volunteer", g.people["other"][0]),
        json={"listed": False, "account_id": g.people["me"][0]},
    )
    assert r.status_code == 422, r.text
    # another volunteer opting out changes only their own consent
    assert (await g.consent("other", False)).status_code == 200
    assert await g.names() == [("我师傅", 1, 20)]
    # no other role sets a consent, for anyone (an app acts for volunteers, but not here)
    for role in ("officer", "admin", "app", "merchant", "auditor", "operator"):
        r = await tasks.http.put(
            "/v1/me/honour-roll",
            headers=tasks.auth(role, g.people["me"][0]),
            json={"listed": False},
        )
        assert r.status_code == 403, (role, r.text)
    assert await g.names() == [("我师傅", 1, 20)]
    # a volunteer not on the records has no name to be listed by
    r = await tasks.http.put(
        "/v1/me/honour-roll",
        headers={**tasks.auth("volunteer", f"vol-unknown-{g.tag}"), "Accept-Language": "zh-CN"},
        json={"listed": True},
    )
    assert r.status_code == 409 and r.json()["reason"] == "not_on_record", r.text
    assert "记录" in r.json()["detail"]


async def test_another_organisations_community_is_not_found(apis: dict[str, Api]) -> None:
    tasks = apis["tasks"]
    g = Grid(tasks)
    await g.build({"x": "戊师傅"})
    await g.verified("x", 30)
    assert (await g.consent("x", True)).status_code == 200
    other = f"honour-other-{g.tag}"
    for role in ("app", "volunteer", "officer"):
        r = await g.roll(role=role, org=other)
        assert r.status_code == 404, (role, r.text)
        assert "戊师傅" not in r.text
    r = await tasks.http.get(
        f"/v1/public/communities/no-such-{g.tag}/honour-roll", headers=tasks.auth("app")
    )
    assert r.status_code == 404, r.text
    assert (
        await tasks.http.get(f"/v1/public/communities/{g.community}/honour-roll")
    ).status_code == 401
    assert (await g.roll(role="operator")).status_code == 403
