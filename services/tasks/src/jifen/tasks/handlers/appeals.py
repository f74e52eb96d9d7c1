"""Appeals: a volunteer appeals a rejection, a hold or a credit that never arrived; somebody
other than the officer appealed against decides, and a later decision corrects an earlier."""

from __future__ import annotations

import uuid

import asyncpg

from jifen.kernel.contracts import Contracts, isoformat
from jifen.kernel.db import Queries
from jifen.kernel.errors import NotFound
from jifen.kernel.i18n import Said
from jifen.tasks.domain.commands import DecideAppeal, FileAppeal
from jifen.tasks.domain.jobs import (
    OwnDecision,
    SelfVerification,
    WrongState,
    no_completion,
    same_person,
)
from jifen.tasks.handlers.history import record_status

# the status of the completion each kind of appeal concerns
_APPEALABLE = {
    "rejection": ("rejected",),
    "hold": ("held",),
    "missing_credit": ("verified",),
}


async def file_appeal(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    *,
    org: str,
    by: str,
    body: FileAppeal,
) -> asyncpg.Record:
    async with conn.transaction():
        c = await conn.fetchrow(q["get_completion"], body.completion_id, org)
        if c is None:
            raise no_completion(body.completion_id)
        expected = _APPEALABLE[body.kind]
        if c["status"] not in expected:
            raise WrongState(
                Said(
                    f"{body.kind!r} 类申诉针对状态为 {expected[0]} 的完成记录；这条的状态是"
                    f" {c['status']}",
                    f"an appeal of kind {body.kind!r} concerns a {expected[0]} completion; "
                    f"this one is {c['status']}",
                ),
                status=c["status"],
            )
        if body.kind == "missing_credit" and c["credited_at"] is not None:
            raise WrongState(
                Said(
                    "账本已确认这条完成记录的积分入账",
                    "the ledger already acknowledged this completion's credit",
                ),
                credited_at=isoformat(c["credited_at"]),
            )
        row = await conn.fetchrow(
            q["insert_appeal"],
            uuid.uuid4(),
            org,
            body.completion_id,
            c["account_id"],
            body.kind,
            body.reason,
            by,
        )
        await record_status(conn, q, contracts, org, "appeal", row["id"], "open", by, body.reason)
    return row


async def decide_appeal(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    *,
    org: str,
    who: str,
    role: str,
    appeal_id: uuid.UUID,
    body: DecideAppeal,
) -> asyncpg.Record:
    """Record a decision (who, when, why). A later decision corrects an earlier one; none is
    ever changed. Upholding an appeal of a rejection sends the completion back for review;
    upholding a missing credit republishes its verified event at once."""
    async with conn.transaction():
        a = await conn.fetchrow(q["lock_appeal"], appeal_id, org)
        if a is None:
            raise NotFound(Said(f"没有申诉 {appeal_id}", f"no appeal {appeal_id}"))
        if same_person(who, a["account_id"]):
            raise SelfVerification(
                Said("不能裁决自己的申诉", "an officer may not decide their own appeal")
            )
        await _check_appeal_decider(conn, q, org, a, who)
        if a["status"] == body.outcome:
            raise WrongState(
                Said(f"申诉已是 {a['status']} 状态", f"the appeal is already {a['status']}"),
                status=a["status"],
            )
        await conn.execute(q["insert_decision"], appeal_id, body.outcome, who, role, body.reason)
        row = await conn.fetchrow(q["set_appeal_status"], appeal_id, body.outcome)
        await record_status(
            conn, q, contracts, org, "appeal", appeal_id, body.outcome, who, body.reason
        )
        if body.outcome == "upheld":
            await _remedy(conn, q, contracts, a, org=org, who=who)
    return row


async def _remedy(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    a: asyncpg.Record,
    *,
    org: str,
    who: str,
) -> None:
    """What an upheld appeal does to its completion: a rejected one goes back for review, a
    credit that never arrived is republished now."""
    c = await conn.fetchrow(q["lock_completion"], a["completion_id"], org)
    if a["kind"] == "rejection" and c["status"] == "rejected":
        await conn.fetchrow(q["reopen_completion"], c["id"])
        await record_status(
            conn, q, contracts, org, "completion", c["id"], "submitted", who, "appeal upheld"
        )
    elif a["kind"] == "missing_credit" and c["credited_at"] is None:
        await conn.execute(q["republish_now"], c["id"])


async def _check_appeal_decider(
    conn: asyncpg.Connection, q: Queries, org: str, a: asyncpg.Record, who: str
) -> None:
    """An appeal is decided by somebody other than the officer whose decision it appeals: the
    one who rejected the completion, or whose verification put it on hold (for a check-in or
    automatic job, the officer who published it)."""
    c = await conn.fetchrow(q["get_completion"], a["completion_id"], org)
    appealed: str | None = None
    if a["kind"] == "rejection":
        appealed = c["rejected_by"]
    elif a["kind"] == "hold":
        appealed = await conn.fetchval(q["held_by"], c["id"])
        if appealed is not None and appealed.startswith("system:"):
            appealed = c["job_created_by"]
    if same_person(who, appealed):
        raise OwnDecision(
            Said(
                f"这项申诉针对 {appealed} 的决定，须由另一名工作人员或管理员裁决",
                f"this appeal concerns a decision of {appealed}: "
                "another officer or the admin decides it",
            ),
            decided_by=appealed,
            kind=a["kind"],
        )
