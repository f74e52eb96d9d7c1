"""Commands of the redeem service; each owns its transaction.

A wallet is (organisation, account): the ledger's entries of that organisation only. A
redemption spends the wallet of the reward's organisation, which is always the caller's own
(rewards are looked up within it).

Lock order, everywhere: the wallet row, then the redemption row, then the reward row. Every
command that takes more than one of them takes them in this order, so none can deadlock.
Placing a redemption first takes a transaction-scoped advisory lock on its idempotency scope
(organisation, caller, key); nothing else takes those, so the order stays acyclic.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from jifen.kernel import topics
from jifen.kernel.consumer import RejectedEvent
from jifen.kernel.contracts import Contracts, isoformat
from jifen.kernel.db import Queries
from jifen.kernel.errors import NotFound
from jifen.kernel.outbox import enqueue
from jifen.redeem.domain.lifecycle import (
    AttemptLimit,
    Status,
    WrongVoucher,
    attempts_left,
    check_fulfil,
    lockout,
    plan_cancel,
)
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
    """The account's wallet in ``org`` (locked when asked) with that organisation's fraud
    window. Points the account holds in any other organisation are not in it."""
    # the organisation's setting first: it needs no lock, so it is not read while holding one
    window = await conn.fetchval(q["fraud_window"], org) or 0
    row = await conn.fetchrow(q["lock_wallet" if lock else "get_wallet"], org, account_id)
    recent = (
        await conn.fetchval(q["recent_credits"], org, account_id, float(window)) if window else 0
    )
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

    ``org`` is the caller's organisation: the reward must be one of its own (else 404) and
    the points spent are the account's in that organisation only. ``by`` is the caller's
    subject: an Idempotency-Key is the caller's own within its organisation, so another
    organisation (or another app) using the same key neither replays nor blocks this one.

    Locks: the idempotency scope, then the wallet row, then the reward row, always in that
    order, so concurrent redemptions serialise per key, per wallet and per item and never
    deadlock; the decision is made on the locked rows (and on counts taken under them), so
    no interleaving can overdraw, oversell, or exceed a quota or a member's limit.
    """
    async with conn.transaction():
        # a concurrent retry with the same key (for any account) waits here, then sees it
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            f"redeem-key\x1f{org}\x1f{by}\x1f{idempotency_key}",
        )
        previous = await conn.fetchrow(q["redemption_by_key"], org, by, idempotency_key)
        if previous is not None:
            if previous["reward_id"] != reward_id or previous["account_id"] != account_id:
                REDEMPTIONS.labels(IdempotencyKeyReused.reason).inc()
                raise IdempotencyKeyReused(
                    "此 Idempotency-Key 已用于另一次兑换 "
                    "this Idempotency-Key was already used for another redemption",
                    redemption_id=str(previous["id"]),
                )
            REDEMPTIONS.labels("replayed").inc()
            return previous, False
        await conn.execute(q["ensure_wallet"], org, account_id)
        wallet, _ = await wallet_view(conn, q, account_id, org, lock=True)
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
    per_redemption: AttemptLimit = AttemptLimit(5, 900),
    per_merchant: AttemptLimit = AttemptLimit(30, 900),
) -> asyncpg.Record:
    """The merchant hands over the item against the voucher code; at most once.

    Wrong codes are counted (committed even though the request is refused): after
    ``per_redemption.limit`` of them on this redemption, or ``per_merchant.limit`` by this
    merchant on any, within the window, fulfilment is refused with 429 — even with the
    right code — until the oldest counted one leaves the window. The redemption's row lock
    makes the per-redemption count exact; the per-merchant one may be passed by as many
    requests as run at once.
    """
    wrong: WrongVoucher | None = None
    async with conn.transaction():
        row = await conn.fetchrow(q["lock_redemption"], redemption_id, org)
        if row is None:
            raise NotFound(f"no redemption {redemption_id}")
        window = max(per_redemption.window_seconds, per_merchant.window_seconds)
        seen = await conn.fetchrow(
            q["voucher_failures"],
            redemption_id,
            merchant,
            float(window),
            org,
            max(per_redemption.limit, 1),
            max(per_merchant.limit, 1),
        )
        now: datetime = seen["now"]

        def inside(times: list[datetime], rule: AttemptLimit) -> list[datetime]:
            return [t for t in times if t > now - timedelta(seconds=rule.window_seconds)]

        mine = inside(list(seen["by_redemption"]), per_redemption)
        theirs = inside(list(seen["by_merchant"]), per_merchant)
        waits = [
            (w, scope)
            for w, scope in (
                (lockout(mine, per_redemption, now), "redemption"),
                (lockout(theirs, per_merchant, now), "merchant"),
            )
            if w is not None
        ]
        locked_for, locked_by = max(waits) if waits else (None, "redemption")
        try:
            check_fulfil(
                status=row["status"],
                merchant_id=row["merchant_id"],
                by_merchant=merchant,
                voucher_code=row["voucher_code"],
                presented=voucher_code,
                expires_at=row["expires_at"],
                now=now,
                locked_for=locked_for,
                locked_by=locked_by,
            )
        except WrongVoucher as exc:
            await conn.execute(q["record_voucher_failure"], org, merchant, redemption_id)
            left = [
                n
                for n in (attempts_left(mine, per_redemption), attempts_left(theirs, per_merchant))
                if n is not None
            ]
            if left:
                exc.facts["attempts_left"] = min(left)
            wrong = exc  # raised once the failure is committed
        else:
            done = await conn.fetchrow(q["fulfil_redemption"], redemption_id, merchant)
            assert done is not None  # the row is locked and was confirmed
            SETTLED.labels("fulfilled").inc()
            return await conn.fetchrow(q["get_redemption"], redemption_id, org)
    raise wrong


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
        await conn.fetchrow(q["lock_wallet"], peek["org_id"], peek["account_id"])
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

    The wallet is the entry's (org_id, account_id): ``balance_after`` and ``account_seq``
    are those of that organisation's chain for the account. Runs in the consumer's
    transaction (with its inbox row). Credits are remembered with the ledger's
    ``recorded_at`` so young ones can be told apart (the fraud window); a reversal marks its
    completion's credit reversed. A debit confirms a pending redemption (voucher issued) or,
    for one cancelled while pending, asks for its refund now that it can be had.
    """
    d = event["data"]
    account, org = d["account_id"], d["org_id"]
    await conn.execute(q["ensure_wallet"], org, account)
    # the wallet row first, as everywhere (see the module's lock order)
    await conn.fetchrow(q["lock_wallet"], org, account)
    await conn.execute(
        q["apply_ledger_balance"], org, account, d["balance_after"], d["account_seq"]
    )
    kind = d["kind"]
    if kind == "credit":
        await conn.execute(
            q["insert_credit"],
            d["entry_id"],
            account,
            org,
            uuid.UUID(d["completion_id"]) if d.get("completion_id") else None,
            d["amount"],
            _utc(d["recorded_at"]),
        )
    elif kind == "reversal" and d.get("completion_id"):
        await conn.execute(q["reverse_credit"], org, account, uuid.UUID(d["completion_id"]))
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
            await conn.execute(
                q["release_hold"], confirmed["org_id"], confirmed["account_id"], confirmed["points"]
            )
            return
        if contracts is None:
            return
        row = await conn.fetchrow(q["lock_redemption"], redemption_id, org)
        if row is None or row["status"] != Status.CANCELLING:
            return  # a redelivered debit of a redemption already settled
        _check_amount(row, d)
        settled = await conn.fetchrow(
            q["settle_cancelling"], redemption_id, d["entry_id"], uuid.uuid4()
        )
        await enqueue(conn, topics.REDEEM_REDEMPTIONS, account, cancelled_event(contracts, settled))
        await conn.execute(q["release_hold"], org, account, row["points"])
    elif kind == "refund" and d.get("redemption_id"):
        # the ledger's answer to a cancellation: nothing more to ask for
        await conn.execute(q["record_refund"], uuid.UUID(d["redemption_id"]), d["entry_id"])


def _check_amount(row: asyncpg.Record, d: dict[str, Any]) -> None:
    if row["org_id"] != d["org_id"]:
        raise RejectedEvent(
            f"debit in organisation {d['org_id']} for redemption {d['redemption_id']} "
            f"of organisation {row['org_id']}"
        )
    if row["points"] != -d["amount"]:
        raise RejectedEvent(
            f"debit of {-d['amount']} for redemption {d['redemption_id']} "
            f"which held {row['points']}"
        )


def voucher_code() -> str:
    """Unguessable: 80 random bits, grouped for reading aloud at a counter."""
    raw = secrets.token_hex(10).upper()
    return "-".join(raw[i : i + 5] for i in range(0, 20, 5))
