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
from collections.abc import Mapping
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from jifen.kernel.contracts import encode
from jifen.kernel.metrics import EVENTS_PRODUCED, OUTBOX_OLDEST_AGE, OUTBOX_PENDING

log = logging.getLogger(__name__)

_RELAY_LOCK = 4_242_001


async def enqueue(
    conn: asyncpg.Connection, topic: str, key: str | None, event: Mapping[str, Any]
) -> None:
    """Record ``event`` (already validated by ``Contracts.new_event``) for publication."""
    await conn.execute(
        "INSERT INTO outbox (topic, key, event_id, event_type, payload)"
        " VALUES ($1, $2, $3, $4, $5)",
        topic,
        key.encode() if key is not None else None,
        uuid.UUID(str(event["id"])),
        event["type"],
        encode(event),
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


class OutboxRelay:
    def __init__(
        self,
        dsn: str,
        producer: AIOKafkaProducer,
        *,
        service: str,
        batch: int = 500,
        poll_seconds: float = 0.5,
    ) -> None:
        self.dsn = dsn
        self.producer = producer
        self.service = service
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.published = 0
        self._wake = asyncio.Event()

    async def run(self) -> None:
        """Publish forever; reconnect after database or broker faults."""
        while True:
            try:
                await self._run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay of %s failed; retrying", self.service)
                await asyncio.sleep(1.0)

    async def _run_once(self) -> None:
        lock_conn = await asyncpg.connect(self.dsn)
        conn = await asyncpg.connect(self.dsn)
        try:
            # Leader election: the one relay holding the lock publishes; others wait here.
            while not await lock_conn.fetchval("SELECT pg_try_advisory_lock($1)", _RELAY_LOCK):
                await asyncio.sleep(self.poll_seconds)
            await conn.add_listener("outbox", self._on_notify)
            while True:
                self._wake.clear()
                sent = await self.publish_batch(conn)
                await self._observe(conn)
                if sent < self.batch:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
        finally:
            with contextlib.suppress(Exception):
                await conn.close()
            with contextlib.suppress(Exception):
                await lock_conn.close()

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def publish_batch(self, conn: asyncpg.Connection) -> int:
        async with conn.transaction():
            rows = await conn.fetch(
                "SELECT id, topic, key, event_id, event_type, payload FROM outbox"
                " ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                self.batch,
            )
            if not rows:
                return 0
            futures = [
                await self.producer.send(r["topic"], r["payload"], key=r["key"]) for r in rows
            ]
            await asyncio.gather(*futures)
            await conn.execute(
                "DELETE FROM outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows]
            )
        for r in rows:
            EVENTS_PRODUCED.labels(self.service, r["topic"], r["event_type"]).inc()
        log.info(
            "published %d events",
            len(rows),
            extra={"service": self.service, "event_ids": [str(r["event_id"]) for r in rows[:100]]},
        )
        self.published += len(rows)
        return len(rows)

    async def _observe(self, conn: asyncpg.Connection) -> None:
        row = await conn.fetchrow(
            "SELECT count(*) AS n,"
            " coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS age FROM outbox"
        )
        OUTBOX_PENDING.labels(self.service).set(row["n"])
        OUTBOX_OLDEST_AGE.labels(self.service).set(row["age"])
