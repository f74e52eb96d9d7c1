"""Issuing a volunteer's service certificate (issue 21, part 2)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import asyncpg

from jifen.kernel.db import Queries
from jifen.tasks.domain.certificates import figures, new_code


async def issue_certificate(
    conn: asyncpg.Connection,
    q: Queries,
    *,
    org: str,
    account_id: str,
    issued_by: str,
    starts_on: date,
    ends_on: date,
) -> asyncpg.Record:
    """The record of the volunteer's verified service in [starts_on, ends_on), kept under a
    new code: what the certificate says is what the API answers for that code."""
    since = datetime.combine(starts_on, time(), UTC)
    until = datetime.combine(ends_on, time(), UTC)
    rows = await conn.fetch(q["service_record"], org, account_id, since, until)
    lines = [
        {
            "verified_at": r["verified_at"].isoformat(),
            "title": r["title"],
            "category": r["category"],
            "minutes": r["minutes"],
            "points": r["points"],
        }
        for r in rows
    ]
    f = figures(lines)
    name = await conn.fetchval(q["volunteer_name"], org, account_id) or ""
    org_name = await conn.fetchval(q["org_name"], org)
    row: asyncpg.Record = await conn.fetchrow(
        q["insert_certificate"], new_code(), org, org_name, account_id, name, starts_on, ends_on,
        f["jobs"], f["service_minutes"], f["points"], lines, issued_by,
    )  # fmt: skip
    return row
