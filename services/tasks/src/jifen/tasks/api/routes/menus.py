"""/v1/menus: a community's monthly service menu, published at once or rolled from its
recurring jobs."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter

from jifen.kernel.web import ParsedBodyRoute
from jifen.tasks import handlers
from jifen.tasks.api.deps import REFUSALS, Conn, Events, Officer, Q
from jifen.tasks.api.reads import job_out
from jifen.tasks.api.schemas import JobOut, MenuIn, ReasonIn, RollIn
from jifen.tasks.api.schemas.jobs import SeriesEndOut

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
