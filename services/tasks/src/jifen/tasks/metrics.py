"""The tasks service's business metrics, read from its own database every few seconds, so
they always say what the database holds (bounded labels: organisation, category, status)."""

from __future__ import annotations

import asyncio

import asyncpg
from prometheus_client import Gauge

from jifen.kernel.metrics import ORG_REGISTRY

JOBS = Gauge(
    "jifen_tasks_jobs",
    "Jobs published, by organisation and category.",
    ["org", "category"],
    registry=ORG_REGISTRY,
)
COMPLETIONS = Gauge(
    "jifen_tasks_completions",
    "Completions by organisation and current status (submitted, held, verified, rejected, "
    "revoked).",
    ["org", "status"],
    registry=ORG_REGISTRY,
)
UNCREDITED = Gauge(
    "jifen_tasks_verified_uncredited",
    "Verified completions the ledger has not acknowledged yet (republished after the bound).",
    ["org"],
    registry=ORG_REGISTRY,
)

_JOBS = "SELECT org_id, category, count(*) AS n FROM job GROUP BY 1, 2"
_COMPLETIONS = "SELECT org_id, status, count(*) AS n FROM completion GROUP BY 1, 2"
_UNCREDITED = (
    "SELECT org_id, count(*) AS n FROM completion"
    " WHERE status = 'verified' AND credited_at IS NULL GROUP BY 1"
)


async def refresh(conn: asyncpg.Connection) -> None:
    for r in await conn.fetch(_JOBS):
        JOBS.labels(r["org_id"], r["category"]).set(r["n"])
    seen = set()
    for r in await conn.fetch(_COMPLETIONS):
        COMPLETIONS.labels(r["org_id"], r["status"]).set(r["n"])
        seen.add(r["org_id"])
    pending = {r["org_id"]: r["n"] for r in await conn.fetch(_UNCREDITED)}
    for org in seen:
        UNCREDITED.labels(org).set(pending.get(org, 0))


async def refresh_loop(pool: asyncpg.Pool, every: float = 5.0) -> None:
    while True:
        try:
            async with pool.acquire() as conn:
                await refresh(conn)
        except (
            OSError,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            asyncpg.InternalClientError,
        ):
            pass  # /readyz reports the database; the gauges keep their last values
        await asyncio.sleep(every)
