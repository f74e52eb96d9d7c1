"""An idempotent, dead-lettering event consumer for the low-volume paths (tasks, redeem).

One record at a time, each in its own transaction with its inbox row; offsets committed
after the database commit. A record that fails its contract, or that the handler refuses
as impossible, goes to the dead-letter topic with the reason and never blocks the partition.
A database outage is waited out (the record is retried, never skipped), and a broker that
restarted empty is noticed (``OffsetGuard``) and read again from its beginning.
(The points ledger has its own batched path: see ``jifen.points.worker``.)
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from jifen.kernel.contracts import Contracts, ContractViolation
from jifen.kernel.db import DATABASE_UNAVAILABLE
from jifen.kernel.kafka import (
    BrokerForgot,
    OffsetGuard,
    dead_letter,
    ensure_topics,
    make_consumer,
    stop_consumer,
)
from jifen.kernel.metrics import EVENTS_CONSUMED, EVENTS_FAILED, observe_lag
from jifen.kernel.runtime import equal_jitter

log = logging.getLogger(__name__)

Handler = Callable[[asyncpg.Connection, dict[str, Any]], Awaitable[None]]


class RejectedEvent(Exception):
    """A valid event that cannot be applied (e.g. it names an unknown redemption)."""


async def claim_event(conn: asyncpg.Connection, event: dict[str, Any]) -> bool:
    """Record the event as applied; False if it already was (a redelivery)."""
    return bool(
        await conn.fetchval(
            "INSERT INTO applied_event (event_id, event_type) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING RETURNING true",
            uuid.UUID(event["id"]),
            event["type"],
        )
    )


class EventConsumer:
    def __init__(
        self,
        *,
        service: str,
        bootstrap: str,
        group_id: str,
        topic_names: list[str],
        contracts: Contracts,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        handlers: dict[str, Handler],
        fetch_max_wait_ms: int = 20,
        session_timeout_ms: int = 10_000,
    ) -> None:
        self.service = service
        self.bootstrap = bootstrap
        self.group_id = group_id
        self.topic_names = topic_names
        self.contracts = contracts
        self.pool = pool
        self.producer = producer
        self.handlers = handlers
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.session_timeout_ms = session_timeout_ms
        self.assigned = False

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
                guard = OffsetGuard(consumer, self.group_id)
                while True:
                    batch = await consumer.getmany(timeout_ms=500, max_records=500)
                    self.assigned = bool(consumer.assignment())
                    for tp, records in batch.items():
                        for record in records:
                            await self._apply(record)
                        await guard.commit({tp: records[-1].offset + 1})
                    if not batch:
                        await guard.idle()
                    await observe_lag(consumer, self.group_id)
            except asyncio.CancelledError:
                raise
            except BrokerForgot as exc:
                log.warning("%s: %s; re-reading from the beginning", self.service, exc)
            except KafkaError:
                log.exception("%s consumer lost the broker; restarting it", self.service)
                await asyncio.sleep(equal_jitter(1.0))
            finally:
                self.assigned = False
                await stop_consumer(consumer)

    async def _apply(self, record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            event = self.contracts.decode(record.value)
        except ContractViolation as exc:
            await self._dead_letter(record, exc.reason)
            return
        handler = self.handlers.get(event["type"])
        if handler is None:
            # an event type this service does not act on: applied as a no-op
            EVENTS_CONSUMED.labels(self.service, record.topic, event["type"]).inc()
            return
        delay = 0.2
        while True:
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    if await claim_event(conn, event):
                        await handler(conn, event)
                break
            except RejectedEvent as exc:
                await self._dead_letter(record, f"rejected: {exc}")
                return
            except DATABASE_UNAVAILABLE:
                EVENTS_FAILED.labels(self.service, record.topic, event["type"]).inc()
                log.warning("%s: database unavailable, retrying %s", self.service, event["id"])
                await asyncio.sleep(equal_jitter(delay))
                delay = min(delay * 2, 5.0)
            except Exception as exc:  # a bug or an impossible record: never block the partition
                log.exception("%s: handler failed for %s", self.service, event["id"])
                await self._dead_letter(record, f"handler error: {type(exc).__name__}: {exc}")
                return
        EVENTS_CONSUMED.labels(self.service, record.topic, event["type"]).inc()
        log.info(
            "applied %s",
            event["type"],
            extra={
                "service": self.service,
                "event_id": event["id"],
                "cause_event_id": event["data"].get("cause_event_id"),
                "account_id": event.get("subject"),
            },
        )

    async def _dead_letter(self, record: ConsumerRecord[bytes, bytes], reason: str) -> None:
        await dead_letter(
            self.producer,
            record.topic,
            value=record.value,
            key=record.key,
            reason=reason,
            partition=record.partition,
            offset=record.offset,
            consumer=self.group_id,
        )


__all__ = ["EventConsumer", "RejectedEvent", "TopicPartition", "claim_event"]
