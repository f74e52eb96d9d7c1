"""The points relay process (``python -m jifen.points relay``): the ledger relay
(``ledger_relay.LedgerRelay``, publishing the ledger's own events) and the audit sequencer
(``audit.loop.audit_loop``: tree positions, checkpoints, self-verification), with health,
readiness and metrics like the other workers.

Both read what the ledger worker committed and neither writes an entry, so they run beside it,
not in its process: the worker's CPU goes to appending. Run one (or more: one relay and one
sequencer publish or place at a time, by advisory locks; the others stand by)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from jifen.kernel.db import create_pool
from jifen.kernel.kafka import ensure_topics
from jifen.kernel.runtime import cancel, spawn
from jifen.kernel.service import start_producer
from jifen.points.audit.loop import audit_loop, export
from jifen.points.db import queries
from jifen.points.ledger_relay import OLDEST_AGE, PENDING, PUBLISHED, LedgerRelay
from jifen.points.settings import PointsSettings


def build_relay_app(settings: PointsSettings | None = None) -> FastAPI:
    settings = settings or PointsSettings()
    from jifen.kernel.web import create_app, pool_check

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(settings.database_url, max_size=2)
        await ensure_topics(settings.kafka_bootstrap, partitions=settings.topic_partitions)
        producer = await start_producer(settings.kafka_bootstrap)

        async def every_topic() -> None:
            await ensure_topics(settings.kafka_bootstrap, partitions=settings.topic_partitions)

        relay = LedgerRelay(
            settings.database_url,
            producer,
            queries(),
            batch=settings.ledger_relay_batch,
            poll_seconds=settings.ledger_relay_poll_seconds,
            ensure=every_topic,
        )
        export(PUBLISHED, PENDING, OLDEST_AGE)
        app.state.relay = relay

        async def relay_check() -> tuple[bool, str]:
            # a standby (another replica publishes) is ready too: it takes over on failure
            return True, "publishing" if relay.leading else "standing by"

        app.state.ready_checks["database"] = lambda: pool_check(pool)
        app.state.ready_checks["ledger relay"] = relay_check
        loops = [
            spawn(relay.run(), "ledger-relay"),
            spawn(audit_loop(settings, pool), "audit-sequencer"),
        ]
        try:
            yield
        finally:
            await cancel(*loops)
            await producer.stop()
            await pool.close()

    return create_app(
        service="points-relay",
        title="Jifen points relay",
        description="Ledger relay and audit sequencer: health, readiness and metrics only.",
        lifespan=lifespan,
    )
