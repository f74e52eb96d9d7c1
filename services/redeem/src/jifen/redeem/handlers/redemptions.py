"""Redemptions, as the API places, fulfils and cancels them: the points and the item held
and the event recorded atomically, a voucher handed over at most once, a refund asked for once.

The lock order is the package's (see :mod:`jifen.redeem.handlers`): idempotency scope, wallet,
redemption, reward.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from jifen.kernel import topics
from jifen.kernel.contracts import Contracts
from jifen.kernel.db import Queries
from jifen.kernel.errors import NotFound
from jifen.kernel.outbox import enqueue
from jifen.redeem.domain.lifecycle import (
    AttemptLimit,
    WrongVoucher,
    attempts_left,
    check_fulfil,
    lockout,
    plan_cancel,
)
from jifen.redeem.domain.wallet import IdempotencyKeyReused, RedeemRefusal, Reward, Usage, decide
from jifen.redeem.handlers.events import cancelled_event, placed_event
from jifen.redeem.handlers.wallets import wallet_view
from jifen.redeem.metrics import REDEMPTIONS, SETTLED


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
