"""Community partners (社区合伙人): add one, add its members, and let it take a menu item —
then only its members claim places in that job and complete it."""

from __future__ import annotations

import uuid

import asyncpg

from jifen.kernel.db import Queries
from jifen.kernel.errors import NotFound
from jifen.kernel.i18n import Said
from jifen.tasks.domain.jobs import no_job
from jifen.tasks.domain.partners import PartnerExists, PartnerKind, PartnerTaken


def no_partner(partner_id: str) -> NotFound:
    return NotFound(Said(f"没有合伙人 {partner_id}", f"no partner {partner_id}"))


async def add_partner(
    conn: asyncpg.Connection,
    q: Queries,
    *,
    org: str,
    by: str,
    partner_id: str,
    kind: PartnerKind,
    name: str,
    contact: str,
) -> asyncpg.Record:
    row = await conn.fetchrow(q["insert_partner"], org, partner_id, kind.value, name, contact, by)
    if row is None:
        raise PartnerExists(
            Said(f"合伙人 {partner_id} 已经存在", f"partner {partner_id} exists already"),
            partner_id=partner_id,
        )
    return row


async def add_member(
    conn: asyncpg.Connection, q: Queries, *, org: str, by: str, partner_id: str, account_id: str
) -> tuple[asyncpg.Record, bool]:
    """The member, and whether it is new (adding one twice is not an error)."""
    async with conn.transaction():
        if await conn.fetchrow(q["get_partner"], org, partner_id) is None:
            raise no_partner(partner_id)
        row = await conn.fetchrow(q["insert_partner_member"], org, partner_id, account_id, by)
        if row is not None:
            return row, True
        return await conn.fetchrow(q["get_partner_member"], org, partner_id, account_id), False


async def take_job(
    conn: asyncpg.Connection, q: Queries, *, org: str, job_id: uuid.UUID, partner_id: str
) -> asyncpg.Record:
    """A partner takes a menu item. Refused when another partner has it, or when people who
    are not the partner's members already hold places in it (they would be left doing a job
    someone else took)."""
    async with conn.transaction():
        job = await conn.fetchrow(q["lock_job"], job_id, org)
        if job is None:
            raise no_job(job_id)
        if await conn.fetchrow(q["get_partner"], org, partner_id) is None:
            raise no_partner(partner_id)
        if job["partner_id"] is not None:
            raise PartnerTaken(
                Said(
                    f"岗位 {job_id} 已由合伙人 {job['partner_id']} 承接",
                    f"job {job_id} is taken by partner {job['partner_id']}",
                ),
                partner_id=job["partner_id"],
            )
        outsiders = await conn.fetchval(q["claims_by_outsiders"], job_id, org, partner_id)
        if outsiders:
            raise PartnerTaken(
                Said(
                    f"岗位 {job_id} 已有 {outsiders} 个名额由非 {partner_id} 成员领取",
                    f"{outsiders} places of job {job_id} are held by people who are not "
                    f"members of {partner_id}",
                ),
                claimed_by_others=outsiders,
            )
        row: asyncpg.Record = await conn.fetchrow(q["set_job_partner"], job_id, org, partner_id)
        return row
