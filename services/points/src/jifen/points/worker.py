"""The ledger's batch hook on the kernel's consumer: completion and redemption events in,
hash-chained ledger entries out.

Why a batch and not one event a transaction, nor a faust agent: measured on these machines
(INFRA-FACTS.md), faust spent ~280 µs of CPU per event in its own machinery and reached
~3.6k events/s, while a batch consumer doing the same work reached 16–24k/s. So the kernel's
consumer (``jifen.kernel.consumer.EventConsumer``: fetching, offsets, rebalances, a broker
that forgot, lag) fetches up to ``batch_max`` records and hands them here: :meth:`decode`
(a strict msgspec decoder built from the schemas, ``domain.events``; what it cannot take, the
compiled-schema validation, which accepts or names the reason) runs while the previous
batch's :meth:`apply` is in flight; :meth:`apply` appends the batch in one transaction with COPY
(``handlers.ledger.append_postings``: dedupe, rules, SHA-256 chain) and dead-letters what
cannot be applied; the consumer commits the offsets only after that. A crash anywhere before
the offset commit means redelivery, which the unique ``cause_event_id`` and the dedupe step
turn into nothing.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer

from jifen.kernel import topics
from jifen.kernel.consumer import Record, dead_letter_record, until_committed
from jifen.kernel.contracts import Contracts, ContractViolation, parse_time
from jifen.kernel.db import DATABASE_UNAVAILABLE, Queries
from jifen.kernel.metrics import EVENTS_CONSUMED, EVENTS_FAILED
from jifen.points import metrics
from jifen.points.domain.events import FastDecoder
from jifen.points.domain.ledger import (
    ImpossibleEvent,
    Kind,
    Plan,
    Posting,
    check_clock_skew,
    posting_from_event,
)
from jifen.points.handlers.ledger import append_postings
from jifen.points.settings import PointsSettings

log = logging.getLogger(__name__)

INPUT_TOPICS = [topics.TASKS_COMPLETIONS, topics.REDEEM_REDEMPTIONS]
# retried with the whole batch: a rebalance race, a deadlock, a database outage
_RETRY = (
    asyncpg.UniqueViolationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    *DATABASE_UNAVAILABLE,
)


@dataclass
class Decoded:
    """A fetched batch after validation: what to append, and what to dead-letter."""

    postings: list[Posting]
    by_event: dict[str, Record]
    dead: list[tuple[Record, str]]


class LedgerWorker:
    """The batch hook (``jifen.kernel.consumer.BatchHook``) of the points worker's consumer."""

    def __init__(
        self,
        settings: PointsSettings,
        contracts: Contracts,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        queries: Queries,
    ) -> None:
        self.settings = settings
        self.contracts = contracts
        self.pool = pool
        self.producer = producer
        self.q = queries
        self.applied = 0
        self.fast = fast_decoder(contracts)

    async def apply_records(self, records: list[Record]) -> Plan:
        """Apply one fetched batch; dead-letter what cannot be applied. Idempotent."""
        return await self.apply(self.decode(records))

    def decode(self, records: list[Record]) -> Decoded:
        dead: list[tuple[Record, str]] = []
        postings: list[Posting] = []
        by_event: dict[str, Record] = {}
        now = datetime.now(UTC)  # one reading a batch, for the clock-skew bound
        fast = self.fast.posting
        for record in records:
            try:
                # the strict fast decoder, else the contracts, which accept or name the reason
                posting = fast(record.value)
                if posting is None:
                    event = self.contracts.decode(record.value)
                    posting = posting_from_event(event, _event_time(event["time"]))
                check_clock_skew(posting.occurred_at, now, self.settings.max_clock_skew_seconds)
            except ContractViolation as exc:
                dead.append((record, exc.reason))
                continue
            except ImpossibleEvent as exc:
                dead.append((record, f"refused: {exc}"))
                continue
            postings.append(posting)
            by_event.setdefault(posting.event_id, record)
        return Decoded(postings, by_event, dead)

    async def apply(self, decoded: Decoded) -> Plan:
        postings, by_event, dead = decoded.postings, decoded.by_event, list(decoded.dead)
        plan = await self._append_with_retry(postings)
        for posting, reason in plan.refused:
            metrics.REFUSED.labels(posting.event_type).inc()
            dead.append((by_event[posting.event_id], f"refused: {reason}"))
        for record, reason in dead:
            await dead_letter_record(
                self.producer, record, reason, consumer=self.settings.consumer_group
            )
        consumed = Counter((_topic_of(p), p.event_type) for p in postings)
        for (topic, event_type), n in consumed.items():
            EVENTS_CONSUMED.labels("points", topic, event_type).inc(n)
        return plan

    async def _append_with_retry(self, postings: list[Posting]) -> Plan:
        def retrying(exc: BaseException) -> None:
            failed = Counter((_topic_of(p), p.event_type) for p in postings)
            for (topic, event_type), n in failed.items():
                EVENTS_FAILED.labels("points", topic, event_type).inc(n)
            log.warning("append failed (%s); retrying the batch", type(exc).__name__)

        return await until_committed(
            lambda: self.append(postings), retry=_RETRY, base=0.1, on_retry=retrying
        )

    async def append(self, postings: list[Posting]) -> Plan:
        started = time.perf_counter()
        async with self.pool.acquire() as conn, conn.transaction():
            plan, _ = await append_postings(conn, self.q, self.contracts, postings)
        self._observe(plan, started)
        return plan

    def _observe(self, plan: Plan, started: float) -> None:
        now = time.time()
        if plan.entries:
            # one line a batch, with the causing event ids, so a completion can be followed
            log.info(
                "appended %d entries (%d duplicates, %d refused)",
                len(plan.entries),
                len(plan.duplicates),
                len(plan.refused),
                extra={
                    "service": "points",
                    "event_ids": [e.posting.event_id for e in plan.entries[:200]],
                },
            )
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        metrics.BATCH_SIZE.observe(len(plan.entries) + len(plan.duplicates) + len(plan.refused))
        metrics.DUPLICATES.inc(len(plan.duplicates))
        # aggregated per batch: a labels() lookup per entry cost ~6% of the worker's CPU
        entries: Counter[str] = Counter()
        issued: Counter[tuple[str, str]] = Counter()
        redeemed: Counter[str] = Counter()
        moved: Counter[tuple[str, str]] = Counter()
        for e in plan.entries:
            p = e.posting
            entries[p.kind.value] += 1
            if p.kind is Kind.CREDIT:
                issued[(p.org_id, p.category or "other")] += p.amount
            elif p.kind is Kind.DEBIT:
                redeemed[p.org_id] -= p.amount
            moved[(p.kind.value, p.org_id)] += abs(p.amount)
            metrics.EVENT_TO_COMMIT.observe(max(0.0, now - p.occurred_at.timestamp()))
        for kind, n in entries.items():
            metrics.ENTRIES_APPENDED.labels(kind).inc(n)
        for (org, category), points in issued.items():
            metrics.ISSUED.labels(org, category).inc(points)
        for org, points in redeemed.items():
            metrics.REDEEMED.labels(org).inc(points)
        for (kind, org), points in moved.items():
            metrics.POINTS_APPENDED.labels(kind, org).inc(points)
        self.applied += len(plan.entries)


def fast_decoder(contracts: Contracts) -> FastDecoder:
    """The msgspec decoder built from the same schema files the contracts compiled."""
    folder = contracts.schemas_dir
    events = {
        p.name.removesuffix(".schema.json"): orjson.loads(p.read_bytes())
        for p in sorted((folder / "events").glob("*.schema.json"))
    }
    return FastDecoder(orjson.loads((folder / "envelope.schema.json").read_bytes()), events)


def _event_time(value: str) -> datetime:
    """The event's time; one that matches the contract's pattern but is no date (month 13,
    hour 24) is refused, dead-lettered with the reason, rather than failing the batch."""
    try:
        return parse_time(value)
    except ValueError as exc:
        raise ImpossibleEvent(f"event time {value!r} is not a valid time: {exc}") from None


def _topic_of(p: Posting) -> str:
    return topics.TASKS_COMPLETIONS if p.completion_id else topics.REDEEM_REDEMPTIONS
