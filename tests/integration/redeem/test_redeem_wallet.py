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

from jifen.kernel.consumer import RejectedEvent
from jifen.kernel.contracts import Contracts, isoformat
from jifen.kernel.db import Queries, migrate
from jifen.kernel.settings import REPO_ROOT
from jifen.redeem import handlers
from jifen.redeem.db import MIGRATIONS, queries
from jifen.redeem.domain.lifecycle import (
    AlreadyFulfilled,
    AttemptLimit,
    NotYourReward,
    VoucherAttemptsExceeded,
    WrongVoucher,
)
from jifen.redeem.domain.wallet import RedeemRefusal
from tests.helpers import eventually

ORG = "org-test"
CONTRACTS = Contracts(REPO_ROOT / "schemas")


class Ledger:
    """Plays the points worker: one (organisation, account) chain's entries as entry.appended
    events."""

    def __init__(self, conn: asyncpg.Connection, q: Queries, account: str, org: str = ORG) -> None:
        self.conn, self.q, self.account, self.org = conn, q, account, org
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
                "org_id": self.org,
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


async def reward(
    conn: asyncpg.Connection, q: Queries, points: int, *, org: str = ORG, **kw: Any
) -> uuid.UUID:
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
        "value_fen": None,
        **kw,
    }
    await conn.execute(q["ensure_merchant"], org, kw.get("merchant", "shop-a"))
    fields.pop("merchant", None)
    await conn.execute(
        q["insert_reward"],
        rid,
        org,
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
        org=kw.pop("org", ORG),
        account_id=account,
        reward_id=reward_id,
        by=kw.pop("by", account),
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


async def test_each_organisation_keeps_its_own_wallet_of_an_account(db: Any) -> None:
    conn, q, _ = db
    home, other = Ledger(conn, q, "vol-two"), Ledger(conn, q, "vol-two", org="org-other")
    await home.credit(100)
    local = await reward(conn, q, 30, org="org-other")
    # everything was earned in ORG: org-other's wallet of the account is empty
    no = await refused(place(conn, q, "vol-two", local, org="org-other", by="app-other"))
    assert no.reason == "insufficient_points"
    assert (no.facts["balance"], no.facts["spendable"]) == (0, 0)
    w, _ = await handlers.wallet_view(conn, q, "vol-two", ORG)
    assert (w.ledger_balance, w.held, w.spendable) == (100, 0, 100)

    # earning in org-other fills that wallet only; spending there leaves ORG's alone
    await other.credit(40)
    r = await place(conn, q, "vol-two", local, org="org-other", by="app-other")
    await other.debit(r)
    assert await conn.fetchval("SELECT status FROM redemption WHERE id = $1", r["id"]) == (
        "confirmed"
    )
    w, _ = await handlers.wallet_view(conn, q, "vol-two", "org-other")
    assert (w.ledger_balance, w.held) == (10, 0)
    w, _ = await handlers.wallet_view(conn, q, "vol-two", ORG)
    assert (w.ledger_balance, w.held) == (100, 0)
    # a debit announced by another organisation than the redemption's is not applied
    stray = await place(conn, q, "vol-two", await reward(conn, q, 5))
    with pytest.raises(RejectedEvent):
        await other.append("debit", -5, redemption_id=str(stray["id"]))


async def test_an_idempotency_key_is_the_callers_own_within_its_organisation(db: Any) -> None:
    conn, q, _ = db
    await Ledger(conn, q, "vol-key").credit(100)
    await Ledger(conn, q, "vol-key", org="org-other").credit(100)
    mine, theirs = await reward(conn, q, 10), await reward(conn, q, 10, org="org-other")
    # another organisation's app uses the key first: its own redemption, not a block
    first = await place(conn, q, "vol-key", theirs, org="org-other", by="app-b", key="k-shared")
    r = await place(conn, q, "vol-key", mine, by="app-a", key="k-shared")
    assert r["id"] != first["id"] and r["org_id"] == ORG
    # another caller of the same organisation: its own too
    again = await place(conn, q, "vol-key", mine, by="app-c", key="k-shared")
    assert again["id"] != r["id"]
    # the same caller and key: the original, and nothing held twice
    row, created = await handlers.redeem(
        conn,
        q,
        CONTRACTS,
        org=ORG,
        account_id="vol-key",
        reward_id=mine,
        by="app-a",
        idempotency_key="k-shared",
    )
    assert not created and row["id"] == r["id"]
    # the same caller and key for another account is not a replay
    no = await refused(place(conn, q, "vol-else", mine, by="app-a", key="k-shared"))
    assert no.reason == "idempotency_key_reused" and no.facts["redemption_id"] == str(r["id"])
    w, _ = await handlers.wallet_view(conn, q, "vol-key", ORG)
    assert w.held == 20


async def test_wrong_voucher_codes_lock_fulfilment_until_the_window_passes(db: Any) -> None:
    conn, q, _ = db
    ledger = Ledger(conn, q, "vol-guess")
    await ledger.credit(100)
    rid = await reward(conn, q, 10, merchant="shop-g")
    rows = [await place(conn, q, "vol-guess", rid) for _ in range(3)]
    for r in rows:
        await ledger.debit(r)
    codes = {
        r["id"]: await conn.fetchval("SELECT voucher_code FROM redemption WHERE id = $1", r["id"])
        for r in rows
    }
    per_redemption, per_merchant = AttemptLimit(3, 2), AttemptLimit(5, 600)

    async def fulfil(rid: uuid.UUID, code: str) -> asyncpg.Record:
        return await handlers.fulfil(
            conn,
            q,
            org=ORG,
            redemption_id=rid,
            merchant="shop-g",
            voucher_code=code,
            per_redemption=per_redemption,
            per_merchant=per_merchant,
        )

    target = rows[0]["id"]
    for left in (2, 1, 0):
        with pytest.raises(WrongVoucher) as wrong:
            await fulfil(target, "AAAAA-BBBBB-CCCCC-DDDDD")
        assert wrong.value.facts["attempts_left"] == left
    # the failures were kept although each request was refused
    assert await conn.fetchval("SELECT count(*) FROM voucher_attempt") == 3
    with pytest.raises(VoucherAttemptsExceeded) as locked:
        await fulfil(target, codes[target])
    assert locked.value.status == 429 and locked.value.facts["scope"] == "redemption"
    assert 1 <= locked.value.facts["retry_after_seconds"] <= 2
    status = await conn.fetchval("SELECT status FROM redemption WHERE id = $1", target)
    assert status == "confirmed"

    async def passes() -> asyncpg.Record | None:
        try:
            return await fulfil(target, codes[target])
        except VoucherAttemptsExceeded:
            return None

    done = await eventually(passes, timeout=10, what="the window letting the code through")
    assert done["status"] == "fulfilled"

    # per merchant: five wrong codes on any of its redemptions (three above, two here) lock
    # its counter for all of them, for the merchant's window
    for _ in range(2):
        with pytest.raises(WrongVoucher):
            await fulfil(rows[1]["id"], "AAAAA-BBBBB-CCCCC-DDDDE")
    with pytest.raises(VoucherAttemptsExceeded) as locked:
        await fulfil(rows[2]["id"], codes[rows[2]["id"]])
    assert locked.value.facts["scope"] == "merchant"
    assert locked.value.facts["retry_after_seconds"] > 500
    statuses = await conn.fetch("SELECT status FROM redemption WHERE id = ANY($1)", list(codes))
    assert sorted(r["status"] for r in statuses) == ["confirmed", "confirmed", "fulfilled"]


async def test_wallets_keyed_by_account_alone_migrate_to_one_per_organisation(
    fresh_db: Callable[[Path], Awaitable[str]], tmp_path: Path
) -> None:
    """A database filled by the previous schema (0001-0003): its wallets become one per
    (organisation, account), rebuilt from the credits and redemptions it stored."""
    old = tmp_path / "migrations"
    old.mkdir()
    for f in sorted(MIGRATIONS.glob("000[123]_*.sql")):
        (old / f.name).write_text(f.read_text())
    dsn = await fresh_db(old)
    conn = await asyncpg.connect(dsn)
    try:
        now = datetime.now(UTC)
        for org in ("org-a", "org-b"):
            await conn.execute(
                "INSERT INTO merchant (org_id, id, name_zh, name_en) VALUES ($1, 'm', 'm', 'm')",
                org,
            )
        prize = {
            org: await conn.fetchval(
                "INSERT INTO reward (id, org_id, merchant_id, name_zh, name_en, points) "
                "VALUES ($1, $2, 'm', '奖', 'Prize', 10) RETURNING id",
                uuid.uuid4(),
                org,
            )
            for org in ("org-a", "org-b")
        }
        entry = iter(range(1, 1000))

        async def credit(account: str, org: str, amount: int, reversed_: bool = False) -> None:
            await conn.execute(
                "INSERT INTO wallet_credit (entry_id, account_id, org_id, amount, recorded_at,"
                " reversed) VALUES ($1, $2, $3, $4, $5, $6)",
                next(entry),
                account,
                org,
                amount,
                now,
                reversed_,
            )

        async def redemption(
            account: str, org: str, points: int, status: str, key: str, by: str, **kw: Any
        ) -> None:
            await conn.execute(
                "INSERT INTO redemption (id, account_id, org_id, reward_id, points, status,"
                " requested_by, idempotency_key, debit_entry_id, refund_entry_id)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                uuid.uuid4(),
                account,
                org,
                prize[org],
                points,
                status,
                by,
                key,
                kw.get("debit"),
                kw.get("refund"),
            )

        async def wallet(account: str, balance: int, seq: int, held: int) -> None:
            await conn.execute(
                "INSERT INTO wallet (account_id, ledger_balance, ledger_seq, held)"
                " VALUES ($1, $2, $3, $4)",
                account,
                balance,
                seq,
                held,
            )

        # one organisation only, and an adjustment this service never stored (-5): exact
        await credit("solo", "org-a", 100)
        await redemption("solo", "org-a", 30, "confirmed", "k1", "solo", debit=next(entry))
        await redemption("solo", "org-a", 10, "pending", "k2", "solo")
        await wallet("solo", 65, 4, 10)
        # two organisations, everything explained: each gets its own share
        await credit("both", "org-a", 100)
        await redemption(
            "both", "org-a", 40, "cancelled", "k1", "app-a", debit=next(entry), refund=next(entry)
        )
        await credit("both", "org-b", 50)
        await credit("both", "org-b", 20, reversed_=True)
        await redemption("both", "org-b", 10, "confirmed", "k3", "app-b", debit=next(entry))
        await wallet("both", 140, 7, 0)
        # two organisations and an unexplained deduction of 15: charged to both
        await credit("short", "org-a", 60)
        await credit("short", "org-b", 40)
        await wallet("short", 85, 3, 0)
        # a wallet with nothing to attribute it by
        await wallet("ghost", 7, 1, 0)
        # one app, one key, two accounts: valid then, a collision in the new scope
        await credit("p", "org-a", 50)
        await credit("r", "org-a", 50)
        await redemption("p", "org-a", 10, "confirmed", "dup", "app-a", debit=next(entry))
        await redemption("r", "org-a", 10, "confirmed", "dup", "app-a", debit=next(entry))
        await wallet("p", 40, 2, 0)
        await wallet("r", 40, 2, 0)

        # 0004 onto the old rows (and the later ones after it)
        later = [p.name for p in sorted(MIGRATIONS.glob("*.sql")) if p.name >= "0004"]
        assert await migrate(dsn, MIGRATIONS) == later
        assert later[0] == "0004_wallets_per_org.sql"

        rows = await conn.fetch("SELECT * FROM wallet ORDER BY account_id, org_id")
        got = {(r["account_id"], r["org_id"]): (r["ledger_balance"], r["held"]) for r in rows}
        assert got == {
            ("solo", "org-a"): (65, 10),
            ("both", "org-a"): (100, 0),
            ("both", "org-b"): (40, 0),
            ("short", "org-a"): (45, 0),
            ("short", "org-b"): (25, 0),
            ("p", "org-a"): (40, 0),
            ("r", "org-a"): (40, 0),
        }
        assert {r["ledger_seq"] for r in rows} == {0}
        record = {r["account_id"]: r for r in await conn.fetch("SELECT * FROM wallet_migration")}
        assert (record["solo"]["residual"], record["solo"]["orgs"]) == (-5, ["org-a"])
        assert record["both"]["residual"] == 0
        assert (record["short"]["residual"], record["short"]["orgs"]) == (-15, ["org-a", "org-b"])
        assert (record["ghost"]["old_balance"], record["ghost"]["orgs"]) == (7, [])
        scoped = await conn.fetch(
            "SELECT account_id, key_scoped FROM redemption WHERE idempotency_key = 'dup'"
        )
        assert {r["key_scoped"] for r in scoped} == {False}
        assert await conn.fetchval(
            "SELECT bool_and(key_scoped) FROM redemption WHERE idempotency_key <> 'dup'"
        )

        # the ledger's next entry of a migrated (org, account) chain replaces the rebuilt figure
        q = queries()
        ledger = Ledger(conn, q, "short", org="org-a")
        ledger.balance = 59  # what the ledger's own (org-a, short) chain holds
        await ledger.credit(1)
        w, _ = await handlers.wallet_view(conn, q, "short", "org-a")
        assert w.ledger_balance == 60
        w, _ = await handlers.wallet_view(conn, q, "short", "org-b")
        assert w.ledger_balance == 25
    finally:
        await conn.close()
