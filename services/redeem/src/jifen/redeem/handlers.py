"""Commands of the redeem service; each owns its transaction.

Lock order, everywhere: the wallet row, then the redemption row, then the reward row. Every
command that takes more than one of them takes them in this order, so none can deadlock.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from jifen.kernel import topics
from jifen.kernel.consumer import RejectedEvent
from jifen.kernel.contracts import Contracts, isoformat
from jifen.kernel.db import Queries
from jifen.kernel.errors import NotFound
from jifen.kernel.outbox import enqueue
from jifen.redeem.domain.lifecycle import Status, check_fulfil, plan_cancel
from jifen.redeem.domain.wallet import RedeemRefusal, Reward, Usage, Wallet, decide
from jifen.redeem.metrics import ASKED_AGAIN, REDEMPTIONS, SETTLED

SOURCE = "/jifen/redeem"
PLACED = "jifen.redeem.redemption.placed.v1"
CANCELLED = "jifen.redeem.redemption.cancelled.v1"

log = logging.getLogger(__name__)


class IdempotencyKeyReused(RedeemRefusal):
    reason = "idempotency_key_reused"


async def wallet_view(
    conn: asyncpg.Connection, q: Queries, account_id: str, org: str, *, lock: bool = False
) -> tuple[Wallet, int]:
    """The account's wallet (locked when asked) with its organisation's fraud window."""
    # the organisation's setting first: it needs no lock, so it is not read while holding one
    window = await conn.fetchval(q["fraud_window"], org) or 0
    row = await conn.fetchrow(q["lock_wallet" if lock else "get_wallet"], account_id)
    recent = await conn.fetchval(q["recent_credits"], account_id, float(window)) if window else 0
    balance, held = (row["ledger_balance"], row["held"]) if row else (0, 0)
    return Wallet(account_id, balance, held, recent), window


def _reward(r: asyncpg.Record) -> Reward:
    return Reward(
        reward_id=str(r["id"]),
        points=r["points"],
        stock=r["stock"],
        active=r["active"],
        daily_quota=r["daily_quota"],
        monthly_limit=r["monthly_limit"],
        valid_from=r["valid_from"],
        valid_until=r["valid_until"],
        community_id=r["community_id"],
    )


async def redeem(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    *,
    org: str,
    account_id: str,
    reward_id: uuid.UUID,
    by: str,
    idempotency_key: str,
    community_id: str | None = None,
) -> tuple[asyncpg.Record, bool]:
    """Hold the points and the item and record the redemption with its event, atomically.

    Locks: the wallet row first, then the reward row, always in that order, so concurrent
    redemptions serialise per account and per item and never deadlock; the decision is made
    on the locked rows (and on counts taken under them), so no interleaving can overdraw,
    oversell, or exceed a quota or a member's limit.
    """
    async with conn.transaction():
        await conn.execute(q["ensure_wallet"], account_id)
        wallet, _ = await wallet_view(conn, q, account_id, org, lock=True)
        # checked under the wallet lock: a concurrent retry with the same key waits, then sees it
        previous = await conn.fetchrow(q["redemption_by_key"], account_id, idempotency_key)
        if previous is not None:
            if previous["reward_id"] != reward_id:
                raise IdempotencyKeyReused(
                    "this Idempotency-Key was already used for another redemption",
                    redemption_id=str(previous["id"]),
                )
            REDEMPTIONS.labels("replayed").inc()
            return previous, False
        r = await conn.fetchrow(q["lock_reward"], reward_id, org)
        if r is None:
            raise NotFound(f"no reward {reward_id}")
        usage = Usage(
            # the reward lock serialises redemptions of this reward, the wallet lock this
            # member's: both counts are exact
            reward_today=await conn.fetchval(q["reward_redeemed_today"], reward_id)
            if r["stock"] is None and r["daily_quota"] is not None
            else 0,
            member_this_month=await conn.fetchval(
                q["member_redeemed_this_month"], account_id, reward_id
            )
            if r["monthly_limit"] is not None
            else 0,
        )
        try:
            decide(wallet, _reward(r), usage, now=datetime.now(UTC), community_id=community_id)
        except RedeemRefusal as exc:
            REDEMPTIONS.labels(exc.reason).inc()
            raise
        # hold, take the item, record: one statement, since every round trip here is made
        # while the wallet and reward rows are locked (docs/BENCH.md, part 4)
        row = await conn.fetchrow(
            q["place_redemption"],
            uuid.uuid4(),
            account_id,
            org,
            reward_id,
            r["points"],
            by,
            idempotency_key,
            uuid.uuid4(),
            community_id,
        )
        await enqueue(conn, topics.REDEEM_REDEMPTIONS, account_id, placed_event(contracts, row))
    REDEMPTIONS.labels("placed").inc()
    return row, True


def placed_event(contracts: Contracts, row: asyncpg.Record) -> dict[str, Any]:
    """The placed event, rebuilt identically from the row whenever it must be sent again."""
    return contracts.new_event(
        PLACED,
        source=SOURCE,
        subject=row["account_id"],
        event_id=row["placed_event_id"],
        time=row["created_at"],
        data={
            "redemption_id": str(row["id"]),
            "account_id": row["account_id"],
            "org_id": row["org_id"],
            "reward_id": str(row["reward_id"]),
            "points": row["points"],
            "placed_at": isoformat(row["created_at"]),
        },
    )


def cancelled_event(contracts: Contracts, row: asyncpg.Record) -> dict[str, Any]:
    """The cancelled event (the refund request), rebuilt identically from the row."""
    return contracts.new_event(
        CANCELLED,
        source=SOURCE,
        subject=row["account_id"],
        event_id=row["cancelled_event_id"],
        time=row["cancelled_at"],
        data={
            "redemption_id": str(row["id"]),
            "account_id": row["account_id"],
            "org_id": row["org_id"],
            "reward_id": str(row["reward_id"]),
            "points": row["points"],
            "reason": row["cancel_reason"] or "cancelled",
            "cancelled_at": isoformat(row["cancelled_at"]),
        },
    )


async def fulfil(
    conn: asyncpg.Connection,
    q: Queries,
    *,
    org: str,
    redemption_id: uuid.UUID,
    merchant: str,
    voucher_code: str,
) -> asyncpg.Record:
    """The merchant hands over the item against the voucher code; at most once."""
    async with conn.transaction():
        row = await conn.fetchrow(q["lock_redemption"], redemption_id, org)
        if row is None:
            raise NotFound(f"no redemption {redemption_id}")
        check_fulfil(
            status=row["status"],
            merchant_id=row["merchant_id"],
            by_merchant=merchant,
            voucher_code=row["voucher_code"],
            presented=voucher_code,
            expires_at=row["expires_at"],
            now=datetime.now(UTC),
        )
        done = await conn.fetchrow(q["fulfil_redemption"], redemption_id, merchant)
        assert done is not None  # the row is locked and was confirmed
        SETTLED.labels("fulfilled").inc()
        return await conn.fetchrow(q["get_redemption"], redemption_id, org)


async def cancel(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    *,
    org: str,
    redemption_id: uuid.UUID,
    by: str,
    reason: str,
    account_id: str | None = None,
    merchant_id: str | None = None,
) -> tuple[asyncpg.Record, bool]:
    """Cancel before fulfilment: the item goes back at once; the refund is asked for once.

    A confirmed redemption (debited) asks the ledger for its refund now. A pending one (the
    debit still on its way) becomes ``cancelling``: the item is released now, the points stay
    held until the debit arrives, and then :func:`apply_ledger_entry` asks for the refund —
    the ledger refuses a refund it has no debit for, so asking earlier could lose it.
    ``account_id``/``merchant_id`` restrict who may cancel (404 for anyone else's).
    Cancelling again returns the redemption as it is (False), asking for nothing.
    """
    async with conn.transaction():
        peek = await conn.fetchrow(q["get_redemption"], redemption_id, org)
        if (
            peek is None
            or (account_id is not None and peek["account_id"] != account_id)
            or (merchant_id is not None and peek["merchant_id"] != merchant_id)
        ):
            raise NotFound(f"no redemption {redemption_id}")
        await conn.fetchrow(q["lock_wallet"], peek["account_id"])
        row = await conn.fetchrow(q["lock_redemption"], redemption_id, org)
        plan = plan_cancel(row["status"])
        if plan is None:
            return row, False
        done = await conn.fetchrow(
            q["cancel_redemption"],
            redemption_id,
            plan.new_status.value,
            uuid.uuid4() if plan.refund_now else None,
            by,
            reason,
            datetime.now(UTC),
        )
        if plan.refund_now:
            event = cancelled_event(contracts, done)
            await enqueue(conn, topics.REDEEM_REDEMPTIONS, row["account_id"], event)
        await conn.execute(q["release_stock"], row["reward_id"])
        SETTLED.labels("cancelled").inc()
        return await conn.fetchrow(q["get_redemption"], redemption_id, org), True


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
                await conn.fetchrow(q["lock_wallet"], d["account_id"])
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


def _utc(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


async def apply_ledger_entry(
    conn: asyncpg.Connection,
    q: Queries,
    event: dict[str, Any],
    *,
    contracts: Contracts | None = None,
    voucher_ttl_seconds: int = 30 * 24 * 3600,
) -> None:
    """Keep the wallet from the ledger's own events; settle a redemption once debited.

    Runs in the consumer's transaction (with its inbox row). Credits are remembered with the
    ledger's ``recorded_at`` so young ones can be told apart (the fraud window); a reversal
    marks its completion's credit reversed. A debit confirms a pending redemption (voucher
    issued) or, for one cancelled while pending, asks for its refund now that it can be had.
    """
    d = event["data"]
    account = d["account_id"]
    await conn.execute(q["ensure_wallet"], account)
    # the wallet row first, as everywhere (see the module's lock order)
    await conn.fetchrow(q["lock_wallet"], account)
    await conn.execute(q["apply_ledger_balance"], account, d["balance_after"], d["account_seq"])
    kind = d["kind"]
    if kind == "credit":
        await conn.execute(
            q["insert_credit"],
            d["entry_id"],
            account,
            d["org_id"],
            uuid.UUID(d["completion_id"]) if d.get("completion_id") else None,
            d["amount"],
            _utc(d["recorded_at"]),
        )
    elif kind == "reversal" and d.get("completion_id"):
        await conn.execute(q["reverse_credit"], account, uuid.UUID(d["completion_id"]))
    elif kind == "debit" and d.get("redemption_id"):
        redemption_id = uuid.UUID(d["redemption_id"])
        confirmed = await conn.fetchrow(
            q["confirm_redemption"],
            redemption_id,
            voucher_code(),
            d["entry_id"],
            voucher_ttl_seconds,
        )
        if confirmed is not None:
            _check_amount(confirmed, d)
            await conn.execute(q["release_hold"], confirmed["account_id"], confirmed["points"])
            return
        if contracts is None:
            return
        row = await conn.fetchrow(q["lock_redemption"], redemption_id, d["org_id"])
        if row is None or row["status"] != Status.CANCELLING:
            return  # a redelivered debit of a redemption already settled
        _check_amount(row, d)
        settled = await conn.fetchrow(
            q["settle_cancelling"], redemption_id, d["entry_id"], uuid.uuid4()
        )
        await enqueue(conn, topics.REDEEM_REDEMPTIONS, account, cancelled_event(contracts, settled))
        await conn.execute(q["release_hold"], account, row["points"])
    elif kind == "refund" and d.get("redemption_id"):
        # the ledger's answer to a cancellation: nothing more to ask for
        await conn.execute(q["record_refund"], uuid.UUID(d["redemption_id"]), d["entry_id"])


def _check_amount(row: asyncpg.Record, d: dict[str, Any]) -> None:
    if row["points"] != -d["amount"]:
        raise RejectedEvent(
            f"debit of {-d['amount']} for redemption {d['redemption_id']} "
            f"which held {row['points']}"
        )


def voucher_code() -> str:
    """Unguessable: 80 random bits, grouped for reading aloud at a counter."""
    raw = secrets.token_hex(10).upper()
    return "-".join(raw[i : i + 5] for i in range(0, 20, 5))
