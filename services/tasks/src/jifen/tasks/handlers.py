"""Commands of the tasks service: one function each; each owns its transaction.

The domain decides, the repository (named queries) writes, and the outbox records the event
in the same transaction.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from jifen.kernel import topics
from jifen.kernel.contracts import Contracts, isoformat
from jifen.kernel.db import Queries
from jifen.kernel.errors import NotFound
from jifen.kernel.outbox import enqueue
from jifen.tasks.api.schemas import (
    AppealIn,
    CompletionIn,
    DecisionIn,
    HazardIn,
    JobIn,
    MenuIn,
    MenuJob,
    NeedIn,
    Place,
)
from jifen.tasks.domain.checkin import CheckinRules, TooManyAttempts, check_code, new_secret
from jifen.tasks.domain.checkin import retry_after as checkin_retry_after
from jifen.tasks.domain.intake import HazardStatus, NeedStatus, move_hazard, move_need
from jifen.tasks.domain.jobs import (
    AlreadyClaimed,
    AlreadyCompleted,
    CompletionStatus,
    IdempotencyKeyReused,
    JobFull,
    NeedsAdmin,
    NoClaim,
    NotAMember,
    OwnDecision,
    Recurrence,
    SelfVerification,
    UnknownCommunity,
    VerificationMode,
    Window,
    WrongCheckinCode,
    WrongState,
    check_category,
    check_not_creator,
    check_recurrence,
    check_rejectable,
    check_revocable,
    check_verifier,
    check_window,
    check_withdrawal,
    identity,
    month_of,
    occurrence_in,
    same_person,
)
from jifen.tasks.domain.limits import (
    DEFAULT_LIMITS,
    Hold,
    HoldLevel,
    Limits,
    Usage,
    assess,
    day_start,
    hour_ago,
    may_approve,
)

SOURCE = "/jifen/tasks"


async def check_community(
    conn: asyncpg.Connection, q: Queries, org: str, community_id: str
) -> None:
    """A job, hazard report or need names a community of the caller's own organisation."""
    if await conn.fetchrow(q["get_community"], org, community_id) is None:
        raise UnknownCommunity(
            f"本组织没有社区 {community_id!r} your organisation has no community "
            f"{community_id!r}; an officer adds it with POST /v1/communities",
            community_id=community_id,
        )


async def check_member(
    conn: asyncpg.Connection, q: Queries, org: str, job: asyncpg.Record, account_id: str
) -> None:
    """Only accounts registered (report-in) with the job's community may claim and complete
    it; an open job takes any account registered with a community of the organisation. An
    account that is a member of nothing is never credited."""
    if job["open_to_all"]:
        if not await conn.fetchval(q["is_member_anywhere"], org, account_id):
            raise NotAMember(
                f"账户未在本组织任何社区报到 {account_id} is registered with no community of "
                "your organisation; register it first with POST /v1/communities/{id}/members",
                account_id=account_id,
            )
        return
    if not await conn.fetchval(q["is_member"], org, job["community_id"], account_id):
        raise NotAMember(
            f"账户未在该社区报到 {account_id} is not registered with community "
            f"{job['community_id']!r}, the job's community; register it first with "
            f"POST /v1/communities/{job['community_id']}/members (or publish the job with "
            "open_to_all)",
            account_id=account_id,
            community_id=job["community_id"],
        )


async def insert_job(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    *,
    org: str,
    officer: str,
    community_id: str,
    job: JobIn | MenuJob,
    series: tuple[uuid.UUID, str] | None = None,
) -> asyncpg.Record:
    """Insert one job and its event; the caller holds the transaction.

    ``series`` (id, month) adds a month to a recurring series; None if that month has it."""
    custom = {r["code"] for r in await conn.fetch(q["list_categories"], org)}
    check_category(job.category, custom)
    check_recurrence(job.recurrence, Window(job.starts_at, job.ends_at))
    await check_community(conn, q, org, community_id)
    mode = VerificationMode(job.verification)
    place = job.place
    job_id = uuid.uuid4()
    if series is None and job.recurrence is not None:
        series = (job_id, month_of(job.starts_at.astimezone(UTC)))
    row = await conn.fetchrow(
        q["insert_job"],
        job_id,
        org,
        community_id,
        job.title,
        job.description,
        job.category,
        job.points,
        job.capacity,
        job.starts_at,
        job.ends_at,
        mode.value,
        officer,
        new_secret() if mode is VerificationMode.CHECKIN else None,
        place.address if place else None,
        place.lat if place else None,
        place.lng if place else None,
        job.recurrence.value if job.recurrence else None,
        series[0] if series else None,
        series[1] if series else None,
        job.open_to_all,
    )
    if row is None:  # this month of the series exists already
        return None
    event = contracts.new_event(
        "jifen.tasks.job.published.v1",
        source=SOURCE,
        subject=str(row["id"]),
        data={
            "job_id": str(row["id"]),
            "org_id": org,
            "community_id": community_id,
            "title": job.title[:200],
            "category": job.category,
            "points": job.points,
            "capacity": job.capacity,
            "starts_at": isoformat(job.starts_at),
            "ends_at": isoformat(job.ends_at),
            "published_by": officer,
        },
    )
    await enqueue(conn, topics.TASKS_JOBS, str(row["id"]), event)
    return row


async def publish_job(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    *,
    org: str,
    officer: str,
    job: JobIn,
) -> asyncpg.Record:
    async with conn.transaction():
        return await insert_job(
            conn, q, contracts, org=org, officer=officer, community_id=job.community_id, job=job
        )


async def claim_job(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    *,
    org: str,
    job_id: uuid.UUID,
    account_id: str,
    by: str,
) -> asyncpg.Record:
    async with conn.transaction():
        job = await conn.fetchrow(q["get_job"], job_id, org)
        if job is None:
            raise NotFound(f"no job {job_id}")
        check_not_creator(job["created_by"], account_id)
        await check_member(conn, q, org, job, account_id)
        existing = await conn.fetchrow(q["get_claim"], job_id, account_id)
        if existing is not None:
            raise AlreadyClaimed(
                f"{account_id} already holds a claim on this job", claim_id=str(existing["id"])
            )
        # one atomic UPDATE … WHERE claimed < capacity: concurrent claims can never oversubscribe
        place = await conn.fetchrow(q["take_place"], job_id)
        if place is None:
            raise JobFull(f"all {job['capacity']} places are taken", capacity=job["capacity"])
        claim = await conn.fetchrow(q["insert_claim"], uuid.uuid4(), job_id, account_id, by)
        if claim is None:  # a concurrent claim by the same volunteer won the race
            raise AlreadyClaimed(f"{account_id} already holds a claim on this job")
        await _history(
            conn, q, contracts, org, "claim", claim["id"], "claimed", by, account_id, job_id
        )
    return claim


async def complete_job(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    *,
    org: str,
    job_id: uuid.UUID,
    body: CompletionIn,
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
    body: CompletionIn,
    by: str,
    idempotency_key: str,
    grace: timedelta,
    checkin: CheckinRules,
) -> tuple[asyncpg.Record, bool]:
    async with conn.transaction():
        previous = await conn.fetchrow(q["completion_by_key"], org, by, idempotency_key)
        if previous is not None:
            return _same_request(previous, job_id, body.account_id), False
        job = await conn.fetchrow(q["get_job"], job_id, org)
        if job is None:
            raise NotFound(f"no job {job_id}")
        check_not_creator(job["created_by"], body.account_id)
        await check_member(conn, q, org, job, body.account_id)
        claim = await conn.fetchrow(q["get_claim"], job_id, body.account_id)
        if claim is None:
            raise NoClaim(f"{body.account_id} has no claim on job {job_id}; claim it first")
        now = datetime.now(UTC)
        check_window(Window(job["starts_at"], job["ends_at"]), now, grace)
        if job["verification"] == VerificationMode.CHECKIN.value:
            await _check_presence(conn, q, job, body, checkin, now)
        done = await conn.fetchrow(q["completion_by_claim"], claim["id"])
        if done is not None:
            if done["submitted_by"] == by and done["idempotency_key"] == idempotency_key:
                # the same request, committed by a concurrent retry after our key lookup
                return _same_request(done, job_id, body.account_id), False
            raise AlreadyCompleted(
                "this claim already has a completion", completion_id=str(done["id"])
            )
        row = await conn.fetchrow(
            q["insert_completion"],
            uuid.uuid4(),
            job_id,
            claim["id"],
            body.account_id,
            org,
            by,
            idempotency_key,
            body.evidence.model_dump(),
        )
        if row is not None:
            await _history(
                conn, q, contracts, org, "completion", row["id"], "submitted", by, "", job_id
            )
            mode = VerificationMode(job["verification"])
            if mode is not VerificationMode.OFFICER:
                locked = await conn.fetchrow(q["lock_completion"], row["id"], org)
                row = await _decide(
                    conn, q, contracts, locked, org=org, by=f"system:{mode.value}", approved=None
                )
    if row is None:
        # a concurrent request with the same key (or claim) committed first: answer with it
        previous = await conn.fetchrow(q["completion_by_key"], org, by, idempotency_key)
        if previous is not None:
            return _same_request(previous, job_id, body.account_id), False
        raise AlreadyCompleted("this claim already has a completion")
    return row, True


async def _check_presence(
    conn: asyncpg.Connection,
    q: Queries,
    job: asyncpg.Record,
    body: CompletionIn,
    rules: CheckinRules,
    now: datetime,
) -> None:
    failures = [
        r["failed_at"]
        for r in await conn.fetch(
            q["checkin_failures"],
            job["id"],
            body.account_id,
            timedelta(seconds=rules.window_seconds),
        )
    ]
    wait = checkin_retry_after(
        failures, limit=rules.max_failures, window_seconds=rules.window_seconds, at=now
    )
    if wait:
        raise TooManyAttempts(
            f"签到码错误次数过多，请 {wait} 秒后再试 too many wrong check-in codes for "
            f"{body.account_id} on this job: retry in {wait} s",
            retry_after=wait,
            max_failures=rules.max_failures,
            window_seconds=rules.window_seconds,
        )
    try:
        check_code(
            job["checkin_secret"], str(job["id"]), body.checkin_code, now, rules.step_seconds
        )
    except WrongCheckinCode as wrong:
        # a code that was sent and is wrong counts against the limit; a missing one does not
        wrong.facts["counted"] = bool(body.checkin_code)
        left = rules.max_failures - len(failures) - int(bool(body.checkin_code))
        wrong.facts["attempts_left"] = max(0, left)
        raise


def _same_request(previous: asyncpg.Record, job_id: uuid.UUID, account_id: str) -> asyncpg.Record:
    if previous["job_id"] != job_id or previous["account_id"] != account_id:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was already used for another completion",
            completion_id=str(previous["id"]),
        )
    return previous


async def _history(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    org: str,
    subject: str,
    subject_id: uuid.UUID,
    status: str,
    actor: str,
    reason: str = "",
    job_id: uuid.UUID | None = None,
) -> None:
    """Record a status change in the item's history, and its event in the outbox."""
    await conn.execute(q["record_status"], org, subject, subject_id, status, actor, reason, job_id)
    event = contracts.new_event(
        "jifen.tasks.item.status_changed.v1",
        source=SOURCE,
        subject=str(subject_id),
        data={
            "org_id": org,
            "item": subject,
            "item_id": str(subject_id),
            "status": status,
            "actor": actor,
            "reason": reason[:500],
            "job_id": str(job_id) if job_id else None,
            "changed_at": isoformat(datetime.now(UTC)),
        },
    )
    await enqueue(conn, topics.TASKS_JOBS, str(subject_id), event)


async def _limits(conn: asyncpg.Connection, q: Queries, org: str) -> tuple[Limits, str]:
    o = await conn.fetchrow(q["get_organisation"], org)
    if o is None:
        return DEFAULT_LIMITS, "Asia/Shanghai"
    return (
        Limits(
            daily_points_officer=o["daily_points_officer"],
            hourly_completions_officer=o["hourly_completions_officer"],
            daily_points_admin=o["daily_points_admin"],
            hourly_completions_admin=o["hourly_completions_admin"],
            daily_points_per_officer=o["daily_points_per_officer"],
            automatic_job_points=o["automatic_job_points"],
        ),
        o["timezone"],
    )


async def _decide(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    c: asyncpg.Record,
    *,
    org: str,
    by: str,
    approved: str | None,
) -> asyncpg.Record:
    """Verify a locked completion, or hold it when it goes beyond an organisation limit.

    ``approved`` is the reason of an explicit approval of a held completion: limits were
    already weighed by the person approving, so it is verified whatever the usage.

    Whatever the path (an officer, an approval, check-in, automatic), the credited volunteer
    is never the job's creator nor the person verifying: refused here, last of all."""
    check_not_creator(c["job_created_by"], c["account_id"])
    if same_person(by, c["account_id"]):
        raise SelfVerification(
            "不能核验自己的完成记录 nobody verifies or approves their own completion"
        )
    now = datetime.now(UTC)
    if approved is None:
        limits, tz = await _limits(conn, q, org)
        if limits != Limits():
            automatic = c["verification"] == VerificationMode.AUTOMATIC.value
            # the officer on whose authority it counts: the verifier, or for check-in and
            # automatic jobs the officer who published the job
            responsible = identity(c["job_created_by"] if by.startswith("system:") else by)
            since = day_start(now, tz)
            # one verification at a time per volunteer, per officer and per automatic job
            # (always in this order), so two at once cannot both fit a cap
            await conn.execute(q["lock_account_limits"], org, c["account_id"])
            await conn.execute(q["lock_limit_key"], f"limits:officer:{org}:{responsible}")
            if automatic:
                await conn.execute(q["lock_limit_key"], f"limits:job:{c['job_id']}")
            u = await conn.fetchrow(q["usage_of"], org, c["account_id"], since, hour_ago(now))
            officer_points = await conn.fetchval(q["officer_points_today"], org, responsible, since)
            job_points = (
                await conn.fetchval(q["job_automatic_points"], c["job_id"]) if automatic else 0
            )
            hold: Hold | None = assess(
                limits,
                Usage(u["points_today"], u["completions_last_hour"], officer_points, job_points),
                c["points"],
                automatic=automatic,
            )
            if hold is not None:
                row = await conn.fetchrow(q["mark_held"], c["id"], hold.level.value, hold.reason)
                await _history(
                    conn,
                    q,
                    contracts,
                    org,
                    "completion",
                    c["id"],
                    f"held:{hold.level.value}",
                    by,
                    hold.reason,
                )
                return row
    # held to commit: verification order (verified_seq, and verified_at taken under the lock)
    # is commit order within an organisation, so an auditor paging by it never skips a
    # completion committed later
    await conn.execute(q["lock_verified_seq"], org)
    now = datetime.now(UTC)
    event = contracts.new_event(
        "jifen.tasks.completion.verified.v1",
        source=SOURCE,
        subject=c["account_id"],
        time=now,
        data={
            "completion_id": str(c["id"]),
            "job_id": str(c["job_id"]),
            "account_id": c["account_id"],
            "org_id": org,
            "community_id": c["community_id"],
            "category": c["category"],
            "points": c["points"],
            "verified_by": by,
            "verified_at": isoformat(now),
        },
    )
    row = await conn.fetchrow(q["mark_verified"], c["id"], by, now, event)
    await enqueue(conn, topics.TASKS_COMPLETIONS, c["account_id"], event)
    await _history(
        conn, q, contracts, org, "completion", c["id"], "verified", by, approved or "", c["job_id"]
    )
    # the loop "request -> task -> done": a hazard report or need behind this job is done
    for h in await conn.fetch(q["hazards_done_by_job"], c["job_id"]):
        await _history(
            conn, q, contracts, h["org_id"], "hazard", h["id"], "done", by, "job completed"
        )
    for n in await conn.fetch(q["needs_done_by_job"], c["job_id"]):
        await _history(
            conn, q, contracts, n["org_id"], "need", n["id"], "done", by, "job completed"
        )
    return row


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
        c = await conn.fetchrow(q["lock_completion"], completion_id, org)
        if c is None:
            raise NotFound(f"no completion {completion_id}")
        check_verifier(officer, c["account_id"], CompletionStatus(c["status"]))
        return await _decide(conn, q, contracts, c, org=org, by=officer, approved=None)


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
        c = await conn.fetchrow(q["lock_completion"], completion_id, org)
        if c is None:
            raise NotFound(f"no completion {completion_id}")
        if same_person(who, c["account_id"]):
            raise SelfVerification(
                "不能批准自己的完成记录 an officer may not approve their own completion"
            )
        if c["status"] != CompletionStatus.HELD.value:
            raise WrongState(
                f"only a held completion can be approved; this one is {c['status']}",
                status=c["status"],
            )
        level = HoldLevel(c["hold_level"])
        if not may_approve(level, role):
            raise NeedsAdmin(
                "this completion is beyond the organisation's second limit: only its admin "
                "may approve it",
                hold_level=level.value,
                hold_reason=c["hold_reason"],
            )
        if c["verification"] != VerificationMode.OFFICER.value and same_person(
            who, c["job_created_by"]
        ):
            # nobody looked at a check-in or automatic completion: the officer who published
            # the job is its de facto verifier, and a hold needs somebody else
            raise OwnDecision(
                f"不能批准自己发布的{c['verification']}岗位的完成记录 this {c['verification']} "
                f"job was published by {c['job_created_by']}: another officer or the admin "
                "approves it",
                decided_by=c["job_created_by"],
            )
        if role == "officer":
            await _check_officer_budget(conn, q, org, who, c["points"])
        return await _decide(conn, q, contracts, c, org=org, by=who, approved=reason)


async def _check_officer_budget(
    conn: asyncpg.Connection, q: Queries, org: str, officer: str, points: int
) -> None:
    """An officer's approvals count against their per-officer daily limit like their
    verifications: beyond it, only the admin approves."""
    limits, tz = await _limits(conn, q, org)
    if limits.daily_points_per_officer is None:
        return
    me = identity(officer)
    await conn.execute(q["lock_limit_key"], f"limits:officer:{org}:{me}")
    since = day_start(datetime.now(UTC), tz)
    used = await conn.fetchval(q["officer_points_today"], org, me, since)
    if used + points > limits.daily_points_per_officer:
        raise NeedsAdmin(
            f"{used + points} points verified today on your authority would exceed the "
            f"organisation's per-officer limit of {limits.daily_points_per_officer}: only its "
            "admin may approve it",
            per_officer_limit=limits.daily_points_per_officer,
        )


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
        c = await conn.fetchrow(q["lock_completion"], completion_id, org)
        if c is None:
            raise NotFound(f"no completion {completion_id}")
        check_rejectable(CompletionStatus(c["status"]), who, c["account_id"])
        now = datetime.now(UTC)
        row = await conn.fetchrow(q["mark_rejected"], completion_id, who, now, reason)
        await _history(
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
        c = await conn.fetchrow(q["lock_completion"], completion_id, org)
        if c is None:
            raise NotFound(f"no completion {completion_id}")
        check_revocable(CompletionStatus(c["status"]), who, c["account_id"])
        now = datetime.now(UTC)
        event = contracts.new_event(
            "jifen.tasks.completion.revoked.v1",
            source=SOURCE,
            subject=c["account_id"],
            time=now,
            data={
                "completion_id": str(c["id"]),
                "job_id": str(c["job_id"]),
                "account_id": c["account_id"],
                "org_id": org,
                "community_id": c["community_id"],
                "category": c["category"],
                "points": c["points"],
                "revoked_by": who,
                "reason": reason,
                "revoked_at": isoformat(now),
            },
        )
        row = await conn.fetchrow(q["mark_revoked"], completion_id, who, now, reason, event)
        await enqueue(conn, topics.TASKS_COMPLETIONS, c["account_id"], event)
        await _history(conn, q, contracts, org, "completion", completion_id, "revoked", who, reason)
    return row


async def mark_credited(conn: asyncpg.Connection, q: Queries, event: dict[str, Any]) -> None:
    """End-to-end acknowledgement: the ledger says this completion's credit (or its reversal)
    is appended."""
    data = event["data"]
    if not data.get("completion_id"):
        return
    if data["kind"] == "credit":
        await conn.execute(q["mark_credited"], uuid.UUID(data["completion_id"]), data["entry_id"])
    elif data["kind"] == "reversal":
        await conn.execute(q["mark_reversed"], uuid.UUID(data["completion_id"]), data["entry_id"])


async def republish_uncredited(
    conn: asyncpg.Connection, q: Queries, *, older_than: timedelta, limit: int = 500
) -> int:
    """Publish again, unchanged (same event id), verified completions not yet credited and
    revocations not yet reversed.

    The points service ignores an event it already applied, so this only ever fills a gap
    (e.g. a broker that forgot everything). Credits go first: a reversal needs its credit."""
    async with conn.transaction():
        rows = await conn.fetch(q["uncredited_due_any"], older_than, limit)
        for r in rows:
            await enqueue(conn, topics.TASKS_COMPLETIONS, r["account_id"], r["verified_event"])
        if rows:
            await conn.execute(q["mark_republished"], [r["id"] for r in rows])
        revoked = await conn.fetch(q["unreversed_due"], older_than, limit)
        for r in revoked:
            await enqueue(conn, topics.TASKS_COMPLETIONS, r["account_id"], r["revoked_event"])
        if revoked:
            await conn.execute(q["mark_revoke_republished"], [r["id"] for r in revoked])
    return len(rows) + len(revoked)


async def withdraw_claim(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    *,
    org: str,
    job_id: uuid.UUID,
    account_id: str,
    by: str,
) -> asyncpg.Record:
    """Give a place back before the window starts; the claim is kept, marked withdrawn."""
    async with conn.transaction():
        job = await conn.fetchrow(q["get_job"], job_id, org)
        if job is None:
            raise NotFound(f"no job {job_id}")
        claim = await conn.fetchrow(q["get_claim"], job_id, account_id)
        if claim is None:
            raise NoClaim(f"{account_id} has no active claim on job {job_id}")
        check_withdrawal(Window(job["starts_at"], job["ends_at"]), datetime.now(UTC))
        claim = await conn.fetchrow(q["lock_claim"], claim["id"], job_id)
        row = await conn.fetchrow(q["withdraw_claim"], claim["id"], datetime.now(UTC), by)
        if row is None:  # a concurrent withdrawal won
            raise NoClaim(f"{account_id} has no active claim on job {job_id}")
        await conn.execute(q["release_place"], job_id)
        await _history(
            conn, q, contracts, org, "claim", row["id"], "withdrawn", by, account_id, job_id
        )
    return row


async def publish_menu(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    *,
    org: str,
    officer: str,
    menu: MenuIn,
) -> list[asyncpg.Record]:
    """Publish a month of jobs for one community at once: all of them, or none."""
    year, month = map(int, menu.month.split("-"))
    for i, job in enumerate(menu.jobs):
        if (job.starts_at.astimezone(UTC).year, job.starts_at.astimezone(UTC).month) != (
            year,
            month,
        ):
            raise WrongState(
                f"jobs[{i}] starts on {job.starts_at.date()}, outside the menu's month "
                f"{menu.month}",
                index=i,
            )
        if job.ends_at <= job.starts_at:
            raise WrongState(f"jobs[{i}]: ends_at must be after starts_at", index=i)
    async with conn.transaction():
        return [
            await insert_job(
                conn,
                q,
                contracts,
                org=org,
                officer=officer,
                community_id=menu.community_id,
                job=job,
            )
            for job in menu.jobs
        ]


async def register_member(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    *,
    org: str,
    community_id: str,
    account_id: str,
    by: str,
) -> tuple[asyncpg.Record, bool]:
    async with conn.transaction():
        await check_community(conn, q, org, community_id)
        row = await conn.fetchrow(q["register_member"], org, community_id, account_id, by)
        if row is None:
            return await conn.fetchrow(q["get_member"], org, community_id, account_id), False
    return row, True


# -- appeals -----------------------------------------------------------------------------


async def file_appeal(
    conn: asyncpg.Connection, q: Queries, contracts: Contracts, *, org: str, by: str, body: AppealIn
) -> asyncpg.Record:
    async with conn.transaction():
        c = await conn.fetchrow(q["get_completion"], body.completion_id, org)
        if c is None:
            raise NotFound(f"no completion {body.completion_id}")
        expected = {
            "rejection": ("rejected",),
            "hold": ("held",),
            "missing_credit": ("verified",),
        }[body.kind]
        if c["status"] not in expected:
            raise WrongState(
                f"an appeal of kind {body.kind!r} concerns a {expected[0]} completion; "
                f"this one is {c['status']}",
                status=c["status"],
            )
        if body.kind == "missing_credit" and c["credited_at"] is not None:
            raise WrongState(
                "the ledger already acknowledged this completion's credit",
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
        await _history(conn, q, contracts, org, "appeal", row["id"], "open", by, body.reason)
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
    body: DecisionIn,
) -> asyncpg.Record:
    """Record a decision (who, when, why). A later decision corrects an earlier one; none is
    ever changed. Upholding an appeal of a rejection sends the completion back for review;
    upholding a missing credit republishes its verified event at once."""
    async with conn.transaction():
        a = await conn.fetchrow(q["lock_appeal"], appeal_id, org)
        if a is None:
            raise NotFound(f"no appeal {appeal_id}")
        if same_person(who, a["account_id"]):
            raise SelfVerification("不能裁决自己的申诉 an officer may not decide their own appeal")
        await _check_appeal_decider(conn, q, org, a, who)
        if a["status"] == body.outcome:
            raise WrongState(f"the appeal is already {a['status']}", status=a["status"])
        await conn.execute(q["insert_decision"], appeal_id, body.outcome, who, role, body.reason)
        row = await conn.fetchrow(q["set_appeal_status"], appeal_id, body.outcome)
        await _history(conn, q, contracts, org, "appeal", appeal_id, body.outcome, who, body.reason)
        if body.outcome == "upheld":
            c = await conn.fetchrow(q["lock_completion"], a["completion_id"], org)
            if a["kind"] == "rejection" and c["status"] == "rejected":
                await conn.fetchrow(q["reopen_completion"], c["id"])
                await _history(
                    conn,
                    q,
                    contracts,
                    org,
                    "completion",
                    c["id"],
                    "submitted",
                    who,
                    "appeal upheld",
                )
            elif a["kind"] == "missing_credit" and c["credited_at"] is None:
                await conn.execute(q["republish_now"], c["id"])
    return row


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
            f"申诉须由另一名工作人员裁决 this appeal concerns a decision of {appealed}: "
            "another officer or the admin decides it",
            decided_by=appealed,
            kind=a["kind"],
        )


# -- hazard reports ------------------------------------------------------------------------


async def report_hazard(
    conn: asyncpg.Connection, q: Queries, contracts: Contracts, *, org: str, by: str, body: HazardIn
) -> asyncpg.Record:
    async with conn.transaction():
        await check_community(conn, q, org, body.community_id)
        if not await conn.fetchval(q["is_member_anywhere"], org, body.account_id):
            raise NotAMember(
                f"账户未在本组织任何社区报到 {body.account_id} is registered with no community of "
                "your organisation; register it first with POST /v1/communities/{id}/members",
                account_id=body.account_id,
            )
        row = await conn.fetchrow(
            q["insert_hazard"],
            uuid.uuid4(),
            org,
            body.community_id,
            body.kind.value,
            body.text,
            body.place.address,
            body.place.lat,
            body.place.lng,
            body.evidence_ref,
            by,
            body.account_id,
        )
        await _history(conn, q, contracts, org, "hazard", row["id"], "reported", by)
    return row


async def triage_hazard(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    *,
    org: str,
    officer: str,
    hazard_id: uuid.UUID,
    job: MenuJob,
    reason: str,
) -> asyncpg.Record:
    async with conn.transaction():
        h = await conn.fetchrow(q["lock_hazard"], hazard_id, org)
        if h is None:
            raise NotFound(f"no hazard report {hazard_id}")
        to = move_hazard(HazardStatus(h["status"]), HazardStatus.IN_PROGRESS)
        j = await insert_job(
            conn,
            q,
            contracts,
            org=org,
            officer=officer,
            community_id=h["community_id"],
            job=job,
        )
        row = await conn.fetchrow(q["set_hazard"], hazard_id, to.value, j["id"], None)
        await _history(
            conn, q, contracts, org, "hazard", hazard_id, to.value, officer, reason, j["id"]
        )
    return row


async def merge_hazard(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    *,
    org: str,
    officer: str,
    hazard_id: uuid.UUID,
    duplicate_of: uuid.UUID,
    reason: str,
) -> asyncpg.Record:
    async with conn.transaction():
        if hazard_id == duplicate_of:
            raise WrongState("a hazard report cannot be a duplicate of itself")
        h = await conn.fetchrow(q["lock_hazard"], hazard_id, org)
        if h is None:
            raise NotFound(f"no hazard report {hazard_id}")
        original = await conn.fetchrow(q["get_hazard"], duplicate_of, org)
        if original is None:
            raise NotFound(f"no hazard report {duplicate_of} to merge into")
        if original["status"] == HazardStatus.DUPLICATE.value:
            raise WrongState(
                f"{duplicate_of} is itself a duplicate of {original['duplicate_of']}; merge "
                "into that one",
                duplicate_of=str(original["duplicate_of"]),
            )
        to = move_hazard(HazardStatus(h["status"]), HazardStatus.DUPLICATE)
        row = await conn.fetchrow(q["set_hazard"], hazard_id, to.value, None, duplicate_of)
        await _history(
            conn,
            q,
            contracts,
            org,
            "hazard",
            hazard_id,
            to.value,
            officer,
            reason or f"duplicate of {duplicate_of}",
            original["job_id"],
        )
    return row


async def close_hazard(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    *,
    org: str,
    officer: str,
    hazard_id: uuid.UUID,
    reason: str,
) -> asyncpg.Record:
    async with conn.transaction():
        h = await conn.fetchrow(q["lock_hazard"], hazard_id, org)
        if h is None:
            raise NotFound(f"no hazard report {hazard_id}")
        to = move_hazard(HazardStatus(h["status"]), HazardStatus.CLOSED)
        row = await conn.fetchrow(q["set_hazard"], hazard_id, to.value, None, None)
        await _history(conn, q, contracts, org, "hazard", hazard_id, to.value, officer, reason)
    return row


# -- micro-wishes and partner offers ---------------------------------------------------------


async def post_need(
    conn: asyncpg.Connection, q: Queries, contracts: Contracts, *, org: str, by: str, body: NeedIn
) -> asyncpg.Record:
    async with conn.transaction():
        await check_community(conn, q, org, body.community_id)
        row = await conn.fetchrow(
            q["insert_need"],
            uuid.uuid4(),
            org,
            body.community_id,
            body.kind.value,
            body.title,
            body.description,
            by,
        )
        await _history(conn, q, contracts, org, "need", row["id"], "open", by)
    return row


async def claim_need(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    *,
    org: str,
    by: str,
    need_id: uuid.UUID,
    claimant: str,
) -> asyncpg.Record:
    async with conn.transaction():
        n = await conn.fetchrow(q["lock_need"], need_id, org)
        if n is None:
            raise NotFound(f"no wish or offer {need_id}")
        if n["status"] == NeedStatus.CLAIMED.value:
            raise WrongState(
                f"already claimed by {n['claimed_by']}",
                claimed_by=n["claimed_by"],
                status="claimed",
            )
        to = move_need(NeedStatus(n["status"]), NeedStatus.CLAIMED)
        row = await conn.fetchrow(q["set_need"], need_id, to.value, claimant, None)
        await _history(
            conn, q, contracts, org, "need", need_id, to.value, by, f"claimed by {claimant}"
        )
    return row


async def need_to_job(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    *,
    org: str,
    officer: str,
    need_id: uuid.UUID,
    job: MenuJob,
    reason: str,
) -> asyncpg.Record:
    async with conn.transaction():
        n = await conn.fetchrow(q["lock_need"], need_id, org)
        if n is None:
            raise NotFound(f"no wish or offer {need_id}")
        to = move_need(NeedStatus(n["status"]), NeedStatus.IN_PROGRESS)
        j = await insert_job(
            conn, q, contracts, org=org, officer=officer, community_id=n["community_id"], job=job
        )
        row = await conn.fetchrow(q["set_need"], need_id, to.value, None, j["id"])
        await _history(conn, q, contracts, org, "need", need_id, to.value, officer, reason, j["id"])
    return row


async def close_need(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    *,
    org: str,
    officer: str,
    need_id: uuid.UUID,
    reason: str,
) -> asyncpg.Record:
    async with conn.transaction():
        n = await conn.fetchrow(q["lock_need"], need_id, org)
        if n is None:
            raise NotFound(f"no wish or offer {need_id}")
        to = move_need(NeedStatus(n["status"]), NeedStatus.CLOSED)
        row = await conn.fetchrow(q["set_need"], need_id, to.value, None, None)
        await _history(conn, q, contracts, org, "need", need_id, to.value, officer, reason)
    return row


async def roll_menu(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    *,
    org: str,
    officer: str,
    community_id: str,
    month: str,
) -> list[asyncpg.Record]:
    """Publish ``month``'s occurrence of every recurring job of a community. Idempotent: a
    month a series already has is skipped, so rolling twice adds nothing."""
    made = []
    async with conn.transaction():
        for t in await conn.fetch(q["series_templates"], org, community_id, month):
            w = occurrence_in(Window(t["starts_at"], t["ends_at"]), month)
            job = MenuJob(
                title=t["title"],
                description=t["description"],
                category=t["category"],
                points=t["points"],
                capacity=t["capacity"],
                starts_at=w.starts_at,
                ends_at=w.ends_at,
                verification=VerificationMode(t["verification"]),
                place=Place(
                    address=t["place_address"] or "", lat=t["place_lat"], lng=t["place_lng"]
                )
                if t["place_address"] is not None
                else None,
                recurrence=Recurrence(t["recurrence"]),
                open_to_all=t["open_to_all"],
            )
            row = await insert_job(
                conn,
                q,
                contracts,
                org=org,
                officer=officer,
                community_id=community_id,
                job=job,
                series=(t["series_id"], month),
            )
            if row is not None:
                made.append(row)
    return made
