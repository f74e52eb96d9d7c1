"""The tasks service's business metrics, read from its own database every few seconds, so
they always say what the database holds (bounded labels: organisation, category, status)."""

from __future__ import annotations

import asyncio

import asyncpg
from prometheus_client import Gauge

from jifen.kernel.metrics import ORG_REGISTRY
from jifen.kernel.runtime import jittered
from jifen.tasks.domain.jobs import CompletionStatus

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


# every label set this process has exported, per gauge: one whose rows are gone (the last held
# completion approved, say) reads 0 again rather than keeping its last count forever
_SEEN: dict[str, set[tuple[str, ...]]] = {"jobs": set(), "completions": set(), "uncredited": set()}

# the statuses a completion can have, exported for every organisation seen so a rule or a
# dashboard finds a 0 rather than nothing for a status no completion has yet
STATUSES = tuple(s.value for s in CompletionStatus)


def _publish(gauge: Gauge, seen: set[tuple[str, ...]], now: dict[tuple[str, ...], int]) -> None:
    for labels in seen - now.keys():
        gauge.labels(*labels).set(0)
    for labels, n in now.items():
        gauge.labels(*labels).set(n)
    seen |= now.keys()


async def refresh(conn: asyncpg.Connection) -> None:
    jobs = {(r["org_id"], r["category"]): r["n"] for r in await conn.fetch(_JOBS)}
    done = {(r["org_id"], r["status"]): r["n"] for r in await conn.fetch(_COMPLETIONS)}
    pending = {(r["org_id"],): r["n"] for r in await conn.fetch(_UNCREDITED)}
    orgs = {org for org, _ in done}
    for org in orgs:
        for status in STATUSES:
            done.setdefault((org, status), 0)
        pending.setdefault((org,), 0)
    _publish(JOBS, _SEEN["jobs"], jobs)
    _publish(COMPLETIONS, _SEEN["completions"], done)
    _publish(UNCREDITED, _SEEN["uncredited"], pending)


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
        await asyncio.sleep(jittered(every))  # replicas started together drift apart
