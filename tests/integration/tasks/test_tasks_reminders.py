"""Claim reminders, the worker's pass itself against a real database (a fresh one of the
session's PostgreSQL, so no running worker races it): a place held in a job starting within
the lead is reminded once through the sender; a place given back, a job further off, a job
the volunteer already reported done, and a volunteer with no phone on record get no message
(the last is marked, so it is not looked at again)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from jifen.kernel.contracts import Contracts
from jifen.kernel.db import create_pool
from jifen.kernel.settings import REPO_ROOT
from jifen.tasks import handlers
from jifen.tasks.api.schemas import JobIn
from jifen.tasks.db import MIGRATIONS, queries
from jifen.tasks.sender import LogSender

CONTRACTS = Contracts(REPO_ROOT / "schemas")
ORG, COMMUNITY, OFFICER = "remind-org", "grid-r", "officer-li"


@pytest.fixture
async def pool(fresh_db: Callable[[Path], Awaitable[str]]) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(await fresh_db(MIGRATIONS), max_size=4)
    yield p
    await p.close()


async def test_a_place_held_is_reminded_once_and_only_a_place_held(pool: asyncpg.Pool) -> None:
    q = queries()
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        await conn.execute(q["insert_community"], ORG, COMMUNITY, "蓬莱网格", OFFICER)
        phones = {}
        for i, who in enumerate(("vol-soon", "vol-gone", "vol-later", "vol-done")):
            phones[who] = f"1370000000{i}"
            await conn.execute(q["insert_person"], ORG, who, phones[who], "volunteer", "", "admin")
        for who in (*phones, "vol-no-phone"):
            await handlers.register_member(
                conn, q, CONTRACTS, org=ORG, community_id=COMMUNITY, account_id=who, by="app"
            )

        async def job(starts_in: timedelta) -> uuid.UUID:
            spec = JobIn(
                community_id=COMMUNITY,
                title="为独居老人送午餐 Lunch for elders",
                category="meal_delivery",
                points=5,
                capacity=9,
                starts_at=now + starts_in,
                ends_at=now + starts_in + timedelta(hours=1),
                place={"address": "蓬莱路 3 号"},
            )
            row = await handlers.publish_job(
                conn, q, CONTRACTS, org=ORG, officer=OFFICER, job=spec.to_command()
            )
            job_id: uuid.UUID = row["id"]
            return job_id

        soon, later = await job(timedelta(minutes=40)), await job(timedelta(hours=5))
        started = await job(timedelta(minutes=-30))  # already open: its place was reminded
        claim = {"org": ORG, "by": "app"}
        for who in ("vol-soon", "vol-gone", "vol-no-phone", "vol-done"):
            await handlers.claim_job(conn, q, CONTRACTS, job_id=soon, account_id=who, **claim)
        await handlers.claim_job(conn, q, CONTRACTS, job_id=later, account_id="vol-later", **claim)
        await handlers.claim_job(conn, q, CONTRACTS, job_id=started, account_id="vol-soon", **claim)
        await handlers.withdraw_claim(
            conn, q, CONTRACTS, job_id=soon, account_id="vol-gone", **claim
        )
        # vol-done reported it done already (a completion row, as an app posting early would)
        claim_row = await conn.fetchrow(q["get_claim"], soon, "vol-done")
        await conn.execute(
            "INSERT INTO completion (id, org_id, job_id, claim_id, account_id, submitted_by,"
            " idempotency_key) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            uuid.uuid4(), ORG, soon, claim_row["id"], "vol-done", "app", "k-done",
        )  # fmt: skip

        lead = timedelta(hours=2)
        due = await handlers.remind_claims(conn, q, LogSender(), lead=lead)
        again = await handlers.remind_claims(conn, q, LogSender(), lead=lead)
        sent = await conn.fetch("SELECT recipient, body FROM outbound_message ORDER BY id")
        marked = {
            r["account_id"]: r["phone"]
            for r in await conn.fetch("SELECT account_id, phone FROM claim_reminder")
        }
    assert (due, again) == (2, 0)  # vol-soon and vol-no-phone, once
    assert [m["recipient"] for m in sent] == [phones["vol-soon"]]
    assert "提醒" in sent[0]["body"] and "蓬莱路 3 号" in sent[0]["body"]
    assert marked == {"vol-soon": phones["vol-soon"], "vol-no-phone": None}
