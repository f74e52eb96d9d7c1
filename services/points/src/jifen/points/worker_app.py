"""The points worker process (``python -m jifen.points worker``): the kernel's worker with the
ledger's batch hook on its consumer (``worker.LedgerWorker``) and its outbox relay (the rare
events that still go through ``outbox``: causes announced again), with health, readiness and
metrics. The ledger's own events and the audit sequencer run in the relay process
(``relay_app.py``)."""

from __future__ import annotations

import asyncpg
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from jifen.kernel.contracts import Contracts
from jifen.kernel.worker import build_worker_app as _build
from jifen.points.db import queries
from jifen.points.settings import PointsSettings
from jifen.points.worker import INPUT_TOPICS, LedgerWorker


def build_worker_app(settings: PointsSettings | None = None) -> FastAPI:
    settings = settings or PointsSettings()

    def ledger(
        contracts: Contracts, pool: asyncpg.Pool, producer: AIOKafkaProducer
    ) -> LedgerWorker:
        return LedgerWorker(settings, contracts, pool, producer, queries())

    return _build(
        service="points",
        settings=settings,
        group_id=settings.consumer_group,
        topic_names=INPUT_TOPICS,
        batch=ledger,
        # batches as large as the ledger takes in one transaction, fetched again at once
        max_records=settings.batch_max,
        poll_ms=200,
        ensure_every_topic=True,
        # the lag gauge names the partitions this worker has applied records of, as the
        # scale-out test reads them (tests/e2e/points/test_scale_workers.py)
        lag_when_idle=False,
        description="Ledger worker: health, readiness and metrics only.",
    )
