"""Recurring jobs roll on their own (issue 21, part 5): the worker's pass publishes the coming
months of every running series in every organisation, in the name of the series' creator,
once however often it runs; an ended series rolls no more, and only its own organisation's
officers may end it. Against a real database (the session's PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from jifen.kernel.contracts import Contracts
from jifen.kernel.db import create_pool
from jifen.kernel.errors import NotFound
from jifen.kernel.settings import REPO_ROOT
from jifen.tasks import handlers
from jifen.tasks.api.schemas import JobIn
from jifen.tasks.db import MIGRATIONS, queries
from jifen.tasks.domain.jobs import WrongState, month_of, months_from

CONTRACTS = Contracts(REPO_ROOT / "schemas")


@pytest.fixture
async def pool(fresh_db: Callable[[Path], Awaitable[str]]) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(await fresh_db(MIGRATIONS), max_size=4)
    yield p
    await p.close()


async def _series(
    conn: asyncpg.Connection, org: str, community: str, officer: str
) -> asyncpg.Record:
    """A monthly repair day on the 15th, begun last month."""
    q = queries()
    await conn.execute(q["insert_community"], org, community, community, officer)
    last = (datetime.now(UTC).replace(day=1) - timedelta(days=1)).replace(
        day=15, hour=1, minute=0, second=0, microsecond=0
    )
    job = JobIn(
        community_id=community,
        title="免费维修电动车 Free e-bike repair day",
        category="free_repair_day",
        points=30,
        capacity=4,
        starts_at=last,
        ends_at=last + timedelta(hours=8),
        recurrence="monthly",
        service_minutes=480,
    )
    row: asyncpg.Record = await handlers.publish_job(
        conn, q, CONTRACTS, org=org, officer=officer, job=job.to_command()
    )
    return row


async def test_the_worker_rolls_every_running_series_once_in_its_creators_name(
    pool: asyncpg.Pool,
) -> None:
    q = queries()
    months = months_from(datetime.now(UTC), 1)
    async with pool.acquire() as conn:
        a = await _series(conn, "org-a", "grid-a", "officer-a")
        b = await _series(conn, "org-b", "grid-b", "officer-b")
        assert await handlers.roll_due(conn, q, CONTRACTS, months=months) == 4
        assert await handlers.roll_due(conn, q, CONTRACTS, months=months) == 0  # once
        rows = await conn.fetch(
            "SELECT org_id, series_month, created_by, service_minutes, starts_at"
            " FROM job WHERE series_id = ANY($1) ORDER BY org_id, series_month",
            [a["series_id"], b["series_id"]],
        )
    got = [(r["org_id"], r["series_month"], r["created_by"]) for r in rows]
    first = month_of(a["starts_at"])
    assert got == [
        ("org-a", first, "officer-a"), ("org-a", months[0], "officer-a"),
        ("org-a", months[1], "officer-a"), ("org-b", first, "officer-b"),
        ("org-b", months[0], "officer-b"), ("org-b", months[1], "officer-b"),
    ]  # fmt: skip
    assert {r["service_minutes"] for r in rows} == {480}
    assert {r["starts_at"].day for r in rows} == {15}


async def test_an_ended_series_rolls_no_more_and_only_its_organisation_ends_it(
    pool: asyncpg.Pool,
) -> None:
    q = queries()
    months = months_from(datetime.now(UTC), 2)
    async with pool.acquire() as conn:
        a = await _series(conn, "org-a", "grid-a", "officer-a")
        with pytest.raises(NotFound):  # another organisation's officer: no such series there
            await handlers.end_series(
                conn, q, org="org-b", officer="officer-b", series_id=a["series_id"], reason="停办"
            )
        assert await handlers.roll_due(conn, q, CONTRACTS, months=months[:1]) == 1
        ended = await handlers.end_series(
            conn, q, org="org-a", officer="officer-a", series_id=a["series_id"], reason="停办"
        )
        assert (ended["ended_by"], ended["reason"]) == ("officer-a", "停办")
        with pytest.raises(WrongState):  # ended once
            await handlers.end_series(
                conn, q, org="org-a", officer="officer-a", series_id=a["series_id"], reason="再停"
            )
        assert await handlers.roll_due(conn, q, CONTRACTS, months=months) == 0
        by_hand = await handlers.roll_menu(
            conn, q, CONTRACTS, org="org-a", officer="officer-a", community_id="grid-a",
            month=months[2],
        )  # fmt: skip
        assert by_hand == []
        n = await conn.fetchval("SELECT count(*) FROM job WHERE series_id = $1", a["series_id"])
    assert n == 2  # the first month and the one rolled before the end: both kept
