"""A worker process of the low-volume services: the outbox relay and an idempotent consumer,
plus any service-specific loops, behind a small app serving health, readiness and metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI

from jifen.kernel.consumer import EventConsumer, Handler
from jifen.kernel.contracts import Contracts
from jifen.kernel.db import create_pool
from jifen.kernel.kafka import ensure_topics
from jifen.kernel.outbox import OutboxRelay
from jifen.kernel.runtime import cancel, spawn
from jifen.kernel.service import start_producer
from jifen.kernel.settings import ServiceSettings


def build_worker_app(
    *,
    service: str,
    settings: ServiceSettings,
    group_id: str,
    topic_names: list[str],
    handlers: Callable[[], dict[str, Handler]],
    extra_loops: Callable[
        [asyncpg.Pool], list[tuple[str, Coroutine[Any, Any, None]]]
    ] = lambda _: [],
) -> FastAPI:
    from jifen.kernel.web import create_app, pool_check

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        contracts = Contracts(settings.schemas_dir)
        pool = await create_pool(settings.database_url, max_size=4)
        await ensure_topics(settings.kafka_bootstrap, partitions=settings.topic_partitions)
        producer = await start_producer(settings.kafka_bootstrap)
        consumer = EventConsumer(
            service=service,
            bootstrap=settings.kafka_bootstrap,
            group_id=group_id,
            topic_names=topic_names,
            contracts=contracts,
            pool=pool,
            producer=producer,
            handlers=handlers(),
            fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
            session_timeout_ms=settings.kafka_session_timeout_ms,
        )
        relay = OutboxRelay(
            settings.database_url,
            producer,
            service=service,
            batch=settings.outbox_batch,
            poll_seconds=settings.outbox_poll_seconds,
        )

        async def partitions() -> tuple[bool, str]:
            ok = consumer.assigned
            return ok, "partitions assigned" if ok else "waiting for partitions"

        app.state.ready_checks["database"] = lambda: pool_check(pool)
        app.state.ready_checks["partitions"] = partitions
        loops = [spawn(relay.run(), "outbox-relay"), spawn(consumer.run(), "consumer")]
        loops += [spawn(coro, name) for name, coro in extra_loops(pool)]
        try:
            yield
        finally:
            await cancel(*loops)
            await producer.stop()
            await pool.close()

    return create_app(
        service=f"{service}-worker",
        title=f"Jifen {service} worker",
        description="Outbox relay and event consumer: health, readiness and metrics only.",
        lifespan=lifespan,
    )
