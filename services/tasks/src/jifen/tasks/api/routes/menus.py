"""/v1/menus: a community's monthly service menu, published at once, rolled from its
recurring jobs, or made from the needs list matched with the resources list."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Query

from jifen.kernel.pages import Page, Paging
from jifen.kernel.web import ParsedBodyRoute
from jifen.tasks import handlers
from jifen.tasks.api.deps import ID_PATTERN, REFUSALS, Conn, Events, Officer, Q
from jifen.tasks.api.reads import job_out
from jifen.tasks.api.schemas import JobOut, MenuIn, ReasonIn, RollIn
from jifen.tasks.api.schemas.common import MONTH_PATTERN
from jifen.tasks.api.schemas.intake import MatchOut, MatchReason, MatchSide, MenuFromNeedsIn
from jifen.tasks.api.schemas.jobs import SeriesEndOut
from jifen.tasks.domain.intake import NeedKind
from jifen.tasks.domain.jobs import month_window
from jifen.tasks.domain.partners import REASONS, Item, propose

router = APIRouter(prefix="/v1/menus", tags=["jobs"], route_class=ParsedBodyRoute)


@router.post(
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
        conn, q, contracts, org=who.org, officer=who.subject, menu=body.to_command()
    )
    return [job_out(r) for r in rows]


@router.post(
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
    return [job_out(r) for r in rows]


@router.post(
    "/series/{series_id}/end",
    response_model=SeriesEndOut,
    summary="End a recurring series: no month is rolled for it any more",
    description="The worker keeps the coming months of every running series published "
    "(JIFEN_TASKS_ROLL_AHEAD_MONTHS); ending a series stops that, and POST /v1/menus/roll "
    "skips it too. The months already published stay. 404: no series of that id in your "
    "organisation; 409: it has ended already.",
    responses=REFUSALS,
)
async def end_series(
    series_id: UUID, body: ReasonIn, conn: Conn, q: Q, who: Officer
) -> SeriesEndOut:
    row = await handlers.end_series(
        conn, q, org=who.org, officer=who.subject, series_id=series_id, reason=body.reason
    )
    return SeriesEndOut(**dict(row))


# -- the menu from the needs list ---------------------------------------------------------


def _item(row: asyncpg.Record) -> Item:
    return Item(
        id=row["id"],
        kind=NeedKind(row["kind"]),
        community_id=row["community_id"],
        category=row["category"],
        place=row["place"],
        wanted_from=row["wanted_from"],
        wanted_until=row["wanted_until"],
        created_at=row["created_at"],
    )


@router.get(
    "/proposals",
    response_model=Page[MatchOut],
    summary="Proposed matches of the needs list with the resources list, best first",
    description="Each open need (a wish) of the community with a category, paired with each "
    "open resource (an offer) of the organisation of the same category whose time does not "
    "exclude the need's: the same community, overlapping times and the same place score "
    "higher. `month` keeps to needs and resources not wholly outside that month. An officer "
    "turns the chosen ones into the menu with POST /v1/menus/from-needs.",
)
async def proposals(
    conn: Conn,
    q: Q,
    who: Officer,
    paging: Paging,
    community_id: Annotated[str, Query(pattern=ID_PATTERN)],
    month: Annotated[str | None, Query(pattern=MONTH_PATTERN, examples=["2026-12"])] = None,
) -> Page[MatchOut]:
    start, end = month_window(month)
    wishes = await conn.fetch(q["open_items"], who.org, community_id, "wish", start, end)
    offers = await conn.fetch(q["open_items"], who.org, None, "offer", start, end)
    rows = {r["id"]: r for r in (*wishes, *offers)}

    def side(item: Item) -> MatchSide:
        return MatchSide(**dict(rows[item.id]))

    matches = [
        MatchOut(
            need=side(m.need),
            resource=side(m.resource),
            score=m.score,
            reasons=[MatchReason(code=c, zh=REASONS[c][0], en=REASONS[c][1]) for c in m.reasons],
        )
        for m in propose([_item(r) for r in wishes], [_item(r) for r in offers])
    ]
    # the order is the proposal's (best first); a page's key is its place in it
    ranked = list(enumerate(matches))
    page = paging.slice(ranked, lambda im: (im[0],), int)
    return Page(items=[m for _, m in page.items], next_cursor=page.next_cursor)


@router.post(
    "/from-needs",
    status_code=201,
    response_model=list[JobOut],
    summary="Put needs on the month's menu: a job each, served by a resource if one is named",
    description="One need may yield several jobs (name it in several items). A resource of a "
    "partner makes the job that partner's: only its members claim places in it. Every need "
    "and resource named moves to in_progress; each is done once every job it became has a "
    "verified completion. All the items, or none.",
    responses={**REFUSALS, 409: {"description": "A need that is not open, or of another kind"}},
)
async def menu_from_needs(
    body: MenuFromNeedsIn, conn: Conn, q: Q, contracts: Events, who: Officer
) -> list[JobOut]:
    rows = await handlers.menu_from_needs(
        conn, q, contracts, org=who.org, officer=who.subject, menu=body.to_command()
    )
    return [job_out(r) for r in rows]
