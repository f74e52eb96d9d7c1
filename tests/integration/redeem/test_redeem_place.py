"""Placing a redemption in one statement (``redeem_place``, migration 0005): the event it
writes is byte for byte what ``placed_event`` rebuilds from the row, a refusal leaves nothing
behind and says what ``decide`` says, and concurrent callers neither oversell nor overdraw."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from jifen.kernel import topics
from jifen.kernel.contracts import encode
from jifen.kernel.db import Queries
from jifen.kernel.errors import NotFound
from jifen.redeem import handlers
from jifen.redeem.db import MIGRATIONS, queries
from jifen.redeem.domain.wallet import RedeemRefusal
from tests.integration.redeem.test_redeem_wallet import (
    CONTRACTS,
    ORG,
    Ledger,
    place,
    refused,
    reward,
)


@pytest.fixture
async def db(
    fresh_db: Callable[[Path], Awaitable[str]],
) -> AsyncIterator[tuple[asyncpg.Connection, Queries, asyncpg.Pool]]:
    """As test_redeem_wallet's, with a pool wide enough for callers at once."""
    dsn = await fresh_db(MIGRATIONS)
    pool = await asyncpg.create_pool(dsn, min_size=8, max_size=8)
    conn = await asyncpg.connect(dsn)
    try:
        yield conn, queries(), pool
    finally:
        await conn.close()
        await pool.close()


async def test_the_placed_event_is_what_placed_event_rebuilds_from_the_row(db: Any) -> None:
    conn, q, _ = db
    await Ledger(conn, q, "vol-ev").credit(100)
    plain = await reward(conn, q, 7, stock=3)
    local = await reward(conn, q, 5, community_id="grid-1")
    for rid, community in ((plain, None), (local, "grid-1")):
        row = await place(conn, q, "vol-ev", rid, by="app-x", community_id=community)
        out = await conn.fetchrow(
            "SELECT topic, key, event_type, payload FROM outbox WHERE event_id = $1",
            row["placed_event_id"],
        )
        assert out["payload"] == encode(handlers.placed_event(CONTRACTS, row))
        CONTRACTS.decode(out["payload"])  # and valid against its contract
        assert out["topic"] == topics.REDEEM_REDEMPTIONS
        assert out["key"] == b"vol-ev" and out["event_type"] == handlers.PLACED
    w, _ = await handlers.wallet_view(conn, q, "vol-ev", ORG)
    assert w.held == 12
    assert await conn.fetchval("SELECT stock FROM reward WHERE id = $1", plain) == 2


async def test_a_refusal_leaves_nothing_behind_and_says_what_decide_says(db: Any) -> None:
    conn, q, _ = db
    rid = await reward(conn, q, 10, stock=4)
    # no wallet yet: refused, and the wallet the call made is gone with it
    no = await refused(place(conn, q, "vol-none", rid))
    assert no.reason == "insufficient_points"
    assert no.facts == {"needed": 10, "spendable": 0, "maturing": 0, "balance": 0, "held": 0}
    assert not await conn.fetchval(q["wallet_in_org"], ORG, "vol-none")
    assert await conn.fetchval("SELECT count(*) FROM outbox") == 0
    assert await conn.fetchval("SELECT stock FROM reward WHERE id = $1", rid) == 4
    with pytest.raises(NotFound):
        await place(conn, q, "vol-none", uuid.uuid4())
    assert not await conn.fetchval(q["wallet_in_org"], ORG, "vol-none")
    # maturing points named as decide() names them
    await conn.execute(q["put_org_setting"], ORG, 86400)
    ledger = Ledger(conn, q, "vol-young")
    await ledger.credit(6, age=timedelta(days=2))
    await ledger.credit(8)
    young = await refused(place(conn, q, "vol-young", rid))
    assert young.reason == "insufficient_points"
    assert young.facts == {"needed": 10, "spendable": 6, "maturing": 8, "balance": 14, "held": 0}
    # a window in the future: the reward's own time, in UTC, as before
    starts = datetime.now(UTC).replace(microsecond=123456) + timedelta(days=1)
    later = await reward(conn, q, 1, valid_from=starts)
    soon = await refused(place(conn, q, "vol-young", later))
    assert soon.reason == "reward_inactive" and soon.facts == {"valid_from": starts.isoformat()}
    gone = await reward(conn, q, 1, stock=0)
    empty = await refused(place(conn, q, "vol-young", gone))
    assert empty.reason == "out_of_stock" and empty.facts == {"stock": 0}


async def test_a_refusal_inside_a_callers_transaction_undoes_only_its_own_work(db: Any) -> None:
    conn, q, _ = db
    rid = await reward(conn, q, 10)
    async with conn.transaction():
        await conn.execute(q["put_org_setting"], ORG, 60)
        await refused(place(conn, q, "vol-tx", rid))
        assert await conn.fetchval(q["fraud_window"], ORG) == 60
    assert await conn.fetchval(q["fraud_window"], ORG) == 60


async def test_concurrent_callers_never_oversell_or_overdraw(db: Any) -> None:
    conn, q, pool = db
    stock = await reward(conn, q, 1, stock=5)
    for i in range(20):
        await Ledger(conn, q, f"vol-r{i}").credit(3)
    rich = Ledger(conn, q, "vol-one")
    await rich.credit(25)
    pricey = await reward(conn, q, 10)

    async def go(account: str, rid: uuid.UUID) -> str:
        async with pool.acquire() as c:
            try:
                await place(c, q, account, rid)
            except RedeemRefusal as exc:
                return exc.reason
            return "placed"

    outcomes = await asyncio.gather(
        *(go(f"vol-r{i}", stock) for i in range(20)),
        *(go("vol-one", pricey) for _ in range(10)),
    )
    first, second = outcomes[:20], outcomes[20:]
    assert first.count("placed") == 5 and first.count("out_of_stock") == 15, first
    assert second.count("placed") == 2 and second.count("insufficient_points") == 8, second
    assert await conn.fetchval("SELECT stock FROM reward WHERE id = $1", stock) == 0
    w, _ = await handlers.wallet_view(conn, q, "vol-one", ORG)
    assert w.held == 20 and w.available == 5
    assert await conn.fetchval("SELECT count(*) FROM outbox") == 7


async def test_the_same_key_at_once_places_one(db: Any) -> None:
    conn, q, pool = db
    await Ledger(conn, q, "vol-k").credit(50)
    rid = await reward(conn, q, 5)

    async def go() -> tuple[Any, bool]:
        async with pool.acquire() as c:
            return await handlers.redeem(
                c,
                q,
                CONTRACTS,
                org=ORG,
                account_id="vol-k",
                reward_id=rid,
                by="app-k",
                idempotency_key="k-same-key",
            )

    results: list[Any] = await asyncio.gather(*(go() for _ in range(6)))
    assert [created for _, created in results].count(True) == 1
    assert len({row["id"] for row, _ in results}) == 1
    w, _ = await handlers.wallet_view(conn, q, "vol-k", ORG)
    assert w.held == 5
