"""Residents' micro-wishes and partners' offers: post one, then claim it, turn it into a job,
or close it; its job's verified completion makes it done (``credit``)."""

from __future__ import annotations

import uuid

import asyncpg

from jifen.kernel.contracts import Contracts
from jifen.kernel.db import Queries
from jifen.kernel.i18n import Said
from jifen.tasks.domain.commands import JobSpec, PostNeed
from jifen.tasks.domain.intake import NeedStatus
from jifen.tasks.domain.jobs import WrongState
from jifen.tasks.handlers.history import record_status
from jifen.tasks.handlers.intake import NEED, move
from jifen.tasks.handlers.organisation import check_community


async def post_need(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    *,
    org: str,
    by: str,
    body: PostNeed,
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
        await record_status(conn, q, contracts, org, "need", row["id"], "open", by)
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
    async def not_claimed(n: asyncpg.Record) -> None:
        if n["status"] == NeedStatus.CLAIMED.value:
            raise WrongState(
                Said(f"已被 {n['claimed_by']} 认领", f"already claimed by {n['claimed_by']}"),
                claimed_by=n["claimed_by"],
                status="claimed",
            )

    async with conn.transaction():
        return await move(
            conn,
            q,
            contracts,
            NEED,
            need_id,
            NeedStatus.CLAIMED,
            org=org,
            actor=by,
            reason=f"claimed by {claimant}",
            check=not_claimed,
            claimed_by=claimant,
        )


async def need_to_job(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    *,
    org: str,
    officer: str,
    need_id: uuid.UUID,
    job: JobSpec,
    reason: str,
) -> asyncpg.Record:
    async with conn.transaction():
        return await move(
            conn,
            q,
            contracts,
            NEED,
            need_id,
            NeedStatus.IN_PROGRESS,
            org=org,
            actor=officer,
            reason=reason,
            job=job,
        )


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
        return await move(
            conn,
            q,
            contracts,
            NEED,
            need_id,
            NeedStatus.CLOSED,
            org=org,
            actor=officer,
            reason=reason,
        )
