"""Every status an item goes through (a claim, a completion, an appeal, a hazard report, a
need): one row in its history and one ``item.status_changed`` event, in the caller's
transaction."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from jifen.kernel import topics
from jifen.kernel.contracts import Contracts, isoformat
from jifen.kernel.db import Queries
from jifen.kernel.outbox import enqueue

# the CloudEvents source of every event tasks records
SOURCE = "/jifen/tasks"


async def record_status(
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
    event = status_event(contracts, org, subject, subject_id, status, actor, reason, job_id)
    await enqueue(conn, topics.TASKS_JOBS, str(subject_id), event)


def status_event(
    contracts: Contracts,
    org: str,
    subject: str,
    subject_id: uuid.UUID,
    status: str,
    actor: str,
    reason: str = "",
    job_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    """The event of a status change (published on ``tasks.jobs``, keyed by the item's id)."""
    return contracts.new_event(
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
