"""The points worker process: the ledger consumer and the outbox relay, with health and metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from jifen.kernel.contracts import Contracts
from jifen.kernel.db import create_pool
from jifen.kernel.kafka import ensure_topics
from jifen.kernel.outbox import OutboxRelay
from jifen.kernel.runtime import cancel, spawn
from jifen.kernel.service import start_producer
from jifen.kernel.web import create_app, pool_check
from jifen.points.audit.loop import audit_loop
from jifen.points.db import queries
from jifen.points.settings import PointsSettings
from jifen.points.worker import LedgerWorker


def build_worker_app(settings: PointsSettings | None = None) -> FastAPI:
    settings = settings or PointsSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        contracts = Contracts(settings.schemas_dir)
        pool = await create_pool(settings.database_url, max_size=4)
        await ensure_topics(settings.kafka_bootstrap, partitions=settings.topic_partitions)
        producer = await start_producer(settings.kafka_bootstrap)
        worker = LedgerWorker(settings, contracts, pool, producer, queries())
        relay = OutboxRelay(
            settings.database_url,
            producer,
            service="points",
            batch=settings.outbox_batch,
            poll_seconds=settings.outbox_poll_seconds,
        )
        app.state.worker = worker

        async def partitions() -> tuple[bool, str]:
            return (
                worker.assigned,
                "partitions assigned" if worker.assigned else "waiting for partitions",
            )

        app.state.ready_checks["database"] = lambda: pool_check(pool)
        app.state.ready_checks["partitions"] = partitions
        loops = [spawn(worker.run(), "ledger-worker"), spawn(relay.run(), "outbox-relay")]
        loops.append(spawn(audit_loop(settings, pool), "audit-sequencer"))
        try:
            yield
        finally:
            await cancel(*loops)
            await producer.stop()
            await pool.close()

    return create_app(
        service="points-worker",
        title="Jifen points worker",
        description="Ledger worker and outbox relay: health, readiness and metrics only.",
        lifespan=lifespan,
    )
