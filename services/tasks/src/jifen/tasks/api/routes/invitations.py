"""/v1/invitations and /v1/signin/invitations: invitation links from an officer
(``domain/invitations.py`` has the rules).

An officer or admin invites a person on the organisation's records (by id or phone) and gets a
token, shown once (only its hash is kept), that the community app puts in a link; the app
exchanges it (``POST /v1/signin/invitations``, app credentials only, as the code exchange) for
the same sessions a phone code gives: the roles the records hold for that number at the
exchange. A token lasts a week, is used once, and can be revoked until then."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Request

from jifen.kernel.auth import Principal, Role, require
from jifen.kernel.errors import NotFound
from jifen.kernel.i18n import Said
from jifen.kernel.pages import Page, Paging
from jifen.kernel.web import ParsedBodyRoute, max_body
from jifen.tasks.api.deps import Conn, Officer, Q, sender_of
from jifen.tasks.api.routes.people import signed_in
from jifen.tasks.api.schemas import SignedIn
from jifen.tasks.api.schemas.invitations import (
    InvitationIn,
    InvitationOut,
    InvitationSigninIn,
    IssuedInvitation,
)
from jifen.tasks.domain import invitations as rules
from jifen.tasks.domain.signin import mask
from jifen.tasks.sender import SenderUnavailable

log = logging.getLogger("jifen.tasks.invitations")

router = APIRouter(prefix="/v1/invitations", tags=["sign-in"], route_class=ParsedBodyRoute)
signin = APIRouter(prefix="/v1/signin", tags=["sign-in"], route_class=ParsedBodyRoute)

App = Annotated[Principal, require(Role.APP)]

EXCHANGE_REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"description": "`invitation_unknown`: no such token in your organisation"},
    403: {
        "description": "`invitation_beyond_issuer`: the records now give a role the issuer "
        "may not hand out"
    },
    410: {"description": "`invitation_used`, `invitation_revoked` or `invitation_expired`"},
}


def _out(row: Any) -> dict[str, Any]:
    return {**dict(row), "phone": mask(row["phone"])}


def _named(held: list[dict[str, Any]]) -> str:
    """The id an invitation by phone lists: the volunteer's, else the first role's."""
    by_role: dict[str, str] = {r["role"]: r["person_id"] for r in held}
    first: str = held[0]["person_id"]
    return next((by_role[r] for r in rules.NAMED_FIRST if r in by_role), first)


def _not_on_record(what: str) -> NotFound:
    return NotFound(
        Said(
            f"本组织的记录里没有 {what}；请先由管理员登记（POST /v1/people）",
            f"{what} is not on your organisation's records; an admin records people first "
            "(POST /v1/people)",
        )
    )


@router.post(
    "",
    status_code=201,
    response_model=IssuedInvitation,
    openapi_extra=max_body(1024),
    summary="Invite a person on your records: a one-use link token, shown once (officer, admin)",
    description=f"The token lasts {rules.TTL_SECONDS // 86400} days and gives, once, the "
    "sessions the records hold for the person's number at the exchange. An officer invites "
    "only people whose every role is volunteer or merchant; an admin also officers; admins and "
    "auditors sign in with their phone's code.",
    responses={
        403: {"description": "`invitation_beyond_issuer`"},
        404: {"description": "The person is not on your organisation's records"},
        409: {"description": "`several_numbers`: that id holds roles under two numbers"},
    },
)
async def invite(body: InvitationIn, conn: Conn, q: Q, who: Officer) -> IssuedInvitation:
    if body.phone is not None:
        held = [
            {**dict(r), "phone": body.phone}
            for r in await conn.fetch(q["people_by_phone"], who.org, body.phone)
        ]
        what = mask(body.phone)
    else:
        held = [
            dict(r) for r in await conn.fetch(q["people_by_person_id"], who.org, body.person_id)
        ]
        what = str(body.person_id)
    if not held:
        raise _not_on_record(what)
    phones = {r["phone"] for r in held}
    if len(phones) > 1:
        raise rules.InvitationRefused(
            zh=f"{what} 在记录中有两个手机号；请按手机号邀请",
            en=f"{what} holds roles under two numbers on the records; invite by phone",
            reason="several_numbers",
        ) from None
    (phone,) = phones
    if body.phone is None:  # the person's every role under that number, not only this id's
        held = [
            {**dict(r), "phone": phone}
            for r in await conn.fetch(q["people_by_phone"], who.org, phone)
        ]
    roles = sorted({r["role"] for r in held})
    rules.check_ceiling(who.role.value, roles)
    token = rules.new_token()
    row = await conn.fetchrow(
        q["insert_invitation"],
        uuid.uuid4(),
        who.org,
        rules.token_hash(token),
        phone,
        body.person_id or _named(held),
        who.subject,
        who.role.value,
        datetime.now(UTC) + timedelta(seconds=rules.TTL_SECONDS),
    )
    return IssuedInvitation(**_out(row), token=token, expires_in=rules.TTL_SECONDS, roles=roles)


@router.get(
    "",
    response_model=Page[InvitationOut],
    summary="Your organisation's invitations, newest first (officer, admin)",
)
async def list_invitations(conn: Conn, q: Q, who: Officer, paging: Paging) -> Page[InvitationOut]:
    rows = await conn.fetch(
        q["list_invitations"], who.org, paging.fetch, *paging.after(datetime, uuid.UUID)
    )
    return paging.page(
        rows, lambda r: (r["created_at"], r["id"]), lambda r: InvitationOut(**_out(r))
    )


@router.post(
    "/{invitation_id}/revoke",
    response_model=InvitationOut,
    summary="Revoke an invitation not yet used (officer, admin)",
    responses={
        404: {"description": "No such invitation in your organisation"},
        409: {"description": "`invitation_used`: it was used already; nothing to revoke"},
    },
)
async def revoke(invitation_id: uuid.UUID, conn: Conn, q: Q, who: Officer) -> InvitationOut:
    row = await conn.fetchrow(q["revoke_invitation"], invitation_id, who.org, who.subject)
    if row is None:
        found = await conn.fetchrow(q["get_invitation"], invitation_id, who.org)
        if found is None:
            raise NotFound(Said("本组织没有这个邀请", "no such invitation in your organisation"))
        raise rules.not_revocable()
    return InvitationOut(**_out(row))


@signin.post(
    "/invitations",
    response_model=SignedIn,
    openapi_extra=max_body(1024),
    summary="Exchange an invitation link's token for the person's tokens (community apps)",
    description="The same answer as `POST /v1/signin/tokens`: one token per role the records "
    "hold for the invited number now. The token is spent by this exchange.",
    responses=EXCHANGE_REFUSALS,
)
async def sign_in_invited(
    body: InvitationSigninIn, request: Request, conn: Conn, q: Q, who: App
) -> SignedIn:
    digest = rules.token_hash(body.token)
    async with conn.transaction():
        used = await conn.fetchrow(q["use_invitation"], digest, who.org, who.subject)
        if used is None:
            found = await conn.fetchrow(q["find_invitation"], digest, who.org)
            if found is None:  # guessed, mistyped, or another organisation's
                raise rules.unknown()
            raise rules.why_not(found["used_at"], found["revoked_at"], found["expired"])
        held = await conn.fetch(q["people_by_phone"], who.org, used["phone"])
        if not held:  # taken off the records since the invitation
            raise rules.unknown()
        # raised inside the transaction: the token is not spent by a refused exchange
        rules.check_ceiling(used["issuer_role"], [r["role"] for r in held])
    await _tell_the_phone(request, conn, q, who.org, used["phone"], used["created_by"])
    return signed_in(request, who.org, held)


async def _tell_the_phone(
    request: Request, conn: Any, q: Any, org: str, phone: str, issued_by: str
) -> None:
    """The number learns that its link was used (after the commit: a gateway that is down
    costs the notice, logged, not the sign-in)."""
    found = await conn.fetchrow(q["get_organisation"], org)
    name = (found["name"] if found and found["name"] else "") or "积分 Jifen"
    try:
        await sender_of(request).send(
            conn, q, org=org, to=phone, text=rules.signed_in_message(name, issued_by)
        )
    except SenderUnavailable as exc:
        log.warning("invitation used: the notice to %s was not sent: %s", mask(phone), exc)
