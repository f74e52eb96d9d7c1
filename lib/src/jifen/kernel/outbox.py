"""The transactional outbox: enqueue inside the caller's transaction; a relay publishes.

Only one relay per database publishes at a time (a PostgreSQL advisory lock held on its own
connection), so events keep their commit-time id order per key even with several replicas.
The relay deletes a row only after the broker acknowledged it; a crash in between means the
event is published again, which the idempotent consumers absorb.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from jifen.kernel.contracts import encode
from jifen.kernel.kafka import CLOUDEVENTS_HEADERS as CE  # structured-mode content-type
from jifen.kernel.metrics import EVENTS_PRODUCED, OUTBOX_OLDEST_AGE, OUTBOX_PENDING
from jifen.kernel.runtime import REQUEST_ID

log = logging.getLogger(__name__)

_RELAY_LOCK = 4_242_001
_PARTITIONER = DefaultPartitioner()
_CHOSEN_MAX = 200_000
_OBSERVE_EVERY = 1.0  # seconds between outbox gauge refreshes while busy


async def enqueue(
    conn: asyncpg.Connection, topic: str, key: str | None, event: Mapping[str, Any]
) -> None:
    """Record ``event`` (already validated by ``Contracts.new_event``) for publication.

    Inside an HTTP request the line logged here carries both the request id and the event id:
    `grep <request id>` finds the events a request caused, `grep <event id>` follows each of
    them through the relay and every consumer."""
    await conn.execute(
        "INSERT INTO outbox (topic, key, event_id, event_type, payload)"
        " VALUES ($1, $2, $3, $4, $5)",
        *outbox_values(topic, key, event),
    )
    recorded(topic, event)


def outbox_values(
    topic: str, key: str | None, event: Mapping[str, Any]
) -> tuple[str, bytes | None, uuid.UUID, str, bytes]:
    """An outbox row's (topic, key, event_id, event_type, payload), for a statement that
    writes it beside other rows (call :func:`recorded` once it is written)."""
    return (
        topic,
        key.encode() if key is not None else None,
        uuid.UUID(str(event["id"])),
        event["type"],
        encode(event),
    )


def recorded(topic: str, event: Mapping[str, Any]) -> None:
    """Log an event written to the outbox inside an HTTP request (with both ids)."""
    if REQUEST_ID.get() is not None:
        log.info(
            "event %s recorded for publication on %s",
            event["type"],
            topic,
            extra={"event_id": str(event["id"])},
        )


async def enqueue_many(
    conn: asyncpg.Connection, rows: list[tuple[str, str | None, Mapping[str, Any]]]
) -> None:
    """Bulk form of :func:`enqueue` (COPY), for the ledger worker's batches."""
    if not rows:
        return
    await conn.copy_records_to_table(
        "outbox",
        records=[
            (
                topic,
                key.encode() if key is not None else None,
                _uuid(ev["id"]),
                ev["type"],
                encode(ev),
            )
            for topic, key, ev in rows
        ],
        columns=["topic", "key", "event_id", "event_type", "payload"],
    )


def _uuid(value: Any) -> uuid.UUID | str:
    # asyncpg encodes a uuid column from its text form directly: no UUID object per row
    return value if isinstance(value, str) else uuid.UUID(str(value))


async def run_elected(
    dsn: str,
    lock: int,
    name: str,
    lead: Callable[[asyncpg.Connection], Awaitable[None]],
    *,
    ensure: Callable[[], Awaitable[None]] | None = None,
    wait_seconds: float = 0.5,
) -> None:
    """Run ``lead(conn)`` forever as the one elected publisher of a database: it is called once
    this process holds the advisory lock ``lock`` (on a connection of its own, so the lock goes
    when the process or its connection does), with a second connection to work on. After a
    database or broker fault both connections are made again and the election is run again;
    after a broker fault ``ensure`` first makes the topics again (a topic lost with a broker's
    disk and written only by a relay is re-made by no consumer). Shared by the outbox relay and
    the points ledger relay."""
    while True:
        try:
            lock_conn = await asyncpg.connect(dsn)
            try:
                conn = await asyncpg.connect(dsn)
                try:
                    while not await lock_conn.fetchval("SELECT pg_try_advisory_lock($1)", lock):
                        await asyncio.sleep(wait_seconds)
                    await lead(conn)
                finally:
                    with contextlib.suppress(Exception):
                        await conn.close()
            finally:
                with contextlib.suppress(Exception):
                    await lock_conn.close()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("%s failed; retrying", name)
            if ensure is not None and isinstance(exc, KafkaError):
                try:  # a topic lost with the broker's disk is made again
                    await ensure()
                except Exception as again:
                    log.warning("%s: topics not made: %r", name, again)
            await asyncio.sleep(1.0)


class BatchSender:
    """Hands records to a producer as one record batch per partition, on the partition the
    producer's own ``send`` would choose for each key; shared by the outbox relay and any
    relay that tails a table of its own (the points ledger's)."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        # (topic, partition count, key) -> partition, as the default partitioner chose it
        self._chosen: dict[tuple[str, int, bytes], int] = {}

    async def send(
        self, records: Sequence[tuple[str, bytes | None, bytes]]
    ) -> list[asyncio.Future[Any]]:
        """Hand ``records`` ((topic, key, value), in order) to the producer as one record batch
        per partition (and more when one fills up); the futures resolve when the broker
        acknowledged them.

        ``send`` per record cost ~14% of the points worker's CPU (metadata wait, serialiser,
        partitioner and accumulator per record); a batch builder appends in C. Partitions are
        chosen as the producer's default partitioner does (murmur2 of the key over all the
        topic's partitions), so a key's events land where ``send`` would have put them, in
        the given order: one partition's batches are queued in order, and the producer keeps
        one batch per partition in flight.
        """
        futures: list[asyncio.Future[Any]] = []
        partitions: dict[str, list[int]] = {}
        batches: dict[tuple[str, int], Any] = {}
        for topic, key, value in records:
            if topic not in partitions:
                partitions[topic] = sorted(await self.producer.partitions_for(topic))
            every = partitions[topic]
            where = self._chosen.get((topic, len(every), key)) if key is not None else None
            if where is None:
                where = _PARTITIONER(key, every, every)  # murmur2, in Python: remember it
                if key is not None:  # a keyless record may go anywhere
                    if len(self._chosen) >= _CHOSEN_MAX:
                        self._chosen.clear()
                    self._chosen[(topic, len(every), key)] = where
            batch = batches.get((topic, where))
            if batch is None:
                batch = batches[(topic, where)] = self.producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None, headers=CE) is None:
                futures.append(await self.producer.send_batch(batch, topic, partition=where))
                batch = batches[(topic, where)] = self.producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None, headers=CE) is None:
                    raise ValueError(f"a record of {len(value)} bytes does not fit in a batch")
        for (topic, where), batch in batches.items():
            if batch.record_count():
                batch.close()  # ours alone: no other sender's record joins it
                futures.append(await self.producer.send_batch(batch, topic, partition=where))
        return futures


class OutboxRelay:
    def __init__(
        self,
        dsn: str,
        producer: AIOKafkaProducer,
        *,
        service: str,
        batch: int = 500,
        poll_seconds: float = 0.5,
        ensure: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``ensure`` makes the topics again after a broker fault: a topic only this relay
        writes (tasks' jobs) is re-made by no consumer, and with it missing every event
        queued behind its rows would wait for ever."""
        self.dsn = dsn
        self.producer = producer
        self.service = service
        self.ensure = ensure
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.published = 0
        self._wake = asyncio.Event()
        self.sender = BatchSender(producer)

    async def run(self) -> None:
        """Publish forever; reconnect after database or broker faults."""
        await run_elected(
            self.dsn,
            _RELAY_LOCK,
            f"outbox relay of {self.service}",
            self._lead,
            ensure=self.ensure,
            wait_seconds=self.poll_seconds,
        )

    async def _lead(self, conn: asyncpg.Connection) -> None:
        await conn.add_listener("outbox", self._on_notify)
        observed = 0.0
        while True:
            self._wake.clear()
            sent = await self.publish_batch(conn)
            now = asyncio.get_running_loop().time()
            if sent < self.batch or now - observed >= _OBSERVE_EVERY:
                # counting the outbox scans it: once a second while working off a backlog
                await self._observe(conn)
                observed = now
            if sent < self.batch:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_seconds)

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def publish_batch(self, conn: asyncpg.Connection) -> int:
        """Publish the oldest rows (at most ``batch``) and delete them once acknowledged.

        No transaction is held while the broker is awaited: a ``SELECT … FOR UPDATE`` takes a
        transaction id, and one held open for the seconds a broker fault lasts keeps
        ``pg_snapshot_xmin`` of the whole cluster behind it, so the points ledger relay (which
        publishes only entries below that horizon) stood still beside a stuck outbox. The
        advisory lock already makes this relay the only one publishing; a crash between the
        ack and the delete publishes the rows again, which the idempotent consumers absorb."""
        rows = await conn.fetch(
            "SELECT id, topic, key, event_id, event_type, payload FROM outbox ORDER BY id LIMIT $1",
            self.batch,
        )
        if not rows:
            return 0
        await asyncio.gather(*await self._send(rows))
        await conn.execute(
            "DELETE FROM outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows]
        )
        produced = Counter((r["topic"], r["event_type"]) for r in rows)
        for (topic, event_type), n in produced.items():
            EVENTS_PRODUCED.labels(self.service, topic, event_type).inc(n)
        log.info(
            "published %d events",
            len(rows),
            extra={"service": self.service, "event_ids": [str(r["event_id"]) for r in rows[:100]]},
        )
        self.published += len(rows)
        return len(rows)

    async def _send(self, rows: list[asyncpg.Record]) -> list[asyncio.Future[Any]]:
        return await self.sender.send([(r["topic"], r["key"], r["payload"]) for r in rows])

    async def _observe(self, conn: asyncpg.Connection) -> None:
        row = await conn.fetchrow(
            "SELECT count(*) AS n,"
            " coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS age FROM outbox"
        )
        OUTBOX_PENDING.labels(self.service).set(row["n"])
        OUTBOX_OLDEST_AGE.labels(self.service).set(row["age"])
