"""Whether a completion counts: verified (its points become owed, the event the ledger
credits) or held by an organisation limit; and the ledger's acknowledgements, with the
republishing of what it has not acknowledged within the bound.

``decide`` is the one door every verification goes through (an officer, an approval,
check-in, automatic), in named steps: who may be credited, the limits, then either the hold
or the verification, its history, and the requests its job closes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from jifen.kernel import topics
from jifen.kernel.contracts import Contracts, isoformat
from jifen.kernel.db import Queries
from jifen.kernel.i18n import Said
from jifen.kernel.outbox import enqueue
from jifen.tasks.domain.clock import DEFAULT_TIMEZONE
from jifen.tasks.domain.jobs import (
    NeedsAdmin,
    SelfVerification,
    VerificationMode,
    check_not_creator,
    identity,
    same_person,
)
from jifen.tasks.domain.limits import (
    DEFAULT_LIMITS,
    Hold,
    Limits,
    Usage,
    assess,
    day_start,
    hour_ago,
)
from jifen.tasks.handlers.history import SOURCE, record_status


def completion_data(c: asyncpg.Record, org: str) -> dict[str, Any]:
    """The fields every completion event carries (verified, revoked), from its row."""
    return {
        "completion_id": str(c["id"]),
        "job_id": str(c["job_id"]),
        "account_id": c["account_id"],
        "org_id": org,
        "community_id": c["community_id"],
        "category": c["category"],
        "points": c["points"],
    }


async def decide(
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
    check_who_is_credited(c, by)
    if approved is None:
        hold = await _hold_beyond_limits(conn, q, c, org=org, by=by)
        if hold is not None:
            return await _hold(conn, q, contracts, c, hold, org=org, by=by)
    row = await _verify(conn, q, contracts, c, org=org, by=by)
    await record_status(
        conn, q, contracts, org, "completion", c["id"], "verified", by, approved or "", c["job_id"]
    )
    await _close_requests_of(conn, q, contracts, c["job_id"], by=by)
    return row


def check_who_is_credited(c: asyncpg.Record, by: str) -> None:
    """Nobody is credited for a job they published, nor verifies or approves their own."""
    check_not_creator(c["job_created_by"], c["account_id"])
    if same_person(by, c["account_id"]):
        raise SelfVerification(
            Said(
                "不能核验或批准自己的完成记录",
                "nobody verifies or approves their own completion",
            )
        )


async def limits_of(conn: asyncpg.Connection, q: Queries, org: str) -> tuple[Limits, str]:
    """The organisation's limits and timezone (the defaults until its admin sets them)."""
    o = await conn.fetchrow(q["get_organisation"], org)
    if o is None:
        return DEFAULT_LIMITS, DEFAULT_TIMEZONE
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


async def _hold_beyond_limits(
    conn: asyncpg.Connection, q: Queries, c: asyncpg.Record, *, org: str, by: str
) -> Hold | None:
    """The hold this completion needs under the organisation's limits, if any; the usage is
    read under locks so two verifications at once cannot both fit a cap."""
    now = datetime.now(UTC)
    limits, tz = await limits_of(conn, q, org)
    if limits == Limits():
        return None
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
    job_points = await conn.fetchval(q["job_automatic_points"], c["job_id"]) if automatic else 0
    return assess(
        limits,
        Usage(u["points_today"], u["completions_last_hour"], officer_points, job_points),
        c["points"],
        automatic=automatic,
    )


async def _hold(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    c: asyncpg.Record,
    hold: Hold,
    *,
    org: str,
    by: str,
) -> asyncpg.Record:
    """Hold the completion for an officer or the admin: no event for the ledger."""
    row = await conn.fetchrow(q["mark_held"], c["id"], hold.level.value, hold.reason)
    await record_status(
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


async def _verify(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    c: asyncpg.Record,
    *,
    org: str,
    by: str,
) -> asyncpg.Record:
    """Mark it verified and record the event the ledger credits (kept on the row, so it can
    be republished unchanged)."""
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
        data={**completion_data(c, org), "verified_by": by, "verified_at": isoformat(now)},
    )
    row = await conn.fetchrow(q["mark_verified"], c["id"], by, now, event)
    await enqueue(conn, topics.TASKS_COMPLETIONS, c["account_id"], event)
    return row


async def _close_requests_of(
    conn: asyncpg.Connection, q: Queries, contracts: Contracts, job_id: uuid.UUID, *, by: str
) -> None:
    """The loop "request -> task -> done": a hazard report or need behind this job is done."""
    for h in await conn.fetch(q["hazards_done_by_job"], job_id):
        await record_status(
            conn, q, contracts, h["org_id"], "hazard", h["id"], "done", by, "job completed"
        )
    for n in await conn.fetch(q["needs_done_by_job"], job_id):
        await record_status(
            conn, q, contracts, n["org_id"], "need", n["id"], "done", by, "job completed"
        )


async def check_officer_budget(
    conn: asyncpg.Connection, q: Queries, org: str, officer: str, points: int
) -> None:
    """An officer's approvals count against their per-officer daily limit like their
    verifications: beyond it, only the admin approves."""
    limits, tz = await limits_of(conn, q, org)
    if limits.daily_points_per_officer is None:
        return
    me = identity(officer)
    await conn.execute(q["lock_limit_key"], f"limits:officer:{org}:{me}")
    since = day_start(datetime.now(UTC), tz)
    used = await conn.fetchval(q["officer_points_today"], org, me, since)
    if used + points > limits.daily_points_per_officer:
        raise NeedsAdmin(
            Said(
                f"今天经你核验的积分将达 {used + points}，超出本组织每名工作人员每日"
                f" {limits.daily_points_per_officer} 分的限额：只有管理员可以批准",
                f"{used + points} points verified today on your authority would exceed the "
                f"organisation's per-officer limit of {limits.daily_points_per_officer}: only its "
                "admin may approve it",
            ),
            per_officer_limit=limits.daily_points_per_officer,
        )


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
