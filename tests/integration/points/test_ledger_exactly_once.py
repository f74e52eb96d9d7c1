"""Exactly-once effect of the ledger worker on the real PostgreSQL and broker: redelivered
batches, duplicates inside a batch, and two workers applying the same records at once
(what a rebalance can do) all end with each event applied once and every chain intact."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from jifen.devtools.devstack import DevStack
from jifen.kernel.contracts import Contracts, isoformat
from jifen.kernel.db import create_pool
from jifen.kernel.settings import REPO_ROOT
from jifen.points.db import MIGRATIONS, queries
from jifen.points.domain.chain import GENESIS, entry_hash
from jifen.points.handlers.ledger import ledger_event_of_row
from jifen.points.settings import PointsSettings
from jifen.points.worker import LedgerWorker

CONTRACTS = Contracts(REPO_ROOT / "schemas")


@dataclass
class FakeRecord:
    """The fields of an aiokafka ConsumerRecord the worker reads (the bytes are real events)."""

    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes


def completions(n: int, accounts: int) -> list[tuple[str, int, FakeRecord]]:
    out = []
    for i in range(n):
        account = f"vol-{i % accounts:03d}"
        points = random.randint(1, 50)
        now = datetime.now(UTC)
        event = CONTRACTS.new_event(
            "jifen.tasks.completion.verified.v1", source="/jifen/tasks", subject=account, time=now,
            data={"completion_id": str(uuid.uuid4()), "job_id": str(uuid.uuid4()),
                  "account_id": account, "org_id": "jiangmen-riders", "community_id": "grid",
                  "category": "meal_delivery", "points": points, "verified_by": "officer-li",
                  "verified_at": isoformat(now)},
        )  # fmt: skip
        rec = FakeRecord("tasks.completions", 0, i, account.encode(), orjson.dumps(event))
        out.append((account, points, rec))
    return out


@pytest.fixture
async def worker_factory(
    stack: DevStack, fresh_db: Callable[[Path], Awaitable[str]]
) -> AsyncIterator[Callable[[], Awaitable[LedgerWorker]]]:
    dsn = await fresh_db(MIGRATIONS)
    producer = AIOKafkaProducer(bootstrap_servers=stack.broker.bootstrap)
    await producer.start()
    pools: list[asyncpg.Pool] = []

    async def make() -> LedgerWorker:
        pool = await create_pool(dsn.replace("postgres@", "jifen_points_app@", 1), max_size=2)
        pools.append(pool)
        settings = PointsSettings(database_url=dsn, kafka_bootstrap=stack.broker.bootstrap)
        return LedgerWorker(settings, CONTRACTS, pool, producer, queries())

    yield make
    for p in pools:
        await p.close()
    await producer.stop()


async def ledger_state(worker: LedgerWorker) -> dict[str, Any]:
    async with worker.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT account_id, account_seq, kind, amount, balance_after, org_id, category,"
            " cause_event_id::text, job_id::text, completion_id::text, redemption_id::text,"
            " occurred_at, prev_hash, entry_hash FROM ledger_entry ORDER BY account_id, account_seq"
        )
        heads = {r["account_id"]: r["balance"] for r in await conn.fetch("SELECT * FROM account")}
    return {"rows": rows, "heads": heads}


def assert_chains_intact(rows: list[asyncpg.Record]) -> None:
    prev: dict[str, str] = {}
    for r in rows:
        assert r["prev_hash"] == prev.get(r["account_id"], GENESIS)
        content = {
            k: r[k]
            for k in (
                "account_id",
                "account_seq",
                "kind",
                "amount",
                "balance_after",
                "org_id",
                "category",
                "cause_event_id",
                "job_id",
                "completion_id",
                "redemption_id",
                "prev_hash",
            )
        }
        content["occurred_at"] = r["occurred_at"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert entry_hash(content) == r["entry_hash"], f"entry {r['account_id']}#{r['account_seq']}"
        prev[r["account_id"]] = r["entry_hash"]


def expected(sent: list[tuple[str, int, FakeRecord]]) -> dict[str, tuple[int, int]]:
    acc: dict[str, list[int]] = defaultdict(list)
    for account, points, _ in sent:
        acc[account].append(points)
    return {a: (len(p), sum(p)) for a, p in acc.items()}


def actual(rows: list[asyncpg.Record]) -> dict[str, tuple[int, int]]:
    acc: dict[str, list[int]] = defaultdict(list)
    for r in rows:
        acc[r["account_id"]].append(r["amount"])
    return {a: (len(p), sum(p)) for a, p in acc.items()}


async def test_redelivery_and_duplicates_add_nothing(
    worker_factory: Callable[[], Awaitable[LedgerWorker]],
) -> None:
    worker = await worker_factory()
    sent = completions(600, accounts=25)
    records = [r for _, _, r in sent]
    # batches as a restarted consumer would see them: overlapping, and duplicates inside one
    await worker.apply_records(records[:250] + records[100:120])
    await worker.apply_records(records[200:450])
    await worker.apply_records(records[:600])
    plan = await worker.apply_records(records[590:600])
    assert len(plan.entries) == 0 and len(plan.duplicates) == 10
    state = await ledger_state(worker)
    assert actual(state["rows"]) == expected(sent)
    assert {a: c_s[1] for a, c_s in expected(sent).items()} == state["heads"]
    assert_chains_intact(state["rows"])


async def test_two_workers_applying_the_same_records_at_once_stay_exact(
    worker_factory: Callable[[], Awaitable[LedgerWorker]],
) -> None:
    first, second = await worker_factory(), await worker_factory()
    sent = completions(800, accounts=10)
    records = [r for _, _, r in sent]
    # during a rebalance both may hold the same partition for a moment: same records, racing
    await asyncio.gather(
        *[first.apply_records(records[i:i + 100]) for i in range(0, 800, 100)],
        *[second.apply_records(records[i:i + 150]) for i in range(0, 800, 150)],
    )  # fmt: skip
    state = await ledger_state(first)
    assert actual(state["rows"]) == expected(sent)
    assert_chains_intact(state["rows"])
    for account, (count, total) in expected(sent).items():
        assert state["heads"][account] == total and count > 0


async def test_a_cause_sent_again_is_announced_again_with_the_same_event(
    worker_factory: Callable[[], Awaitable[LedgerWorker]],
) -> None:
    """A sender that did not hear back sends again; the entry is not appended twice, but its
    ledger event is published again (same id), so a consumer that missed it can apply it."""
    worker = await worker_factory()
    sent = completions(3, accounts=3)
    records = [r for _, _, r in sent]
    await worker.apply_records(records)
    async with worker.pool.acquire() as conn:
        # the ledger is its own outbox: the first announcements are built from the rows
        assert await conn.fetchval("SELECT count(*) FROM outbox") == 0
        first = [
            {"event_id": uuid.UUID(ev["id"]), "payload": orjson.dumps(ev)}
            for ev in map(
                ledger_event_of_row, await conn.fetch(worker.q["relay_entries"], 0, 0, 100)
            )
        ]
        plan = await worker.apply_records(records[1:2])
        again = await conn.fetch("SELECT event_id, payload FROM outbox ORDER BY id")
        assert await conn.fetchval("SELECT count(*) FROM ledger_entry") == 3
    assert len(plan.entries) == 0 and len(plan.duplicates) == 1
    assert len(first) == 3 and len(again) == 1
    assert again[0]["event_id"] == first[1]["event_id"]
    assert orjson.loads(again[0]["payload"])["data"] == orjson.loads(first[1]["payload"])["data"]
