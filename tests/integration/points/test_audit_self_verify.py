"""The points worker checks its own ledger at each checkpoint (the jifen_points_audit_
verification_ok metric the alert rules watch): quiet on an honest ledger, loud on a tampered one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

from jifen.kernel.contracts import Contracts
from jifen.kernel.settings import REPO_ROOT
from jifen.points.audit import store
from jifen.points.audit.loop import self_verify
from jifen.points.db import MIGRATIONS, queries
from jifen.points.handlers.ledger import append_postings
from tests.integration.points.test_ledger_append_only import credit


async def test_self_verification_passes_then_names_a_tampered_entry(
    fresh_db: Callable[[Path], Awaitable[str]], tmp_path: Path
) -> None:
    conn = await asyncpg.connect(await fresh_db(MIGRATIONS))
    q, contracts = queries(), Contracts(REPO_ROOT / "schemas")
    try:
        async with conn.transaction():
            await append_postings(conn, q, contracts, [credit("vol-1", 10), credit("vol-2", 4)])
        first = await store.make_checkpoint(conn, q, tmp_path)
        async with conn.transaction():
            _, ids = await append_postings(
                conn, q, contracts, [credit("vol-1", 3), credit("vol-3", 8)]
            )
        second = await store.make_checkpoint(conn, q, tmp_path)
        assert (first.tree_size, second.tree_size) == (2, 4)
        assert await self_verify(conn, tmp_path, first, second) == []
        assert await self_verify(conn, tmp_path, None, second) == []

        await conn.execute("ALTER TABLE ledger_entry DISABLE TRIGGER USER")
        await conn.execute("UPDATE ledger_entry SET amount = 300 WHERE id = $1", ids[0])
        problems = await self_verify(conn, tmp_path, None, second)
        assert problems == [f"entry {ids[0]}: content does not match its entry_hash"]
    finally:
        await conn.close()
