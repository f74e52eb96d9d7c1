"""/v1/organisation, communities and their members, categories: the organisation's settings
and limits and who belongs where."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response

from jifen.kernel.i18n import Said
from jifen.kernel.pages import Page, Paging
from jifen.kernel.web import ParsedBodyRoute, Refusal
from jifen.tasks import handlers
from jifen.tasks.api.deps import (
    REFUSALS,
    Actor,
    Admin,
    AnyMember,
    Conn,
    Events,
    Officer,
    PathId,
    Q,
    Reader,
    acting_for,
)
from jifen.tasks.api.schemas import (
    CategoryIn,
    CategoryOut,
    CommunityIn,
    CommunityOut,
    MemberIn,
    MemberOut,
    OrganisationIn,
    OrganisationOut,
)
from jifen.tasks.domain.jobs import CATEGORY_LABELS, CATEGORY_UNITS, UNIT_LABELS, Category, Unit

router = APIRouter(prefix="/v1", tags=["organisation"], route_class=ParsedBodyRoute)


@router.get(
    "/organisation",
    response_model=OrganisationOut,
    summary="Your organisation's settings and limits (the defaults until the admin sets them)",
)
async def get_organisation(conn: Conn, q: Q, who: AnyMember) -> OrganisationOut:
    row = await conn.fetchrow(q["get_organisation"], who.org)
    if row is None:
        d = OrganisationIn()
        return OrganisationOut(
            id=who.org,
            **d.model_dump(),
            updated_by="default",
            updated_at=None,
        )
    return OrganisationOut(**dict(row))


@router.put(
    "/organisation",
    response_model=OrganisationOut,
    summary="Set your organisation's name, timezone and limits (admin)",
    description="Beyond a first threshold (points a volunteer earns per local day, completions "
    "per hour, points one automatic job pays) a completion is held for an officer; beyond the "
    "second (and beyond the points one officer verifies per day), for the admin. The daily "
    "and per-officer limits are never unset: a missing one takes its default "
    "(docs/TASKS.md); the hourly ones may be left unset.",
)
async def put_organisation(body: OrganisationIn, conn: Conn, q: Q, who: Admin) -> OrganisationOut:
    row = await conn.fetchrow(
        q["upsert_organisation"],
        who.org,
        body.name,
        body.timezone,
        body.daily_points_officer,
        body.hourly_completions_officer,
        body.daily_points_admin,
        body.hourly_completions_admin,
        who.subject,
        body.daily_points_per_officer,
        body.automatic_job_points,
    )
    return OrganisationOut(**dict(row))


@router.post(
    "/communities",
    status_code=201,
    response_model=CommunityOut,
    summary="Add a community (grid) to your organisation",
    responses={409: {"description": "A community with this id exists"}},
)
async def add_community(body: CommunityIn, conn: Conn, q: Q, who: Officer) -> CommunityOut:
    row = await conn.fetchrow(q["insert_community"], who.org, body.id, body.name, who.subject)
    if row is None:
        raise Refusal(
            "community_exists",
            Said(
                f"本组织已有社区 {body.id!r}",
                f"your organisation already has community {body.id!r}",
            ),
        )
    return CommunityOut(**dict(row))


@router.get(
    "/communities", response_model=Page[CommunityOut], summary="Your organisation's communities"
)
async def list_communities(conn: Conn, q: Q, who: AnyMember, paging: Paging) -> Page[CommunityOut]:
    rows = await conn.fetch(q["list_communities"], who.org, *paging.after(str), paging.fetch)
    return paging.page(rows, lambda r: (r["id"],), lambda r: CommunityOut(**dict(r)))


@router.post(
    "/communities/{community_id}/members",
    status_code=201,
    response_model=MemberOut,
    summary="Register a volunteer with a community (200 if already registered)",
    responses={**REFUSALS, 200: {"description": "Already registered: the registration"}},
)
async def register(
    community_id: PathId,
    body: MemberIn,
    conn: Conn,
    q: Q,
    contracts: Events,
    who: Actor,
    response: Response,
) -> MemberOut:
    acting_for(who, body.account_id)
    row, created = await handlers.register_member(
        conn,
        q,
        contracts,
        org=who.org,
        community_id=community_id,
        account_id=body.account_id,
        by=who.subject,
    )
    if not created:
        response.status_code = 200
    return MemberOut(**dict(row))


@router.get(
    "/communities/{community_id}/members",
    response_model=Page[MemberOut],
    summary="Volunteers registered with a community",
)
async def members(
    community_id: PathId, conn: Conn, q: Q, who: Officer, paging: Paging
) -> Page[MemberOut]:
    rows = await conn.fetch(
        q["list_members"], who.org, community_id, paging.fetch, *paging.after(datetime, str)
    )
    return paging.page(
        rows, lambda r: (r["registered_at"], r["account_id"]), lambda r: MemberOut(**dict(r))
    )


@router.get(
    "/volunteers/{account_id}/communities",
    response_model=Page[CommunityOut],
    summary="The communities a volunteer is registered with",
)
async def communities_of(
    account_id: PathId, conn: Conn, q: Q, who: Reader, paging: Paging
) -> Page[CommunityOut]:
    acting_for(who, account_id)
    rows = await conn.fetch(
        q["communities_of"], who.org, account_id, *paging.after(str), paging.fetch
    )
    return paging.page(
        rows,
        lambda r: (r["id"],),
        lambda r: CommunityOut(
            org_id=who.org, id=r["id"], name=r["name"], created_by="", created_at=r["registered_at"]
        ),
    )


@router.get(
    "/categories",
    response_model=Page[CategoryOut],
    summary="Job categories: built in (first) and yours",
)
async def categories(conn: Conn, q: Q, who: AnyMember, paging: Paging) -> Page[CategoryOut]:
    out = [
        CategoryOut(
            code=c.value,
            label=f"{zh} {en}",
            label_zh=zh,
            label_en=en,
            built_in=True,
            **_unit(CATEGORY_UNITS[c]),
        )
        for c, (zh, en) in CATEGORY_LABELS.items()
    ]
    out += [
        CategoryOut(
            code=r["code"],
            label=r["label"],
            built_in=False,
            **_unit(Unit(r["unit"]) if r["unit"] else None),
        )
        for r in await conn.fetch(q["list_categories"], who.org)
    ]
    return paging.slice(out, lambda c: (0 if c.built_in else 1, c.code), int, str)


def _unit(unit: Unit | None) -> dict[str, str | None]:
    if unit is None:
        return {"unit": None, "unit_zh": None, "unit_en": None}
    zh, en = UNIT_LABELS[unit]
    return {"unit": unit.value, "unit_zh": zh, "unit_en": en}


@router.post(
    "/categories",
    status_code=201,
    response_model=CategoryOut,
    summary="Add a job category for your organisation",
    responses={409: {"description": "The code exists (built in or yours)"}},
)
async def add_category(body: CategoryIn, conn: Conn, q: Q, who: Officer) -> CategoryOut:
    if body.code in {c.value for c in Category}:
        raise Refusal(
            "category_exists",
            Said(f"{body.code!r} 是内置类别", f"{body.code!r} is a built-in category"),
        )
    unit = body.unit.value if body.unit else None
    row = await conn.fetchrow(
        q["insert_category"], who.org, body.code, body.label, who.subject, unit
    )
    if row is None:
        raise Refusal(
            "category_exists",
            Said(
                f"本组织已有类别 {body.code!r}",
                f"your organisation already has category {body.code!r}",
            ),
        )
    return CategoryOut(code=row["code"], label=row["label"], built_in=False, **_unit(body.unit))
