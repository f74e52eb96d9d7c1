"""The redeem service's commands against a real PostgreSQL (a fresh migrated database per
test), fed with ledger events as the points worker publishes them: the fraud window, frozen
accounts, reward rules, cancelling before the debit arrives, and voucher expiry."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from jifen.kernel.contracts import Contracts, isoformat
from jifen.kernel.db import Queries
from jifen.kernel.settings import REPO_ROOT
from jifen.redeem import handlers
from jifen.redeem.db import MIGRATIONS, queries
from jifen.redeem.domain.lifecycle import AlreadyFulfilled, NotYourReward, WrongVoucher
from jifen.redeem.domain.wallet import RedeemRefusal
from tests.helpers import eventually

ORG = "org-test"
CONTRACTS = Contracts(REPO_ROOT / "schemas")


class Ledger:
    """Plays the points worker: one account's entries as entry.appended events."""

    def __init__(self, conn: asyncpg.Connection, q: Queries, account: str) -> None:
        self.conn, self.q, self.account = conn, q, account
        self.seq = 0
        self.balance = 0
        self.entry_id = 1000

    async def append(
        self,
        kind: str,
        amount: int,
        *,
        completion_id: str | None = None,
        redemption_id: str | None = None,
        recorded_at: datetime | None = None,
    ) -> dict[str, Any]:
        self.seq += 1
        self.entry_id += 1
        self.balance += amount
        at = isoformat(recorded_at or datetime.now(UTC))
        event = CONTRACTS.new_event(
            "jifen.points.entry.appended.v1",
            source="/jifen/points",
            subject=self.account,
            data={
                "entry_id": self.entry_id,
                "account_id": self.account,
                "account_seq": self.seq,
                "kind": kind,
                "amount": amount,
                "balance_after": self.balance,
                "org_id": ORG,
                "category": None,
                "cause_event_id": str(uuid.uuid4()),
                "cause_type": "test",
                "job_id": None,
                "completion_id": completion_id,
                "redemption_id": redemption_id,
                "entry_hash": "0" * 64,
                "occurred_at": at,
                "recorded_at": at,
            },
        )
        async with self.conn.transaction():
            await handlers.apply_ledger_entry(self.conn, self.q, event, contracts=CONTRACTS)
        return event

    async def credit(self, points: int, *, age: timedelta = timedelta(0)) -> str:
        completion = str(uuid.uuid4())
        await self.append(
            "credit", points, completion_id=completion, recorded_at=datetime.now(UTC) - age
        )
        return completion

    async def debit(self, redemption: asyncpg.Record) -> None:
        await self.append("debit", -redemption["points"], redemption_id=str(redemption["id"]))


@pytest.fixture
async def db(
    fresh_db: Callable[[Path], Awaitable[str]],
) -> AsyncIterator[tuple[asyncpg.Connection, Queries, asyncpg.Pool]]:
    dsn = await fresh_db(MIGRATIONS)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=3)
    conn = await asyncpg.connect(dsn)
    try:
        yield conn, queries(), pool
    finally:
        await conn.close()
        await pool.close()


async def reward(conn: asyncpg.Connection, q: Queries, points: int, **kw: Any) -> uuid.UUID:
    rid = uuid.uuid4()
    fields = {
        "stock": None,
        "kind": "goods",
        "daily_quota": None,
        "monthly_limit": None,
        "valid_from": None,
        "valid_until": None,
        "community_id": None,
        "voucher_ttl_seconds": None,
        **kw,
    }
    await conn.execute(q["ensure_merchant"], ORG, kw.get("merchant", "shop-a"))
    fields.pop("merchant", None)
    await conn.execute(
        q["insert_reward"],
        rid,
        ORG,
        kw.get("merchant", "shop-a"),
        "奖品",
        "Prize",
        points,
        *fields.values(),
    )
    return rid


async def place(
    conn: asyncpg.Connection, q: Queries, account: str, reward_id: uuid.UUID, **kw: Any
) -> asyncpg.Record:
    row, created = await handlers.redeem(
        conn,
        q,
        CONTRACTS,
        org=ORG,
        account_id=account,
        reward_id=reward_id,
        by=account,
        idempotency_key=kw.pop("key", f"k-{uuid.uuid4()}"),
        **kw,
    )
    assert created
    return row


async def refused(coro: Awaitable[Any]) -> RedeemRefusal:
    with pytest.raises(RedeemRefusal) as info:
        await coro
    return info.value


async def outbox(conn: asyncpg.Connection, event_type: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT payload FROM outbox WHERE event_type = $1 ORDER BY id", event_type
    )
    return [orjson.loads(r["payload"]) for r in rows]


async def test_young_credits_mature_before_they_can_be_spent(db: Any) -> None:
    conn, q, _ = db
    await conn.execute(q["put_org_setting"], ORG, 2 * 86400)
    ledger = Ledger(conn, q, "vol-young")
    await ledger.credit(100, age=timedelta(days=3))
    await ledger.credit(50)
    wallet, window = await handlers.wallet_view(conn, q, "vol-young", ORG)
    assert (wallet.ledger_balance, wallet.maturing, wallet.spendable) == (150, 50, 100)
    assert window == 2 * 86400

    dear = await reward(conn, q, 120)
    no = await refused(place(conn, q, "vol-young", dear))
    assert no.reason == "insufficient_points"
    assert no.facts == {"needed": 120, "spendable": 100, "maturing": 50, "balance": 150, "held": 0}

    fair = await reward(conn, q, 100)
    await place(conn, q, "vol-young", fair)
    wallet, _ = await handlers.wallet_view(conn, q, "vol-young", ORG)
    assert (wallet.held, wallet.maturing, wallet.spendable) == (100, 50, 0)

    # without a window, everything the ledger recorded is spendable
    await conn.execute(q["put_org_setting"], ORG, 0)
    wallet, _ = await handlers.wallet_view(conn, q, "vol-young", ORG)
    assert (wallet.maturing, wallet.spendable) == (0, 50)


async def test_a_reversal_below_what_is_spent_freezes_until_back_above_zero(db: Any) -> None:
    conn, q, _ = db
    ledger = Ledger(conn, q, "vol-rev")
    job = await ledger.credit(100)
    price80, price10 = await reward(conn, q, 80), await reward(conn, q, 10)
    r = await place(conn, q, "vol-rev", price80)
    await ledger.debit(r)
    assert (await conn.fetchval("SELECT status FROM redemption WHERE id=$1", r["id"])) == (
        "confirmed"
    )
    await ledger.append("reversal", -100, completion_id=job)  # balance -80

    wallet, _ = await handlers.wallet_view(conn, q, "vol-rev", ORG)
    assert wallet.frozen and wallet.spendable == -80
    no = await refused(place(conn, q, "vol-rev", price10))
    assert no.reason == "account_frozen"
    assert no.facts["spendable"] == -80 and no.facts["balance"] == -80

    await ledger.credit(85)  # back to 5: not frozen, but not enough for 10
    no = await refused(place(conn, q, "vol-rev", price10))
    assert no.reason == "insufficient_points" and no.facts["spendable"] == 5
    await ledger.credit(5)
    await place(conn, q, "vol-rev", price10)


async def test_a_reversed_young_credit_is_not_counted_as_maturing(db: Any) -> None:
    conn, q, _ = db
    await conn.execute(q["put_org_setting"], ORG, 86400)
    ledger = Ledger(conn, q, "vol-rev2")
    await ledger.credit(100, age=timedelta(days=2))
    young = await ledger.credit(30)
    await ledger.append("reversal", -30, completion_id=young)
    wallet, _ = await handlers.wallet_view(conn, q, "vol-rev2", ORG)
    assert (wallet.ledger_balance, wallet.maturing, wallet.spendable) == (100, 0, 100)


async def test_reward_rules_refuse_with_their_numbers(db: Any) -> None:
    conn, q, _ = db
    ledger = Ledger(conn, q, "vol-rules")
    await ledger.credit(1000)
    now = datetime.now(UTC)

    later = await reward(conn, q, 5, valid_from=now + timedelta(days=1))
    no = await refused(place(conn, q, "vol-rules", later))
    assert no.reason == "reward_inactive" and "valid_from" in no.facts
    over = await reward(conn, q, 5, valid_until=now - timedelta(seconds=1))
    assert (await refused(place(conn, q, "vol-rules", over))).reason == "reward_inactive"

    local = await reward(conn, q, 5, community_id="penglai-grid")
    no = await refused(place(conn, q, "vol-rules", local, community_id="other-grid"))
    assert no.reason == "community_restricted" and no.facts["community_id"] == "penglai-grid"
    await place(conn, q, "vol-rules", local, community_id="penglai-grid")

    limited = await reward(conn, q, 5, monthly_limit=2)
    await place(conn, q, "vol-rules", limited)
    await place(conn, q, "vol-rules", limited)
    no = await refused(place(conn, q, "vol-rules", limited))
    assert no.reason == "member_limit"
    assert no.facts == {"limit": 2, "redeemed_this_month": 2}

    quota = await reward(conn, q, 5, daily_quota=1)
    first = await place(conn, q, "vol-rules", quota)
    no = await refused(place(conn, q, "vol-rules", quota))
    assert no.reason == "out_of_stock"
    assert no.facts == {"stock": 0, "daily_quota": 1, "redeemed_today": 1}
    # a cancellation gives the day's quota back
    await handlers.cancel(
        conn, q, CONTRACTS, org=ORG, redemption_id=first["id"], by="t", reason="changed mind"
    )
    await place(conn, q, "vol-rules", quota)

    scarce = await reward(conn, q, 5, stock=1)
    await place(conn, q, "vol-rules", scarce)
    no = await refused(place(conn, q, "vol-rules", scarce))
    assert no.reason == "out_of_stock" and no.facts == {"stock": 0}

    await conn.execute("UPDATE reward SET active = false WHERE id = $1", scarce)
    assert (await refused(place(conn, q, "vol-rules", scarce))).reason == "reward_inactive"


async def test_cancelling_before_the_debit_asks_for_the_refund_only_after_it(db: Any) -> None:
    conn, q, _ = db
    ledger = Ledger(conn, q, "vol-early")
    await ledger.credit(100)
    rid = await reward(conn, q, 40, stock=1)
    r = await place(conn, q, "vol-early", rid)

    row, changed = await handlers.cancel(
        conn, q, CONTRACTS, org=ORG, redemption_id=r["id"], by="vol", reason="oops"
    )
    assert changed and row["status"] == "cancelling" and row["cancelled_event_id"] is None
    # the item is back at once; the points stay held until the debit
    assert await conn.fetchval("SELECT stock FROM reward WHERE id = $1", rid) == 1
    assert await outbox(conn, handlers.CANCELLED) == []
    w, _ = await handlers.wallet_view(conn, q, "vol-early", ORG)
    assert (w.held, w.spendable) == (40, 60)
    # cancelling again asks for nothing
    _, changed = await handlers.cancel(
        conn, q, CONTRACTS, org=ORG, redemption_id=r["id"], by="vol", reason="oops"
    )
    assert not changed

    await ledger.debit(r)
    row = await conn.fetchrow("SELECT * FROM redemption WHERE id = $1", r["id"])
    assert row["status"] == "cancelled" and row["voucher_code"] is None
    [refund] = await outbox(conn, handlers.CANCELLED)
    assert refund["id"] == str(row["cancelled_event_id"])
    assert refund["data"]["redemption_id"] == str(r["id"]) and refund["data"]["points"] == 40
    w, _ = await handlers.wallet_view(conn, q, "vol-early", ORG)
    assert (w.ledger_balance, w.held, w.spendable) == (60, 0, 60)
    # the refund arriving completes the round trip
    await ledger.append("refund", 40, redemption_id=str(r["id"]))
    w, _ = await handlers.wallet_view(conn, q, "vol-early", ORG)
    assert w.spendable == 100
    assert len(await outbox(conn, handlers.CANCELLED)) == 1


async def test_fulfil_only_by_its_merchant_with_its_code_and_once(db: Any) -> None:
    conn, q, _ = db
    ledger = Ledger(conn, q, "vol-ful")
    await ledger.credit(100)
    rid = await reward(conn, q, 10, stock=5, merchant="shop-a")
    r = await place(conn, q, "vol-ful", rid)
    await ledger.debit(r)
    code = await conn.fetchval("SELECT voucher_code FROM redemption WHERE id = $1", r["id"])

    async def fulfil(merchant: str, presented: str) -> asyncpg.Record:
        return await handlers.fulfil(
            conn, q, org=ORG, redemption_id=r["id"], merchant=merchant, voucher_code=presented
        )

    with pytest.raises(NotYourReward):
        await fulfil("shop-b", code)
    with pytest.raises(WrongVoucher):
        await fulfil("shop-a", "AAAAA-BBBBB-CCCCC-DDDDD")
    done = await fulfil("shop-a", code.lower().replace("-", " "))
    assert done["status"] == "fulfilled" and done["fulfilled_by"] == "shop-a"
    with pytest.raises(AlreadyFulfilled):
        await fulfil("shop-a", code)
    with pytest.raises(AlreadyFulfilled):
        await handlers.cancel(
            conn, q, CONTRACTS, org=ORG, redemption_id=r["id"], by="v", reason="x"
        )
    assert await outbox(conn, handlers.CANCELLED) == []


async def test_an_unfulfilled_voucher_expires_once(db: Any) -> None:
    conn, q, pool = db
    ledger = Ledger(conn, q, "vol-exp")
    await ledger.credit(100)
    rid = await reward(conn, q, 25, stock=2, voucher_ttl_seconds=1)
    keep = await reward(conn, q, 25, stock=2)  # the default lifetime: 30 days
    r = await place(conn, q, "vol-exp", rid)
    other = await place(conn, q, "vol-exp", keep)
    await ledger.debit(r)
    await ledger.debit(other)
    assert await conn.fetchval("SELECT stock FROM reward WHERE id = $1", rid) == 1

    async def expired() -> int:
        return await handlers.expire_due(pool, q, CONTRACTS, batch=10)

    assert await eventually(expired, timeout=10, what="voucher expiry") == 1
    assert await expired() == 0
    row = await conn.fetchrow("SELECT * FROM redemption WHERE id = $1", r["id"])
    assert row["status"] == "expired" and row["cancel_reason"] == "expired"
    assert await conn.fetchval("SELECT stock FROM reward WHERE id = $1", rid) == 2
    [refund] = await outbox(conn, handlers.CANCELLED)
    assert refund["id"] == str(row["cancelled_event_id"]) and refund["data"]["reason"] == "expired"
    still = await conn.fetchval("SELECT status FROM redemption WHERE id = $1", other["id"])
    assert still == "confirmed"


async def test_what_the_ledger_has_not_answered_is_asked_again_identically(db: Any) -> None:
    conn, q, pool = db
    ledger = Ledger(conn, q, "vol-again")
    await ledger.credit(100)
    rid = await reward(conn, q, 30, stock=3)
    r = await place(conn, q, "vol-again", rid)

    async def again() -> int:
        return await handlers.ask_again(pool, q, CONTRACTS, after_seconds=0, batch=10)

    # no debit yet: the placed event goes out again, the very same event
    assert await again() == 1
    first, resent = await outbox(conn, handlers.PLACED)
    assert resent["id"] == first["id"] == str(r["placed_event_id"])
    assert resent["data"] == first["data"]
    await ledger.debit(r)
    assert await again() == 0

    await handlers.cancel(conn, q, CONTRACTS, org=ORG, redemption_id=r["id"], by="v", reason="x")
    assert await again() == 1
    first, resent = await outbox(conn, handlers.CANCELLED)
    assert resent == first
    # the refund is the ledger's answer: nothing more is asked
    await ledger.append("refund", 30, redemption_id=str(r["id"]))
    assert await again() == 0
    row = await conn.fetchrow("SELECT * FROM redemption WHERE id = $1", r["id"])
    assert row["refunded_at"] is not None and row["refund_entry_id"] == ledger.entry_id
