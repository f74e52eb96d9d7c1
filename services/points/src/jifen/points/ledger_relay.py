"""The ledger is its own outbox: this relay tails ``ledger_entry`` and publishes each entry's
``jifen.points.entry.appended.v1`` on ``points.ledger``, built from the row.

Safe against commits out of id order (migration 0012 says why it holds): each entry carries
``tx`` (at least its writer's transaction id, never lower than its predecessor's on the same
chain). Every transaction below the xmin of a snapshot has ended, so the rows with ``tx`` below
it are final; one statement reads, in (tx, id) order, those past the cursor and below its own
snapshot's xmin. The cursor (the last published (tx, id), one row) moves only after the broker
acknowledged the batch, so a crash in between publishes it again (at-least-once; consumers
dedupe by event id). One relay publishes at a time (an advisory lock on its own connection);
should two ever run, the cursor moves by compare-and-set and the loser re-reads it.

Order per (org, account): rows go out in (tx, id) order, which is each chain's order, on the
account's partition, one batch per partition in flight. Entries written before 0012 (tx NULL)
went through ``outbox``; this relay waits until those left there are published.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from prometheus_client import Counter, Gauge

from jifen.kernel import topics
from jifen.kernel.contracts import encode
from jifen.kernel.db import Queries
from jifen.kernel.metrics import EVENTS_PRODUCED
from jifen.kernel.outbox import BatchSender, run_elected
from jifen.points.handlers.ledger import LEDGER_EVENT, ledger_event_of_row, utc_text

log = logging.getLogger(__name__)

# Made unregistered, like the audit loop's: the process that runs the relay puts them on its
# /metrics (``relay_app.py``), so no other process exports a backlog of 0 it does not measure.
PUBLISHED = Counter(
    "jifen_points_ledger_events_published_total",
    "Ledger entries whose entry.appended event the broker acknowledged (the ledger relay).",
    registry=None,
)
PENDING = Gauge(
    "jifen_points_ledger_relay_pending_entries",
    "Committed ledger entries whose event is not yet published (past the relay's cursor).",
    registry=None,
)
OLDEST_AGE = Gauge(
    "jifen_points_ledger_relay_oldest_pending_age_seconds",
    "Age of the oldest committed ledger entry whose event is not yet published (0 if none).",
    registry=None,
)

_LEDGER_RELAY_LOCK = 4_242_018  # the kernel's outbox relay holds 4_242_001
_OBSERVE_EVERY = 1.0  # seconds between the backlog gauges' refreshes


@dataclass(frozen=True)
class Cursor:
    tx: int
    entry_id: int


class LedgerRelay:
    def __init__(
        self,
        dsn: str,
        producer: AIOKafkaProducer,
        queries: Queries,
        *,
        batch: int = 2000,
        poll_seconds: float = 0.1,
        topic: str = topics.POINTS_LEDGER,
        ensure: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``ensure`` makes the topics again after a broker fault (as the outbox relay's)."""
        self.dsn = dsn
        self.ensure = ensure
        self.q = queries
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.topic = topic
        self.sender = BatchSender(producer)
        self.published = 0
        self.leading = False  # holds the lock: the one relay publishing
        self._cursor: Cursor | None = None
        self._legacy_done = False

    async def run(self) -> None:
        """Publish forever; reconnect after database or broker faults."""
        await run_elected(
            self.dsn,
            _LEDGER_RELAY_LOCK,
            "ledger relay",
            self._lead,
            ensure=self.ensure,
            wait_seconds=max(self.poll_seconds, 0.5),
        )

    async def _lead(self, conn: asyncpg.Connection) -> None:
        self.leading = True
        try:
            self._cursor = None  # another relay may have moved it while we waited
            clock = asyncio.get_running_loop()
            observed = 0.0
            while True:
                sent = await self.publish_batch(conn)
                if clock.time() - observed >= _OBSERVE_EVERY:
                    await self._observe(conn)
                    observed = clock.time()
                if sent < self.batch:
                    await asyncio.sleep(self.poll_seconds)
        finally:
            self.leading = False

    async def publish_batch(self, conn: asyncpg.Connection) -> int:
        """Publish the next final entries past the cursor (at most ``batch``); how many."""
        if self._cursor is None:
            row = await conn.fetchrow(self.q["relay_cursor"])
            self._cursor = Cursor(row["tx"], row["entry_id"])
            if not self._legacy_done:
                self._legacy_done = not await conn.fetchval(
                    self.q["relay_legacy_pending"], self.topic, row["legacy_outbox_id"]
                )
        if not self._legacy_done:
            self._cursor = None  # read again (and the outbox) at the next pass
            return 0
        cursor = self._cursor
        rows = await conn.fetch(self.q["relay_entries"], cursor.tx, cursor.entry_id, self.batch)
        if not rows:
            return 0
        records, event_ids = self.records(rows)
        await asyncio.gather(*await self.sender.send(records))
        last = Cursor(rows[-1]["tx"], rows[-1]["id"])
        moved = await conn.fetchval(
            self.q["relay_advance"], cursor.tx, cursor.entry_id, last.tx, last.entry_id
        )
        if not moved:
            # another relay moved it (we lost the lock unnoticed): these went out twice,
            # which the consumers absorb; carry on from where it is now
            log.warning("ledger relay cursor moved by another relay; reading it again")
            self._cursor = None
        else:
            self._cursor = last
        EVENTS_PRODUCED.labels("points", self.topic, LEDGER_EVENT).inc(len(rows))
        PUBLISHED.inc(len(rows))
        log.info(
            "published %d ledger events",
            len(rows),
            extra={
                "service": "points",
                "event_ids": event_ids[:100],
            },
        )
        self.published += len(rows)
        return len(rows)

    def records(
        self, rows: list[asyncpg.Record]
    ) -> tuple[list[tuple[str, bytes, bytes]], list[str]]:
        """(topic, key, value) of each row's event, in the rows' order; and the events' ids."""
        topic = self.topic
        texts: dict[datetime, str] = {}  # one transaction's entries share recorded_at
        out = []
        ids = []
        for r in rows:
            at = r["recorded_at"]
            text = texts.get(at)
            if text is None:
                text = texts[at] = utc_text(at)
            event = ledger_event_of_row(r, text)
            ids.append(event["id"])
            out.append((topic, r["account_id"].encode(), encode(event)))
        return out, ids

    async def _observe(self, conn: asyncpg.Connection) -> None:
        cursor = self._cursor
        if cursor is None:
            return
        row: Any = await conn.fetchrow(self.q["relay_backlog"], cursor.tx, cursor.entry_id)
        PENDING.set(row["n"])
        OLDEST_AGE.set(row["age"])
