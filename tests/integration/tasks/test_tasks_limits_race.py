"""Tasks rules that only a real database can show: concurrent verifications of one
volunteer's completions (or by one officer) never slip past the daily cap together; the
auditors' order is the order of commits; republishing leaves every event id unchanged."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import orjson
import pytest

from jifen.kernel.contracts import Contracts
from jifen.kernel.db import Queries, create_pool
from jifen.kernel.settings import REPO_ROOT
from jifen.tasks import handlers
from jifen.tasks.api.schemas import CompletionIn, JobIn
from jifen.tasks.db import MIGRATIONS, queries

CONTRACTS = Contracts(REPO_ROOT / "schemas")
ORG = "org-race"


@pytest.fixture
async def pool(fresh_db: Callable[[Path], Awaitable[str]]) -> AsyncIterator[asyncpg.Pool]:
    dsn = await fresh_db(MIGRATIONS)
    p = await create_pool(dsn, max_size=12)
    yield p
    await p.close()


async def _submitted(pool: asyncpg.Pool, q: Queries, account: str, points: int) -> uuid.UUID:
    now = datetime.now(UTC)
    job = JobIn(
        community_id="penglai-grid",
        title="送餐 meals",
        category="meal_delivery",
        points=points,
        capacity=1,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=1),
    )
    async with pool.acquire() as conn:
        await conn.execute(q["insert_community"], ORG, "penglai-grid", "蓬莱网格", "officer-li")
        await handlers.register_member(
            conn,
            q,
            CONTRACTS,
            org=ORG,
            community_id="penglai-grid",
            account_id=account,
            by="app-qishou",
        )
        row = await handlers.publish_job(conn, q, CONTRACTS, org=ORG, officer="officer-li", job=job)
        await handlers.claim_job(
            conn, q, CONTRACTS, org=ORG, job_id=row["id"], account_id=account, by="app-qishou"
        )
        done, created = await handlers.complete_job(
            conn,
            q,
            CONTRACTS,
            org=ORG,
            job_id=row["id"],
            body=CompletionIn(account_id=account),
            by="app-qishou",
            idempotency_key=f"k-{uuid.uuid4()}",
            grace=timedelta(hours=1),
        )
    assert created and done["status"] == "submitted"
    completion_id: uuid.UUID = done["id"]
    return completion_id


async def _verify(pool: asyncpg.Pool, q: Queries, cid: uuid.UUID, officer: str) -> str:
    async with pool.acquire() as conn:
        row = await handlers.verify_completion(
            conn, q, CONTRACTS, org=ORG, officer=officer, completion_id=cid
        )
    status: str = row["status"]
    return status


async def test_concurrent_verifications_never_pass_the_daily_cap_together(
    pool: asyncpg.Pool,
) -> None:
    q = queries()
    async with pool.acquire() as conn:
        await conn.execute(
            q["upsert_organisation"],
            ORG,
            "",
            "Asia/Shanghai",
            30,
            None,
            500,
            None,
            "admin",
            3000,
            300,
        )
    ids = [await _submitted(pool, q, "vol-cap", 10) for _ in range(8)]
    # eight officers verify at once: only three fit under 30 points; the rest wait, none lost
    statuses = await asyncio.gather(
        *[_verify(pool, q, cid, f"officer-{i}") for i, cid in enumerate(ids)]
    )
    assert sorted(statuses) == ["held"] * 5 + ["verified"] * 3
    async with pool.acquire() as conn:
        held = await conn.fetch(
            "SELECT hold_level, hold_reason FROM completion WHERE status = 'held'"
        )
        outbox = await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE event_type = 'jifen.tasks.completion.verified.v1'"
        )
    assert {h["hold_level"] for h in held} == {"officer"}
    assert all("40 points today" in h["hold_reason"] for h in held)
    assert outbox == 3  # an event for each verified one, none for a held one
    # every status change has its event too, keyed by the item: claimed, submitted, then
    # verified or held
    async with pool.acquire() as conn:
        changes = await conn.fetch(
            "SELECT key, payload FROM outbox"
            " WHERE event_type = 'jifen.tasks.item.status_changed.v1' ORDER BY id"
        )
    statuses_seen = sorted(orjson.loads(c["payload"])["data"]["status"] for c in changes)
    assert statuses_seen == sorted(
        ["claimed"] * 8 + ["submitted"] * 8 + ["verified"] * 3 + ["held:officer"] * 5
    )
    assert all(c["key"].decode() == orjson.loads(c["payload"])["data"]["item_id"] for c in changes)


async def test_audit_order_is_commit_order_and_republishing_keeps_event_ids(
    pool: asyncpg.Pool,
) -> None:
    q = queries()
    ids = [await _submitted(pool, q, f"vol-{i}", 5) for i in range(6)]
    await asyncio.gather(*[_verify(pool, q, cid, "officer-li") for cid in ids])
    async with pool.acquire() as conn:
        page = await conn.fetch(q["audit_completions"], ORG, 0, 100)
        seqs = [r["verified_seq"] for r in page]
        assert seqs == sorted(seqs) and len(seqs) == 6
        # seq order follows verification time: each took the per-organisation lock in turn
        times = [r["verified_at"] for r in page]
        assert times == sorted(times)
        first_ids = {r["id"]: r["verified_event_id"] for r in page}
        await conn.execute("DELETE FROM outbox")
        n = await handlers.republish_uncredited(conn, q, older_than=timedelta(0))
        assert n == 6
        republished = await conn.fetch("SELECT event_id, key FROM outbox ORDER BY id")
    assert {str(r["event_id"]) for r in republished} == set(first_ids.values())
    assert {r["key"].decode() for r in republished} == {f"vol-{i}" for i in range(6)}


async def test_one_officer_verifying_at_once_never_passes_the_per_officer_cap(
    pool: asyncpg.Pool,
) -> None:
    q = queries()
    async with pool.acquire() as conn:
        await conn.execute(
            q["upsert_organisation"],
            ORG,
            "",
            "Asia/Shanghai",
            200,
            None,
            500,
            None,
            "admin",
            30,
            300,
        )
    ids = [await _submitted(pool, q, f"vol-o{i}", 10) for i in range(8)]
    # eight volunteers, one officer, all at once (the name in any case): three fit under 30
    statuses = await asyncio.gather(
        *[
            _verify(pool, q, cid, "officer-zhou" if i % 2 else "Officer-Zhou")
            for i, cid in enumerate(ids)
        ]
    )
    assert sorted(statuses) == ["held"] * 5 + ["verified"] * 3
    async with pool.acquire() as conn:
        held = await conn.fetch(
            "SELECT hold_level, hold_reason FROM completion WHERE status = 'held'"
        )
    assert {h["hold_level"] for h in held} == {"admin"}
    assert all("per-officer limit of 30" in h["hold_reason"] for h in held)
