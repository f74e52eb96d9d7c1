"""/v1/appeals: a volunteer appeals a rejection, a hold or a missing credit; another officer
decides, and every decision is kept."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import asyncpg
from fastapi import APIRouter, HTTPException, Query

from jifen.kernel.auth import Role
from jifen.kernel.db import Queries
from jifen.kernel.errors import NotFound
from jifen.kernel.i18n import Said
from jifen.kernel.pages import Page, Paging
from jifen.kernel.web import ParsedBodyRoute
from jifen.tasks import handlers
from jifen.tasks.api.deps import REFUSALS, Actor, Conn, Events, IdFilter, Officer, Q, Reader
from jifen.tasks.api.schemas import AppealIn, AppealOut, DecisionIn, DecisionOut
from jifen.tasks.domain.jobs import no_completion

router = APIRouter(prefix="/v1/appeals", tags=["appeals"], route_class=ParsedBodyRoute)


async def _appeal_out(conn: asyncpg.Connection, q: Queries, row: asyncpg.Record) -> AppealOut:
    decisions = [DecisionOut(**dict(d)) for d in await conn.fetch(q["decisions_of"], row["id"])]
    return AppealOut(**dict(row), decisions=decisions)


@router.post(
    "",
    status_code=201,
    response_model=AppealOut,
    summary="Appeal a rejection, a hold or a credit that never arrived",
    responses=REFUSALS,
)
async def file_appeal(body: AppealIn, conn: Conn, q: Q, contracts: Events, who: Actor) -> AppealOut:
    c = await conn.fetchrow(q["get_completion"], body.completion_id, who.org)
    if c is None or (who.role == Role.VOLUNTEER and c["account_id"] != who.subject):
        raise no_completion(body.completion_id)
    row = await handlers.file_appeal(
        conn, q, contracts, org=who.org, by=who.subject, body=body.to_command()
    )
    return await _appeal_out(conn, q, row)


@router.get("", response_model=Page[AppealOut], summary="Appeals (a volunteer sees their own)")
async def list_appeals(
    conn: Conn,
    q: Q,
    who: Reader,
    paging: Paging,
    status: Annotated[str | None, Query(pattern=r"^(open|upheld|dismissed)$")] = None,
    account_id: IdFilter = None,
) -> Page[AppealOut]:
    if who.role == Role.VOLUNTEER:
        if account_id not in (None, who.subject):
            raise HTTPException(
                403, Said("志愿者只能查看自己的申诉", "a volunteer may list only their own appeals")
            )
        account_id = who.subject
    rows = await conn.fetch(
        q["list_appeals"], who.org, account_id, status, paging.fetch, *paging.after(datetime, UUID)
    )
    page, cursor = paging.cut(rows, lambda r: (r["created_at"], r["id"]))
    return Page(items=[await _appeal_out(conn, q, r) for r in page], next_cursor=cursor)


@router.get(
    "/{appeal_id}",
    response_model=AppealOut,
    summary="One appeal with every decision (who, when, why)",
    responses=REFUSALS,
)
async def get_appeal(appeal_id: UUID, conn: Conn, q: Q, who: Reader) -> AppealOut:
    row = await conn.fetchrow(q["get_appeal"], appeal_id, who.org)
    if row is None or (who.role == Role.VOLUNTEER and row["account_id"] != who.subject):
        raise NotFound(Said(f"没有申诉 {appeal_id}", f"no appeal {appeal_id}"))
    return await _appeal_out(conn, q, row)


@router.post(
    "/{appeal_id}/decisions",
    status_code=201,
    response_model=AppealOut,
    summary="Decide an appeal; a later decision corrects an earlier one (none is edited)",
    responses=REFUSALS,
)
async def decide(
    appeal_id: UUID, body: DecisionIn, conn: Conn, q: Q, contracts: Events, who: Officer
) -> AppealOut:
    row = await handlers.decide_appeal(
        conn,
        q,
        contracts,
        org=who.org,
        who=who.subject,
        role=who.role.value,
        appeal_id=appeal_id,
        body=body.to_command(),
    )
    return await _appeal_out(conn, q, row)
