"""Redemptions, as the API places, fulfils and cancels them: the points and the item held
and the event recorded atomically, a voucher handed over at most once, a refund asked for once.

The lock order is the package's (see :mod:`jifen.redeem.handlers`): idempotency scope, wallet,
redemption, reward.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson

from jifen.kernel import topics
from jifen.kernel.contracts import Contracts
from jifen.kernel.db import Queries
from jifen.kernel.i18n import Said
from jifen.kernel.outbox import enqueue
from jifen.kernel.runtime import REQUEST_ID
from jifen.redeem.domain.lifecycle import (
    AttemptLimit,
    WrongVoucher,
    attempts_left,
    check_fulfil,
    lockout,
    plan_cancel,
)
from jifen.redeem.domain.wallet import (
    IdempotencyKeyReused,
    RedeemRefusal,
    Reward,
    Usage,
    Wallet,
    decide,
    no_redemption,
    no_reward,
)
from jifen.redeem.handlers.events import PLACED, SOURCE, cancelled_event
from jifen.redeem.metrics import REDEMPTIONS, SETTLED

# the logger jifen.kernel.outbox.enqueue writes with: one line per event a request records
outbox_log = logging.getLogger("jifen.kernel.outbox")


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

    One statement, ``redeem_place`` (migration 0005): it takes the idempotency scope's lock,
    then the wallet row's, then the reward row's, always in that order, so concurrent
    redemptions serialise per key, per wallet and per item and never deadlock; the decision
    is made on the locked rows (and on counts taken under them), so no interleaving can
    overdraw, oversell, or exceed a quota or a member's limit. The locks are held only
    while PostgreSQL runs the function, never across a round trip. A refusal raises there
    (nothing stays) with the locked figures, and :func:`decide` says which refusal.
    """
    new_id = uuid.uuid4()
    now = datetime.now(UTC)
    args = (
        org,
        by,
        idempotency_key,
        account_id,
        reward_id,
        community_id,
        new_id,
        uuid.uuid4(),
        now,
        topics.REDEEM_REDEMPTIONS,
        PLACED,
        SOURCE,
    )
    try:
        if conn.is_in_transaction():  # a caller's transaction: a refusal undoes ours only
            async with conn.transaction():
                row = await conn.fetchrow(q["place_redemption"], *args)
        else:
            row = await conn.fetchrow(q["place_redemption"], *args)
    except asyncpg.RaiseError as exc:
        _refused(exc, reward_id=reward_id, account_id=account_id, now=now, community=community_id)
        raise
    assert row is not None
    if row["id"] != new_id:
        REDEMPTIONS.labels("replayed").inc()
        return row, False
    REDEMPTIONS.labels("placed").inc()
    if REQUEST_ID.get() is not None:  # as jifen.kernel.outbox.enqueue logs what it records
        outbox_log.info(
            "event %s recorded for publication on %s",
            PLACED,
            topics.REDEEM_REDEMPTIONS,
            extra={"event_id": str(row["placed_event_id"])},
        )
    return row, True


def _refused(
    exc: asyncpg.RaiseError,
    *,
    reward_id: uuid.UUID,
    account_id: str,
    now: datetime,
    community: str | None,
) -> None:
    """Raise the refusal ``redeem_place`` reported (and count it); return if it is not one."""
    what = exc.args[0] if exc.args else ""
    if what == "jifen:no_reward":
        raise no_reward(reward_id) from None
    if what == "jifen:idempotency_key_reused":
        REDEMPTIONS.labels(IdempotencyKeyReused.reason).inc()
        raise IdempotencyKeyReused(
            Said(
                "此 Idempotency-Key 已用于另一次兑换",
                "this Idempotency-Key was already used for another redemption",
            ),
            redemption_id=exc.detail,
        ) from None
    if not what.startswith("jifen:refused:"):
        return
    f = orjson.loads(exc.detail or "{}")
    wallet = Wallet(account_id, f["ledger_balance"], f["held"], f["recent_credits"])
    reward = Reward(
        reward_id=str(reward_id),
        points=f["points"],
        stock=f["stock"],
        active=f["active"],
        daily_quota=f["daily_quota"],
        monthly_limit=f["monthly_limit"],
        valid_from=_utc(f["valid_from"]),
        valid_until=_utc(f["valid_until"]),
        community_id=f["community_id"],
    )
    usage = Usage(reward_today=f["reward_today"], member_this_month=f["member_this_month"])
    try:
        decide(wallet, reward, usage, now=now, community_id=community)
    except RedeemRefusal as refusal:
        REDEMPTIONS.labels(refusal.reason).inc()
        raise refusal from None
    raise RuntimeError(f"redeem_place refused ({what}) where decide() would not: {f}")


def _utc(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


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
            raise no_redemption(redemption_id)
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
            raise no_redemption(redemption_id)
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
