"""Hazard reports: report one, then triage it into a job, merge it into an earlier report, or
close it; its job's verified completion makes it done (``credit``)."""

from __future__ import annotations

import uuid

import asyncpg

from jifen.kernel.contracts import Contracts
from jifen.kernel.db import Queries
from jifen.kernel.errors import NotFound
from jifen.kernel.i18n import Said
from jifen.tasks.domain.commands import JobSpec, ReportHazard
from jifen.tasks.domain.intake import HazardStatus
from jifen.tasks.domain.jobs import WrongState
from jifen.tasks.handlers.history import record_status
from jifen.tasks.handlers.intake import HAZARD, move
from jifen.tasks.handlers.organisation import check_community, check_member_anywhere


async def report_hazard(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    *,
    org: str,
    by: str,
    body: ReportHazard,
) -> asyncpg.Record:
    async with conn.transaction():
        await check_community(conn, q, org, body.community_id)
        await check_member_anywhere(conn, q, org, body.account_id)
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
        await record_status(conn, q, contracts, org, "hazard", row["id"], "reported", by)
    return row


async def triage_hazard(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    *,
    org: str,
    officer: str,
    hazard_id: uuid.UUID,
    job: JobSpec,
    reason: str,
) -> asyncpg.Record:
    async with conn.transaction():
        return await move(
            conn,
            q,
            contracts,
            HAZARD,
            hazard_id,
            HazardStatus.IN_PROGRESS,
            org=org,
            actor=officer,
            reason=reason,
            job=job,
        )


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
    async def into_an_original(_: asyncpg.Record) -> uuid.UUID | None:
        original = await conn.fetchrow(q["get_hazard"], duplicate_of, org)
        if original is None:
            raise NotFound(
                Said(
                    f"没有可合并进去的隐患报告 {duplicate_of}",
                    f"no hazard report {duplicate_of} to merge into",
                )
            )
        if original["status"] == HazardStatus.DUPLICATE.value:
            raise WrongState(
                Said(
                    f"{duplicate_of} 本身是 {original['duplicate_of']} 的重复报告；请合并进那一条",
                    f"{duplicate_of} is itself a duplicate of {original['duplicate_of']}; merge "
                    "into that one",
                ),
                duplicate_of=str(original["duplicate_of"]),
            )
        linked: uuid.UUID | None = original["job_id"]
        return linked

    async with conn.transaction():
        if hazard_id == duplicate_of:
            raise WrongState(
                Said("隐患报告不能是自己的重复", "a hazard report cannot be a duplicate of itself")
            )
        return await move(
            conn,
            q,
            contracts,
            HAZARD,
            hazard_id,
            HazardStatus.DUPLICATE,
            org=org,
            actor=officer,
            reason=reason or f"duplicate of {duplicate_of}",
            check=into_an_original,
            duplicate_of=duplicate_of,
        )


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
        return await move(
            conn,
            q,
            contracts,
            HAZARD,
            hazard_id,
            HazardStatus.CLOSED,
            org=org,
            actor=officer,
            reason=reason,
        )
