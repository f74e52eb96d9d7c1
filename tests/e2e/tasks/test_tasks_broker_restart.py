"""Credit after a broker that forgets: the broker goes down and comes back with every topic and
offset gone (on Apache Kafka, a single broker whose log folder was lost: an ephemeral volume, a
restore gone wrong; on the opt-in Tansu, any restart). Completions verified before, during and
after the outage must each end up credited exactly once — the outbox keeps what the broker lost,
the tasks worker republishes what the ledger has not acknowledged, and the ledger ignores what
it already applied. Redemptions in
flight across the restart are debited once and confirmed (or, cancelled, refunded once): the
redeem worker sends again what the ledger has not answered.

This test disrupts the broker, so it runs its own stack (module-scoped), not the session's."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from jifen.devtools.devstack import DevStack
from tests.e2e.redeem.test_redeem_wallet import add_reward, redeem_once, wallet_when
from tests.e2e.test_typical_journey import earn
from tests.helpers import Api, eventually, isolated_stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def restart_stack() -> Iterator[DevStack]:
    env = {"JIFEN_TASKS_CREDIT_TIMEOUT_SECONDS": "2", "JIFEN_REDEEM_RESEND_AFTER_SECONDS": "3"}
    with isolated_stack("jifen-restart-", env) as s:
        s.start_services()
        yield s


@pytest.fixture
async def own_apis(restart_stack: DevStack) -> AsyncIterator[dict[str, Api]]:
    clients = {s: Api(restart_stack, s) for s in ("tasks", "points", "redeem")}
    yield clients
    for c in clients.values():
        await c.close()


async def _earn(tasks: Api, account: str, points: int) -> str:
    completion: str = (await earn(tasks, account, points))["id"]
    return completion


async def _entries(points: Api, account: str) -> list[dict[str, Any]]:
    r = await points.http.get(
        f"/v1/accounts/{account}/entries", headers=points.auth("volunteer", account)
    )
    assert r.status_code == 200, r.text
    entries: list[dict[str, Any]] = r.json()["items"]
    return entries


# its own deadlines add up to 960 s (60 before the restart, five of 180 after it), and its
# stack's start comes on top: above pytest's default 300 s backstop, which on a loaded machine
# would cut it off before a deadline could say what was slow. (It failed once in a loaded
# fresh-clone run of 00b969b, stopped before pytest said why: likely that, not proven; #23)
@pytest.mark.timeout(1200)
async def test_every_verified_completion_is_credited_exactly_once_across_a_broker_restart(
    restart_stack: DevStack, own_apis: dict[str, Api]
) -> None:
    tasks, points, redeem = own_apis["tasks"], own_apis["points"], own_apis["redeem"]
    run = uuid.uuid4().hex[:6]
    owed: dict[str, dict[str, int]] = {}  # account -> completion -> points

    async def earn(i: int, phase: str) -> None:
        account = f"vol-{run}-{i}"
        pts = 10 + i
        owed.setdefault(account, {})[await _earn(tasks, account, pts)] = pts

    # before: credited and acknowledged
    for i in range(3):
        await earn(i, "before")

    async def all_credited() -> bool:
        for account, completions in owed.items():
            credits = [e for e in await _entries(points, account) if e["kind"] == "credit"]
            if sorted(e["completion_id"] for e in credits) != sorted(completions):
                return False
        return True

    await eventually(all_credited, timeout=60, what="credits before the restart")

    # redemptions placed just before the restart: their debits may or may not have been read
    reward = await add_reward(redeem, 4)
    spender, canceller = f"vol-{run}-1", f"vol-{run}-2"
    for account in (spender, canceller):
        await wallet_when(redeem, account, spendable=owed[account][next(iter(owed[account]))])
    kept = await redeem_once(redeem, spender, reward)
    dropped = await redeem_once(redeem, canceller, reward)
    assert kept.status_code == 201 and dropped.status_code == 201, (kept.text, dropped.text)

    # verified while the broker is down: they wait in the outbox
    restart_stack.broker.stop()
    # Kafka keeps its log across a restart: this broker lost its disk, so it forgets everything
    if restart_stack.broker.kind != "tansu":
        shutil.rmtree(restart_stack.broker.data_dir)
    r = await redeem.http.post(
        f"/v1/redemptions/{dropped.json()['id']}/cancel",
        headers=redeem.auth("volunteer", canceller),
    )
    assert r.status_code == 200, r.text
    for i in range(3, 5):
        await earn(i, "during")
    restart_stack.broker.start()
    # and after it came back empty
    for i in range(5, 7):
        await earn(i, "after")
    # a second completion for an account credited before the restart
    owed[f"vol-{run}-0"][await _earn(tasks, f"vol-{run}-0", 5)] = 5

    await eventually(all_credited, timeout=180, what="every completion credited after restart")

    # exactly once: one credit per completion (balances are checked at the end)
    for account, completions in owed.items():
        credits = [e for e in await _entries(points, account) if e["kind"] == "credit"]
        assert sorted(e["completion_id"] for e in credits) == sorted(completions), account

    # and the tasks service heard back about every one of them (end-to-end acknowledgement)
    async def all_acked() -> bool:
        for completions in owed.values():
            for cid in completions:
                r = await tasks.http.get(f"/v1/completions/{cid}", headers=tasks.auth("officer"))
                if r.json()["credited_at"] is None:
                    return False
        return True

    await eventually(all_acked, timeout=180, what="credit acknowledgements after restart")

    # the redemption in flight was debited once and confirmed; the cancelled one refunded once
    async def settled(redemption: str, account: str, status: str) -> bool:
        r = await redeem.http.get(
            f"/v1/redemptions/{redemption}", headers=redeem.auth("volunteer", account)
        )
        return r.json()["status"] == status

    await eventually(
        lambda: settled(kept.json()["id"], spender, "confirmed"), timeout=180, what="confirmed"
    )
    await eventually(
        lambda: settled(dropped.json()["id"], canceller, "cancelled"), timeout=180, what="cancel"
    )
    for account, redemption, kinds in (
        (spender, kept.json()["id"], ["debit"]),
        (canceller, dropped.json()["id"], ["debit", "refund"]),
    ):

        async def answered(account: str = account, kinds: list[str] = kinds) -> bool:
            spent = [e for e in await _entries(points, account) if e["kind"] != "credit"]
            return len(spent) >= len(kinds)

        await eventually(answered, timeout=180, what=f"ledger answers for {account}")
        entries = [e for e in await _entries(points, account) if e["kind"] != "credit"]
        assert sorted(e["kind"] for e in entries) == kinds, (account, entries)
        assert all(e["redemption_id"] == redemption for e in entries)
        owed_points = sum(owed[account].values()) - (4 if account == spender else 0)
        await wallet_when(redeem, account, ledger_balance=owed_points, held=0)

    # every balance equals what was earned, less the one confirmed redemption
    for account, completions in owed.items():
        r = await points.http.get(
            f"/v1/accounts/{account}/balance", headers=points.auth("volunteer", account)
        )
        spent = 4 if account == spender else 0
        assert r.json()["balance"] == sum(completions.values()) - spent, account
