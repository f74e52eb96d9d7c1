"""The needs list (residents' wishes) and the resources list (partners' offers): post one,
then claim it, turn it into a job or put it on a month's menu (several jobs, each served by a
resource), or close it; once every job it became has a verified completion it is done
(``credit``)."""

from __future__ import annotations

import uuid

import asyncpg

from jifen.kernel.contracts import Contracts
from jifen.kernel.db import Queries
from jifen.kernel.errors import NotFound
from jifen.kernel.i18n import Said
from jifen.tasks.domain.commands import JobSpec, MenuFromNeeds, PostNeed
from jifen.tasks.domain.intake import NeedKind, NeedStatus
from jifen.tasks.domain.jobs import WrongState, check_category
from jifen.tasks.domain.partners import NeedSource, NotMatchable, UnknownPartner, check_matchable
from jifen.tasks.handlers.history import record_status
from jifen.tasks.handlers.intake import NEED, move
from jifen.tasks.handlers.jobs import check_menu_month, insert_job
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
        if body.category is not None:
            custom = {r["code"] for r in await conn.fetch(q["list_categories"], org)}
            check_category(body.category, custom)
        if body.partner_id is not None and (
            await conn.fetchrow(q["get_partner"], org, body.partner_id) is None
        ):
            raise UnknownPartner(
                Said(
                    f"本组织没有合伙人 {body.partner_id}；请先用 POST /v1/partners 添加",
                    f"no partner {body.partner_id} in your organisation; add it first with "
                    "POST /v1/partners",
                ),
                partner_id=body.partner_id,
            )
        row = await conn.fetchrow(
            q["insert_need"],
            uuid.uuid4(),
            org,
            body.community_id,
            body.kind.value,
            body.title,
            body.description,
            by,
            body.category,
            body.place,
            body.wanted_from,
            body.wanted_until,
            body.quantity,
            body.source or NeedSource.OFFICER.value,
            body.partner_id,
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
        row = await move(
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
        await conn.execute(q["link_need_job"], org, need_id, row["job_id"], None, officer)
        return row


async def menu_from_needs(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    *,
    org: str,
    officer: str,
    menu: MenuFromNeeds,
) -> list[asyncpg.Record]:
    """The month's menu from the needs list: each item a job in the community for one need,
    served by a resource (an offer) if one is named — a partner's resource makes it that
    partner's job, done by its members. One need may yield several jobs. All or nothing."""
    check_menu_month(menu.month, [i.job for i in menu.items], "items")
    made = []
    async with conn.transaction():
        for item in menu.items:
            need = await _matchable(conn, q, org, item.need_id, NeedKind.WISH)
            if need["community_id"] != menu.community_id:
                raise NotMatchable(
                    Said(
                        f"需求 {need['id']} 属于社区 {need['community_id']}，"
                        f"不是 {menu.community_id}",
                        f"need {need['id']} is of community {need['community_id']}, not "
                        f"{menu.community_id}",
                    ),
                    item_id=str(need["id"]),
                )
            resource = None
            if item.resource_id is not None:
                resource = await _matchable(conn, q, org, item.resource_id, NeedKind.OFFER)
            job = await insert_job(
                conn,
                q,
                contracts,
                org=org,
                officer=officer,
                community_id=menu.community_id,
                job=item.job,
            )
            if resource is not None and resource["partner_id"] is not None:
                job = await conn.fetchrow(
                    q["set_job_partner"], job["id"], org, resource["partner_id"]
                )
            await conn.execute(
                q["link_need_job"], org, need["id"], job["id"], item.resource_id, officer
            )
            for it in (need, resource):
                if it is None:
                    continue
                why = f"on the menu of {menu.month}"
                if it["status"] != NeedStatus.IN_PROGRESS.value:
                    await conn.execute(
                        q["set_need"], it["id"], NeedStatus.IN_PROGRESS.value, None, job["id"]
                    )
                await record_status(
                    conn, q, contracts, org, "need", it["id"], "in_progress", officer, why,
                    job["id"],
                )  # fmt: skip
            made.append(job)
    return made


async def _matchable(
    conn: asyncpg.Connection, q: Queries, org: str, item_id: uuid.UUID, kind: NeedKind
) -> asyncpg.Record:
    row = await conn.fetchrow(q["lock_need"], item_id, org)
    if row is None:
        raise NotFound(Said(f"没有需求或资源 {item_id}", f"no need or resource {item_id}"))
    check_matchable(item_id, row["kind"], row["status"], kind)
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
