"""Reads more than one route shapes the same way: a job (without its check-in secret) and an
item's status history. Reads go straight from a route to a named query."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from jifen.kernel.db import Queries
from jifen.tasks.api.schemas import JobOut, StatusChangeOut


def job_out(row: asyncpg.Record) -> JobOut:
    # the check-in secret never leaves the service; officers fetch the current code alone
    return JobOut(**{k: v for k, v in dict(row).items() if k not in ("checkin_secret",)})


def status_change_out(row: asyncpg.Record) -> StatusChangeOut:
    return StatusChangeOut(**{k: v for k, v in dict(row).items() if k != "id"})


async def history_of(
    conn: asyncpg.Connection, q: Queries, org: str, subject: str, sid: UUID
) -> list[StatusChangeOut]:
    return [
        StatusChangeOut(**dict(r)) for r in await conn.fetch(q["history_of"], org, subject, sid)
    ]


async def histories_of(
    conn: asyncpg.Connection, q: Queries, org: str, subject: str, ids: list[UUID]
) -> dict[UUID, list[StatusChangeOut]]:
    """:func:`history_of` of each of ``ids`` (a list page's items) in one query."""
    found: dict[UUID, list[StatusChangeOut]] = {i: [] for i in ids}
    for r in await conn.fetch(q["histories_of"], org, subject, ids):
        found[r["subject_id"]].append(
            StatusChangeOut(**{k: v for k, v in dict(r).items() if k != "subject_id"})
        )
    return found
