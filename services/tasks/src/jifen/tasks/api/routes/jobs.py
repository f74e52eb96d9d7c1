"""/v1/jobs: publish and list jobs, claim a place, post a completion, withdraw a claim, and
the rotating check-in code officers show at the place."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response
from pydantic import TypeAdapter, ValidationError
from starlette.responses import Response as StarletteResponse

from jifen.kernel.auth import Principal, admit, bearer_token
from jifen.kernel.i18n import Said
from jifen.kernel.lane import answer, idempotency_key, json_body
from jifen.kernel.pages import Page, Paging
from jifen.kernel.web import ParsedBodyRoute, Refusal, pooled
from jifen.tasks import handlers
from jifen.tasks.api.deps import (
    ACTOR_ROLES,
    REFUSALS,
    Actor,
    Conn,
    Events,
    IdempotencyKey,
    IdFilter,
    Officer,
    PathId,
    Q,
    Reader,
    acting_for,
    checkin_rules,
    contracts_of,
    queries_of,
)
from jifen.tasks.api.reads import job_out
from jifen.tasks.api.schemas import (
    CheckinCodeOut,
    ClaimIn,
    ClaimOut,
    ClaimOutFull,
    CompletionIn,
    CompletionOut,
    JobIn,
    JobOut,
)
from jifen.tasks.api.schemas.common import MONTH_PATTERN
from jifen.tasks.domain.checkin import current_code
from jifen.tasks.domain.jobs import Category, month_window, no_job

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], route_class=ParsedBodyRoute)


@router.post(
    "", status_code=201, response_model=JobOut, summary="Publish a job", responses=REFUSALS
)
async def publish_job(body: JobIn, conn: Conn, q: Q, contracts: Events, who: Officer) -> JobOut:
    row = await handlers.publish_job(
        conn, q, contracts, org=who.org, officer=who.subject, job=body.to_command()
    )
    return job_out(row)


@router.get("", response_model=Page[JobOut], summary="The service menu: jobs of your organisation")
async def list_jobs(
    conn: Conn,
    q: Q,
    who: Reader,
    paging: Paging,
    community_id: IdFilter = None,
    month: Annotated[str | None, Query(pattern=MONTH_PATTERN, examples=["2026-11"])] = None,
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
) -> Page[JobOut]:
    start, end = month_window(month)
    rows = await conn.fetch(
        q["list_jobs"],
        who.org,
        community_id,
        category,
        start,
        end,
        open_only,
        *paging.after(datetime, UUID),
        paging.fetch,
    )
    return paging.page(rows, lambda r: (r["starts_at"], r["id"]), job_out)


@router.get("/{job_id}", response_model=JobOut, summary="One job", responses=REFUSALS)
async def get_job(job_id: UUID, conn: Conn, q: Q, who: Reader) -> JobOut:
    row = await conn.fetchrow(q["get_job"], job_id, who.org)
    if row is None:
        raise no_job(job_id)
    return job_out(row)


@router.post(
    "/{job_id}/claims",
    status_code=201,
    response_model=ClaimOut,
    summary="Claim a place on a job for a volunteer",
    responses=REFUSALS,
)
async def claim(
    job_id: UUID, body: ClaimIn, conn: Conn, q: Q, contracts: Events, who: Actor
) -> ClaimOut:
    acting_for(who, body.account_id)
    row = await handlers.claim_job(
        conn, q, contracts, org=who.org, job_id=job_id, account_id=body.account_id, by=who.subject
    )
    return ClaimOut(**dict(row))


@router.post(
    "/{job_id}/completions",
    status_code=201,
    response_model=CompletionOut,
    summary="Post a completion (idempotent by Idempotency-Key)",
    responses={**REFUSALS, 200: {"description": "The same key was used before: the original"}},
)
async def complete(
    job_id: UUID,
    body: CompletionIn,
    who: Actor,
    key: IdempotencyKey,
    request: Request,
    response: Response,
) -> CompletionOut:
    # the hot path: answered by complete_lane below; this route is the OpenAPI document's and
    # the answer to every request the lane leaves to it (a bad path, header or body)
    out, created = await _complete(request, job_id, body, who, key)
    if not created:
        response.status_code = 200
    return out


_JOB_ID: TypeAdapter[UUID] = TypeAdapter(UUID)


async def complete_lane(request: Request) -> StarletteResponse | None:
    """``POST /v1/jobs/{job_id}/completions`` in the fast lane (jifen.kernel.lane): what
    :func:`complete` does, without FastAPI's dependency solving; None (the declared route
    answers) for a request whose job id, Idempotency-Key or body it would refuse."""
    key = idempotency_key(request)
    parsed = json_body(request)
    if key is None or not isinstance(parsed, dict):
        return None
    try:
        job_id = _JOB_ID.validate_python(request.path_params["job_id"])
        body = CompletionIn.model_validate(parsed)
    except ValidationError:
        return None
    who = admit(request, bearer_token(request), ACTOR_ROLES)
    out, created = await _complete(request, job_id, body, who, key)
    return answer(out, 201 if created else 200)


async def _complete(
    request: Request, job_id: UUID, body: CompletionIn, who: Principal, key: str
) -> tuple[CompletionOut, bool]:
    # queries and contracts read from the app, not solved as dependencies, and the connection
    # held only around the transaction, not while the answer is built and sent
    acting_for(who, body.account_id)
    grace = timedelta(hours=request.app.state.settings.completion_grace_hours)
    async with pooled(request.app.state.pool) as conn:
        row, created = await handlers.complete_job(
            conn,
            queries_of(request),
            contracts_of(request),
            org=who.org,
            job_id=job_id,
            body=body.to_command(),
            by=who.subject,
            idempotency_key=key,
            grace=grace,
            checkin=checkin_rules(request),
        )
    return CompletionOut(**dict(row)), created


@router.get(
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
        raise no_job(job_id)
    if row["verification"] != "checkin" or row["checkin_secret"] is None:
        raise Refusal(
            "not_checkin",
            Said(
                f"岗位 {job_id} 以 {row['verification']} 核验，不用签到码",
                f"job {job_id} is verified by {row['verification']}, not by check-in",
            ),
            verification=row["verification"],
        )
    rules = checkin_rules(request)
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


@router.post(
    "/{job_id}/claims/{account_id}/withdraw",
    response_model=ClaimOutFull,
    summary="Withdraw a claim before the window starts: the place is released",
    responses=REFUSALS,
)
async def withdraw(
    job_id: UUID, account_id: PathId, conn: Conn, q: Q, contracts: Events, who: Actor
) -> ClaimOutFull:
    acting_for(who, account_id)
    row = await handlers.withdraw_claim(
        conn, q, contracts, org=who.org, job_id=job_id, account_id=account_id, by=who.subject
    )
    return ClaimOutFull(**dict(row))
