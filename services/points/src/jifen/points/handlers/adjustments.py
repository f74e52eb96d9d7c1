"""Adjustments: an admin requests one, another admin decides it; approval appends the entry."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg

from jifen.kernel import topics
from jifen.kernel.contracts import Contracts, isoformat
from jifen.kernel.db import Queries
from jifen.kernel.errors import DomainRefusal, NotFound
from jifen.kernel.i18n import Said
from jifen.kernel.outbox import enqueue
from jifen.points.domain.ledger import adjustment, adjustment_refusal
from jifen.points.handlers.ledger import append_postings
from jifen.points.metrics import ENTRIES_APPENDED


class AdjustmentRefused(DomainRefusal):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail, reason=reason)


async def _balance(conn: asyncpg.Connection, q: Queries, org: str, account_id: str) -> int:
    row = await conn.fetchrow(q["balance"], org, account_id)
    return int(row["balance"]) if row is not None else 0


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
    """Record a pending adjustment of (``org``, ``account_id``): always the requesting
    admin's own organisation, whatever other organisations the account id has points in."""
    refusal = adjustment_refusal(
        requested_by=admin,
        approver=None,
        account_id=account_id,
        balance=await _balance(conn, q, org, account_id),
        amount=amount,
    )
    if refusal is not None:
        raise AdjustmentRefused(*refusal)
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
            raise NotFound(Said(f"没有调整 {adjustment_id}", f"no adjustment {adjustment_id}"))
        if adj["status"] != "pending":
            raise AdjustmentRefused(
                "already_decided",
                Said(
                    f"该调整已是 {adj['status']} 状态", f"the adjustment is already {adj['status']}"
                ),
            )
        # the same two-person rule for a rejection (the balance only matters for approval)
        refusal = adjustment_refusal(
            requested_by=adj["requested_by"],
            approver=admin,
            account_id=adj["account_id"],
            balance=0,
            amount=1,
        )
        if refusal is not None:
            raise AdjustmentRefused(*refusal)
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
        # lock the (org, account) head first, then check the balance it holds: nothing can
        # spend between this check and the append below (same transaction, same row lock)
        await conn.execute(q["ensure_accounts"], [org], [adj["account_id"]])
        head = await conn.fetchrow(q["lock_accounts"], [org], [adj["account_id"]])
        refusal = adjustment_refusal(
            requested_by=adj["requested_by"],
            approver=admin,
            account_id=adj["account_id"],
            balance=int(head["balance"]),
            amount=adj["amount"],
        )
        if refusal is not None:
            raise AdjustmentRefused(*refusal)
        plan, _ = await append_postings(conn, q, contracts, [posting])
        if not plan.entries:
            why = "; ".join(r for _, r in plan.refused)
            raise AdjustmentRefused("not_appended", Said(f"调整未能记入账本：{why}", why))
        await enqueue(conn, topics.POINTS_ADJUSTMENTS, adj["account_id"], event)
        ENTRIES_APPENDED.labels("adjustment").inc()
        return await conn.fetchrow(
            q["decide_adjustment"], adjustment_id, "approved", admin, note, uuid.UUID(event["id"])
        )
