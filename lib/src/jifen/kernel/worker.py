"""A service's worker process: the outbox relay and the idempotent consumer (one record at a
time through ``handlers``, or the service's own ``batch`` hook), plus any service-specific
loops (``extra_loops``), behind a small app serving health, readiness and metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from jifen.kernel.consumer import BatchHook, EventConsumer, Handler
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
    handlers: Callable[[], dict[str, Handler]] = dict,
    batch: Callable[[Contracts, asyncpg.Pool, AIOKafkaProducer], BatchHook[Any]] | None = None,
    extra_loops: Callable[
        [asyncpg.Pool], list[tuple[str, Coroutine[Any, Any, None]]]
    ] = lambda _: [],
    max_records: int = 500,
    poll_ms: int = 500,
    ensure_every_topic: bool = False,
    lag_when_idle: bool = True,
    description: str = "Outbox relay and event consumer: health, readiness and metrics only.",
) -> FastAPI:
    """``handlers`` (by event type) or ``batch`` (given the contracts, pool and producer)
    apply what the consumer fetches (:class:`EventConsumer`); ``ensure_every_topic``: a
    restarted consumer makes every missing topic (``JIFEN_TOPIC_PARTITIONS`` partitions), not
    only those it consumes; ``lag_when_idle``: see :class:`EventConsumer`."""
    from jifen.kernel.web import create_app, pool_check

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        contracts = Contracts(settings.schemas_dir)
        pool = await create_pool(settings.database_url, max_size=4)
        await ensure_topics(settings.kafka_bootstrap, partitions=settings.topic_partitions)
        producer = await start_producer(settings.kafka_bootstrap)

        async def every_topic() -> None:
            await ensure_topics(settings.kafka_bootstrap, partitions=settings.topic_partitions)

        consumer = EventConsumer(
            service=service,
            bootstrap=settings.kafka_bootstrap,
            group_id=group_id,
            topic_names=topic_names,
            contracts=contracts,
            pool=pool,
            producer=producer,
            handlers=handlers(),
            batch=batch(contracts, pool, producer) if batch is not None else None,
            max_records=max_records,
            poll_ms=poll_ms,
            ensure=every_topic if ensure_every_topic else None,
            lag_when_idle=lag_when_idle,
            fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
            session_timeout_ms=settings.kafka_session_timeout_ms,
        )
        relay = OutboxRelay(
            settings.database_url,
            producer,
            service=service,
            batch=settings.outbox_batch,
            poll_seconds=settings.outbox_poll_seconds,
            ensure=every_topic,
        )

        app.state.consumer = consumer

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
        description=description,
        lifespan=lifespan,
    )
