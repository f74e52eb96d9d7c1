"""The tasks API: jobs, claims, completions, verification."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request, Response

from jifen.kernel.auth import Principal, Role, TokenVerifier, require
from jifen.kernel.contracts import Contracts
from jifen.kernel.db import Queries, create_pool
from jifen.kernel.web import Refusal, create_app, pool_check
from jifen.tasks import handlers
from jifen.tasks.api.schemas import ClaimIn, ClaimOut, CompletionIn, CompletionOut, JobIn, JobOut
from jifen.tasks.domain.jobs import Category, TasksRefusal
from jifen.tasks.settings import TasksSettings


async def _conn(request: Request) -> AsyncIterator[asyncpg.Connection]:
    async with request.app.state.pool.acquire() as conn:
        yield conn


Conn = Annotated[asyncpg.Connection, Depends(_conn)]
Officer = Annotated[Principal, require(Role.OFFICER, Role.ADMIN)]
Actor = Annotated[Principal, require(Role.APP, Role.VOLUNTEER)]
Reader = Annotated[
    Principal, require(Role.OFFICER, Role.ADMIN, Role.APP, Role.VOLUNTEER, Role.AUDITOR)
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


def _acting_for(who: Principal, account_id: str) -> None:
    if who.role == Role.VOLUNTEER and who.subject != account_id:
        raise HTTPException(403, "a volunteer may act only for their own account")


@jobs.post("", status_code=201, response_model=JobOut, summary="Publish a job", responses=REFUSALS)
async def publish_job(body: JobIn, conn: Conn, q: Q, contracts: Events, who: Officer) -> JobOut:
    row = await handlers.publish_job(conn, q, contracts, org=who.org, officer=who.subject, job=body)
    return JobOut(**dict(row))


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
    category: Category | None = None,
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
        category.value if category else None,
        start,
        end,
        open_only,
        limit,
    )
    return [JobOut(**dict(r)) for r in rows]


@jobs.get("/{job_id}", response_model=JobOut, summary="One job", responses=REFUSALS)
async def get_job(job_id: UUID, conn: Conn, q: Q, who: Reader) -> JobOut:
    row = await conn.fetchrow(q["get_job"], job_id, who.org)
    if row is None:
        raise HTTPException(404, f"no job {job_id}")
    return JobOut(**dict(row))


@jobs.post(
    "/{job_id}/claims",
    status_code=201,
    response_model=ClaimOut,
    summary="Claim a place on a job for a volunteer",
    responses=REFUSALS,
)
async def claim(job_id: UUID, body: ClaimIn, conn: Conn, q: Q, who: Actor) -> ClaimOut:
    _acting_for(who, body.account_id)
    row = await handlers.claim_job(
        conn, q, org=who.org, job_id=job_id, account_id=body.account_id, by=who.subject
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
        org=who.org,
        job_id=job_id,
        body=body,
        by=who.subject,
        idempotency_key=key,
        grace=grace,
    )
    if not created:
        response.status_code = 200
    return CompletionOut(**dict(row))


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


def build_app(settings: TasksSettings | None = None) -> FastAPI:
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
        try:
            yield
        finally:
            await app.state.pool.close()

    app = create_app(
        service="tasks",
        title="Jifen tasks",
        description="Governance jobs, claims, completions and verification. Every state change "
        "is committed with its event (transactional outbox).",
        lifespan=lifespan,
    )

    @app.exception_handler(TasksRefusal)
    async def _refused(request: Request, exc: TasksRefusal) -> Response:
        handler = app.exception_handlers[Refusal]
        return await handler(request, Refusal(exc.reason, exc.detail, **exc.facts))  # type: ignore[no-any-return]

    @app.exception_handler(handlers.NotFound)
    async def _missing(request: Request, exc: handlers.NotFound) -> Response:
        handler = app.exception_handlers[HTTPException]
        return await handler(request, HTTPException(404, str(exc)))  # type: ignore[no-any-return]

    app.include_router(jobs)
    app.include_router(completions)
    return app
