"""Completions: post one (idempotent by key; the check-in code checked here), and review it
(verify, approve a held one, reject, revoke). Whether a completion counts or waits is
decided in ``credit``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from jifen.kernel import topics
from jifen.kernel.contracts import Contracts, isoformat
from jifen.kernel.db import Queries
from jifen.kernel.i18n import Said
from jifen.kernel.outbox import enqueue, outbox_values, recorded
from jifen.tasks.domain.checkin import CheckinRules
from jifen.tasks.domain.clock import DEFAULT_TIMEZONE
from jifen.tasks.domain.commands import CompleteJob
from jifen.tasks.domain.jobs import (
    AlreadyCompleted,
    CompletionStatus,
    IdempotencyKeyReused,
    NeedsAdmin,
    NoClaim,
    OwnDecision,
    SelfVerification,
    VerificationMode,
    Window,
    WrongCheckinCode,
    WrongState,
    check_not_creator,
    check_quantity,
    check_rejectable,
    check_revocable,
    check_verifier,
    check_window,
    no_completion,
    no_job,
    same_person,
    unit_of,
)
from jifen.tasks.domain.limits import HoldLevel, may_approve
from jifen.tasks.handlers.checkin import check_presence
from jifen.tasks.handlers.credit import check_officer_budget, completion_data, decide
from jifen.tasks.handlers.history import SOURCE, record_status, status_event
from jifen.tasks.handlers.organisation import not_a_member

_ALREADY_COMPLETED = Said("这次领取已有完成记录", "this claim already has a completion")


async def complete_job(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    *,
    org: str,
    job_id: uuid.UUID,
    body: CompleteJob,
    by: str,
    idempotency_key: str,
    grace: timedelta,
    checkin: CheckinRules | None = None,
) -> tuple[asyncpg.Record, bool]:
    """Record a completion; returns (completion, created). A repeated key returns the original.

    In check-in mode the rotating code is checked here, server-side, and a wrong one is
    counted (after the transaction rolled back) against the (job, account); in check-in and
    automatic modes a good completion is verified at once (organisation limits may hold it)."""
    try:
        return await _complete_job(
            conn,
            q,
            contracts,
            org=org,
            job_id=job_id,
            body=body,
            by=by,
            idempotency_key=idempotency_key,
            grace=grace,
            checkin=checkin or CheckinRules(),
        )
    except WrongCheckinCode as refused:
        if refused.facts.pop("counted", False):
            await conn.execute(q["record_checkin_failure"], job_id, body.account_id)
        raise


async def _complete_job(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    *,
    org: str,
    job_id: uuid.UUID,
    body: CompleteJob,
    by: str,
    idempotency_key: str,
    grace: timedelta,
    checkin: CheckinRules,
) -> tuple[asyncpg.Record, bool]:
    async with conn.transaction():
        # the job with every fact the checks need, in one round trip; a repeated key (or a
        # claim already completed, or no such job) takes the long way, in the old order
        job = await conn.fetchrow(
            q["completion_context"], job_id, org, by, idempotency_key, body.account_id
        )
        if job is None or job["key_used"]:
            previous = await conn.fetchrow(q["completion_by_key"], org, by, idempotency_key)
            if previous is not None:
                return _same_request(previous, job_id, body.account_id), False
            if job is None:
                raise no_job(job_id)
        check_not_creator(job["created_by"], body.account_id)
        if not job["account_is_member"]:
            raise not_a_member(job, body.account_id)
        claim_id = job["live_claim_id"]
        if claim_id is None:
            raise NoClaim(
                Said(
                    f"{body.account_id} 没有领取岗位 {job_id}；请先领取",
                    f"{body.account_id} has no claim on job {job_id}; claim it first",
                )
            )
        now = datetime.now(UTC)
        window = Window(job["starts_at"], job["ends_at"], job["org_timezone"] or DEFAULT_TIMEZONE)
        check_window(window, now, grace)
        if job["verification"] == VerificationMode.CHECKIN.value:
            await check_presence(conn, q, job, body, checkin, now)
        custom = {job["category"]: job["custom_unit"]}
        unit = check_quantity(job["category"], unit_of(job["category"], custom), body.quantity)
        if job["claim_done"]:
            done = await conn.fetchrow(q["completion_by_claim"], claim_id)
            if done is not None:
                if done["submitted_by"] == by and done["idempotency_key"] == idempotency_key:
                    # the same request, committed by a concurrent retry after our key lookup
                    return _same_request(done, job_id, body.account_id), False
                raise AlreadyCompleted(_ALREADY_COMPLETED, completion_id=str(done["id"]))
        # the completion, its history's first status and that status's event: one statement
        completion_id = uuid.uuid4()
        event = status_event(
            contracts, org, "completion", completion_id, "submitted", by, "", job_id
        )
        row = await conn.fetchrow(
            q["insert_submitted_completion"],
            completion_id,
            job_id,
            claim_id,
            body.account_id,
            org,
            by,
            idempotency_key,
            dict(body.evidence),
            body.quantity,
            unit.value if unit is not None else None,
            *outbox_values(topics.TASKS_JOBS, str(completion_id), event),
        )
        if row is not None:
            recorded(topics.TASKS_JOBS, event)
            mode = VerificationMode(job["verification"])
            if mode is not VerificationMode.OFFICER:
                locked = await conn.fetchrow(q["lock_completion"], row["id"], org)
                row = await decide(
                    conn, q, contracts, locked, org=org, by=f"system:{mode.value}", approved=None
                )
    if row is None:
        # a concurrent request with the same key (or claim) committed first: answer with it
        previous = await conn.fetchrow(q["completion_by_key"], org, by, idempotency_key)
        if previous is not None:
            return _same_request(previous, job_id, body.account_id), False
        raise AlreadyCompleted(_ALREADY_COMPLETED)
    return row, True


def _same_request(previous: asyncpg.Record, job_id: uuid.UUID, account_id: str) -> asyncpg.Record:
    if previous["job_id"] != job_id or previous["account_id"] != account_id:
        raise IdempotencyKeyReused(
            Said(
                "这个 Idempotency-Key 已用于另一条完成记录",
                "this Idempotency-Key was already used for another completion",
            ),
            completion_id=str(previous["id"]),
        )
    return previous


async def _locked(
    conn: asyncpg.Connection, q: Queries, completion_id: uuid.UUID, org: str
) -> asyncpg.Record:
    c = await conn.fetchrow(q["lock_completion"], completion_id, org)
    if c is None:
        raise no_completion(completion_id)
    return c


async def verify_completion(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    *,
    org: str,
    officer: str,
    completion_id: uuid.UUID,
) -> asyncpg.Record:
    async with conn.transaction():
        c = await _locked(conn, q, completion_id, org)
        check_verifier(officer, c["account_id"], CompletionStatus(c["status"]))
        return await decide(conn, q, contracts, c, org=org, by=officer, approved=None)


async def approve_completion(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    *,
    org: str,
    who: str,
    role: str,
    completion_id: uuid.UUID,
    reason: str,
) -> asyncpg.Record:
    """Decide a held completion in its favour: an officer for officer-level, the admin above."""
    async with conn.transaction():
        c = await _locked(conn, q, completion_id, org)
        if same_person(who, c["account_id"]):
            raise SelfVerification(
                Said("不能批准自己的完成记录", "an officer may not approve their own completion")
            )
        if c["status"] != CompletionStatus.HELD.value:
            raise WrongState(
                Said(
                    f"只有暂扣的完成记录可以批准；这条的状态是 {c['status']}",
                    f"only a held completion can be approved; this one is {c['status']}",
                ),
                status=c["status"],
            )
        level = HoldLevel(c["hold_level"])
        if not may_approve(level, role):
            raise NeedsAdmin(
                Said(
                    "这条完成记录超出本组织的第二道限额：只有管理员可以批准",
                    "this completion is beyond the organisation's second limit: only its admin "
                    "may approve it",
                ),
                hold_level=level.value,
                hold_reason=c["hold_reason"],
            )
        if c["verification"] != VerificationMode.OFFICER.value and same_person(
            who, c["job_created_by"]
        ):
            # nobody looked at a check-in or automatic completion: the officer who published
            # the job is its de facto verifier, and a hold needs somebody else
            raise OwnDecision(
                Said(
                    f"这个 {c['verification']} 岗位由 {c['job_created_by']} 发布，不能批准自己发布"
                    "的岗位的完成记录：须由另一名工作人员或管理员批准",
                    f"this {c['verification']} job was published by {c['job_created_by']}: "
                    "another officer or the admin approves it",
                ),
                decided_by=c["job_created_by"],
            )
        if role == "officer":
            await check_officer_budget(conn, q, org, who, c["points"])
        return await decide(conn, q, contracts, c, org=org, by=who, approved=reason)


async def reject_completion(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    *,
    org: str,
    who: str,
    completion_id: uuid.UUID,
    reason: str,
) -> asyncpg.Record:
    async with conn.transaction():
        c = await _locked(conn, q, completion_id, org)
        check_rejectable(CompletionStatus(c["status"]), who, c["account_id"])
        now = datetime.now(UTC)
        row = await conn.fetchrow(q["mark_rejected"], completion_id, who, now, reason)
        await record_status(
            conn, q, contracts, org, "completion", completion_id, "rejected", who, reason
        )
    return row


async def revoke_completion(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    *,
    org: str,
    who: str,
    completion_id: uuid.UUID,
    reason: str,
) -> asyncpg.Record:
    """Revoke a verified completion: a compensating event the ledger turns into a reversal."""
    async with conn.transaction():
        c = await _locked(conn, q, completion_id, org)
        check_revocable(CompletionStatus(c["status"]), who, c["account_id"])
        now = datetime.now(UTC)
        event = contracts.new_event(
            "jifen.tasks.completion.revoked.v1",
            source=SOURCE,
            subject=c["account_id"],
            time=now,
            data={
                **completion_data(c, org),
                "revoked_by": who,
                "reason": reason,
                "revoked_at": isoformat(now),
            },
        )
        row = await conn.fetchrow(q["mark_revoked"], completion_id, who, now, reason, event)
        await enqueue(conn, topics.TASKS_COMPLETIONS, c["account_id"], event)
        await record_status(
            conn, q, contracts, org, "completion", completion_id, "revoked", who, reason
        )
    return row
