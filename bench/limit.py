"""Part 1, the limit: a bare COPY of ledger-shaped rows into a copy of ``ledger_entry``."""

from __future__ import annotations

import hashlib
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from bench.events import ORG
from bench.report import Report
from jifen.devtools.devstack import DevStack
from jifen.points.db.repo import LEDGER_COLUMNS


def ledger_rows(n: int, accounts: int, tag: str) -> list[tuple[Any, ...]]:
    """N rows shaped like ledger_entry (same columns, hash-chained per account)."""
    heads: dict[str, tuple[int, int, str]] = {}
    now = datetime.now(UTC)
    rows = []
    for i in range(n):
        acct = f"{tag}-{i % accounts:05d}"
        seq, bal, prev = heads.get(acct, (0, 0, "0" * 64))
        amount = 1 + i % 37
        h = hashlib.sha256(f"{prev}|{acct}|{seq + 1}|{amount}".encode()).hexdigest()
        heads[acct] = (seq + 1, bal + amount, h)
        rows.append(
            (
                i + 1,
                acct,
                seq + 1,
                "credit",
                amount,
                bal + amount,
                ORG,
                "hazard_patrol",
                uuid.uuid4(),
                "jifen.tasks.completion.verified.v1",
                uuid.uuid4(),
                uuid.uuid4(),
                None,
                now,
                now,
                prev,
                h,
            )
        )
    return rows


# the ledger's own columns but reward_id (a reporting column the benchmark rows leave out)
COPY_COLUMNS = [c for c in LEDGER_COLUMNS if c != "reward_id"]


async def bench_copy(stack: DevStack, rep: Report, n: int, accounts: int, batch: int) -> float:
    rows = ledger_rows(n, accounts, "copy")
    conn = await asyncpg.connect(stack.owner_dsn("points"))
    try:
        await conn.execute("DROP TABLE IF EXISTS bench_copy")
        # the ledger's own columns, constraints and indexes (LIKE does not copy its triggers)
        await conn.execute("CREATE TABLE bench_copy (LIKE ledger_entry INCLUDING ALL)")
        t = time.perf_counter()
        for i in range(0, n, batch):
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "bench_copy", records=rows[i : i + batch], columns=COPY_COLUMNS
                )
        took = time.perf_counter() - t
        await conn.execute("DROP TABLE bench_copy")
    finally:
        await conn.close()
    rate = n / took
    rep.add("1 limit", f"bare COPY of {n:,} ledger rows ({batch}/tx)", rate, "rows/s")
    return rate
