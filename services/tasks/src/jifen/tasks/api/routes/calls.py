"""/v1/mobilisations, /v1/help-requests, /v1/calls: calling volunteers (issue 21, part 5).

An officer mobilises a community's volunteers (the typhoon call-up); a volunteer asks the
others of their communities for help. Each recipient with a phone on record is told through
the sender (``jifen.tasks.sender``: the embedded log sender, or an SMS gateway) and answers
available or not; the caller reads the roll-call as it fills (``GET /v1/calls/{id}``)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Header, Query, Request, Response

from jifen.kernel.auth import Principal, Role, require
from jifen.kernel.db import Queries
from jifen.kernel.pages import Page, Paging
from jifen.kernel.web import ParsedBodyRoute, max_body
from jifen.tasks import handlers
from jifen.tasks.api.deps import (
    ID_PATTERN,
    REFUSALS,
    Actor,
    Conn,
    Officer,
    Q,
    acting_for,
    sender_of,
)
from jifen.tasks.api.schemas.calls import (
    AnswerIn,
    AnswerOut,
    CallBrief,
    CallOut,
    Counts,
    HelpIn,
    MobiliseIn,
    RollEntry,
)
from jifen.tasks.handlers.calls import no_call

router = APIRouter(tags=["calls"], route_class=ParsedBodyRoute)
# optional on a call: a retry with the same key is the same call, and no one is told twice
RetryKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=8,
        max_length=128,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="Optional: the same key again (from the same caller) answers the call made "
        "the first time, 200, and tells no one again.",
    ),
]
Reader = Annotated[Principal, require(Role.OFFICER, Role.ADMIN, Role.APP, Role.VOLUNTEER)]


async def _out(conn: asyncpg.Connection, q: Queries, call: asyncpg.Record) -> CallOut:
    roll = [RollEntry(**dict(r)) for r in await conn.fetch(q["call_roll"], call["id"])]
    answers = [r.answer for r in roll]
    counts = Counts(
        recipients=len(roll),
        notified=sum(r.notified for r in roll),
        available=answers.count("available"),
        unavailable=answers.count("unavailable"),
        no_answer=answers.count(None),
    )
    return CallOut(**dict(call), counts=counts, roll=roll)


@router.post(
    "/v1/mobilisations",
    status_code=201,
    response_model=CallOut,
    summary="Mobilise a community's volunteers: each is told and answers available or not",
    description="紧急召集 Every volunteer registered with the community is a recipient; those "
    "with a phone on record get the message through the sender. They answer with POST "
    "/v1/calls/{id}/answers until it closes (open_minutes); GET /v1/calls/{id} is the "
    "roll-call.",
    responses={**REFUSALS, 200: {"description": "Sent before with this Idempotency-Key"}},
    openapi_extra=max_body(4096),
)
async def mobilise(
    body: MobiliseIn,
    request: Request,
    response: Response,
    conn: Conn,
    q: Q,
    who: Officer,
    key: RetryKey = None,
) -> CallOut:
    call, new = await handlers.mobilise(
        conn, q, sender_of(request), org=who.org, officer=who.subject,
        community_id=body.community_id, message=body.message, job_id=body.job_id,
        open_for=timedelta(minutes=body.open_minutes), key=key,
    )  # fmt: skip
    if not new:
        response.status_code = 200
    return await _out(conn, q, call)


@router.post(
    "/v1/help-requests",
    status_code=201,
    response_model=CallOut,
    summary="Ask the volunteers of your communities for help (a volunteer, or their app)",
    description="请求支援 The others registered with any community the volunteer is "
    "registered with are asked; once in ten minutes per volunteer (429 help_too_soon).",
    responses={
        **REFUSALS,
        200: {"description": "Sent before with this Idempotency-Key"},
        429: {"description": "help_too_soon: see Retry-After"},
    },
    openapi_extra=max_body(4096),
)
async def ask_for_help(
    body: HelpIn,
    request: Request,
    response: Response,
    conn: Conn,
    q: Q,
    who: Actor,
    key: RetryKey = None,
) -> CallOut:
    acting_for(who, body.account_id)
    call, new = await handlers.ask_for_help(
        conn, q, sender_of(request), org=who.org, account_id=body.account_id,
        message=body.message, open_for=timedelta(minutes=body.open_minutes), key=key,
    )  # fmt: skip
    if not new:
        response.status_code = 200
    return await _out(conn, q, call)


@router.get(
    "/v1/calls/{call_id}",
    response_model=CallOut,
    summary="A call's roll-call: who was told, who answered what",
    description="Officers and the admin read any call of the organisation; a volunteer their "
    "own help request, an app its volunteers' help requests.",
)
async def roll_call(call_id: uuid.UUID, conn: Conn, q: Q, who: Reader) -> CallOut:
    call = await conn.fetchrow(q["get_call"], call_id, who.org)
    staff = who.role in (Role.OFFICER, Role.ADMIN)
    own_help = (
        call is not None
        and call["kind"] == "help"
        and (who.role == Role.APP or call["created_by"] == who.subject)
    )
    if call is None or not (staff or own_help):
        raise no_call(call_id)
    return await _out(conn, q, call)


@router.post(
    "/v1/calls/{call_id}/answers",
    response_model=AnswerOut,
    summary="Answer a call: available or not (a recipient, or their app)",
    description="Again: the latest answer counts. Closed: 409 call_closed. Not a recipient: 404.",
    responses=REFUSALS,
    openapi_extra=max_body(1024),
)
async def answer(call_id: uuid.UUID, body: AnswerIn, conn: Conn, q: Q, who: Actor) -> AnswerOut:
    acting_for(who, body.account_id)
    row = await handlers.answer_call(
        conn, q, org=who.org, call_id=call_id, account_id=body.account_id,
        answer=body.answer, note=body.note,
    )  # fmt: skip
    return AnswerOut(**dict(row))


@router.get(
    "/v1/calls",
    response_model=Page[CallBrief],
    summary="The open calls addressed to an account, newest first (a volunteer's own, or their "
    "app's)",
)
async def open_calls(
    conn: Conn,
    q: Q,
    who: Actor,
    paging: Paging,
    account_id: Annotated[str, Query(pattern=ID_PATTERN)],
) -> Page[CallBrief]:
    acting_for(who, account_id)
    rows = await conn.fetch(
        q["open_calls_for"], who.org, account_id, *paging.after(datetime, uuid.UUID), paging.fetch
    )
    return paging.page(rows, lambda r: (r["created_at"], r["id"]), lambda r: CallBrief(**dict(r)))
