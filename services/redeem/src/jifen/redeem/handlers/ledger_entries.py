"""The ledger's events, as the worker's consumer applies them: the wallet kept from each entry,
a redemption confirmed (its voucher issued) once its debit is appended."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import asyncpg

from jifen.kernel import topics
from jifen.kernel.consumer import RejectedEvent
from jifen.kernel.contracts import Contracts, parse_time
from jifen.kernel.db import Queries
from jifen.kernel.outbox import enqueue
from jifen.redeem.domain.lifecycle import Status
from jifen.redeem.handlers.events import cancelled_event


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
            parse_time(d["recorded_at"]),
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
