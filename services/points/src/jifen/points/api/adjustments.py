"""Adjustments: one admin requests, another approves; only then is an entry appended.

An adjustment moves (the admin's organisation, account) and nothing of any other
organisation; the approver is neither the requester nor the account (normalised identities);
a debit never takes that balance below zero (checked at request and again, under the
account's row lock, at approval)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import asyncpg
from fastapi import APIRouter, HTTPException, Query

from jifen.kernel.auth import Principal, Role, require
from jifen.kernel.contracts import Contracts
from jifen.kernel.db import Queries
from jifen.kernel.deps import Conn, Events, Q
from jifen.kernel.i18n import Said
from jifen.kernel.pages import Page, Paging
from jifen.kernel.web import max_body
from jifen.points import handlers
from jifen.points.api.schemas import AdjustmentIn, AdjustmentOut, DecisionIn

Admin = Annotated[Principal, require(Role.ADMIN)]
Reader = Annotated[Principal, require(Role.ADMIN, Role.AUDITOR)]


router = APIRouter(prefix="/v1/adjustments", tags=["adjustments"])
# an adjustment or a decision is a few fields: bounded well below the global 256 KiB
SMALL_BODY = max_body(16 * 1024)
REFUSALS = {
    409: {
        "description": "Refused: `reason` is same_person (the requester, compared case- and "
        "space-insensitively), beneficiary (the adjusted account itself), "
        "adjustment_overdraws (a debit below zero of your organisation's balance) or "
        "already_decided"
    },
    404: {"description": "No such adjustment in your organisation"},
}
REQUEST_REFUSALS = {
    409: {
        "description": "Refused: `reason` adjustment_overdraws (a debit would take your "
        "organisation's balance of the account below zero)"
    }
}


def _out(row: asyncpg.Record) -> AdjustmentOut:
    d = dict(row)
    d["id"] = str(d["id"])
    d["event_id"] = str(d["event_id"]) if d["event_id"] else None
    return AdjustmentOut(**d)


@router.post(
    "",
    openapi_extra=SMALL_BODY,
    status_code=201,
    response_model=AdjustmentOut,
    responses=REQUEST_REFUSALS,
    summary="Request an adjustment of an account of your organisation (a second admin, "
    "neither you nor the account, approves it)",
)
async def request_adjustment(body: AdjustmentIn, conn: Conn, q: Q, who: Admin) -> AdjustmentOut:
    if body.amount == 0:
        raise HTTPException(
            422,
            Said(
                "amount：调整 0 分不会改变任何东西",
                "amount: an adjustment of zero points changes nothing",
            ),
        )
    row = await handlers.request_adjustment(
        conn,
        q,
        org=who.org,
        admin=who.subject,
        account_id=body.account_id,
        amount=body.amount,
        reason=body.reason,
    )
    return _out(row)


@router.get(
    "", response_model=Page[AdjustmentOut], summary="Adjustments of your organisation, newest first"
)
async def list_adjustments(
    conn: Conn,
    q: Q,
    who: Reader,
    paging: Paging,
    status: Annotated[str | None, Query(pattern="^(pending|approved|rejected)$")] = None,
) -> Page[AdjustmentOut]:
    rows = await conn.fetch(
        q["list_adjustments"], who.org, status, paging.fetch, *paging.after(datetime, UUID)
    )
    return paging.page(rows, lambda r: (r["requested_at"], r["id"]), _out)


async def _decide(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    who: Principal,
    adjustment_id: UUID,
    approve: bool,
    note: str,
) -> AdjustmentOut:
    row = await handlers.decide_adjustment(
        conn,
        q,
        contracts,
        org=who.org,
        admin=who.subject,
        adjustment_id=adjustment_id,
        approve=approve,
        note=note,
    )
    return _out(row)


@router.post(
    "/{adjustment_id}/approve",
    openapi_extra=SMALL_BODY,
    response_model=AdjustmentOut,
    responses=REFUSALS,
    summary="Approve as the second admin: the entry is appended",
)
async def approve(
    adjustment_id: UUID,
    conn: Conn,
    q: Q,
    contracts: Events,
    who: Admin,
    body: DecisionIn | None = None,
) -> AdjustmentOut:
    return await _decide(conn, q, contracts, who, adjustment_id, True, body.note if body else "")


@router.post(
    "/{adjustment_id}/reject",
    openapi_extra=SMALL_BODY,
    response_model=AdjustmentOut,
    responses=REFUSALS,
    summary="Reject as the second admin",
)
async def reject(
    adjustment_id: UUID,
    conn: Conn,
    q: Q,
    contracts: Events,
    who: Admin,
    body: DecisionIn | None = None,
) -> AdjustmentOut:
    return await _decide(conn, q, contracts, who, adjustment_id, False, body.note if body else "")
