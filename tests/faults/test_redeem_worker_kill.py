"""SIGKILL of the redeem worker while redemptions hold points and wait for their debit.

One redemption's placed event is already on the broker when the worker dies (the ledger is
frozen, so no debit yet); a second is placed while the worker is dead, so its event waits in
the outbox. Once everything is back, both end confirmed, each with exactly one debit, the
hold released, and the balance is what was earned less what was debited."""

from __future__ import annotations

import os
import signal
import uuid
from typing import Any

import asyncpg
import pytest

from jifen.devtools.devstack import DevStack
from tests.e2e.redeem.test_redeem_wallet import add_reward, redeem_once, wallet_when
from tests.e2e.test_typical_journey import earn
from tests.faults.conftest import account_ledger, assert_consistent, kill, start
from tests.helpers import Api, eventually

pytestmark = pytest.mark.e2e


async def test_redeem_worker_killed_while_points_are_held_ends_with_one_debit_each(
    fstack: DevStack, fapis: dict[str, Api], ledger_db: asyncpg.Connection
) -> None:
    tasks, redeem = fapis["tasks"], fapis["redeem"]
    account = f"vol-hold-{uuid.uuid4().hex[:6]}"
    await earn(tasks, account, 100)
    reward = await add_reward(redeem, 40)
    await wallet_when(redeem, account, ledger_balance=100, spendable=100)
    vol = redeem.auth("volunteer", account)
    redeem_db = await asyncpg.connect(fstack.owner_dsn("redeem"))
    points_worker = fstack.procs["points-worker"].popen
    try:
        os.kill(points_worker.pid, signal.SIGSTOP)  # the ledger applies nothing for now
        first = await redeem_once(redeem, account, reward)
        assert first.status_code == 201 and first.json()["status"] == "pending", first.text

        async def published() -> bool:
            return await redeem_db.fetchval("SELECT count(*) FROM outbox") == 0

        await eventually(published, timeout=60, what="the first placed event on the broker")
        kill(fstack, "redeem", "worker")  # SIGKILL, points held, debit not seen

        second = await redeem_once(redeem, account, reward)
        assert second.status_code == 201 and second.json()["status"] == "pending", second.text
        # only 20 spendable left: both holds count, though the ledger has debited neither
        third = await redeem_once(redeem, account, reward)
        assert third.status_code == 409 and third.json()["reason"] == "insufficient_points"
        assert (third.json()["spendable"], third.json()["held"]) == (20, 80), third.text
        assert await redeem_db.fetchval("SELECT count(*) FROM outbox") == 1  # relay is dead
    finally:
        os.kill(points_worker.pid, signal.SIGCONT)
        await redeem_db.close()
    ids = {first.json()["id"], second.json()["id"]}

    async def first_debited() -> bool:
        entries = await account_ledger(ledger_db, account)
        return any(e["kind"] == "debit" for e in entries)

    # the ledger debits the first while no redeem worker listens for the answer
    await eventually(first_debited, timeout=90, what="the first debit in the ledger")
    await start(fstack, "redeem", "worker")

    async def both_confirmed() -> list[dict[str, Any]] | None:
        got = []
        for rid in ids:
            r = await redeem.http.get(f"/v1/redemptions/{rid}", headers=vol)
            got.append(r.json())
        return got if all(g["status"] == "confirmed" for g in got) else None

    await eventually(both_confirmed, timeout=120, what="both redemptions confirmed")
    await wallet_when(redeem, account, ledger_balance=20, held=0, spendable=20)

    entries = await account_ledger(ledger_db, account)
    debits = [e for e in entries if e["kind"] == "debit"]
    assert sorted(e["redemption_id"] for e in debits) == sorted(ids), entries
    assert [e["amount"] for e in debits] == [-40, -40]
    assert [e["kind"] for e in entries] == ["credit", "debit", "debit"]
    assert_consistent(entries)
    assert entries[-1]["balance_after"] == 100 - 80
    points = fapis["points"]
    r = await points.http.get(
        f"/v1/accounts/{account}/balance", headers=points.auth("volunteer", account)
    )
    assert (r.json()["balance"], r.json()["spent"]) == (20, 80), r.text
