"""The tasks worker: outbox relay, credit acknowledgements from the ledger, and republishing
of verified completions the ledger has not credited within the bound.

A broker that forgets everything (the embedded Tansu on restart) can leave this worker's
consumer at offsets from before the restart, past the first records of the new log, so a
credit acknowledgement is never read. The ledger itself is safe (republished completions are
applied once), but the acknowledgement would never come. So when a completion stays
unacknowledged for twice the bound, the consumer re-reads the ledger's events from the
beginning; the inbox (applied_event) makes re-reading harmless.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import asyncpg
from aiokafka.errors import KafkaError
from fastapi import FastAPI

from jifen.kernel import topics
from jifen.kernel.consumer import EventConsumer
from jifen.kernel.contracts import Contracts
from jifen.kernel.db import create_pool
from jifen.kernel.kafka import ensure_topics, make_consumer
from jifen.kernel.outbox import OutboxRelay
from jifen.kernel.runtime import cancel, spawn
from jifen.kernel.service import start_producer
from jifen.kernel.web import create_app, pool_check
from jifen.tasks import handlers
from jifen.tasks.db import queries
from jifen.tasks.settings import TasksSettings

log = logging.getLogger(__name__)


class RewindableConsumer(EventConsumer):
    """The kernel's idempotent consumer, able to re-read its topics from the beginning."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rewind = asyncio.Event()
        self.rewinds = 0

    async def run(self) -> None:
        while True:
            consumer = make_consumer(
                self.bootstrap,
                self.group_id,
                *self.topic_names,
                fetch_max_wait_ms=self.fetch_max_wait_ms,
                session_timeout_ms=self.session_timeout_ms,
                max_poll_records=500,
            )
            try:
                await ensure_topics(self.bootstrap, self.topic_names)
                await consumer.start()
                while True:
                    if self.rewind.is_set() and consumer.assignment():
                        self.rewind.clear()
                        self.rewinds += 1
                        await consumer.seek_to_beginning(*consumer.assignment())
                        log.warning("acknowledgements overdue: re-reading %s", self.topic_names)
                    batch = await consumer.getmany(timeout_ms=500, max_records=500)
                    self.assigned = bool(consumer.assignment())
                    for tp, records in batch.items():
                        for record in records:
                            await self._apply(record)
                        await consumer.commit({tp: records[-1].offset + 1})
            except asyncio.CancelledError:
                raise
            except KafkaError:
                log.exception("tasks consumer lost the broker; restarting it")
                await asyncio.sleep(1.0)
            finally:
                self.assigned = False
                await consumer.stop()


async def _republish_loop(
    pool: asyncpg.Pool, settings: TasksSettings, consumer: RewindableConsumer
) -> None:
    q = queries()
    bound = timedelta(seconds=settings.credit_timeout_seconds)
    loop = asyncio.get_running_loop()
    # a re-read costs a pass over the ledger topic: at most one per four bounds
    rewind_every = 4 * settings.credit_timeout_seconds
    last_rewind = loop.time()
    while True:
        try:
            async with pool.acquire() as conn:
                n = await handlers.republish_uncredited(conn, q, older_than=bound)
                if n:
                    log.warning("republished %d verified completions not yet credited", n)
                if loop.time() - last_rewind > rewind_every and await conn.fetchval(
                    q["acks_overdue"], 2 * bound
                ):
                    last_rewind = loop.time()
                    consumer.rewind.set()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            log.exception("republish pass failed; will retry")
        await asyncio.sleep(max(1.0, settings.credit_timeout_seconds / 3))


def build_worker_app(settings: TasksSettings | None = None) -> FastAPI:
    settings = settings or TasksSettings()
    q = queries()

    async def on_entry(conn: asyncpg.Connection, event: dict[str, Any]) -> None:
        await handlers.mark_credited(conn, q, event)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        contracts = Contracts(settings.schemas_dir)
        pool = await create_pool(settings.database_url, max_size=4)
        await ensure_topics(settings.kafka_bootstrap, partitions=settings.topic_partitions)
        producer = await start_producer(settings.kafka_bootstrap)
        consumer = RewindableConsumer(
            service="tasks",
            bootstrap=settings.kafka_bootstrap,
            group_id=settings.consumer_group,
            topic_names=[topics.POINTS_LEDGER],
            contracts=contracts,
            pool=pool,
            producer=producer,
            handlers={"jifen.points.entry.appended.v1": on_entry},
            fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
            session_timeout_ms=settings.kafka_session_timeout_ms,
        )
        relay = OutboxRelay(
            settings.database_url,
            producer,
            service="tasks",
            batch=settings.outbox_batch,
            poll_seconds=settings.outbox_poll_seconds,
        )

        async def partitions() -> tuple[bool, str]:
            ok = consumer.assigned
            return ok, "partitions assigned" if ok else "waiting for partitions"

        app.state.ready_checks["database"] = lambda: pool_check(pool)
        app.state.ready_checks["partitions"] = partitions
        loops = [
            spawn(relay.run(), "outbox-relay"),
            spawn(consumer.run(), "consumer"),
            spawn(_republish_loop(pool, settings, consumer), "republish"),
        ]
        try:
            yield
        finally:
            await cancel(*loops)
            await producer.stop()
            await pool.close()

    return create_app(
        service="tasks-worker",
        title="Jifen tasks worker",
        description="Outbox relay, credit acknowledgements and republishing: health, readiness "
        "and metrics only.",
        lifespan=lifespan,
    )
