"""The sequencer under concurrency: appends in parallel transactions (ids not in commit order)
while two sequencers race; every entry is placed exactly once, positions never move, each
account's entries sit in chain order, and the whole tree verifies."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

from jifen.points.audit import store
from jifen.points.audit.offline import load_keys, verify_files
from jifen.points.db import MIGRATIONS, queries
from tests.integration.points.test_audit_fixtures import ledger_in

FreshDb = Callable[[Path], Awaitable[str]]


async def test_concurrent_appends_and_sequencers(fresh_db: FreshDb, tmp_path: Path) -> None:
    async with ledger_in(await fresh_db(MIGRATIONS), tmp_path / "keys") as lg:
        q = queries()
        stop = asyncio.Event()
        snapshots: list[dict[int, int]] = []

        async def appender(worker: int) -> None:
            for round_ in range(12):
                # overlapping accounts between workers, so row locks interleave commits
                await lg.append(
                    [lg.book.credit(f"vol-{(worker + round_ + i) % 7}", 1 + i) for i in range(5)]
                )

        async def sequencer(window: int | None) -> None:
            conn = await asyncpg.connect(lg.dsn)
            try:
                while not stop.is_set():
                    await store.sequence(conn, q, batch=7, window=window)
                    rows = await conn.fetch("SELECT position, entry_id FROM merkle_leaf")
                    snapshots.append({r["position"]: r["entry_id"] for r in rows})
                    await asyncio.sleep(0)
            finally:
                await conn.close()

        # one full, one over recent ids only (the worker's frequent pass); the checkpoint's
        # full pass places whatever the windowed one left behind
        seqs = [asyncio.create_task(sequencer(w)) for w in (None, 5)]
        await asyncio.gather(*(appender(w) for w in range(3)))
        stop.set()
        await asyncio.gather(*seqs)
        await lg.checkpoint()

        async with lg.pool.acquire() as conn:
            placed = await conn.fetch(
                "SELECT position, entry_id FROM merkle_leaf ORDER BY position"
            )
            total = await conn.fetchval("SELECT count(*) FROM ledger_entry")
        assert total == 3 * 12 * 5
        assert [r["position"] for r in placed] == list(range(total))
        assert len({r["entry_id"] for r in placed}) == total
        final = {r["position"]: r["entry_id"] for r in placed}
        # a position, once given, never changed in anything either sequencer saw
        for snap in snapshots:
            assert all(final[p] == e for p, e in snap.items())
        export = await lg.export(tmp_path / "export.ndjson", tmp_path / "keys.json")
        result = verify_files([export], load_keys(tmp_path / "keys.json"))
        assert result.ok, [str(f) for f in result.findings]
        assert sum(a.balance for a in result.accounts.values()) == 3 * 12 * (1 + 2 + 3 + 4 + 5)
