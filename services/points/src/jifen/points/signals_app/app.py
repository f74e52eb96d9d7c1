"""The faust app for integrity signals, built by a factory (nothing happens at import).

Why faust here and not on the ledger path: the signals are a stream computation over events
(windows per volunteer, officer, community) where a few hundred events a second is plenty,
while the ledger needs tens of thousands (faust measured ~3.6k/s there; INFRA-FACTS.md).
Its state is kept in PostgreSQL, not in faust Tables: Table recovery reads changelog end
offsets, which the embedded broker reports wrongly, so a restart would lose updates. Each
batch's tallies and the ids of the events in it commit in one transaction, so a redelivery
after a crash counts nothing twice and a restarted worker simply goes on from PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import asyncpg
import faust
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge

from jifen.kernel import topics
from jifen.kernel.contracts import Contracts, ContractViolation, parse_time
from jifen.kernel.db import create_pool
from jifen.kernel.metrics import ORG_REGISTRY, exposition
from jifen.points.db import queries
from jifen.points.db.signals import current_flags, record
from jifen.points.domain.signals import SIGNALS, Thresholds
from jifen.points.settings import PointsSettings

log = logging.getLogger(__name__)

TALLIED = Counter(
    "jifen_points_signal_events_total", "Verified completions tallied into integrity signals."
)
FLAGS = Gauge(
    "jifen_points_signal_flags",
    "Current integrity flags by organisation and signal (see GET /v1/signals).",
    ["org", "signal"],
    registry=ORG_REGISTRY,
)
LAST_EVENT = Gauge(
    "jifen_points_signal_last_event_timestamp_seconds",
    "Time of the newest verified completion tallied.",
)

VERIFIED = "jifen.tasks.completion.verified.v1"


def make_faust_app(settings: PointsSettings) -> faust.App:
    app = faust.App(
        "jifen-points-signals",
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        autodiscover=False,
        topic_partitions=settings.topic_partitions,
        topic_allow_declare=False,
        consumer_auto_offset_reset="earliest",
        # a short session: the embedded broker holds the first join for half of it
        broker_session_timeout=settings.kafka_session_timeout_ms / 1000,
        broker_heartbeat_interval=1.0,
        processing_guarantee="at_least_once",
        web_enabled=True,
        web_bind=settings.host,
        web_port=settings.signals_port,
        web_host=settings.host,
        logging_config=None,
    )
    contracts = Contracts(settings.schemas_dir)
    q = queries()
    thresholds = Thresholds()
    state: dict[str, Any] = {}
    completions = app.topic(topics.TASKS_COMPLETIONS, value_serializer="raw")

    @app.task
    async def connect() -> None:
        state["pool"] = await create_pool(settings.database_url, max_size=3)

    async def pool() -> asyncpg.Pool:
        while "pool" not in state:
            await asyncio.sleep(0.05)
        p: asyncpg.Pool = state["pool"]
        return p

    @app.agent(completions)
    async def tally(stream: faust.StreamT[bytes]) -> None:
        async for batch in stream.take(500, within=0.5):
            events = []
            for raw in batch:
                try:
                    event = contracts.decode(raw)
                except ContractViolation:
                    continue  # the ledger worker dead-letters it; signals just skip it
                if event["type"] == VERIFIED:
                    events.append(event)
            if not events:
                continue
            delay = 0.2
            while True:  # faust acks what an agent raised on and never retries: retry here
                try:
                    n = await record(await pool(), q, events)
                    break
                except (
                    OSError,
                    asyncpg.PostgresError,
                    asyncpg.InterfaceError,
                    asyncpg.InternalClientError,
                ):
                    log.exception("tallying failed; retrying the batch")
                    await asyncio.sleep(delay)
                    delay = min(2 * delay, 5.0)
            TALLIED.inc(n)
            LAST_EVENT.set(max(parse_time(e["time"]).timestamp() for e in events))

    @app.timer(interval=2.0)
    async def refresh_flags() -> None:
        if "pool" not in state:
            return
        try:
            async with state["pool"].acquire() as conn:
                flags = await current_flags(conn, q, None, thresholds, timedelta(days=1))
        except (
            OSError,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            asyncpg.InternalClientError,
        ):
            # a timer that raises crashes the whole faust worker: a database restart would
            # take the signals down for good. Wait it out; the next tick refreshes.
            log.warning("refreshing integrity flags failed; retrying", exc_info=True)
            return
        counts: dict[tuple[str, str], int] = {}
        for f in flags:
            counts[(f.org_id, f.signal)] = counts.get((f.org_id, f.signal), 0) + 1
        orgs = {org for org, _ in counts} | {labels[0] for labels in _known_orgs(FLAGS)}
        for org in orgs:
            for signal in SIGNALS:
                FLAGS.labels(org, signal).set(counts.get((org, signal), 0))

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        # aiohttp wants the charset apart from the content type (UTF-8 is its default)
        return web.bytes(
            exposition(request.headers.get("Authorization")),
            content_type=CONTENT_TYPE_LATEST.split(";")[0] + "; version=0.0.4",
        )

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok", "service": "points-signals"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        checks: dict[str, dict[str, Any]] = {}
        try:
            async with (await asyncio.wait_for(pool(), 2)).acquire(timeout=2) as conn:
                await conn.fetchval("SELECT 1")
            checks["database"] = {"ok": True, "detail": "database reachable"}
        except Exception as exc:  # a failed check, not a crash
            checks["database"] = {"ok": False, "detail": repr(exc)}
        assigned = bool(app.consumer.assignment()) if app.consumer else False
        checks["partitions"] = {"ok": assigned, "detail": "assigned" if assigned else "waiting"}
        ready = all(c["ok"] for c in checks.values())
        return web.json(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status=200 if ready else 503,
        )

    return app


def _known_orgs(gauge: Gauge) -> list[tuple[str, ...]]:
    # label sets already exported, so a flag that cleared is set back to 0, not left stale
    return [tuple(s.labels.values()) for m in gauge.collect() for s in m.samples]


def run(settings: PointsSettings) -> None:
    app = make_faust_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True)
    worker.execute_from_commandline()
