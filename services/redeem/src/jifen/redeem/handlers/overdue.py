"""What the worker finds overdue: confirmed vouchers past their time (expired, refunded), and
placed or cancelled events the ledger has not answered (sent again, same id)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg

from jifen.kernel import topics
from jifen.kernel.contracts import Contracts
from jifen.kernel.db import Queries
from jifen.kernel.outbox import enqueue
from jifen.redeem.domain.lifecycle import Status
from jifen.redeem.handlers.events import cancelled_event, placed_event
from jifen.redeem.metrics import ASKED_AGAIN, SETTLED


async def expire_due(pool: asyncpg.Pool, q: Queries, contracts: Contracts, *, batch: int) -> int:
    """Expire confirmed vouchers past their time: release the item, ask for the refund.

    Each in its own transaction, under the same locks as a cancellation (wallet, then
    redemption, then reward), re-checked under the lock: a voucher fulfilled or cancelled
    meanwhile is left alone, and several workers never expire one twice.
    """
    async with pool.acquire() as conn:
        due = await conn.fetch(q["due_expiries"], batch)
        expired = 0
        for d in due:
            async with conn.transaction():
                await conn.fetchrow(q["lock_wallet"], d["org_id"], d["account_id"])
                row = await conn.fetchrow(q["lock_expiring"], d["id"])
                if row is None:
                    continue
                done = await conn.fetchrow(
                    q["cancel_redemption"],
                    row["id"],
                    Status.EXPIRED.value,
                    uuid.uuid4(),
                    "system:expiry",
                    "expired",
                    datetime.now(UTC),
                )
                event = cancelled_event(contracts, done)
                await enqueue(conn, topics.REDEEM_REDEMPTIONS, row["account_id"], event)
                await conn.execute(q["release_stock"], row["reward_id"])
                expired += 1
        SETTLED.labels("expired").inc(expired)
        return expired


async def ask_again(
    pool: asyncpg.Pool, q: Queries, contracts: Contracts, *, after_seconds: float, batch: int
) -> int:
    """Send again what the ledger has not answered within ``after_seconds``: the placed event
    of a redemption not yet debited, the cancelled event of one not yet refunded.

    The events are rebuilt identically from the rows (same ids), so the ledger absorbs any
    duplicate; this is what makes a broker that forgets lose nothing (DESIGN.md).
    """
    sent = 0
    async with pool.acquire() as conn, conn.transaction():
        for query, build in (
            ("awaiting_debit", placed_event),
            ("awaiting_refund", cancelled_event),
        ):
            rows = await conn.fetch(q[query], after_seconds, batch)
            for row in rows:
                event = build(contracts, row)
                await enqueue(conn, topics.REDEEM_REDEMPTIONS, row["account_id"], event)
                ASKED_AGAIN.labels(event["type"]).inc()
            if rows:
                await conn.execute(q["mark_asked"], [r["id"] for r in rows])
            sent += len(rows)
    return sent
