"""Points belong to one scheme, on the redeem side (issue 15), through the real processes.

- Another organisation's app cannot spend points an account earned elsewhere: its wallet of
  that account is empty (409 insufficient_points), the home wallet and the ledger are
  untouched, and a reward of another organisation stays 404.
- A redemption's Idempotency-Key is the caller's own within its organisation: reusing
  someone else's key neither returns their redemption (and voucher) nor blocks them.
- Wrong voucher codes: after five on a redemption, fulfilment answers 429 with Retry-After,
  even for the right code.
- Wallets, redemptions and vouchers are sent with ``Cache-Control: no-store``.
- Points, stock, limits and windows are JSON integers: "10" is refused (422).
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from tests.e2e.test_typical_journey import earn
from tests.helpers import Api, eventually

from jifen.devtools.devstack import DevStack

pytestmark = pytest.mark.e2e

WRONG = "AAAAA-BBBBB-CCCCC-DDDDD"


def no_store(r: httpx.Response) -> bool:
    return r.headers.get("cache-control") == "no-store"


async def wallet_when(
    redeem: Api, account: str, org: str | None = None, **want: Any
) -> dict[str, Any]:
    """The account's wallet in ``org`` (an officer's view) once it shows ``want``."""

    async def probe() -> dict[str, Any] | None:
        r = await redeem.http.get(
            f"/v1/wallets/{account}", headers=redeem.auth("officer", None, org)
        )
        if r.status_code != 200:
            return None
        assert no_store(r), r.headers
        w: dict[str, Any] = r.json()
        return w if all(w[k] == v for k, v in want.items()) else None

    return await eventually(probe, timeout=60, what=f"wallet of {account} in {org} with {want}")


async def add_reward(redeem: Api, org: str | None = None, **body: Any) -> dict[str, Any]:
    r = await redeem.http.post(
        "/v1/rewards",
        headers=redeem.auth("admin", None, org),
        json={"merchant_id": "shop-tenancy", "name_zh": "大米", "name_en": "Rice", **body},
    )
    assert r.status_code == 201, r.text
    reward: dict[str, Any] = r.json()
    return reward


async def redeem_as(
    redeem: Api, role: str, org: str | None, key: str, **body: Any
) -> httpx.Response:
    subject = body.get("account_id") if role == "volunteer" else None
    if role == "volunteer":
        body.pop("account_id")
    return await redeem.http.post(
        "/v1/redemptions",
        headers={**redeem.auth(role, subject, org), "Idempotency-Key": key},
        json=body,
    )


async def ledger_balance(points: Api, account: str) -> int:
    r = await points.http.get(
        f"/v1/accounts/{account}/balance", headers=points.auth("volunteer", account)
    )
    assert r.status_code == 200, r.text
    balance: int = r.json()["balance"]
    return balance


async def test_another_organisation_cannot_spend_points_earned_elsewhere(
    apis: dict[str, Api],
) -> None:
    tasks, points, redeem = apis["tasks"], apis["points"], apis["redeem"]
    run = uuid.uuid4().hex[:6]
    account, org_b = f"vol-home-{run}", f"org-b-{run}"
    await earn(tasks, account, 30)
    await wallet_when(redeem, account, ledger_balance=30, spendable=30)
    theirs = await add_reward(redeem, org_b, points=10, stock=5)
    ours = await add_reward(redeem, points=10, stock=5)

    # the attack: B's app redeems B's reward for an account that earned everything in A
    r = await redeem_as(
        redeem, "app", org_b, f"steal-{run}", reward_id=theirs["id"], account_id=account
    )
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["reason"] == "insufficient_points", body
    assert (body["balance"], body["spendable"], body["held"]) == (0, 0, 0)
    assert "积分不足" in body["detail"] and no_store(r)
    # ... or A's reward: not B's to offer
    r = await redeem_as(
        redeem, "app", org_b, f"steal2-{run}", reward_id=ours["id"], account_id=account
    )
    assert r.status_code == 404, r.text
    # B's volunteer token for the same account id: B's (empty) wallet too
    r = await redeem_as(
        redeem, "volunteer", org_b, f"steal3-{run}", reward_id=theirs["id"], account_id=account
    )
    assert r.status_code == 409 and r.json()["reason"] == "insufficient_points", r.text
    mine = await redeem.http.get(
        f"/v1/wallets/{account}", headers=redeem.auth("volunteer", account, org_b)
    )
    assert mine.status_code == 200 and no_store(mine)
    assert (mine.json()["ledger_balance"], mine.json()["spendable"]) == (0, 0)

    # nothing happened anywhere: no redemption in B, A's wallet and the ledger as they were
    listed = await redeem.http.get(
        "/v1/redemptions", headers=redeem.auth("officer", None, org_b), params={"limit": 500}
    )
    assert listed.status_code == 200 and no_store(listed)
    assert [x for x in listed.json()["items"] if x["account_id"] == account] == []
    r = await redeem.http.get(f"/v1/wallets/{account}", headers=redeem.auth("officer", None, org_b))
    assert r.status_code == 404, r.text  # B's staff see no wallet of it, let alone A's
    w = await wallet_when(redeem, account, ledger_balance=30)
    assert (w["held"], w["spendable"]) == (0, 30)
    assert await ledger_balance(points, account) == 30
    r = await redeem.http.get("/v1/rewards", headers=redeem.auth("volunteer", account, org_b))
    assert {x["id"]: x["stock"] for x in r.json()["items"]}[theirs["id"]] == 5

    # the legitimate path: A's app redeems A's reward from A's points
    r = await redeem_as(
        redeem, "app", None, f"fair-{run}", reward_id=ours["id"], account_id=account
    )
    assert r.status_code == 201, r.text
    assert no_store(r)
    await wallet_when(redeem, account, ledger_balance=20, held=0, spendable=20)


async def test_an_idempotency_key_is_the_callers_own_in_its_organisation(
    apis: dict[str, Api], services: DevStack
) -> None:
    tasks, redeem = apis["tasks"], apis["redeem"]
    run = uuid.uuid4().hex[:6]
    account, org_b, key = f"vol-key-{run}", f"org-key-{run}", f"shared-{run}"
    tasks_b = Api(services, "tasks", org=org_b)
    try:
        await earn(tasks, account, 50)
        await earn(tasks_b, account, 20)
    finally:
        await tasks_b.close()
    await wallet_when(redeem, account, spendable=50)
    await wallet_when(redeem, account, org_b, spendable=20)
    ours = await add_reward(redeem, points=10, stock=5)
    theirs = await add_reward(redeem, org_b, points=10, stock=5)

    # B uses the key first, for its own reward: its own redemption, nothing of A's
    b_first = await redeem_as(redeem, "app", org_b, key, reward_id=theirs["id"], account_id=account)
    assert b_first.status_code == 201, b_first.text
    # A's app, same key, later: a new redemption of its own, not blocked, not B's
    a_first = await redeem_as(redeem, "app", None, key, reward_id=ours["id"], account_id=account)
    assert a_first.status_code == 201, a_first.text
    assert a_first.json()["id"] != b_first.json()["id"]
    assert a_first.json()["org_id"] == redeem.org
    # B reuses the key again: its own original back, never A's redemption or voucher
    b_again = await redeem_as(redeem, "app", org_b, key, reward_id=theirs["id"], account_id=account)
    assert b_again.status_code == 200 and b_again.json()["id"] == b_first.json()["id"]
    b_on_ours = await redeem_as(redeem, "app", org_b, key, reward_id=ours["id"], account_id=account)
    assert b_on_ours.status_code == 409, b_on_ours.text
    assert b_on_ours.json()["reason"] == "idempotency_key_reused"
    assert b_on_ours.json()["redemption_id"] == b_first.json()["id"]
    # the legitimate replay: same caller, same key, same redemption
    a_again = await redeem_as(redeem, "app", None, key, reward_id=ours["id"], account_id=account)
    assert a_again.status_code == 200 and a_again.json()["id"] == a_first.json()["id"]
    # another caller of A (the volunteer themself) with the same key: their own
    own = await redeem_as(redeem, "volunteer", None, key, reward_id=ours["id"], account_id=account)
    assert own.status_code == 201 and own.json()["id"] != a_first.json()["id"], own.text

    # vouchers: each organisation's app sees its own, never the other's
    async def voucher(rid: str, org: str | None) -> str | None:
        r = await redeem.http.get(f"/v1/redemptions/{rid}", headers=redeem.auth("app", None, org))
        assert r.status_code == 200 and no_store(r), r.text
        code: str | None = r.json()["voucher_code"]
        return code

    await eventually(lambda: voucher(a_first.json()["id"], None), what="A's voucher")
    r = await redeem.http.get(
        f"/v1/redemptions/{a_first.json()['id']}", headers=redeem.auth("app", None, org_b)
    )
    assert r.status_code == 404 and no_store(r)
    # each wallet paid for its own: A two, B one
    await wallet_when(redeem, account, ledger_balance=30, held=0)
    await wallet_when(redeem, account, org_b, ledger_balance=10, held=0)


async def test_wrong_voucher_codes_lock_fulfilment_even_for_the_right_code(
    apis: dict[str, Api],
) -> None:
    tasks, redeem = apis["tasks"], apis["redeem"]
    run = uuid.uuid4().hex[:6]
    account, shop = f"vol-guess-{run}", f"shop-guess-{run}"
    await earn(tasks, account, 20)
    await wallet_when(redeem, account, spendable=20)
    rice = await add_reward(redeem, merchant_id=shop, points=5, stock=5)
    vol = redeem.auth("volunteer", account)

    async def confirmed() -> tuple[str, str] | None:
        r = await redeem_as(
            redeem, "volunteer", None, f"g-{uuid.uuid4()}", reward_id=rice["id"], account_id=account
        )
        assert r.status_code == 201, r.text
        rid = r.json()["id"]

        async def code() -> str | None:
            got = await redeem.http.get(f"/v1/redemptions/{rid}", headers=vol)
            c: str | None = got.json()["voucher_code"]
            return c

        return rid, await eventually(code, timeout=60, what="voucher issued")

    rid, code = await confirmed()
    till = redeem.auth("merchant", shop)
    url = f"/v1/redemptions/{rid}/fulfil"
    for left in (4, 3, 2, 1, 0):
        r = await redeem.http.post(url, headers=till, json={"voucher_code": WRONG})
        assert r.status_code == 409 and r.json()["reason"] == "wrong_voucher", r.text
        assert r.json()["attempts_left"] == left and no_store(r)
    # the sixth try is refused before any code is compared, even the right one
    for presented in (WRONG, code):
        r = await redeem.http.post(url, headers=till, json={"voucher_code": presented})
        assert r.status_code == 429, r.text
        body = r.json()
        assert body["reason"] == "voucher_attempts_exceeded" and body["scope"] == "redemption"
        wait = int(r.headers["retry-after"])
        assert 0 < wait <= 900 and body["retry_after_seconds"] == wait
        assert "券码错误次数过多" in body["detail"]
    got = await redeem.http.get(f"/v1/redemptions/{rid}", headers=vol)
    assert got.json()["status"] == "confirmed" and got.json()["voucher_code"] == code
    # the member keeps their points (held by the voucher) and may cancel for a refund
    r = await redeem.http.post(f"/v1/redemptions/{rid}/cancel", headers=vol)
    assert r.status_code == 200 and r.json()["status"] == "cancelled" and no_store(r), r.text

    # the legitimate counter: a typo, then the right code, fulfils
    rid, code = await confirmed()
    url = f"/v1/redemptions/{rid}/fulfil"
    r = await redeem.http.post(url, headers=till, json={"voucher_code": WRONG})
    assert r.status_code == 409 and r.json()["attempts_left"] == 4
    r = await redeem.http.post(url, headers=till, json={"voucher_code": code})
    assert r.status_code == 200 and r.json()["status"] == "fulfilled", r.text
    assert no_store(r) and r.json()["voucher_code"] is None
    # 20 earned, one voucher of 5 fulfilled, one cancelled and refunded
    await wallet_when(redeem, account, ledger_balance=15, held=0, spendable=15)


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/v1/rewards", {"points": "10"}, "points"),
        ("POST", "/v1/rewards", {"points": 10.0}, "points"),
        ("POST", "/v1/rewards", {"stock": "5"}, "stock"),
        ("POST", "/v1/rewards", {"stock": None, "daily_quota": "3"}, "daily_quota"),
        ("POST", "/v1/rewards", {"monthly_limit": "2"}, "monthly_limit"),
        ("POST", "/v1/rewards", {"voucher_ttl_seconds": "60"}, "voucher_ttl_seconds"),
        ("PUT", "/v1/settings", {"fraud_window_seconds": "60"}, "fraud_window_seconds"),
    ],
)
async def test_numbers_as_strings_are_refused(
    apis: dict[str, Api], method: str, path: str, body: dict[str, Any], field: str
) -> None:
    redeem = apis["redeem"]
    org = f"org-strict-{uuid.uuid4().hex[:6]}"
    base: dict[str, Any] = (
        {"merchant_id": "shop-s", "name_zh": "米", "name_en": "Rice", "points": 10, "stock": 5}
        if path == "/v1/rewards"
        else {}
    )
    r = await redeem.http.request(
        method, path, headers=redeem.auth("admin", None, org), json={**base, **body}
    )
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert field in r.text
    # the same document with integers is taken
    fixed = {k: (int(v) if isinstance(v, str | float) else v) for k, v in body.items()}
    r = await redeem.http.request(
        method, path, headers=redeem.auth("admin", None, org), json={**base, **fixed}
    )
    assert r.status_code in (200, 201), r.text


async def test_patching_a_reward_takes_only_json_integers_and_booleans(
    apis: dict[str, Api],
) -> None:
    redeem = apis["redeem"]
    org = f"org-patch-{uuid.uuid4().hex[:6]}"
    reward = await add_reward(redeem, org, points=10, stock=5)
    admin = redeem.auth("admin", None, org)
    url = f"/v1/rewards/{reward['id']}"
    for body in ({"stock": "3"}, {"stock": 3.0}, {"active": "false"}, {"active": 0}):
        r = await redeem.http.patch(url, headers=admin, json=body)
        assert r.status_code == 422, (body, r.text)
    r = await redeem.http.patch(url, headers=admin, json={"stock": 3, "active": False})
    assert r.status_code == 200 and (r.json()["stock"], r.json()["active"]) == (3, False)
