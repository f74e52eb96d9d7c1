"""/v1/me/honour-roll and /v1/public/communities/{id}/honour-roll: the opt-in honour roll
(``domain/honour.py`` has the rules).

A volunteer opts in or out themselves (``PUT /v1/me/honour-roll``: the token's own account,
never another's); a community's roll for a month lists the opted-in volunteers with completions
verified in it, by the display name on the records, with how many and the jobs' points,
highest first. The roll is public data the community app shows without sign-in, so any token
of the organisation reads it (the portal reads it as its app); another organisation's community
is not found. The month is the UTC month, counted as the public figures and the activity report
count theirs (a completion counts in the month it was verified; a revoked one no longer
counts)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from jifen.kernel.auth import Principal, Role, require
from jifen.kernel.errors import NotFound
from jifen.kernel.i18n import Said
from jifen.kernel.web import ParsedBodyRoute, max_body
from jifen.tasks.api.deps import AnyMember, Conn, PathId, Q
from jifen.tasks.api.schemas.common import MONTH_PATTERN
from jifen.tasks.api.schemas.honour import (
    HonourConsentIn,
    HonourConsentOut,
    HonourEntry,
    HonourRoll,
)
from jifen.tasks.domain import honour as rules
from jifen.tasks.domain.jobs import month_of, month_window

me = APIRouter(prefix="/v1/me", tags=["honour roll"], route_class=ParsedBodyRoute)
public = APIRouter(prefix="/v1/public", tags=["honour roll"], route_class=ParsedBodyRoute)

Volunteer = Annotated[Principal, require(Role.VOLUNTEER)]


@me.get(
    "/honour-roll",
    response_model=HonourConsentOut,
    summary="Whether I am listed on my communities' honour rolls (volunteer)",
)
async def my_consent(conn: Conn, q: Q, who: Volunteer) -> HonourConsentOut:
    name = await conn.fetchval(q["volunteer_on_record"], who.org, who.subject)
    row = await conn.fetchrow(q["get_honour_consent"], who.org, who.subject)
    return HonourConsentOut(
        listed=bool(row and row["listed"]),
        display_name=name or "",
        changed_at=row["changed_at"] if row else None,
    )


@me.put(
    "/honour-roll",
    response_model=HonourConsentOut,
    openapi_extra=max_body(256),
    summary="List me, or no longer, on my communities' honour rolls (volunteer, self only)",
    description="Only the token's own account: there is no account id to name. Listed by the "
    "display name on the organisation's records; never by the account id or the phone.",
    responses={
        409: {"description": "`not_on_record` or `no_name_on_record`: nothing to list you by"}
    },
)
async def set_consent(body: HonourConsentIn, conn: Conn, q: Q, who: Volunteer) -> HonourConsentOut:
    name = await conn.fetchval(q["volunteer_on_record"], who.org, who.subject)
    if body.listed:
        rules.check_listable(name)
    row = await conn.fetchrow(q["set_honour_consent"], who.org, who.subject, body.listed)
    return HonourConsentOut(
        listed=row["listed"], display_name=name or "", changed_at=row["changed_at"]
    )


@public.get(
    "/communities/{community_id}/honour-roll",
    response_model=HonourRoll,
    summary="A community's honour roll for a month: opted-in volunteers only (any member, apps)",
    description="光荣榜 The community's volunteers who chose to be listed, with their "
    "completions verified in the month (UTC) and the jobs' whole points, highest first (equal "
    "points share a rank). Nobody who has not opted in appears; no phone number or account id "
    "is given. `month` defaults to the current one.",
    responses={404: {"description": "No such community in your organisation"}},
)
async def honour_roll(
    community_id: PathId,
    conn: Conn,
    q: Q,
    who: AnyMember,
    month: Annotated[str | None, Query(pattern=MONTH_PATTERN, examples=["2026-12"])] = None,
    limit: Annotated[int, Query(ge=1, le=rules.MAX_LIMIT)] = rules.DEFAULT_LIMIT,
) -> HonourRoll:
    community = await conn.fetchrow(q["get_community"], who.org, community_id)
    if community is None:
        raise NotFound(
            Said(
                f"本组织没有社区 {community_id}",
                f"no community {community_id} in your organisation",
            )
        )
    month = month or month_of(datetime.now(UTC))
    since, until = month_window(month)
    assert since is not None and until is not None  # a month was given
    rows = await conn.fetch(q["honour_roll"], who.org, community_id, since, until, limit)
    return HonourRoll(
        community_id=community_id,
        community_name=community["name"],
        month=month,
        since=since,
        until=until,
        roll=[HonourEntry(**r) for r in rules.ranked(rows)],
    )
