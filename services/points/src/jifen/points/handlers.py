"""Commands of the points API; each owns its transaction."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg

from jifen.kernel import topics
from jifen.kernel.contracts import Contracts, isoformat
from jifen.kernel.db import Queries
from jifen.kernel.errors import DomainRefusal, NotFound
from jifen.kernel.outbox import enqueue
from jifen.points.db.repo import append_postings
from jifen.points.domain.ledger import adjustment
from jifen.points.metrics import ENTRIES_APPENDED


class AdjustmentRefused(DomainRefusal):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail, reason=reason)


async def request_adjustment(
    conn: asyncpg.Connection,
    q: Queries,
    *,
    org: str,
    admin: str,
    account_id: str,
    amount: int,
    reason: str,
) -> asyncpg.Record:
    return await conn.fetchrow(
        q["insert_adjustment"], uuid.uuid4(), org, account_id, amount, reason, admin
    )


async def decide_adjustment(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    *,
    org: str,
    admin: str,
    adjustment_id: uuid.UUID,
    approve: bool,
    note: str,
) -> asyncpg.Record:
    """The second person's decision. Approval appends the entry in the same transaction."""
    async with conn.transaction():
        adj = await conn.fetchrow(q["lock_adjustment"], adjustment_id, org)
        if adj is None:
            raise NotFound(f"no adjustment {adjustment_id}")
        if adj["status"] != "pending":
            raise AdjustmentRefused("already_decided", f"the adjustment is already {adj['status']}")
        if adj["requested_by"] == admin:
            raise AdjustmentRefused(
                "same_person", "the admin who requested an adjustment cannot also decide it"
            )
        if not approve:
            return await conn.fetchrow(
                q["decide_adjustment"], adjustment_id, "rejected", admin, note, None
            )
        now = datetime.now(UTC)
        event = contracts.new_event(
            "jifen.points.adjustment.approved.v1",
            source="/jifen/points",
            subject=adj["account_id"],
            time=now,
            data={
                "adjustment_id": str(adj["id"]),
                "account_id": adj["account_id"],
                "org_id": org,
                "amount": adj["amount"],
                "reason": adj["reason"],
                "requested_by": adj["requested_by"],
                "approved_by": admin,
                "approved_at": isoformat(now),
            },
        )
        posting = adjustment(
            event_id=event["id"],
            account_id=adj["account_id"],
            amount=adj["amount"],
            org_id=org,
            at=now,
        )
        plan, _ = await append_postings(conn, q, contracts, [posting])
        if not plan.entries:
            raise AdjustmentRefused("not_appended", "; ".join(r for _, r in plan.refused))
        await enqueue(conn, topics.POINTS_ADJUSTMENTS, adj["account_id"], event)
        ENTRIES_APPENDED.labels("adjustment").inc()
        return await conn.fetchrow(
            q["decide_adjustment"], adjustment_id, "approved", admin, note, uuid.UUID(event["id"])
        )
