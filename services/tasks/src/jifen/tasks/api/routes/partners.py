"""/v1/partners: community partners (社区合伙人) — agencies, firms, merchants, skilled
residents — as organisations or teams, and their members; and /v1/jobs/{id}/partner, a
partner taking a menu item that then only its members claim and complete."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, HTTPException, Response

from jifen.kernel.auth import Principal, Role, require
from jifen.kernel.i18n import Said
from jifen.kernel.pages import Page, Paging
from jifen.kernel.web import ParsedBodyRoute
from jifen.tasks import handlers
from jifen.tasks.api.deps import REFUSALS, AnyMember, Conn, Officer, PathId, Q
from jifen.tasks.api.reads import job_out
from jifen.tasks.api.schemas import JobOut
from jifen.tasks.api.schemas.intake import (
    PartnerIn,
    PartnerMemberIn,
    PartnerMemberOut,
    PartnerOut,
    TakeJobIn,
)
from jifen.tasks.domain.partners import PartnerKind
from jifen.tasks.handlers.partners import no_partner

router = APIRouter(prefix="/v1/partners", tags=["partners"], route_class=ParsedBodyRoute)
jobs = APIRouter(prefix="/v1/jobs", tags=["partners"], route_class=ParsedBodyRoute)

# a partner's own business: the officers and admin, or the partner itself (a merchant whose
# id is the partner's)
PartnerKeeper = Annotated[Principal, require(Role.OFFICER, Role.ADMIN, Role.MERCHANT)]


def _as_partner(who: Principal, partner_id: str) -> None:
    if who.role == Role.MERCHANT and who.subject != partner_id:
        raise HTTPException(
            403,
            Said(
                f"商户只能管理自己（{who.subject}）这个合伙人",
                f"a merchant manages only itself ({who.subject}) as a partner",
            ),
        )


@router.post(
    "",
    status_code=201,
    response_model=PartnerOut,
    summary="Add a partner: an organisation (agency, firm, merchant) or a team",
    responses={**REFUSALS, 409: {"description": "partner_exists"}},
)
async def add_partner(body: PartnerIn, conn: Conn, q: Q, who: Officer) -> PartnerOut:
    row = await handlers.add_partner(
        conn,
        q,
        org=who.org,
        by=who.subject,
        partner_id=body.id,
        kind=body.kind,
        name=body.name,
        contact=body.contact,
    )
    return PartnerOut(**dict(row))


@router.get("", response_model=Page[PartnerOut], summary="Your organisation's partners")
async def list_partners(
    conn: Conn, q: Q, who: AnyMember, paging: Paging, kind: PartnerKind | None = None
) -> Page[PartnerOut]:
    rows = await conn.fetch(
        q["list_partners"], who.org, kind.value if kind else None, *paging.after(str), paging.fetch
    )
    return paging.page(rows, lambda r: (r["id"],), lambda r: PartnerOut(**dict(r)))


@router.get("/{partner_id}", response_model=PartnerOut, summary="One partner", responses=REFUSALS)
async def get_partner(partner_id: PathId, conn: Conn, q: Q, who: AnyMember) -> PartnerOut:
    row = await conn.fetchrow(q["get_partner"], who.org, partner_id)
    if row is None:
        raise no_partner(partner_id)
    return PartnerOut(**dict(row))


@router.post(
    "/{partner_id}/members",
    status_code=201,
    response_model=PartnerMemberOut,
    summary="Add a member to a partner (200 if already one)",
    responses={**REFUSALS, 200: {"description": "Already a member"}},
)
async def add_member(
    partner_id: PathId,
    body: PartnerMemberIn,
    conn: Conn,
    q: Q,
    who: PartnerKeeper,
    response: Response,
) -> PartnerMemberOut:
    _as_partner(who, partner_id)
    row, created = await handlers.add_member(
        conn, q, org=who.org, by=who.subject, partner_id=partner_id, account_id=body.account_id
    )
    if not created:
        response.status_code = 200
    return PartnerMemberOut(**dict(row))


@router.get(
    "/{partner_id}/members",
    response_model=Page[PartnerMemberOut],
    summary="A partner's members",
    responses=REFUSALS,
)
async def members(
    partner_id: PathId, conn: Conn, q: Q, who: PartnerKeeper, paging: Paging
) -> Page[PartnerMemberOut]:
    _as_partner(who, partner_id)
    if await conn.fetchrow(q["get_partner"], who.org, partner_id) is None:
        raise no_partner(partner_id)
    rows = await conn.fetch(
        q["list_partner_members"], who.org, partner_id, paging.fetch, *paging.after(datetime, str)
    )
    return paging.page(
        rows, lambda r: (r["added_at"], r["account_id"]), lambda r: PartnerMemberOut(**dict(r))
    )


@jobs.post(
    "/{job_id}/partner",
    response_model=JobOut,
    summary="A partner takes a menu item: from then on only its members claim places in it",
    responses={**REFUSALS, 409: {"description": "partner_taken"}},
)
async def take_job(job_id: UUID, body: TakeJobIn, conn: Conn, q: Q, who: PartnerKeeper) -> JobOut:
    _as_partner(who, body.partner_id)
    row = await handlers.take_job(conn, q, org=who.org, job_id=job_id, partner_id=body.partner_id)
    return job_out(row)
