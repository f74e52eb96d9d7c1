"""The integrity signals' tables: tallying verified completions once, and reading the flags.

Kept apart from the faust app (``jifen.points.signals_app``) so the points API reads the flags
without importing faust at start-up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from jifen.kernel.contracts import parse_time
from jifen.kernel.db import Queries
from jifen.points.domain.signals import Tally, Thresholds, evaluate, tallies


async def record(pool: asyncpg.Pool, q: Queries, events: list[dict[str, Any]]) -> int:
    """Tally a batch once: the inbox of event ids and the counts commit together."""
    async with pool.acquire() as conn, conn.transaction():
        fresh = {
            r["event_id"]
            for r in await conn.fetch(q["claim_signal_events"], [e["id"] for e in events])
        }
        new = [e for e in events if e["id"] in fresh]
        rows = tallies(new, parse_time)
        if rows:
            await conn.execute(
                q["add_tallies"],
                [t.signal for t in rows],
                [t.org_id for t in rows],
                [t.community_id for t in rows],
                [t.subject for t in rows],
                [t.window_start for t in rows],
                [t.window_seconds for t in rows],
                [t.count for t in rows],
                [t.points for t in rows],
            )
    return len(new)


async def current_flags(
    conn: asyncpg.Connection,
    q: Queries,
    org: str | None,
    thresholds: Thresholds,
    lookback: timedelta,
) -> list[Any]:
    now = datetime.now(UTC)
    rows = [Tally(**dict(r)) for r in await conn.fetch(q["recent_tallies"], org, now - lookback)]
    pairs = [
        Tally(**dict(r))
        for r in await conn.fetch(q["officer_pairs_since"], org, now - timedelta(days=30))
    ]
    rows = [r for r in rows if r.signal != "officer_volunteer_completions_per_day"] + pairs
    return evaluate(rows, thresholds)
