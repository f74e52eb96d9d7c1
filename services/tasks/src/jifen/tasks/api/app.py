"""The tasks API: organisations and communities, jobs and monthly menus, claims, completions
and their review (verify, hold, approve, reject, revoke), appeals, hazard reports, wishes and
offers, and the auditors' listing of verified completions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated
from uuid import UUID

import asyncpg
from fastapi import (
    APIRouter,
    Depends,
    FastAPI,
    Header,
    HTTPException,
    Path,
    Query,
    Request,
    Response,
)
from fastapi.responses import JSONResponse

from jifen.kernel.auth import Principal, Role, TokenVerifier, require
from jifen.kernel.contracts import Contracts
from jifen.kernel.credentials import credentials_router
from jifen.kernel.db import Queries, create_pool
from jifen.kernel.web import Refusal, create_app, db_connection, pool_check, problem
from jifen.tasks import handlers
from jifen.tasks.api.schemas import (
    AppealIn,
    AppealOut,
    ApproveIn,
    AuditCompletion,
    AuditPage,
    CategoryIn,
    CategoryOut,
    CheckinCodeOut,
    ClaimIn,
    ClaimOut,
    ClaimOutFull,
    CommunityIn,
    CommunityOut,
    CompletionIn,
    CompletionOut,
    DecisionIn,
    DecisionOut,
    HazardIn,
    HazardOut,
    JobIn,
    JobOut,
    MemberIn,
    MemberOut,
    MenuIn,
    MergeIn,
    NeedClaimIn,
    NeedIn,
    NeedOut,
    OrganisationIn,
    OrganisationOut,
    ReasonIn,
    RollIn,
    StatusChangeOut,
    TriageIn,
)
from jifen.tasks.domain.checkin import CheckinRules, TooManyAttempts, current_code
from jifen.tasks.domain.intake import HazardKind, HazardStatus, NeedKind, NeedStatus
from jifen.tasks.domain.jobs import Category, CompletionStatus
from jifen.tasks.settings import TasksSettings

# the kernel's: a connection lost after the answer never drops the client's connection
_conn = db_connection


Conn = Annotated[asyncpg.Connection, Depends(_conn)]
Officer = Annotated[Principal, require(Role.OFFICER, Role.ADMIN)]
Actor = Annotated[Principal, require(Role.APP, Role.VOLUNTEER)]
Reader = Annotated[
    Principal, require(Role.OFFICER, Role.ADMIN, Role.APP, Role.VOLUNTEER, Role.AUDITOR)
]
Admin = Annotated[Principal, require(Role.ADMIN)]
Auditor = Annotated[Principal, require(Role.AUDITOR)]
Poster = Annotated[Principal, require(Role.OFFICER, Role.ADMIN, Role.APP)]
Claimant = Annotated[
    Principal, require(Role.OFFICER, Role.ADMIN, Role.APP, Role.VOLUNTEER, Role.MERCHANT)
]
AnyMember = Annotated[
    Principal,
    require(Role.OFFICER, Role.ADMIN, Role.APP, Role.VOLUNTEER, Role.AUDITOR, Role.MERCHANT),
]
IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=8,
        max_length=128,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="Unique per completion attempt; repeating it returns the original result.",
    ),
]


def _q(request: Request) -> Queries:
    q: Queries = request.app.state.queries
    return q


def _contracts(request: Request) -> Contracts:
    c: Contracts = request.app.state.contracts
    return c


Q = Annotated[Queries, Depends(_q)]
Events = Annotated[Contracts, Depends(_contracts)]

REFUSALS = {
    409: {"description": "Refused by a rule; `reason` says which"},
    404: {"description": "No such job or completion in your organisation"},
}

jobs = APIRouter(prefix="/v1/jobs", tags=["jobs"])
completions = APIRouter(prefix="/v1/completions", tags=["completions"])
orgs = APIRouter(prefix="/v1", tags=["organisation"])
menus = APIRouter(prefix="/v1/menus", tags=["jobs"])
appeals = APIRouter(prefix="/v1/appeals", tags=["appeals"])
hazards = APIRouter(prefix="/v1/hazards", tags=["hazard reports"])
needs = APIRouter(prefix="/v1/needs", tags=["micro-wishes and offers"])
audit = APIRouter(prefix="/v1/audit", tags=["audit"])

PathId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]
Limit = Annotated[int, Query(ge=1, le=1000, description="At most this many items")]


def _acting_for(who: Principal, account_id: str) -> None:
    if who.role == Role.VOLUNTEER and who.subject != account_id:
        raise HTTPException(403, "a volunteer may act only for their own account")


def _job_out(row: asyncpg.Record, who: Principal) -> JobOut:
    # the check-in secret never leaves the service; officers fetch the current code alone
    return JobOut(**{k: v for k, v in dict(row).items() if k not in ("checkin_secret",)})


def _checkin_rules(request: Request) -> CheckinRules:
    s: TasksSettings = request.app.state.settings
    return CheckinRules(
        step_seconds=s.checkin_step_seconds,
        max_failures=s.checkin_max_failures,
        window_seconds=s.checkin_failure_window_seconds,
    )


async def _history(
    conn: asyncpg.Connection, q: Queries, org: str, subject: str, sid: UUID
) -> list[StatusChangeOut]:
    return [
        StatusChangeOut(**dict(r)) for r in await conn.fetch(q["history_of"], org, subject, sid)
    ]


@jobs.post("", status_code=201, response_model=JobOut, summary="Publish a job", responses=REFUSALS)
async def publish_job(body: JobIn, conn: Conn, q: Q, contracts: Events, who: Officer) -> JobOut:
    row = await handlers.publish_job(conn, q, contracts, org=who.org, officer=who.subject, job=body)
    return _job_out(row, who)


@jobs.get("", response_model=list[JobOut], summary="The service menu: jobs of your organisation")
async def list_jobs(
    conn: Conn,
    q: Q,
    who: Reader,
    community_id: Annotated[
        str | None, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
    ] = None,
    month: Annotated[
        str | None, Query(pattern=r"^20[0-9]{2}-(0[1-9]|1[0-2])$", examples=["2026-11"])
    ] = None,
    category: Annotated[
        str | None,
        Query(
            pattern=r"^[a-z][a-z0-9_]{0,39}$",
            description="A built-in or organisation category",
            examples=[Category.MEAL_DELIVERY.value],
        ),
    ] = None,
    open_only: Annotated[
        bool, Query(alias="open", description="Only jobs with places left")
    ] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[JobOut]:
    start = end = None
    if month:
        year, mon = map(int, month.split("-"))
        start = datetime(year, mon, 1, tzinfo=UTC)
        end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=UTC)
    rows = await conn.fetch(
        q["list_jobs"],
        who.org,
        community_id,
        category,
        start,
        end,
        open_only,
        limit,
    )
    return [_job_out(r, who) for r in rows]


@jobs.get("/{job_id}", response_model=JobOut, summary="One job", responses=REFUSALS)
async def get_job(job_id: UUID, conn: Conn, q: Q, who: Reader) -> JobOut:
    row = await conn.fetchrow(q["get_job"], job_id, who.org)
    if row is None:
        raise HTTPException(404, f"no job {job_id}")
    return _job_out(row, who)


@jobs.post(
    "/{job_id}/claims",
    status_code=201,
    response_model=ClaimOut,
    summary="Claim a place on a job for a volunteer",
    responses=REFUSALS,
)
async def claim(
    job_id: UUID, body: ClaimIn, conn: Conn, q: Q, contracts: Events, who: Actor
) -> ClaimOut:
    _acting_for(who, body.account_id)
    row = await handlers.claim_job(
        conn, q, contracts, org=who.org, job_id=job_id, account_id=body.account_id, by=who.subject
    )
    return ClaimOut(**dict(row))


@jobs.post(
    "/{job_id}/completions",
    status_code=201,
    response_model=CompletionOut,
    summary="Post a completion (idempotent by Idempotency-Key)",
    responses={**REFUSALS, 200: {"description": "The same key was used before: the original"}},
)
async def complete(
    job_id: UUID,
    body: CompletionIn,
    conn: Conn,
    q: Q,
    contracts: Events,
    who: Actor,
    key: IdempotencyKey,
    request: Request,
    response: Response,
) -> CompletionOut:
    _acting_for(who, body.account_id)
    grace = timedelta(hours=request.app.state.settings.completion_grace_hours)
    row, created = await handlers.complete_job(
        conn,
        q,
        contracts,
        org=who.org,
        job_id=job_id,
        body=body,
        by=who.subject,
        idempotency_key=key,
        grace=grace,
        checkin=_checkin_rules(request),
    )
    if not created:
        response.status_code = 200
    return CompletionOut(**dict(row))


@jobs.get(
    "/{job_id}/checkin-code",
    response_model=CheckinCodeOut,
    summary="The check-in code to show at the place now (officers and admins)",
    description="A check-in job's code changes every step (`JIFEN_TASKS_CHECKIN_STEP_SECONDS`, "
    "three minutes by default) and is accepted during its step and the next one, so a photo "
    "of it is useless a few minutes later. Show it on a screen, or `qr_payload` as a QR code "
    "for the app to scan; fetch again at `refresh_at`. The job's secret never leaves the "
    "service.",
    responses={
        **REFUSALS,
        409: {"description": "`not_checkin`: the job is not verified by check-in"},
    },
)
async def checkin_code(
    job_id: UUID, conn: Conn, q: Q, who: Officer, request: Request, response: Response
) -> CheckinCodeOut:
    row = await conn.fetchrow(q["get_job_secret"], job_id, who.org)
    if row is None:
        raise HTTPException(404, f"no job {job_id}")
    if row["verification"] != "checkin" or row["checkin_secret"] is None:
        raise Refusal(
            "not_checkin",
            f"此岗位不用签到码 job {job_id} is verified by {row['verification']}, not by check-in",
            verification=row["verification"],
        )
    rules = _checkin_rules(request)
    shown = current_code(row["checkin_secret"], str(job_id), datetime.now(UTC), rules.step_seconds)
    response.headers["Cache-Control"] = "no-store"
    return CheckinCodeOut(
        job_id=job_id,
        code=shown.code,
        step_seconds=rules.step_seconds,
        valid_from=shown.valid_from,
        refresh_at=shown.refresh_at,
        expires_at=shown.expires_at,
        qr_payload=f"jifen:checkin?job={job_id}&code={shown.code}",
    )


@completions.get(
    "/{completion_id}", response_model=CompletionOut, summary="One completion", responses=REFUSALS
)
async def get_completion(completion_id: UUID, conn: Conn, q: Q, who: Reader) -> CompletionOut:
    row = await conn.fetchrow(q["get_completion"], completion_id, who.org)
    if row is None or (who.role == Role.VOLUNTEER and row["account_id"] != who.subject):
        raise HTTPException(404, f"no completion {completion_id}")
    return CompletionOut(**dict(row))


@completions.post(
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


@jobs.post(
    "/{job_id}/claims/{account_id}/withdraw",
    response_model=ClaimOutFull,
    summary="Withdraw a claim before the window starts: the place is released",
    responses=REFUSALS,
)
async def withdraw(
    job_id: UUID, account_id: PathId, conn: Conn, q: Q, contracts: Events, who: Actor
) -> ClaimOutFull:
    _acting_for(who, account_id)
    row = await handlers.withdraw_claim(
        conn, q, contracts, org=who.org, job_id=job_id, account_id=account_id, by=who.subject
    )
    return ClaimOutFull(**dict(row))


@menus.post(
    "",
    status_code=201,
    response_model=list[JobOut],
    summary="Publish a community's monthly service menu: every job of the month at once",
    responses={**REFUSALS, 409: {"description": "A job outside the month, or unknown category"}},
)
async def publish_menu(
    body: MenuIn, conn: Conn, q: Q, contracts: Events, who: Officer
) -> list[JobOut]:
    rows = await handlers.publish_menu(
        conn, q, contracts, org=who.org, officer=who.subject, menu=body
    )
    return [_job_out(r, who) for r in rows]


@menus.post(
    "/roll",
    status_code=201,
    response_model=list[JobOut],
    summary="Publish a month's occurrence of every recurring job of a community (idempotent)",
    description="Each monthly series (e.g. a repair day on the 15th) gets its job for the "
    "month: same day, time, length, points and places. A month a series already has is "
    "skipped, so the list is empty when rolled twice.",
    responses=REFUSALS,
)
async def roll_menu(
    body: RollIn, conn: Conn, q: Q, contracts: Events, who: Officer
) -> list[JobOut]:
    rows = await handlers.roll_menu(
        conn,
        q,
        contracts,
        org=who.org,
        officer=who.subject,
        community_id=body.community_id,
        month=body.month,
    )
    return [_job_out(r, who) for r in rows]


# -- organisation, communities, categories --------------------------------------------------


@orgs.get(
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


@orgs.put(
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


@orgs.post(
    "/communities",
    status_code=201,
    response_model=CommunityOut,
    summary="Add a community (grid) to your organisation",
    responses={409: {"description": "A community with this id exists"}},
)
async def add_community(body: CommunityIn, conn: Conn, q: Q, who: Officer) -> CommunityOut:
    row = await conn.fetchrow(q["insert_community"], who.org, body.id, body.name, who.subject)
    if row is None:
        raise Refusal("community_exists", f"your organisation already has community {body.id!r}")
    return CommunityOut(**dict(row))


@orgs.get(
    "/communities", response_model=list[CommunityOut], summary="Your organisation's communities"
)
async def list_communities(conn: Conn, q: Q, who: AnyMember) -> list[CommunityOut]:
    return [CommunityOut(**dict(r)) for r in await conn.fetch(q["list_communities"], who.org)]


@orgs.post(
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
    _acting_for(who, body.account_id)
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


@orgs.get(
    "/communities/{community_id}/members",
    response_model=list[MemberOut],
    summary="Volunteers registered with a community",
)
async def members(
    community_id: PathId, conn: Conn, q: Q, who: Officer, limit: Limit = 500
) -> list[MemberOut]:
    rows = await conn.fetch(q["list_members"], who.org, community_id, limit)
    return [MemberOut(**dict(r)) for r in rows]


@orgs.get(
    "/volunteers/{account_id}/communities",
    response_model=list[CommunityOut],
    summary="The communities a volunteer is registered with",
)
async def communities_of(account_id: PathId, conn: Conn, q: Q, who: Reader) -> list[CommunityOut]:
    _acting_for(who, account_id)
    rows = await conn.fetch(q["communities_of"], who.org, account_id)
    return [
        CommunityOut(
            org_id=who.org, id=r["id"], name=r["name"], created_by="", created_at=r["registered_at"]
        )
        for r in rows
    ]


@orgs.get(
    "/categories", response_model=list[CategoryOut], summary="Job categories: built in and yours"
)
async def categories(conn: Conn, q: Q, who: AnyMember) -> list[CategoryOut]:
    out = [
        CategoryOut(code=c.value, label=c.value.replace("_", " "), built_in=True) for c in Category
    ]
    out += [
        CategoryOut(code=r["code"], label=r["label"], built_in=False)
        for r in await conn.fetch(q["list_categories"], who.org)
    ]
    return out


@orgs.post(
    "/categories",
    status_code=201,
    response_model=CategoryOut,
    summary="Add a job category for your organisation",
    responses={409: {"description": "The code exists (built in or yours)"}},
)
async def add_category(body: CategoryIn, conn: Conn, q: Q, who: Officer) -> CategoryOut:
    if body.code in {c.value for c in Category}:
        raise Refusal("category_exists", f"{body.code!r} is a built-in category")
    row = await conn.fetchrow(q["insert_category"], who.org, body.code, body.label, who.subject)
    if row is None:
        raise Refusal("category_exists", f"your organisation already has category {body.code!r}")
    return CategoryOut(code=row["code"], label=row["label"], built_in=False)


# -- review of completions ---------------------------------------------------------------------


@completions.get(
    "",
    response_model=list[CompletionOut],
    summary="Completions: the review queue (status=held&hold_level=officer) or a volunteer's own",
)
async def list_completions(
    conn: Conn,
    q: Q,
    who: Reader,
    status: CompletionStatus | None = None,
    hold_level: Annotated[str | None, Query(pattern=r"^(officer|admin)$")] = None,
    account_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")] = None,
    limit: Limit = 200,
) -> list[CompletionOut]:
    if who.role == Role.VOLUNTEER:
        if account_id not in (None, who.subject):
            raise HTTPException(403, "a volunteer may list only their own completions")
        account_id = who.subject
    rows = await conn.fetch(
        q["list_completions"],
        who.org,
        status.value if status else None,
        account_id,
        hold_level,
        limit,
    )
    return [CompletionOut(**dict(r)) for r in rows]


@completions.get(
    "/{completion_id}/history",
    response_model=list[StatusChangeOut],
    summary="Every status a completion went through: who, when, why",
    responses=REFUSALS,
)
async def completion_history(
    completion_id: UUID, conn: Conn, q: Q, who: Reader
) -> list[StatusChangeOut]:
    row = await conn.fetchrow(q["get_completion"], completion_id, who.org)
    if row is None or (who.role == Role.VOLUNTEER and row["account_id"] != who.subject):
        raise HTTPException(404, f"no completion {completion_id}")
    return await _history(conn, q, who.org, "completion", completion_id)


@completions.post(
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


@completions.post(
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


@completions.post(
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


# -- appeals ---------------------------------------------------------------------------------


async def _appeal_out(conn: asyncpg.Connection, q: Queries, row: asyncpg.Record) -> AppealOut:
    decisions = [DecisionOut(**dict(d)) for d in await conn.fetch(q["decisions_of"], row["id"])]
    return AppealOut(**dict(row), decisions=decisions)


@appeals.post(
    "",
    status_code=201,
    response_model=AppealOut,
    summary="Appeal a rejection, a hold or a credit that never arrived",
    responses=REFUSALS,
)
async def file_appeal(body: AppealIn, conn: Conn, q: Q, contracts: Events, who: Actor) -> AppealOut:
    c = await conn.fetchrow(q["get_completion"], body.completion_id, who.org)
    if c is None or (who.role == Role.VOLUNTEER and c["account_id"] != who.subject):
        raise HTTPException(404, f"no completion {body.completion_id}")
    row = await handlers.file_appeal(conn, q, contracts, org=who.org, by=who.subject, body=body)
    return await _appeal_out(conn, q, row)


@appeals.get("", response_model=list[AppealOut], summary="Appeals (a volunteer sees their own)")
async def list_appeals(
    conn: Conn,
    q: Q,
    who: Reader,
    status: Annotated[str | None, Query(pattern=r"^(open|upheld|dismissed)$")] = None,
    account_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")] = None,
    limit: Limit = 200,
) -> list[AppealOut]:
    if who.role == Role.VOLUNTEER:
        if account_id not in (None, who.subject):
            raise HTTPException(403, "a volunteer may list only their own appeals")
        account_id = who.subject
    rows = await conn.fetch(q["list_appeals"], who.org, account_id, status, limit)
    return [await _appeal_out(conn, q, r) for r in rows]


@appeals.get(
    "/{appeal_id}",
    response_model=AppealOut,
    summary="One appeal with every decision (who, when, why)",
    responses=REFUSALS,
)
async def get_appeal(appeal_id: UUID, conn: Conn, q: Q, who: Reader) -> AppealOut:
    row = await conn.fetchrow(q["get_appeal"], appeal_id, who.org)
    if row is None or (who.role == Role.VOLUNTEER and row["account_id"] != who.subject):
        raise HTTPException(404, f"no appeal {appeal_id}")
    return await _appeal_out(conn, q, row)


@appeals.post(
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
        body=body,
    )
    return await _appeal_out(conn, q, row)


# -- hazard reports --------------------------------------------------------------------------


async def _hazard_out(conn: asyncpg.Connection, q: Queries, row: asyncpg.Record) -> HazardOut:
    return HazardOut(
        **dict(row), history=await _history(conn, q, row["org_id"], "hazard", row["id"])
    )


@hazards.post(
    "", status_code=201, response_model=HazardOut, summary="Report a hazard", responses=REFUSALS
)
async def report_hazard(
    body: HazardIn, conn: Conn, q: Q, contracts: Events, who: Actor
) -> HazardOut:
    _acting_for(who, body.account_id)
    row = await handlers.report_hazard(conn, q, contracts, org=who.org, by=who.subject, body=body)
    return await _hazard_out(conn, q, row)


@hazards.get(
    "", response_model=list[HazardOut], summary="Hazard reports (a volunteer sees their own)"
)
async def list_hazards(
    conn: Conn,
    q: Q,
    who: Reader,
    status: HazardStatus | None = None,
    community_id: Annotated[
        str | None, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
    ] = None,
    kind: HazardKind | None = None,
    limit: Limit = 200,
) -> list[HazardOut]:
    account = who.subject if who.role == Role.VOLUNTEER else None
    rows = await conn.fetch(
        q["list_hazards"],
        who.org,
        status.value if status else None,
        community_id,
        account,
        limit,
        kind.value if kind else None,
    )
    return [await _hazard_out(conn, q, r) for r in rows]


@hazards.get(
    "/{hazard_id}",
    response_model=HazardOut,
    summary="One hazard report with its history: report -> task -> done",
    responses=REFUSALS,
)
async def get_hazard(hazard_id: UUID, conn: Conn, q: Q, who: Reader) -> HazardOut:
    row = await conn.fetchrow(q["get_hazard"], hazard_id, who.org)
    if row is None or (who.role == Role.VOLUNTEER and row["account_id"] != who.subject):
        raise HTTPException(404, f"no hazard report {hazard_id}")
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
        job=body.job,
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
    return NeedOut(**dict(row), history=await _history(conn, q, row["org_id"], "need", row["id"]))


@needs.post(
    "",
    status_code=201,
    response_model=NeedOut,
    summary="Post a resident's micro-wish or a partner's offer",
    responses=REFUSALS,
)
async def post_need(body: NeedIn, conn: Conn, q: Q, contracts: Events, who: Poster) -> NeedOut:
    row = await handlers.post_need(conn, q, contracts, org=who.org, by=who.subject, body=body)
    return await _need_out(conn, q, row)


@needs.get("", response_model=list[NeedOut], summary="Micro-wishes and offers")
async def list_needs(
    conn: Conn,
    q: Q,
    who: AnyMember,
    status: NeedStatus | None = None,
    kind: NeedKind | None = None,
    community_id: Annotated[
        str | None, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
    ] = None,
    limit: Limit = 200,
) -> list[NeedOut]:
    rows = await conn.fetch(
        q["list_needs"],
        who.org,
        status.value if status else None,
        kind.value if kind else None,
        community_id,
        limit,
    )
    return [await _need_out(conn, q, r) for r in rows]


@needs.get("/{need_id}", response_model=NeedOut, summary="One wish or offer, with its history")
async def get_need(need_id: UUID, conn: Conn, q: Q, who: AnyMember) -> NeedOut:
    row = await conn.fetchrow(q["get_need"], need_id, who.org)
    if row is None:
        raise HTTPException(404, f"no wish or offer {need_id}")
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
        raise HTTPException(403, f"a {who.role.value} may claim only for themselves")
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
        job=body.job,
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


# -- audit -----------------------------------------------------------------------------------


@audit.get(
    "/completions",
    response_model=AuditPage,
    summary="Every completion ever verified in your organisation, oldest first (auditor)",
    description="For reconciliation against the ledger: each verified completion must have "
    "exactly one credit, each revoked one exactly one reversal. Page with `after` = the "
    "previous `next_cursor`; `next_cursor` is null on the last page. Ordered by verification "
    "commit order, so paging never skips a completion committed later.",
)
async def audit_completions(
    conn: Conn,
    q: Q,
    contracts: Events,
    who: Auditor,
    after: Annotated[
        str | None, Query(pattern=r"^[0-9]{1,18}$", description="A next_cursor from before")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> AuditPage:
    rows = await conn.fetch(q["audit_completions"], who.org, int(after or 0), limit)
    items = [
        AuditCompletion(
            completion_id=r["id"],
            account_id=r["account_id"],
            job_id=r["job_id"],
            points=r["points"],
            status=r["status"],
            verified_event_id=r["verified_event_id"],
            revoked_event_id=r["revoked_event_id"],
            verified_at=r["verified_at"],
            revoked_at=r["revoked_at"],
        )
        for r in rows
    ]
    cursor = str(rows[-1]["verified_seq"]) if len(rows) == limit else None
    return AuditPage(items=items, next_cursor=cursor)


def build_app(settings: TasksSettings | None = None) -> FastAPI:
    from jifen.kernel.runtime import cancel, spawn
    from jifen.tasks.metrics import refresh_loop

    settings = settings or TasksSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from jifen.tasks.db import queries

        app.state.settings = settings
        app.state.verifier = TokenVerifier(settings.keys_dir)
        app.state.queries = queries()
        app.state.contracts = Contracts(settings.schemas_dir)
        app.state.pool = await create_pool(settings.database_url)
        app.state.ready_checks["database"] = lambda: pool_check(app.state.pool)
        gauges = spawn(refresh_loop(app.state.pool), "business-metrics")
        try:
            yield
        finally:
            await cancel(gauges)
            await app.state.pool.close()

    app = create_app(
        service="tasks",
        title="Jifen tasks",
        description="Governance jobs, claims, completions and verification. Every state change "
        "is committed with its event (transactional outbox).",
        lifespan=lifespan,
    )

    @app.exception_handler(TooManyAttempts)
    async def _too_many(_: Request, exc: TooManyAttempts) -> JSONResponse:
        response = problem(429, "Too Many Requests", exc.detail, reason=exc.reason, **exc.facts)
        response.headers["Retry-After"] = str(exc.facts.get("retry_after", 60))
        return response

    for router in (orgs, menus, jobs, completions, appeals, hazards, needs, audit):
        app.include_router(router)
    # community apps' credentials live here, where apps post; the tokens work on every service
    app.include_router(credentials_router())
    return app
