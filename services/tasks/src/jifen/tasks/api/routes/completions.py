"""/v1/completions: one completion and its history, the review queue, and the review itself
(verify, approve a held one, reject, revoke)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, HTTPException, Query

from jifen.kernel.auth import Role
from jifen.kernel.i18n import Said
from jifen.kernel.pages import Page, Paging
from jifen.kernel.web import ParsedBodyRoute
from jifen.tasks import handlers
from jifen.tasks.api.deps import REFUSALS, Conn, Events, IdFilter, Officer, Q, Reader
from jifen.tasks.api.reads import status_change_out
from jifen.tasks.api.schemas import ApproveIn, CompletionOut, ReasonIn, StatusChangeOut
from jifen.tasks.domain.jobs import CompletionStatus, no_completion

router = APIRouter(prefix="/v1/completions", tags=["completions"], route_class=ParsedBodyRoute)


@router.get(
    "/{completion_id}", response_model=CompletionOut, summary="One completion", responses=REFUSALS
)
async def get_completion(completion_id: UUID, conn: Conn, q: Q, who: Reader) -> CompletionOut:
    row = await conn.fetchrow(q["get_completion"], completion_id, who.org)
    if row is None or (who.role == Role.VOLUNTEER and row["account_id"] != who.subject):
        raise no_completion(completion_id)
    return CompletionOut(**dict(row))


@router.post(
    "/{completion_id}/verify",
    response_model=CompletionOut,
    summary="Verify a completion: points become owed",
    responses=REFUSALS,
)
async def verify(
    completion_id: UUID, conn: Conn, q: Q, contracts: Events, who: Officer
) -> CompletionOut:
    row = await handlers.verify_completion(
        conn, q, contracts, org=who.org, officer=who.subject, completion_id=completion_id
    )
    return CompletionOut(**dict(row))


@router.get(
    "",
    response_model=Page[CompletionOut],
    summary="Completions: the review queue (status=held&hold_level=officer) or a volunteer's own",
)
async def list_completions(
    conn: Conn,
    q: Q,
    who: Reader,
    paging: Paging,
    status: CompletionStatus | None = None,
    hold_level: Annotated[str | None, Query(pattern=r"^(officer|admin)$")] = None,
    account_id: IdFilter = None,
    community_id: IdFilter = None,
    job_id: Annotated[UUID | None, Query(description="Only this job's completions")] = None,
    order: Annotated[
        Literal["oldest", "newest"],
        Query(description="oldest first (a queue's order, the default) or newest first"),
    ] = "oldest",
) -> Page[CompletionOut]:
    if who.role == Role.VOLUNTEER:
        if account_id not in (None, who.subject):
            raise HTTPException(
                403,
                Said(
                    "志愿者只能查看自己的完成记录",
                    "a volunteer may list only their own completions",
                ),
            )
        account_id = who.subject
    rows = await conn.fetch(
        q["list_completions_newest" if order == "newest" else "list_completions"],
        who.org,
        status.value if status else None,
        account_id,
        hold_level,
        paging.fetch,
        community_id,
        *paging.after(datetime, UUID),
        job_id,
    )
    return paging.page(
        rows, lambda r: (r["submitted_at"], r["id"]), lambda r: CompletionOut(**dict(r))
    )


@router.get(
    "/{completion_id}/history",
    response_model=Page[StatusChangeOut],
    summary="Every status a completion went through: who, when, why",
    responses=REFUSALS,
)
async def completion_history(
    completion_id: UUID, conn: Conn, q: Q, who: Reader, paging: Paging
) -> Page[StatusChangeOut]:
    row = await conn.fetchrow(q["get_completion"], completion_id, who.org)
    if row is None or (who.role == Role.VOLUNTEER and row["account_id"] != who.subject):
        raise no_completion(completion_id)
    rows = await conn.fetch(
        q["history_page"], who.org, "completion", completion_id, *paging.after(int), paging.fetch
    )
    return paging.page(rows, lambda r: (r["id"],), status_change_out)


@router.post(
    "/{completion_id}/approve",
    response_model=CompletionOut,
    summary="Approve a completion held by an organisation limit (officer level: an officer; "
    "admin level: the admin)",
    responses=REFUSALS,
)
async def approve(
    completion_id: UUID, body: ApproveIn, conn: Conn, q: Q, contracts: Events, who: Officer
) -> CompletionOut:
    row = await handlers.approve_completion(
        conn,
        q,
        contracts,
        org=who.org,
        who=who.subject,
        role=who.role.value,
        completion_id=completion_id,
        reason=body.reason,
    )
    return CompletionOut(**dict(row))


@router.post(
    "/{completion_id}/reject",
    response_model=CompletionOut,
    summary="Reject a submitted or held completion, with a reason",
    responses=REFUSALS,
)
async def reject(
    completion_id: UUID, body: ReasonIn, conn: Conn, q: Q, contracts: Events, who: Officer
) -> CompletionOut:
    row = await handlers.reject_completion(
        conn,
        q,
        contracts,
        org=who.org,
        who=who.subject,
        completion_id=completion_id,
        reason=body.reason,
    )
    return CompletionOut(**dict(row))


@router.post(
    "/{completion_id}/revoke",
    response_model=CompletionOut,
    summary="Revoke a verified completion, with a reason: the ledger appends a reversal",
    responses=REFUSALS,
)
async def revoke(
    completion_id: UUID, body: ReasonIn, conn: Conn, q: Q, contracts: Events, who: Officer
) -> CompletionOut:
    row = await handlers.revoke_completion(
        conn,
        q,
        contracts,
        org=who.org,
        who=who.subject,
        completion_id=completion_id,
        reason=body.reason,
    )
    return CompletionOut(**dict(row))
