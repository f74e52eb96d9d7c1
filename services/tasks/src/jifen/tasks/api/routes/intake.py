"""Intake, the requests that become jobs: /v1/hazards (hazard reports: report -> task -> done)
and /v1/needs (residents' micro-wishes and partners' offers)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg
from fastapi import APIRouter, HTTPException

from jifen.kernel.auth import Role
from jifen.kernel.db import Queries
from jifen.kernel.errors import NotFound
from jifen.kernel.i18n import Said
from jifen.kernel.pages import Page, Paging
from jifen.kernel.web import ParsedBodyRoute
from jifen.tasks import handlers
from jifen.tasks.api.deps import (
    REFUSALS,
    Actor,
    AnyMember,
    Claimant,
    Conn,
    Events,
    IdFilter,
    Officer,
    Q,
    Reader,
    acting_for,
)
from jifen.tasks.api.reads import histories_of, history_of
from jifen.tasks.api.schemas import (
    HazardIn,
    HazardOut,
    MergeIn,
    NeedClaimIn,
    NeedIn,
    NeedOut,
    ReasonIn,
    TriageIn,
)
from jifen.tasks.domain.intake import HazardKind, HazardStatus, NeedKind, NeedStatus
from jifen.tasks.domain.partners import source_of

hazards = APIRouter(prefix="/v1/hazards", tags=["hazard reports"], route_class=ParsedBodyRoute)
needs = APIRouter(prefix="/v1/needs", tags=["micro-wishes and offers"], route_class=ParsedBodyRoute)


# -- hazard reports --------------------------------------------------------------------------


async def _hazard_out(conn: asyncpg.Connection, q: Queries, row: asyncpg.Record) -> HazardOut:
    return HazardOut(
        **dict(row), history=await history_of(conn, q, row["org_id"], "hazard", row["id"])
    )


@hazards.post(
    "", status_code=201, response_model=HazardOut, summary="Report a hazard", responses=REFUSALS
)
async def report_hazard(
    body: HazardIn, conn: Conn, q: Q, contracts: Events, who: Actor
) -> HazardOut:
    acting_for(who, body.account_id)
    row = await handlers.report_hazard(
        conn, q, contracts, org=who.org, by=who.subject, body=body.to_command()
    )
    return await _hazard_out(conn, q, row)


@hazards.get(
    "", response_model=Page[HazardOut], summary="Hazard reports (a volunteer sees their own)"
)
async def list_hazards(
    conn: Conn,
    q: Q,
    who: Reader,
    paging: Paging,
    status: HazardStatus | None = None,
    community_id: IdFilter = None,
    kind: HazardKind | None = None,
) -> Page[HazardOut]:
    account = who.subject if who.role == Role.VOLUNTEER else None
    rows = await conn.fetch(
        q["list_hazards"],
        who.org,
        status.value if status else None,
        community_id,
        account,
        paging.fetch,
        kind.value if kind else None,
        *paging.after(datetime, UUID),
    )
    page, cursor = paging.cut(rows, lambda r: (r["created_at"], r["id"]))
    history = await histories_of(conn, q, who.org, "hazard", [r["id"] for r in page])
    return Page(
        items=[HazardOut(**dict(r), history=history[r["id"]]) for r in page], next_cursor=cursor
    )


@hazards.get(
    "/{hazard_id}",
    response_model=HazardOut,
    summary="One hazard report with its history: report -> task -> done",
    responses=REFUSALS,
)
async def get_hazard(hazard_id: UUID, conn: Conn, q: Q, who: Reader) -> HazardOut:
    row = await conn.fetchrow(q["get_hazard"], hazard_id, who.org)
    if row is None or (who.role == Role.VOLUNTEER and row["account_id"] != who.subject):
        raise NotFound(Said(f"没有隐患报告 {hazard_id}", f"no hazard report {hazard_id}"))
    return await _hazard_out(conn, q, row)


@hazards.post(
    "/{hazard_id}/triage",
    response_model=HazardOut,
    summary="Triage a hazard report into a job in its community",
    responses=REFUSALS,
)
async def triage(
    hazard_id: UUID, body: TriageIn, conn: Conn, q: Q, contracts: Events, who: Officer
) -> HazardOut:
    row = await handlers.triage_hazard(
        conn,
        q,
        contracts,
        org=who.org,
        officer=who.subject,
        hazard_id=hazard_id,
        job=body.job.to_spec(),
        reason=body.reason,
    )
    return await _hazard_out(conn, q, row)


@hazards.post(
    "/{hazard_id}/merge",
    response_model=HazardOut,
    summary="Merge a hazard report into an earlier one as a duplicate",
    responses=REFUSALS,
)
async def merge(
    hazard_id: UUID, body: MergeIn, conn: Conn, q: Q, contracts: Events, who: Officer
) -> HazardOut:
    row = await handlers.merge_hazard(
        conn,
        q,
        contracts,
        org=who.org,
        officer=who.subject,
        hazard_id=hazard_id,
        duplicate_of=body.duplicate_of,
        reason=body.reason,
    )
    return await _hazard_out(conn, q, row)


@hazards.post(
    "/{hazard_id}/close",
    response_model=HazardOut,
    summary="Close a hazard report with a reason",
    responses=REFUSALS,
)
async def close_hazard(
    hazard_id: UUID, body: ReasonIn, conn: Conn, q: Q, contracts: Events, who: Officer
) -> HazardOut:
    row = await handlers.close_hazard(
        conn,
        q,
        contracts,
        org=who.org,
        officer=who.subject,
        hazard_id=hazard_id,
        reason=body.reason,
    )
    return await _hazard_out(conn, q, row)


# -- micro-wishes and partner offers -----------------------------------------------------------


async def _need_out(conn: asyncpg.Connection, q: Queries, row: asyncpg.Record) -> NeedOut:
    jobs = [r["job_id"] for r in await conn.fetch(q["jobs_of_needs"], [row["id"]])]
    return NeedOut(
        **dict(row),
        job_ids=jobs,
        history=await history_of(conn, q, row["org_id"], "need", row["id"]),
    )


@needs.post(
    "",
    status_code=201,
    response_model=NeedOut,
    summary="Post a need (a wish: 需求) or a resource (an offer: 资源)",
    description="Officers and admins post either, also as found on a door-to-door visit "
    "(source=visit); an app posts for its residents; a volunteer (a resident or gig worker) "
    "posts their own wish; a merchant its own offer (as the partner it is). 403 for any other "
    "kind or source.",
    responses={**REFUSALS, 403: {"description": "Not a kind or source this role may post"}},
)
async def post_need(body: NeedIn, conn: Conn, q: Q, contracts: Events, who: Claimant) -> NeedOut:
    source = source_of(who.role.value, body.kind, body.source)
    partner = body.partner_id
    if who.role == Role.MERCHANT:
        if partner not in (None, who.subject):
            raise HTTPException(
                403,
                Said("商户只能以自己的名义提供资源", "a merchant offers only as itself"),
            )
        # as the partner it is, once an officer added it (else an offer of no partner's)
        if await conn.fetchrow(q["get_partner"], who.org, who.subject) is not None:
            partner = who.subject
    row = await handlers.post_need(
        conn,
        q,
        contracts,
        org=who.org,
        by=who.subject,
        body=body.to_command(source=source, partner_id=partner),
    )
    return await _need_out(conn, q, row)


@needs.get(
    "", response_model=Page[NeedOut], summary="The needs and resources lists (wishes and offers)"
)
async def list_needs(
    conn: Conn,
    q: Q,
    who: AnyMember,
    paging: Paging,
    status: NeedStatus | None = None,
    kind: NeedKind | None = None,
    community_id: IdFilter = None,
) -> Page[NeedOut]:
    rows = await conn.fetch(
        q["list_needs"],
        who.org,
        status.value if status else None,
        kind.value if kind else None,
        community_id,
        paging.fetch,
        *paging.after(datetime, UUID),
    )
    page, cursor = paging.cut(rows, lambda r: (r["created_at"], r["id"]))
    ids = [r["id"] for r in page]
    history = await histories_of(conn, q, who.org, "need", ids)
    jobs: dict[UUID, list[UUID]] = {i: [] for i in ids}
    for j in await conn.fetch(q["jobs_of_needs"], ids):
        jobs[j["item_id"]].append(j["job_id"])
    return Page(
        items=[NeedOut(**dict(r), job_ids=jobs[r["id"]], history=history[r["id"]]) for r in page],
        next_cursor=cursor,
    )


@needs.get("/{need_id}", response_model=NeedOut, summary="One wish or offer, with its history")
async def get_need(need_id: UUID, conn: Conn, q: Q, who: AnyMember) -> NeedOut:
    row = await conn.fetchrow(q["get_need"], need_id, who.org)
    if row is None:
        raise NotFound(Said(f"没有心愿或供给 {need_id}", f"no wish or offer {need_id}"))
    return await _need_out(conn, q, row)


@needs.post(
    "/{need_id}/claim",
    response_model=NeedOut,
    summary="Claim a wish or offer for a volunteer or a partner",
    responses=REFUSALS,
)
async def claim_need(
    need_id: UUID, body: NeedClaimIn, conn: Conn, q: Q, contracts: Events, who: Claimant
) -> NeedOut:
    if who.role in (Role.VOLUNTEER, Role.MERCHANT) and who.subject != body.claimed_by:
        raise HTTPException(
            403,
            Said(
                f"{who.role.value} 只能为自己认领",
                f"a {who.role.value} may claim only for themselves",
            ),
        )
    row = await handlers.claim_need(
        conn, q, contracts, org=who.org, by=who.subject, need_id=need_id, claimant=body.claimed_by
    )
    return await _need_out(conn, q, row)


@needs.post(
    "/{need_id}/job",
    response_model=NeedOut,
    summary="Turn a wish or offer into a job in its community",
    responses=REFUSALS,
)
async def need_to_job(
    need_id: UUID, body: TriageIn, conn: Conn, q: Q, contracts: Events, who: Officer
) -> NeedOut:
    row = await handlers.need_to_job(
        conn,
        q,
        contracts,
        org=who.org,
        officer=who.subject,
        need_id=need_id,
        job=body.job.to_spec(),
        reason=body.reason,
    )
    return await _need_out(conn, q, row)


@needs.post(
    "/{need_id}/close",
    response_model=NeedOut,
    summary="Close a wish or offer with a reason",
    responses=REFUSALS,
)
async def close_need(
    need_id: UUID, body: ReasonIn, conn: Conn, q: Q, contracts: Events, who: Officer
) -> NeedOut:
    row = await handlers.close_need(
        conn, q, contracts, org=who.org, officer=who.subject, need_id=need_id, reason=body.reason
    )
    return await _need_out(conn, q, row)
