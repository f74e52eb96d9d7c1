"""The services' one consumer loop: idempotent, dead-lettering, offsets after the database.

Records are fetched in batches and handed to a *batch hook*: its ``decode`` (CPU only:
parse, validate) of batch k+1 runs while its ``apply`` (the database) of batch k is in
flight, batches are applied strictly one after another, and a batch's offsets are committed
only after its ``apply`` returned, i.e. after its database commit. A crash anywhere before
the offset commit means redelivery, which the consumer's idempotency turns into nothing.

- The default hook (tasks, redeem) applies one record at a time, each in its own transaction
  with its inbox row (``applied_event``), through ``handlers`` by event type.
- A service with a hook of its own (the points ledger appends a whole batch of postings in
  one transaction: ``jifen.points.worker.LedgerWorker``) passes ``batch=``.

Either way: a record that fails its contract, or that the handler refuses as impossible,
goes to the dead-letter topic with the reason and never blocks the partition; a database
outage is waited out (:func:`until_committed`: retried after the jittered waits of
``jifen.kernel.runtime.backoff``, never skipped); a lost broker restarts the consumer after a
jittered wait; and a broker that restarted empty is noticed (``OffsetGuard``) and read again
from its beginning.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeAlias, TypeVar

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
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
from jifen.kernel.runtime import backoff, equal_jitter
from jifen.kernel.settings import KAFKA_FETCH_MAX_WAIT_MS, KAFKA_SESSION_TIMEOUT_MS

log = logging.getLogger(__name__)
# how long past its own wait a fetch may take before the pipeline looks around (see _fetch)
FETCH_GRACE_SECONDS = 5.0

Record: TypeAlias = "ConsumerRecord[bytes, bytes]"
Handler = Callable[[asyncpg.Connection, dict[str, Any]], Awaitable[None]]
T = TypeVar("T")
D = TypeVar("D")


class RejectedEvent(Exception):
    """A valid event that cannot be applied (e.g. it names an unknown redemption)."""


class BatchHook(Protocol[D]):
    """How a consumer applies what it fetched, in two steps.

    ``decode`` is CPU only (no I/O): it runs while the previous batch's ``apply`` is in
    flight. ``apply`` does the database work (retrying an outage, e.g. with
    :func:`until_committed`), dead-letters what cannot be applied (:func:`dead_letter_record`),
    and returns once the batch's effects are committed: then its offsets are committed."""

    def decode(self, records: list[Record]) -> D: ...

    async def apply(self, decoded: D) -> object: ...


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


async def until_committed(
    work: Callable[[], Awaitable[T]],
    *,
    retry: tuple[type[BaseException], ...] = DATABASE_UNAVAILABLE,
    base: float,
    on_retry: Callable[[BaseException], None],
) -> T:
    """``work()`` (one transaction), run again after each ``retry`` error (a database outage;
    for a batch also a deadlock or a rebalance race) once ``on_retry`` has counted and logged
    it, after ``backoff``'s jittered, doubling wait from ``base`` seconds up to 5 s."""
    attempt = 0
    while True:
        try:
            return await work()
        except retry as exc:
            on_retry(exc)
            await asyncio.sleep(backoff(attempt, base=base))
            attempt += 1


async def dead_letter_record(
    producer: AIOKafkaProducer, record: Record, reason: str, *, consumer: str
) -> None:
    """``record`` to ``<its topic>.dlq`` with ``reason``, saying which consumer group gave up."""
    await dead_letter(
        producer,
        record.topic,
        value=record.value,
        key=record.key,
        reason=reason,
        partition=record.partition,
        offset=record.offset,
        consumer=consumer,
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
        handlers: dict[str, Handler] | None = None,
        batch: BatchHook[Any] | None = None,
        max_records: int = 500,
        poll_ms: int = 500,
        ensure: Callable[[], Awaitable[None]] | None = None,
        lag_when_idle: bool = True,
        fetch_max_wait_ms: int = KAFKA_FETCH_MAX_WAIT_MS,
        session_timeout_ms: int = KAFKA_SESSION_TIMEOUT_MS,
    ) -> None:
        """``handlers`` by event type (applied one record at a time), or a ``batch`` hook of
        the service's own; ``max_records`` a fetch, waiting up to ``poll_ms`` when idle;
        ``ensure`` makes the topics before each (re)start (default: the consumed ones). The lag
        gauge is set after each commit and, with ``lag_when_idle``, also while idle, for the
        partitions this member holds then (those it no longer holds are removed)."""
        self.service = service
        self.bootstrap = bootstrap
        self.group_id = group_id
        self.topic_names = topic_names
        self.contracts = contracts
        self.pool = pool
        self.producer = producer
        self.handlers = handlers or {}
        self.batch: BatchHook[Any] = batch if batch is not None else _OneByOne(self)
        self.max_records = max_records
        self.poll_ms = poll_ms
        self.ensure = ensure or (lambda: ensure_topics(self.bootstrap, self.topic_names))
        self.lag_when_idle = lag_when_idle
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.session_timeout_ms = session_timeout_ms
        self.consumer: AIOKafkaConsumer | None = None

    @property
    def assigned(self) -> bool:
        """Whether this member holds partitions now (the worker's readiness)."""
        return bool(self.consumer is not None and self.consumer.assignment())

    async def run(self) -> None:
        while True:
            consumer = make_consumer(
                self.bootstrap,
                self.group_id,
                *self.topic_names,
                fetch_max_wait_ms=self.fetch_max_wait_ms,
                session_timeout_ms=self.session_timeout_ms,
                max_poll_records=self.max_records,
            )
            try:
                await self.ensure()
                await consumer.start()
                self.consumer = consumer
                await self._pipeline(consumer)
            except asyncio.CancelledError:
                raise
            except BrokerForgot as exc:
                log.warning("%s: %s; re-reading from the beginning", self.service, exc)
            except KafkaError:
                log.exception("%s consumer lost the broker; restarting it", self.service)
                await asyncio.sleep(equal_jitter(1.0))
            finally:
                self.consumer = None
                await stop_consumer(consumer)

    async def _pipeline(self, consumer: AIOKafkaConsumer) -> None:
        """Fetch and decode batch k+1 while batch k's ``apply`` is in flight; commit batch
        k's offsets once it has returned (the guard raises BrokerForgot instead of committing
        to a broker that forgot, dropping the batch just fetched: it is read again with
        everything else after the restart). The lag gauge is set after each commit by a
        task of its own, beside the next batch: the broker answers the end offsets behind a
        fetch it holds open (up to ``fetch_max_wait_ms``), and waiting for them here stalled
        the pipeline ~0.3 s every ``LAG_EVERY`` (a quarter of an ingest run's time)."""
        in_flight: asyncio.Task[object] | None = None
        lag: asyncio.Task[None] | None = None
        offsets: dict[TopicPartition, int] = {}
        guard = OffsetGuard(consumer, self.group_id)
        try:
            while True:
                fetched = await self._fetch(consumer, 0 if in_flight else self.poll_ms)
                records = [r for rs in fetched.values() for r in rs]
                decoded = self.batch.decode(records) if records else None
                if in_flight is not None:
                    await in_flight
                    in_flight = None
                    await guard.commit(offsets)
                    if lag is None or lag.done():
                        if lag is not None and not lag.cancelled() and lag.exception():
                            log.warning("%s: lag not observed: %r", self.service, lag.exception())
                        lag = asyncio.create_task(observe_lag(consumer, self.group_id))
                elif not records:
                    await guard.idle()
                    if self.lag_when_idle:
                        await observe_lag(consumer, self.group_id)
                if records:
                    in_flight = asyncio.create_task(self.batch.apply(decoded))
                    offsets = {tp: rs[-1].offset + 1 for tp, rs in fetched.items()}
        finally:
            if lag is not None:
                lag.cancel()
            if in_flight is not None:
                # wound down before the consumer restarts, so a re-fetched batch is never
                # applied beside the one being abandoned (its transaction rolls back)
                in_flight.cancel()
                await asyncio.gather(in_flight, return_exceptions=True)
            if lag is not None:
                await asyncio.gather(lag, return_exceptions=True)

    async def _fetch(
        self, consumer: AIOKafkaConsumer, timeout_ms: int
    ) -> dict[TopicPartition, list[Record]]:
        """A fetch that returns within its wait: aiokafka's ``getmany`` waits, without end,
        for a rebalance in progress to finish, and a rebalance whose topic is gone never
        does — so the OffsetGuard, which would notice, never ran (a broker that lost its log
        folder left the consumer waiting for ever). Cancelled only while waiting (for the
        assignment or for records), so no record already handed over is dropped."""
        try:
            return await asyncio.wait_for(
                consumer.getmany(timeout_ms=timeout_ms, max_records=self.max_records),
                timeout_ms / 1000 + FETCH_GRACE_SECONDS,
            )
        except TimeoutError:
            return {}

    async def dead_letter(self, record: Record, reason: str) -> None:
        await dead_letter_record(self.producer, record, reason, consumer=self.group_id)


class _OneByOne:
    """The default batch hook: each record in its own transaction with its inbox row, through
    the consumer's handler for its event type (tasks, redeem)."""

    def __init__(self, consumer: EventConsumer) -> None:
        self.c = consumer

    def decode(self, records: list[Record]) -> list[Record]:
        return records

    async def apply(self, decoded: list[Record]) -> None:
        for record in decoded:
            await self._apply(record)

    async def _apply(self, record: Record) -> None:
        c = self.c
        try:
            event = c.contracts.decode(record.value)
        except ContractViolation as exc:
            await c.dead_letter(record, exc.reason)
            return
        handler = c.handlers.get(event["type"])
        if handler is None:
            # an event type this service does not act on: applied as a no-op
            EVENTS_CONSUMED.labels(c.service, record.topic, event["type"]).inc()
            return

        async def once() -> None:
            async with c.pool.acquire() as conn, conn.transaction():
                if await claim_event(conn, event):
                    await handler(conn, event)

        def retrying(_exc: BaseException) -> None:
            EVENTS_FAILED.labels(c.service, record.topic, event["type"]).inc()
            log.warning("%s: database unavailable, retrying %s", c.service, event["id"])

        try:
            await until_committed(once, base=0.2, on_retry=retrying)
        except RejectedEvent as exc:
            await c.dead_letter(record, f"rejected: {exc}")
            return
        except Exception as exc:  # a bug or an impossible record: never block the partition
            log.exception("%s: handler failed for %s", c.service, event["id"])
            await c.dead_letter(record, f"handler error: {type(exc).__name__}: {exc}")
            return
        EVENTS_CONSUMED.labels(c.service, record.topic, event["type"]).inc()
        log.info(
            "applied %s",
            event["type"],
            extra={
                "service": c.service,
                "event_id": event["id"],
                "cause_event_id": event["data"].get("cause_event_id"),
                "account_id": event.get("subject"),
            },
        )


__all__ = [
    "BatchHook",
    "EventConsumer",
    "RejectedEvent",
    "TopicPartition",
    "claim_event",
    "dead_letter_record",
    "until_committed",
]
