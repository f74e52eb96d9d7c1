"""Who belongs where: a community of the caller's organisation, an account registered with
it (report-in), and registering one."""

from __future__ import annotations

import asyncpg

from jifen.kernel.contracts import Contracts
from jifen.kernel.db import Queries
from jifen.kernel.i18n import Said
from jifen.tasks.domain.jobs import NotAMember, UnknownCommunity


async def check_community(
    conn: asyncpg.Connection, q: Queries, org: str, community_id: str
) -> None:
    """A job, hazard report or need names a community of the caller's own organisation."""
    if await conn.fetchrow(q["get_community"], org, community_id) is None:
        raise UnknownCommunity(
            Said(
                f"本组织没有社区 {community_id!r}；工作人员可用 POST /v1/communities 添加",
                f"your organisation has no community {community_id!r}; an officer adds it with "
                "POST /v1/communities",
            ),
            community_id=community_id,
        )


async def check_member_anywhere(
    conn: asyncpg.Connection, q: Queries, org: str, account_id: str
) -> None:
    """The account is registered with some community of the organisation."""
    if not await conn.fetchval(q["is_member_anywhere"], org, account_id):
        raise _member_of_nothing(account_id)


def _member_of_nothing(account_id: str) -> NotAMember:
    return NotAMember(
        Said(
            f"账户 {account_id} 未在本组织任何社区报到；请先用"
            " POST /v1/communities/{id}/members 报到",
            f"{account_id} is registered with no community of your organisation; register "
            "it first with POST /v1/communities/{id}/members",
        ),
        account_id=account_id,
    )


async def check_member(
    conn: asyncpg.Connection, q: Queries, org: str, job: asyncpg.Record, account_id: str
) -> None:
    """Only accounts registered (report-in) with the job's community may claim and complete
    it; an open job takes any account registered with a community of the organisation. An
    account that is a member of nothing is never credited."""
    if job["open_to_all"]:
        await check_member_anywhere(conn, q, org, account_id)
        return
    if not await conn.fetchval(q["is_member"], org, job["community_id"], account_id):
        raise not_a_member(job, account_id)


def not_a_member(job: asyncpg.Record, account_id: str) -> NotAMember:
    """The refusal of an account that is not a member where ``job`` needs it to be (its
    community, or any of the organisation's for an open job)."""
    if job["open_to_all"]:
        return _member_of_nothing(account_id)
    return NotAMember(
        Said(
            f"账户 {account_id} 未在岗位所属社区 {job['community_id']!r} 报到；请先用"
            f" POST /v1/communities/{job['community_id']}/members 报到（或以 open_to_all"
            " 发布岗位）",
            f"{account_id} is not registered with community {job['community_id']!r}, the "
            f"job's community; register it first with POST /v1/communities/"
            f"{job['community_id']}/members (or publish the job with open_to_all)",
        ),
        account_id=account_id,
        community_id=job["community_id"],
    )


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
    """Register an account with a community; returns (registration, created). Registering
    twice returns the first registration."""
    async with conn.transaction():
        await check_community(conn, q, org, community_id)
        row = await conn.fetchrow(q["register_member"], org, community_id, account_id, by)
        if row is None:
            return await conn.fetchrow(q["get_member"], org, community_id, account_id), False
    return row, True
