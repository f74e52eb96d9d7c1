"""/v1/people and /v1/signin: the organisation's records of who holds which role, and signing
in with a phone number and a one-time code (``domain/signin.py`` has the rules).

A community app asks for a code (``POST /v1/signin/codes``); the code goes to the phone through
the sender (``jifen.tasks.sender``), never to the app; the app posts the code the person typed
(``POST /v1/signin/tokens``) and gets one token per role the records give that number. Only
apps call these two (their credential's organisation is the one signed in to), so a person's
token is never had without both an app credential and the person's phone."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse

from jifen.kernel.auth import Principal, Role, issue_token, require
from jifen.kernel.errors import NotFound
from jifen.kernel.i18n import Said
from jifen.kernel.pages import Page, Paging
from jifen.kernel.web import ParsedBodyRoute, max_body, said
from jifen.tasks.api.deps import Admin, Conn, Q, sender_of
from jifen.tasks.api.schemas import (
    CodeIn,
    CodeSent,
    MessageOut,
    PersonIn,
    PersonOut,
    RoleSession,
    SignedIn,
    SigninIn,
)
from jifen.tasks.domain import signin as rules
from jifen.tasks.sender import SenderUnavailable

people = APIRouter(prefix="/v1/people", tags=["people"], route_class=ParsedBodyRoute)
signin = APIRouter(prefix="/v1/signin", tags=["sign-in"], route_class=ParsedBodyRoute)

App = Annotated[Principal, require(Role.APP)]
Staff = Annotated[Principal, require(Role.ADMIN, Role.OFFICER)]
Operator = Annotated[Principal, require(Role.OPERATOR)]

REFUSALS = {
    401: {"description": "`wrong_code`, `no_live_code` or `code_void`: ask for a new code"},
    429: {"description": "`code_requested_too_often`: see Retry-After"},
}


@people.post(
    "",
    status_code=201,
    response_model=PersonOut,
    summary="Record a person's phone number and role in your organisation (admin)",
    responses={
        409: {"description": "`person_exists`: that phone or person already holds the role"}
    },
)
async def add_person(
    body: PersonIn, request: Request, conn: Conn, q: Q, who: Admin
) -> PersonOut | JSONResponse:
    row = await conn.fetchrow(
        q["insert_person"],
        who.org,
        body.person_id,
        body.phone,
        body.role,
        body.display_name,
        who.subject,
    )
    if row is None:
        return said(
            request,
            409,
            f"{rules.mask(body.phone)} 或 {body.person_id} 在本组织已有角色 {body.role}",
            f"{rules.mask(body.phone)} or {body.person_id} already holds the role {body.role} here",
            title="Refused",
            reason="person_exists",
        )
    return PersonOut(**dict(row))


@people.get(
    "", response_model=Page[PersonOut], summary="The organisation's people (admin, officer)"
)
async def list_people(
    conn: Conn,
    q: Q,
    who: Staff,
    paging: Paging,
    role: Annotated[str | None, Query(pattern=r"^[a-z]{1,20}$")] = None,
) -> Page[PersonOut]:
    rows = await conn.fetch(
        q["list_people"], who.org, role, paging.fetch, *paging.after(datetime, str)
    )
    return paging.page(
        rows, lambda r: (r["created_at"], r["person_id"]), lambda r: PersonOut(**dict(r))
    )


@signin.post(
    "/codes",
    status_code=202,
    response_model=CodeSent,
    openapi_extra=max_body(1024),
    summary="Send a one-time sign-in code to a phone (community apps)",
    description="The same answer whether or not the number is on your organisation's records; "
    "only a number on record receives a code.",
    responses=REFUSALS,
)
async def send_code(
    body: CodeIn, request: Request, conn: Conn, q: Q, who: App
) -> CodeSent | JSONResponse:
    now = datetime.now(UTC)
    async with conn.transaction():
        # one request per number at a time, so two cannot both pass the limits below
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1 || ':' || $2))", who.org, body.phone
        )
        last = await conn.fetchval(q["last_signin_code_at"], who.org, body.phone)
        if last is not None and (now - last).total_seconds() < rules.RESEND_SECONDS:
            raise rules.too_soon(rules.RESEND_SECONDS - int((now - last).total_seconds()))
        recent = await conn.fetchval(
            q["signin_codes_since"], who.org, body.phone, now - timedelta(hours=1)
        )
        if recent >= rules.CODES_PER_HOUR:
            raise rules.too_soon(3600)
        on_record = await conn.fetch(q["people_by_phone"], who.org, body.phone)
        code = rules.new_code()
        stored = (
            rules.code_hash(who.org, body.phone, code) if on_record else rules.unguessable_hash()
        )
        await conn.execute(
            q["insert_signin_code"],
            uuid.uuid4(),
            who.org,
            body.phone,
            stored,
            now + timedelta(seconds=rules.CODE_TTL_SECONDS),
        )
        if on_record:
            org = await conn.fetchrow(q["get_organisation"], who.org)
            name = (org["name"] if org and org["name"] else "") or "积分 Jifen"
            try:
                await sender_of(request).send(
                    conn, q, org=who.org, to=body.phone, text=rules.message(code, name)
                )
            except SenderUnavailable as exc:
                raise HTTPException(
                    503, Said(f"短信网关不可用：{exc}", f"the SMS gateway is unavailable: {exc}")
                ) from exc
    masked = rules.mask(body.phone)
    return CodeSent(
        sent_to=masked,
        expires_in=rules.CODE_TTL_SECONDS,
        detail=f"如果 {masked} 在本组织登记过，验证码已发出 — if {masked} is on the organisation's "
        "records, a code is on its way",
    )


@signin.post(
    "/tokens",
    response_model=SignedIn,
    openapi_extra=max_body(1024),
    summary="Exchange a phone number and its code for the person's tokens (community apps)",
    responses=REFUSALS,
)
async def sign_in(body: SigninIn, request: Request, conn: Conn, q: Q, who: App) -> SignedIn:
    async with conn.transaction():
        live = await conn.fetchrow(q["live_signin_code"], who.org, body.phone)
        if live is None:
            raise rules.no_live_code()
        if not rules.matches(live["code_sha256"], who.org, body.phone, body.code):
            failed = await conn.fetchrow(q["fail_signin_code"], live["id"], rules.MAX_FAILURES)
            refusal = rules.wrong_code(rules.MAX_FAILURES - failed["failures"])
        else:
            refusal = None
            await conn.execute(q["use_signin_code"], live["id"])
    if refusal is not None:  # raised after the commit, so the failure is counted
        raise refusal
    held = await conn.fetch(q["people_by_phone"], who.org, body.phone)
    if not held:  # taken off the records since the code was sent
        raise rules.no_live_code()
    return signed_in(request, who.org, held)


def signed_in(request: Request, org: str, held: Sequence[Mapping[str, Any]]) -> SignedIn:
    """One token per role the records hold (``people_by_phone`` rows), as any sign-in gives."""
    keys = request.app.state.settings.keys_dir
    sessions = [
        RoleSession(
            role=r["role"],
            person_id=r["person_id"],
            access_token=issue_token(
                keys,
                subject=r["person_id"],
                role=r["role"],
                org=org,
                ttl_seconds=rules.SESSION_TTL_SECONDS,
            ),
            expires_in=rules.SESSION_TTL_SECONDS,
        )
        for r in held
    ]
    names = [r["display_name"] for r in held if r["display_name"]]
    return SignedIn(
        person_id=held[0]["person_id"],
        display_name=names[0] if names else "",
        org_id=org,
        sessions=sessions,
    )


@signin.get(
    "/messages",
    response_model=Page[MessageOut],
    summary="What the embedded sender kept instead of sending (operators; embedded stack only)",
    responses={404: {"description": "The sender is an SMS gateway: it holds the messages"}},
)
async def messages(
    request: Request, response: Response, conn: Conn, q: Q, who: Operator, paging: Paging
) -> Page[MessageOut]:
    if sender_of(request).kind != "log":
        raise NotFound(
            Said(
                "短信经短信网关发出，这里不保存",
                "messages go to the SMS gateway; none are kept here",
            )
        )
    rows = await conn.fetch(q["list_outbound_messages"], who.org, paging.fetch, *paging.after(int))
    response.headers["Cache-Control"] = "no-store"
    return paging.page(rows, lambda r: (r["id"],), lambda r: MessageOut(**dict(r)))
