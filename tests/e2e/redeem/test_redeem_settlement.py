"""A merchant's monthly settlement statement (issue 21, part 1), through the real processes:
rewards carry a money value; the month's statement counts what was handed over (not what
was only redeemed), per reward, in JSON and CSV; a merchant reads only its own."""

from __future__ import annotations

import csv
import io
import uuid
import zipfile
from datetime import UTC, datetime

import pytest

from tests.e2e.redeem.test_redeem_vouchers import add_reward, register
from tests.e2e.test_typical_journey import earn
from tests.helpers import Api, eventually

pytestmark = pytest.mark.e2e


async def _redeem(redeem: Api, account: str, reward_id: str) -> tuple[str, str]:
    vol = redeem.auth("volunteer", account)
    r = await redeem.http.post(
        "/v1/redemptions",
        headers={**vol, "Idempotency-Key": f"s-{uuid.uuid4()}"},
        json={"reward_id": reward_id},
    )
    assert r.status_code == 201, r.text
    rid = r.json()["id"]

    async def voucher() -> str | None:
        code: str | None = (await redeem.http.get(f"/v1/redemptions/{rid}", headers=vol)).json()[
            "voucher_code"
        ]
        return code

    return rid, await eventually(voucher, timeout=60, what="voucher issued")


async def test_a_merchants_month_counts_what_it_handed_over_in_money_and_points(
    apis: dict[str, Api],
) -> None:
    tasks, redeem = apis["tasks"], apis["redeem"]
    run = uuid.uuid4().hex[:6]
    account, shop, other = f"vol-s-{run}", f"shop-s-{run}", f"shop-o-{run}"
    await register(redeem, shop)
    await register(redeem, other)
    rice = await add_reward(redeem, "merchant", merchant_id=shop, points=10, value_fen=2500)
    assert rice["value_fen"] == 2500
    soap = await add_reward(redeem, "merchant", merchant_id=shop, points=5, name_zh="肥皂")
    assert soap["value_fen"] is None
    bad = await redeem.http.post(
        "/v1/rewards",
        headers=redeem.auth("merchant", shop),
        json={"merchant_id": shop, "name_zh": "x", "name_en": "x", "points": 1, "value_fen": 9.5},
    )
    assert bad.status_code == 422, bad.text  # fen are whole
    await earn(tasks, account, 40)
    vol = redeem.auth("volunteer", account)

    async def funded() -> bool:
        r = await redeem.http.get(f"/v1/wallets/{account}", headers=vol)
        return bool(r.json()["spendable"] == 40)

    await eventually(funded, timeout=60, what="wallet learning the credit")
    handed = [await _redeem(redeem, account, rice["id"]) for _ in range(2)]
    handed.append(await _redeem(redeem, account, soap["id"]))
    kept = await _redeem(redeem, account, rice["id"])  # redeemed, never handed over
    for rid, code in handed:
        r = await redeem.http.post(
            f"/v1/redemptions/{rid}/fulfil",
            headers=redeem.auth("merchant", shop),
            json={"voucher_code": code},
        )
        assert r.status_code == 200, r.text
    assert kept[0] not in {rid for rid, _ in handed}

    month = datetime.now(UTC).strftime("%Y-%m")
    url = f"/v1/merchants/{shop}/settlements/{month}"
    r = await redeem.http.get(url, headers=redeem.auth("merchant", shop))
    assert r.status_code == 200, r.text
    s = r.json()
    lines = {line["reward_id"]: line for line in s["lines"]}
    assert (lines[rice["id"]]["fulfilled"], lines[rice["id"]]["points"]) == (2, 20)
    assert lines[rice["id"]]["value_fen_total"] == 5000
    assert (lines[soap["id"]]["fulfilled"], lines[soap["id"]]["value_fen_total"]) == (1, None)
    assert (s["fulfilled"], s["points"], s["value_fen"], s["unvalued"]) == (3, 25, 5000, 1)
    # the officer reads it too, and as CSV for the accounts office
    r = await redeem.http.get(url, headers=redeem.auth("officer"), params={"format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv"), r.text
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0][0] == "奖品 reward_id" and rows[-1][:1] == ["合计 total"]
    assert rows[-1][4:] == ["3", "25", "5000"]
    r = await redeem.http.get(url, headers=redeem.auth("officer"), params={"format": "xlsx"})
    assert r.status_code == 200, r.text
    assert r.headers["content-disposition"].endswith(f'settlement-{shop}-{month}.xlsx"')
    assert (
        "合计 total" in zipfile.ZipFile(io.BytesIO(r.content)).read("xl/sharedStrings.xml").decode()
    )
    # the organisation's month, per merchant and in all: this shop's line is the statement's
    r = await redeem.http.get("/v1/reports/redemptions", headers=redeem.auth("auditor"))
    assert r.status_code == 200, r.text
    report = r.json()
    [line] = [m for m in report["merchants"] if m["merchant_id"] == shop]
    assert (line["fulfilled"], line["members"], line["points"]) == (3, 1, 25)
    assert (line["value_fen"], line["unvalued"]) == (5000, 1)
    total = report["total"]
    assert total["fulfilled"] == sum(m["fulfilled"] for m in report["merchants"]) >= 3
    assert total["value_fen"] == sum(m["value_fen"] for m in report["merchants"]) >= 5000
    assert 1 <= total["members"] <= sum(m["members"] for m in report["merchants"])
    r = await redeem.http.get("/v1/reports/redemptions", headers=redeem.auth("merchant", shop))
    assert r.status_code == 403, r.text  # a merchant reads its own statement, not the scheme's
    # the public figure a community app shows: the same totals, to any role, apps included,
    # and nothing of any member or merchant
    r = await redeem.http.get("/v1/reports/redemptions/figure", headers=redeem.auth("app"))
    assert r.status_code == 200, r.text
    figure = r.json()
    assert (figure["fulfilled"], figure["points"]) == (total["fulfilled"], total["points"])
    assert figure["month"] == month and set(figure) == {
        "org_id", "month", "starts_at", "ends_at", "fulfilled", "points"
    }  # fmt: skip
    r = await redeem.http.get(
        "/v1/reports/redemptions/figure", headers=redeem.auth("app", org="org-elsewhere")
    )
    assert (r.json()["org_id"], r.json()["fulfilled"]) == ("org-elsewhere", 0)  # its own only
    r = await redeem.http.get(
        "/v1/reports/redemptions/figure", headers=redeem.auth("app"), params={"month": "2020-01"}
    )
    assert (r.json()["fulfilled"], r.json()["points"]) == (0, 0)
    r = await redeem.http.get("/v1/reports/redemptions/figure", params={"month": "2020-13"})
    assert r.status_code in (401, 422), r.text
    # another month has nothing
    r = await redeem.http.get(
        f"/v1/merchants/{shop}/settlements/2020-01", headers=redeem.auth("merchant", shop)
    )
    assert (r.json()["fulfilled"], r.json()["lines"]) == (0, [])


async def test_a_merchant_reads_no_other_merchants_statement(apis: dict[str, Api]) -> None:
    redeem = apis["redeem"]
    run = uuid.uuid4().hex[:6]
    shop, other = f"shop-a-{run}", f"shop-b-{run}"
    await register(redeem, shop)
    await register(redeem, other)
    month = datetime.now(UTC).strftime("%Y-%m")
    mine = await redeem.http.get(
        f"/v1/merchants/{shop}/settlements/{month}", headers=redeem.auth("merchant", shop)
    )
    assert mine.status_code == 200, mine.text
    theirs = await redeem.http.get(
        f"/v1/merchants/{other}/settlements/{month}", headers=redeem.auth("merchant", shop)
    )
    assert theirs.status_code == 403, theirs.text
    for role in ("volunteer", "app", "auditor"):
        r = await redeem.http.get(
            f"/v1/merchants/{shop}/settlements/{month}", headers=redeem.auth(role)
        )
        assert r.status_code == 403, (role, r.text)
    # another organisation's officer: the merchant is not theirs
    elsewhere = await redeem.http.get(
        f"/v1/merchants/{shop}/settlements/{month}",
        headers=redeem.auth("officer", org=f"org-x-{run}"),
    )
    assert elsewhere.status_code == 404, elsewhere.text
    for bad in ("2026-13", "26-01", "2026-1"):
        r = await redeem.http.get(
            f"/v1/merchants/{shop}/settlements/{bad}", headers=redeem.auth("officer")
        )
        assert r.status_code == 422, (bad, r.text)
