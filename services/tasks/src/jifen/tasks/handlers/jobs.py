"""Jobs and claims: publish a job (alone, a month's menu, a rolled month of recurring jobs),
claim a place, withdraw a claim."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg

from jifen.kernel import topics
from jifen.kernel.contracts import Contracts, isoformat
from jifen.kernel.db import Queries
from jifen.kernel.errors import DomainRefusal, NotFound
from jifen.kernel.i18n import Said
from jifen.kernel.outbox import enqueue
from jifen.tasks.domain.checkin import new_secret
from jifen.tasks.domain.clock import DEFAULT_TIMEZONE
from jifen.tasks.domain.commands import JobSpec, Place, PublishJob, PublishMenu
from jifen.tasks.domain.jobs import (
    AlreadyClaimed,
    JobFull,
    NoClaim,
    Recurrence,
    VerificationMode,
    Window,
    WrongState,
    already_claimed,
    check_category,
    check_not_creator,
    check_recurrence,
    check_withdrawal,
    month_of,
    no_active_claim,
    no_job,
    occurrence_in,
)
from jifen.tasks.domain.partners import check_partner_member
from jifen.tasks.handlers.history import SOURCE, record_status
from jifen.tasks.handlers.organisation import check_community, check_member

log = logging.getLogger(__name__)


async def insert_job(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    *,
    org: str,
    officer: str,
    community_id: str,
    job: JobSpec,
    series: tuple[uuid.UUID, str] | None = None,
) -> asyncpg.Record:
    """Insert one job and its event; the caller holds the transaction.

    ``series`` (id, month) adds a month to a recurring series; None if that month has it."""
    custom = {r["code"] for r in await conn.fetch(q["list_categories"], org)}
    check_category(job.category, custom)
    check_recurrence(job.recurrence, Window(job.starts_at, job.ends_at))
    await check_community(conn, q, org, community_id)
    mode = VerificationMode(job.verification)
    place = job.place
    job_id = uuid.uuid4()
    if series is None and job.recurrence is not None:
        series = (job_id, month_of(job.starts_at.astimezone(UTC)))
    row = await conn.fetchrow(
        q["insert_job"],
        job_id,
        org,
        community_id,
        job.title,
        job.description,
        job.category,
        job.points,
        job.capacity,
        job.starts_at,
        job.ends_at,
        mode.value,
        officer,
        new_secret() if mode is VerificationMode.CHECKIN else None,
        place.address if place else None,
        place.lat if place else None,
        place.lng if place else None,
        job.recurrence.value if job.recurrence else None,
        series[0] if series else None,
        series[1] if series else None,
        job.open_to_all,
        job.service_minutes,
    )
    if row is None:  # this month of the series exists already
        return None
    event = contracts.new_event(
        "jifen.tasks.job.published.v1",
        source=SOURCE,
        subject=str(row["id"]),
        data={
            "job_id": str(row["id"]),
            "org_id": org,
            "community_id": community_id,
            "title": job.title[:200],
            "category": job.category,
            "points": job.points,
            "capacity": job.capacity,
            "starts_at": isoformat(job.starts_at),
            "ends_at": isoformat(job.ends_at),
            "published_by": officer,
        },
    )
    await enqueue(conn, topics.TASKS_JOBS, str(row["id"]), event)
    return row


async def publish_job(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    *,
    org: str,
    officer: str,
    job: PublishJob,
) -> asyncpg.Record:
    async with conn.transaction():
        return await insert_job(
            conn, q, contracts, org=org, officer=officer, community_id=job.community_id, job=job
        )


async def publish_menu(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    *,
    org: str,
    officer: str,
    menu: PublishMenu,
) -> list[asyncpg.Record]:
    """Publish a month of jobs for one community at once: all of them, or none."""
    check_menu_month(menu.month, menu.jobs, "jobs")
    async with conn.transaction():
        return [
            await insert_job(
                conn,
                q,
                contracts,
                org=org,
                officer=officer,
                community_id=menu.community_id,
                job=job,
            )
            for job in menu.jobs
        ]


def check_menu_month(month: str, jobs: Sequence[JobSpec], field: str) -> None:
    """Every job of a month's menu starts in that month (UTC) and ends after it starts."""
    year, mon = map(int, month.split("-"))
    for i, job in enumerate(jobs):
        if (job.starts_at.astimezone(UTC).year, job.starts_at.astimezone(UTC).month) != (
            year,
            mon,
        ):
            raise WrongState(
                Said(
                    f"{field}[{i}] 在 {job.starts_at.date()} 开始，不在菜单的月份 {month} 之内",
                    f"{field}[{i}] starts on {job.starts_at.date()}, outside the menu's month "
                    f"{month}",
                ),
                index=i,
            )
        if job.ends_at <= job.starts_at:
            raise WrongState(
                Said(
                    f"{field}[{i}]：ends_at 必须晚于 starts_at",
                    f"{field}[{i}]: ends_at must be after starts_at",
                ),
                index=i,
            )


async def roll_menu(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    *,
    org: str,
    officer: str | None,
    community_id: str,
    month: str,
) -> list[asyncpg.Record]:
    """Publish ``month``'s occurrence of every running recurring job of a community.
    Idempotent: a month a series already has is skipped, so rolling twice adds nothing; an
    ended series is not rolled. ``officer`` None (the worker rolling on its own): each
    occurrence is published in the name of its series' creator, so the rules on who may
    claim, complete and decide hold for it as for the month before."""
    made = []
    async with conn.transaction():
        for t in await conn.fetch(q["series_templates"], org, community_id, month):
            w = occurrence_in(Window(t["starts_at"], t["ends_at"]), month)
            job = JobSpec(
                title=t["title"],
                description=t["description"],
                category=t["category"],
                points=t["points"],
                capacity=t["capacity"],
                starts_at=w.starts_at,
                ends_at=w.ends_at,
                verification=VerificationMode(t["verification"]),
                place=Place(
                    address=t["place_address"] or "", lat=t["place_lat"], lng=t["place_lng"]
                )
                if t["place_address"] is not None
                else None,
                recurrence=Recurrence(t["recurrence"]),
                open_to_all=t["open_to_all"],
                service_minutes=t["service_minutes"],
            )
            row = await insert_job(
                conn,
                q,
                contracts,
                org=org,
                officer=officer or t["created_by"],
                community_id=community_id,
                job=job,
                series=(t["series_id"], month),
            )
            if row is not None:
                made.append(row)
    return made


async def claim_job(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    *,
    org: str,
    job_id: uuid.UUID,
    account_id: str,
    by: str,
) -> asyncpg.Record:
    async with conn.transaction():
        job = await conn.fetchrow(q["get_job"], job_id, org)
        if job is None:
            raise no_job(job_id)
        check_not_creator(job["created_by"], account_id)
        await check_member(conn, q, org, job, account_id)
        if job["partner_id"] is not None:  # a partner took it: its members do it
            member = await conn.fetchrow(
                q["get_partner_member"], org, job["partner_id"], account_id
            )
            check_partner_member(job["partner_id"], account_id, member is not None)
        existing = await conn.fetchrow(q["get_claim"], job_id, account_id)
        if existing is not None:
            raise AlreadyClaimed(already_claimed(account_id), claim_id=str(existing["id"]))
        # one atomic UPDATE … WHERE claimed < capacity: concurrent claims can never oversubscribe
        place = await conn.fetchrow(q["take_place"], job_id)
        if place is None:
            raise JobFull(
                Said(
                    f"全部 {job['capacity']} 个名额都已被领取",
                    f"all {job['capacity']} places are taken",
                ),
                capacity=job["capacity"],
            )
        claim = await conn.fetchrow(q["insert_claim"], uuid.uuid4(), job_id, account_id, by)
        if claim is None:  # a concurrent claim by the same volunteer won the race
            raise AlreadyClaimed(already_claimed(account_id))
        await record_status(
            conn, q, contracts, org, "claim", claim["id"], "claimed", by, account_id, job_id
        )
    return claim


async def withdraw_claim(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    *,
    org: str,
    job_id: uuid.UUID,
    account_id: str,
    by: str,
) -> asyncpg.Record:
    """Give a place back before the window starts; the claim is kept, marked withdrawn."""
    async with conn.transaction():
        job = await conn.fetchrow(q["get_job"], job_id, org)
        if job is None:
            raise no_job(job_id)
        claim = await conn.fetchrow(q["get_claim"], job_id, account_id)
        if claim is None:
            raise NoClaim(no_active_claim(account_id, job_id))
        timezone = (await conn.fetchrow(q["org_clock"], org))["timezone"] or DEFAULT_TIMEZONE
        check_withdrawal(Window(job["starts_at"], job["ends_at"], timezone), datetime.now(UTC))
        claim = await conn.fetchrow(q["lock_claim"], claim["id"], job_id)
        row = await conn.fetchrow(q["withdraw_claim"], claim["id"], datetime.now(UTC), by)
        if row is None:  # a concurrent withdrawal won
            raise NoClaim(no_active_claim(account_id, job_id))
        await conn.execute(q["release_place"], job_id)
        await record_status(
            conn, q, contracts, org, "claim", row["id"], "withdrawn", by, account_id, job_id
        )
    return row


async def roll_due(
    conn: asyncpg.Connection, q: Queries, contracts: Contracts, *, months: list[str]
) -> int:
    """Roll ``months`` (in order) for every community with a running series, in every
    organisation: the worker's pass. One transaction per community and month, so one
    community's refusal (a category removed, say) leaves the others rolled."""
    made = 0
    for c in await conn.fetch(q["series_communities"]):
        for month in months:
            try:
                rows = await roll_menu(
                    conn,
                    q,
                    contracts,
                    org=c["org_id"],
                    officer=None,
                    community_id=c["community_id"],
                    month=month,
                )
            except DomainRefusal as refused:
                log.warning(
                    "rolling %s of %s/%s refused: %s",
                    month, c["org_id"], c["community_id"], refused,
                )  # fmt: skip
                continue
            made += len(rows)
    return made


async def end_series(
    conn: asyncpg.Connection,
    q: Queries,
    *,
    org: str,
    officer: str,
    series_id: uuid.UUID,
    reason: str,
) -> asyncpg.Record:
    row = await conn.fetchrow(q["end_series"], series_id, org, officer, reason)
    if row is not None:
        return row
    ended = await conn.fetchrow(q["get_series_end"], series_id, org)
    if ended is None:
        raise NotFound(Said(f"没有重复系列 {series_id}", f"no recurring series {series_id}"))
    raise WrongState(
        Said(f"重复系列 {series_id} 已结束", f"recurring series {series_id} has already ended"),
        ended_at=ended["ended_at"].isoformat(),
        status="ended",
    )
