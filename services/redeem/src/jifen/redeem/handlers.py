"""Commands of the redeem service; each owns its transaction."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from jifen.kernel import topics
from jifen.kernel.consumer import RejectedEvent
from jifen.kernel.contracts import Contracts, isoformat
from jifen.kernel.db import Queries
from jifen.kernel.outbox import enqueue
from jifen.redeem.domain.wallet import RedeemRefusal, Reward, Wallet, decide

SOURCE = "/jifen/redeem"


class NotFound(LookupError):
    pass


class IdempotencyKeyReused(RedeemRefusal):
    reason = "idempotency_key_reused"


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
) -> tuple[asyncpg.Record, bool]:
    """Hold the points and the item and record the redemption with its event, atomically.

    Locks: the wallet row first, then the reward row, always in that order, so concurrent
    redemptions serialise per account and per item and never deadlock; the decision is made
    on the locked rows, so no interleaving can overdraw or oversell.
    """
    async with conn.transaction():
        await conn.execute(q["ensure_wallet"], account_id)
        w = await conn.fetchrow(q["lock_wallet"], account_id)
        # checked under the wallet lock: a concurrent retry with the same key waits, then sees it
        previous = await conn.fetchrow(q["redemption_by_key"], account_id, idempotency_key)
        if previous is not None:
            if previous["reward_id"] != reward_id:
                raise IdempotencyKeyReused(
                    "this Idempotency-Key was already used for another redemption",
                    redemption_id=str(previous["id"]),
                )
            return previous, False
        r = await conn.fetchrow(q["lock_reward"], reward_id, org)
        if r is None:
            raise NotFound(f"no reward {reward_id}")
        decide(
            Wallet(account_id, w["ledger_balance"], w["held"]),
            Reward(str(r["id"]), r["points"], r["stock"], r["active"]),
        )
        await conn.execute(q["hold"], account_id, r["points"])
        await conn.execute(q["take_stock"], reward_id)
        row = await conn.fetchrow(
            q["insert_redemption"],
            uuid.uuid4(),
            account_id,
            org,
            reward_id,
            r["points"],
            by,
            idempotency_key,
        )
        event = contracts.new_event(
            "jifen.redeem.redemption.placed.v1",
            source=SOURCE,
            subject=account_id,
            data={
                "redemption_id": str(row["id"]),
                "account_id": account_id,
                "org_id": org,
                "reward_id": str(reward_id),
                "points": r["points"],
                "placed_at": isoformat(datetime.now(UTC)),
            },
        )
        await enqueue(conn, topics.REDEEM_REDEMPTIONS, account_id, event)
    return row, True


async def apply_ledger_entry(conn: asyncpg.Connection, q: Queries, event: dict[str, Any]) -> None:
    """Keep the wallet from the ledger's own events; confirm a redemption once debited."""
    d = event["data"]
    await conn.execute(q["ensure_wallet"], d["account_id"])
    await conn.execute(
        q["apply_ledger_balance"], d["account_id"], d["balance_after"], d["account_seq"]
    )
    if d["kind"] == "debit" and d.get("redemption_id"):
        confirmed = await conn.fetchrow(
            q["confirm_redemption"], uuid.UUID(d["redemption_id"]), voucher_code(), d["entry_id"]
        )
        if confirmed is not None:
            if confirmed["points"] != -d["amount"]:
                raise RejectedEvent(
                    f"debit of {-d['amount']} for redemption {d['redemption_id']} "
                    f"which held {confirmed['points']}"
                )
            await conn.execute(q["release_hold"], confirmed["account_id"], confirmed["points"])


def voucher_code() -> str:
    """Unguessable: 80 random bits, grouped for reading aloud at a counter."""
    raw = secrets.token_hex(10).upper()
    return "-".join(raw[i : i + 5] for i in range(0, 20, 5))
