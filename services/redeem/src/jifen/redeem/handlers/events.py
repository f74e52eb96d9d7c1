"""The events the redeem service records: a redemption placed (the ledger's debit request)
and cancelled (its refund request), each rebuilt identically from its row whenever it must be
sent again (same id, so the ledger absorbs a duplicate)."""

from __future__ import annotations

from typing import Any

import asyncpg

from jifen.kernel.contracts import Contracts, isoformat

SOURCE = "/jifen/redeem"
PLACED = "jifen.redeem.redemption.placed.v1"
CANCELLED = "jifen.redeem.redemption.cancelled.v1"


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
