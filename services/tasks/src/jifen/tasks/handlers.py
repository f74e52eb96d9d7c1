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
from jifen.kernel.outbox import enqueue
from jifen.tasks.api.schemas import CompletionIn, JobIn
from jifen.tasks.domain.jobs import (
    AlreadyClaimed,
    AlreadyCompleted,
    CompletionStatus,
    IdempotencyKeyReused,
    JobFull,
    NoClaim,
    Window,
    check_verifier,
    check_window,
)

SOURCE = "/jifen/tasks"


class NotFound(LookupError):
    pass


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
        row = await conn.fetchrow(
            q["insert_job"],
            uuid.uuid4(),
            org,
            job.community_id,
            job.title,
            job.description,
            job.category.value,
            job.points,
            job.capacity,
            job.starts_at,
            job.ends_at,
            "officer",
            officer,
        )
        event = contracts.new_event(
            "jifen.tasks.job.published.v1",
            source=SOURCE,
            subject=str(row["id"]),
            data={
                "job_id": str(row["id"]),
                "org_id": org,
                "community_id": job.community_id,
                "title": job.title[:200],
                "category": job.category.value,
                "points": job.points,
                "capacity": job.capacity,
                "starts_at": isoformat(job.starts_at),
                "ends_at": isoformat(job.ends_at),
                "published_by": officer,
            },
        )
        await enqueue(conn, topics.TASKS_JOBS, str(row["id"]), event)
    return row


async def claim_job(
    conn: asyncpg.Connection, q: Queries, *, org: str, job_id: uuid.UUID, account_id: str, by: str
) -> asyncpg.Record:
    async with conn.transaction():
        job = await conn.fetchrow(q["get_job"], job_id, org)
        if job is None:
            raise NotFound(f"no job {job_id}")
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
    return claim


async def complete_job(
    conn: asyncpg.Connection,
    q: Queries,
    *,
    org: str,
    job_id: uuid.UUID,
    body: CompletionIn,
    by: str,
    idempotency_key: str,
    grace: timedelta,
) -> tuple[asyncpg.Record, bool]:
    """Record a completion; returns (completion, created). A repeated key returns the original."""
    async with conn.transaction():
        previous = await conn.fetchrow(q["completion_by_key"], org, by, idempotency_key)
        if previous is not None:
            return _same_request(previous, job_id, body.account_id), False
        job = await conn.fetchrow(q["get_job"], job_id, org)
        if job is None:
            raise NotFound(f"no job {job_id}")
        claim = await conn.fetchrow(q["get_claim"], job_id, body.account_id)
        if claim is None:
            raise NoClaim(f"{body.account_id} has no claim on job {job_id}; claim it first")
        check_window(Window(job["starts_at"], job["ends_at"]), datetime.now(UTC), grace)
        done = await conn.fetchrow(q["completion_by_claim"], claim["id"])
        if done is not None:
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
    if row is None:
        # a concurrent request with the same key (or claim) committed first: answer with it
        previous = await conn.fetchrow(q["completion_by_key"], org, by, idempotency_key)
        if previous is not None:
            return _same_request(previous, job_id, body.account_id), False
        raise AlreadyCompleted("this claim already has a completion")
    return row, True


def _same_request(previous: asyncpg.Record, job_id: uuid.UUID, account_id: str) -> asyncpg.Record:
    if previous["job_id"] != job_id or previous["account_id"] != account_id:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was already used for another completion",
            completion_id=str(previous["id"]),
        )
    return previous


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
                "verified_by": officer,
                "verified_at": isoformat(now),
            },
        )
        row = await conn.fetchrow(q["mark_verified"], completion_id, officer, now, event)
        await enqueue(conn, topics.TASKS_COMPLETIONS, c["account_id"], event)
    return row


async def mark_credited(conn: asyncpg.Connection, q: Queries, event: dict[str, Any]) -> None:
    """End-to-end acknowledgement: the ledger says this completion's credit is appended."""
    data = event["data"]
    if data["kind"] == "credit" and data.get("completion_id"):
        await conn.execute(q["mark_credited"], uuid.UUID(data["completion_id"]), data["entry_id"])


async def republish_uncredited(
    conn: asyncpg.Connection, q: Queries, *, older_than: timedelta, limit: int = 500
) -> int:
    """Publish again, unchanged (same event id), verified completions not yet credited.

    The points service ignores an event it already applied, so this only ever fills a gap
    (e.g. a broker that forgot everything)."""
    async with conn.transaction():
        rows = await conn.fetch(q["uncredited_due"], older_than, limit)
        for r in rows:
            await enqueue(conn, topics.TASKS_COMPLETIONS, r["account_id"], r["verified_event"])
        if rows:
            await conn.execute(q["mark_republished"], [r["id"] for r in rows])
    return len(rows)
