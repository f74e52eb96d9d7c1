"""Members spending while brokers die: redemptions placed (about a third cancelled later)
through the real redeem API, by the soak's own workload (every call retried through a fault
with the same Idempotency-Key), on the accounts the cluster tests credit; and the check that
each one ended as it must: confirmed with exactly one debit in the ledger, or cancelled and
refunded exactly once, with no balance below zero and every wallet equal to its ledger."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

from jifen.devtools.devstack import DevStack
from tests.helpers import eventually
from tests.soak import checks
from tests.soak.workload import Workload


class Shopper:
    """Members of ``accounts`` redeem one after another until stopped, once most of their
    wallets hold a few redemptions' worth (``opened`` is set at the first one placed); what
    the API acknowledged is in ``placed`` and ``cancelled``, as in the soak."""

    def __init__(self, stack: DevStack, reward: dict[str, Any], accounts: list[str]) -> None:
        urls = {s: stack.url(s) for s in ("tasks", "points", "redeem")}
        self.rng = random.Random(accounts[0])
        self.workload = Workload(urls, stack.keys_dir, volunteers=0, lanes=1, seed=1)
        self.workload.rewards = [reward]
        self.accounts = accounts
        self.price = int(reward["points"])
        self.redeem_dsn = stack.owner_dsn("redeem")
        self.opened = asyncio.Event()
        self._stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    @property
    def placed(self) -> dict[str, str]:
        return self.workload.known.placed

    @property
    def cancelled(self) -> set[str]:
        return self.workload.known.cancelled

    @property
    def outcomes(self) -> Counter[str]:
        return self.workload.tally.outcomes

    async def funded(self) -> bool:
        """Two in three members can pay for four redemptions (the credits have reached redeem)."""
        n = await checks.value(
            self.redeem_dsn,
            "SELECT count(*) FROM wallet"
            " WHERE account_id = ANY($1) AND ledger_balance - held >= $2",
            self.accounts,
            4 * self.price,
        )
        return int(n) * 3 >= len(self.accounts) * 2

    async def run(self) -> None:
        await eventually(self.funded, timeout=120, what="the members' wallets funded")
        while not self._stop.is_set():
            await self.workload.shop(self.rng.choice(self.accounts), self.rng)
            if self.placed:
                self.opened.set()
            await asyncio.sleep(0.05)

    async def wait_open(self) -> None:
        """Until members are spending (or the shop failed: its error is raised)."""
        assert self.task is not None
        opened = asyncio.create_task(self.opened.wait())
        await asyncio.wait({opened, self.task}, timeout=150, return_when=asyncio.FIRST_COMPLETED)
        opened.cancel()
        if self.task.done():
            self.task.result()
        assert self.opened.is_set(), f"no redemption placed: {dict(self.outcomes)}"

    def start(self) -> None:
        self.task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        """Stop placing, and wait for the cancellations still on their way."""
        self._stop.set()
        if self.task is not None:
            await self.task
        if self.workload.later:
            await asyncio.wait(self.workload.later, timeout=180)
        await self.workload.close()
        assert not self.workload.abandoned, f"calls given up: {self.workload.abandoned}"
        assert len(self.placed) >= 10, f"too few redemptions placed: {dict(self.outcomes)}"


async def all_settled(stack: DevStack, shopper: Shopper, tag: str) -> None:
    """Once nothing is pending: every placed redemption confirmed with one debit, or
    cancelled with one debit and one refund; every wallet its ledger balance, none below 0."""
    redeem, points = stack.owner_dsn("redeem"), stack.owner_dsn("points")

    async def wallets() -> dict[str, tuple[int, int]]:
        return {
            f"{r['org_id']}/{r['account_id']}": (r["ledger_balance"], r["held"])
            for r in await checks.rows(
                redeem,
                "SELECT org_id, account_id, ledger_balance, held FROM wallet"
                " WHERE account_id LIKE $1",
                f"{tag}-%",
            )
        }

    async def ledger() -> dict[str, int]:
        return {a: b for a, b in (await checks.balances(stack)).items() if f"/{tag}-" in a}

    async def settled() -> bool:
        for sql in checks.PENDING_REDEEM.values():  # awaiting a debit or a refund, held, outbox
            if await checks.value(redeem, sql):
                return False
        return {a: b for a, (b, _) in (await wallets()).items()} == await ledger()

    await eventually(settled, timeout=120, what="every redemption confirmed or refunded")
    ids = list(shopper.placed)
    status = {
        str(r["id"]): r
        for r in await checks.rows(
            redeem,
            "SELECT id, account_id, status, points, refunded_at FROM redemption"
            " WHERE id = ANY($1::uuid[])",
            ids,
        )
    }
    entries: dict[str, Counter[str]] = {rid: Counter() for rid in ids}
    amounts: dict[str, int] = Counter()
    for e in await checks.rows(
        points,
        "SELECT redemption_id::text AS rid, kind, amount FROM ledger_entry"
        " WHERE redemption_id = ANY($1::uuid[])",
        ids,
    ):
        entries[e["rid"]][e["kind"]] += 1
        amounts[e["rid"]] += e["amount"]
    wrong: list[str] = []
    for rid in ids:
        row, got = status.get(rid), dict(entries[rid])
        if row is None:
            wrong.append(f"{rid}: placed, not in the redeem database")
        elif row["status"] in ("confirmed", "fulfilled"):
            if got != {"debit": 1} or amounts[rid] != -row["points"]:
                wrong.append(f"{rid} {row['status']}: the ledger holds {got}, {amounts[rid]}")
            if rid in shopper.cancelled:
                wrong.append(f"{rid}: cancelled through the API, yet {row['status']}")
        elif row["status"] == "cancelled":
            if got != {"debit": 1, "refund": 1} or amounts[rid] != 0 or not row["refunded_at"]:
                wrong.append(f"{rid} cancelled: the ledger holds {got}, net {amounts[rid]}")
        else:
            wrong.append(f"{rid}: left {row['status']}")
    assert not wrong, f"{len(wrong)} of {len(ids)} redemptions wrong: {wrong[:5]}"

    lowest = await checks.value(
        points,
        "SELECT min(balance_after) FROM ledger_entry WHERE account_id LIKE $1",
        f"{tag}-%",
    )
    assert lowest is not None and lowest >= 0, f"a balance went below zero: {lowest}"
    assert all(b >= 0 and held == 0 for b, held in (await wallets()).values()), await wallets()
