"""Points belong to one organisation (issue #15), attacked through the running points API and
worker: a ledger account is (organisation, account). Each attack is refused with a clear 4xx
naming a `reason` and moves no balance; its legitimate counterpart still works."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from tests.helpers import Api, eventually

from jifen.devtools.devstack import DevStack
from jifen.kernel.contracts import Contracts, isoformat
from jifen.kernel.settings import REPO_ROOT

pytestmark = pytest.mark.e2e
CONTRACTS = Contracts(REPO_ROOT / "schemas")


def _tag() -> str:
    return uuid.uuid4().hex[:6]


class Org:
    """Two admins, an officer and an auditor of one organisation, as tokens."""

    def __init__(self, points: Api, org: str) -> None:
        self.points, self.org = points, org

    def h(self, role: str, subject: str | None = None) -> dict[str, str]:
        return self.points.auth(role, subject, org=self.org)

    async def request(self, account: str, amount: Any, admin: str = "adm-1") -> Any:
        return await self.points.http.post(
            "/v1/adjustments",
            headers=self.h("admin", admin),
            json={"account_id": account, "amount": amount, "reason": "纸质记录 paper record"},
        )

    async def decide(self, adj_id: str, admin: str, verb: str = "approve") -> Any:
        return await self.points.http.post(
            f"/v1/adjustments/{adj_id}/{verb}", headers=self.h("admin", admin)
        )

    async def grant(self, account: str, amount: int) -> None:
        """A legitimate two-person adjustment (how these tests give an org points)."""
        r = await self.request(account, amount)
        assert r.status_code == 201, r.text
        ok = await self.decide(r.json()["id"], "adm-2")
        assert ok.status_code == 200 and ok.json()["status"] == "approved", ok.text

    async def balance(self, account: str) -> int:
        r = await self.points.http.get(
            f"/v1/accounts/{account}/balance", headers=self.h("volunteer", account)
        )
        assert r.status_code == 200, r.text
        return int(r.json()["balance"])


@pytest.fixture
def orgs(apis: dict[str, Api]) -> tuple[Org, Org, Org]:
    t = _tag()
    points = apis["points"]
    return Org(points, f"tn-a-{t}"), Org(points, f"tn-b-{t}"), Org(points, f"tn-c-{t}")


def _refused(r: Any, status: int, reason: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    assert r.json()["reason"] == reason, r.json()


async def test_an_admin_adjusts_only_their_own_organisations_account(
    orgs: tuple[Org, Org, Org],
) -> None:
    a, b, _ = orgs
    vol = f"vol-{_tag()}"
    await b.grant(vol, 50)
    assert (await b.balance(vol), await a.balance(vol)) == (50, 0)

    # A's admins cannot spend or see B's points: a debit is of (A, vol), which holds nothing
    r = await a.request(vol, -50)
    _refused(r, 409, "adjustment_overdraws")
    assert "积分不足" in r.json()["detail"]
    # B's pending adjustment is not A's to approve or reject
    pending = await b.request(vol, -10)
    assert pending.status_code == 201, pending.text
    for verb in ("approve", "reject"):
        r = await a.decide(pending.json()["id"], "adm-2", verb)
        assert r.status_code == 404, r.text
    listed = await a.points.http.get("/v1/adjustments", headers=a.h("admin", "adm-1"))
    assert pending.json()["id"] not in {x["id"] for x in listed.json()["items"]}
    # an approved credit by A is A's points of the person, beside B's
    await a.grant(vol, 7)
    assert (await a.balance(vol), await b.balance(vol)) == (7, 50)
    r = await a.points.http.get("/v1/adjustments", headers=a.h("admin", "adm-1"))
    assert {x["org_id"] for x in r.json()["items"]} == {a.org}


async def test_a_token_verified_and_remembered_for_one_organisation_gains_nothing_in_another(
    orgs: tuple[Org, Org, Org],
) -> None:
    """The APIs remember a verified token for its lifetime (the signature is not checked
    again): once remembered, the same bearer string of A's admin is still held to A. It
    approves A's adjustment, then is refused B's (and B's list), again and again from the
    memory, while B's pending adjustment stays pending and B's own admin approves it."""
    a, b, _ = orgs
    vol = f"vol-{_tag()}"
    mine = await a.request(vol, 9)
    theirs = await b.request(vol, 6)
    assert mine.status_code == 201 and theirs.status_code == 201, (mine.text, theirs.text)
    approver = a.h("admin", "adm-2")  # one bearer string, sent every time below
    for _ in range(3):  # remembered after the first
        r = await a.points.http.get("/v1/adjustments", headers=approver)
        assert r.status_code == 200 and {x["org_id"] for x in r.json()["items"]} == {a.org}, r.text
    r = await a.points.http.post(f"/v1/adjustments/{mine.json()['id']}/approve", headers=approver)
    assert r.status_code == 200 and r.json()["status"] == "approved", r.text
    for _ in range(3):
        for verb in ("approve", "reject"):
            r = await a.points.http.post(
                f"/v1/adjustments/{theirs.json()['id']}/{verb}", headers=approver
            )
            assert r.status_code == 404, r.text
    assert (await a.balance(vol), await b.balance(vol)) == (9, 0)
    ok = await b.decide(theirs.json()["id"], "adm-2")
    assert ok.status_code == 200 and ok.json()["status"] == "approved", ok.text
    assert (await a.balance(vol), await b.balance(vol)) == (9, 6)


async def test_two_people_means_two_normalised_identities(orgs: tuple[Org, Org, Org]) -> None:
    a, _, _ = orgs
    vol = f"vol-{_tag()}"
    await a.grant(vol, 20)
    r = await a.request(vol, 100, admin="adm-a")
    assert r.status_code == 201, r.text
    adj = r.json()["id"]
    _refused(await a.decide(adj, "ADM-A"), 409, "same_person")
    _refused(await a.decide(adj, "Adm-A", "reject"), 409, "same_person")
    # the beneficiary, whatever their case, may not decide it either
    mine = await a.request("adm-rich", 100, admin="adm-a")
    assert mine.status_code == 201, mine.text
    _refused(await a.decide(mine.json()["id"], "ADM-RICH"), 409, "beneficiary")
    _refused(await a.decide(mine.json()["id"], "adm-rich", "reject"), 409, "beneficiary")
    assert await a.balance(vol) == 20 and await a.balance("adm-rich") == 0
    # a genuinely second admin approves
    ok = await a.decide(adj, "adm-b")
    assert ok.status_code == 200 and ok.json()["decided_by"] == "adm-b", ok.text
    assert await a.balance(vol) == 120


async def test_a_debit_adjustment_never_takes_a_balance_below_zero(
    orgs: tuple[Org, Org, Org],
) -> None:
    a, b, _ = orgs
    vol = f"vol-{_tag()}"
    await a.grant(vol, 50)
    await b.grant(vol, 999)  # another organisation's points do not cover A's debit
    _refused(await a.request(vol, -1_000_000), 409, "adjustment_overdraws")
    _refused(await a.request(vol, -51), 409, "adjustment_overdraws")
    # two debits that each fit at request time: the second is refused when approved
    first, second = await a.request(vol, -40), await a.request(vol, -40)
    assert first.status_code == second.status_code == 201, (first.text, second.text)
    assert (await a.decide(first.json()["id"], "adm-2")).status_code == 200
    _refused(await a.decide(second.json()["id"], "adm-2"), 409, "adjustment_overdraws")
    r = await a.points.http.get(
        "/v1/adjustments", params={"status": "pending"}, headers=a.h("admin", "adm-1")
    )
    assert second.json()["id"] in {x["id"] for x in r.json()["items"]}  # still pending, not applied
    assert (await a.balance(vol), await b.balance(vol)) == (10, 999)
    # to exactly zero is allowed
    last = await a.request(vol, -10)
    assert (await a.decide(last.json()["id"], "adm-2")).status_code == 200
    assert await a.balance(vol) == 0


@pytest.mark.parametrize("amount", ["5", 5.0, True, "-5", None, [5]])
async def test_adjustment_amounts_are_json_integers(
    orgs: tuple[Org, Org, Org], amount: Any
) -> None:
    a, _, _ = orgs
    r = await a.request(f"vol-{_tag()}", amount)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


async def _entries(org: Org, account: str, role: str = "auditor") -> Any:
    return await org.points.http.get(f"/v1/accounts/{account}/entries", headers=org.h(role))


async def test_reads_show_only_the_callers_organisation(
    orgs: tuple[Org, Org, Org], services: DevStack
) -> None:
    a, b, c = orgs
    vol = f"vol-{_tag()}"
    await a.grant(vol, 30)
    await b.grant(vol, 4)  # after one write by B, B still sees nothing of A
    month = datetime.now(UTC).strftime("%Y-%m")
    for org, want in ((a, 30), (b, 4)):
        for role in ("officer", "auditor", "admin"):
            r = await org.points.http.get(f"/v1/accounts/{vol}/balance", headers=org.h(role))
            assert r.status_code == 200 and r.json()["balance"] == want, (org.org, role, r.text)
            assert r.headers["cache-control"] == "no-store"
        r = await _entries(org, vol)
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
        assert [(e["org_id"], e["amount"]) for e in r.json()["items"]] == [(org.org, want)]
        r = await org.points.http.get(
            f"/v1/accounts/{vol}/statements/{month}", headers=org.h("volunteer", vol)
        )
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
        assert (r.json()["org_id"], r.json()["closing_balance"], r.json()["entries"]) == (
            org.org,
            want,
            1,
        )
        r = await org.points.http.get(f"/v1/audit/accounts/{vol}/history", headers=org.h("auditor"))
        assert r.status_code == 200, r.text
        assert {e["entry"]["org_id"] for e in r.json()["items"]} == {org.org}
    # an organisation with no entry of the account: 404 for staff, zeros for the volunteer
    for role in ("officer", "auditor", "admin"):
        for path in (
            f"/v1/accounts/{vol}/balance",
            f"/v1/accounts/{vol}/entries",
            f"/v1/accounts/{vol}/statements/{month}",
        ):
            r = await c.points.http.get(path, headers=c.h(role))
            assert r.status_code == 404, (role, path, r.text)
    r = await c.points.http.get(f"/v1/audit/accounts/{vol}/history", headers=c.h("auditor"))
    assert r.status_code == 404
    assert await c.balance(vol) == 0

    # the audit export: others' entries as leaf hashes only. A checkpoint signs the tree the
    # sequencer (its own process) has built so far: B's entry, written a moment ago, may not be
    # in it yet, so sign again until it is (a fresh-clone run failed on this race)
    async def exported() -> list[dict[str, Any]] | None:
        await a.points.http.post("/v1/audit/checkpoints", headers=a.h("auditor"))
        r = await a.points.http.get("/v1/audit/export", headers=b.h("auditor"))
        assert r.status_code == 200, r.text
        got = [orjson.loads(x) for x in r.content.splitlines()]
        return got if any("entry" in x for x in got[1:]) else None

    lines = await eventually(exported, timeout=60, what="B's entry in a signed checkpoint")
    assert lines[0]["org_id"] == b.org and isinstance(lines[0]["legacy_cutover"], int)
    assert {x["entry"]["org_id"] for x in lines[1:] if "entry" in x} == {b.org}
    assert all(
        set(x) == {"position", "leaf_hash", "redacted"} for x in lines[1:] if "entry" not in x
    )


async def test_a_redemption_of_one_organisation_spends_only_its_points(
    orgs: tuple[Org, Org, Org], services: DevStack
) -> None:
    """The ledger worker debits (reward's org, account): B's redemption for a volunteer who
    earned in A moves B's balance of the person, never A's (redeem refuses it first; this is
    the ledger's own guarantee, whatever reaches it)."""
    a, b, _ = orgs
    vol = f"vol-{_tag()}"
    await a.grant(vol, 100)
    await b.grant(vol, 25)
    now = datetime.now(UTC)
    placed = CONTRACTS.new_event(
        "jifen.redeem.redemption.placed.v1",
        source="/jifen/redeem",
        subject=vol,
        time=now,
        data={
            "redemption_id": str(uuid.uuid4()),
            "account_id": vol,
            "org_id": b.org,
            "reward_id": str(uuid.uuid4()),
            "points": 20,
            "placed_at": isoformat(now),
        },
    )
    producer = AIOKafkaProducer(bootstrap_servers=services.broker.bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait("redeem.redemptions", orjson.dumps(placed), key=vol.encode())
    finally:
        await producer.stop()

    async def debited() -> bool:
        return await b.balance(vol) == 5

    await eventually(debited, what="B's debit")
    assert await a.balance(vol) == 100
    r = await _entries(b, vol)
    kinds = [(e["kind"], e["amount"], e["balance_after"]) for e in r.json()["items"]]
    assert kinds == [("debit", -20, 5), ("adjustment", 25, 25)]
