"""A ledger worker that stops keeping up: frozen (SIGSTOP) while completions keep arriving.

While it is frozen the backlog grows and nothing is applied, and its own endpoints stop
answering (what a liveness probe would see). Thawed (SIGCONT), it rejoins, reports the lag
it is working off on /metrics (jifen_kafka_consumer_lag_events, shrinking to zero), becomes
ready again, and applies every event exactly once."""

from __future__ import annotations

import os
import signal
import uuid

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from jifen.devtools.devstack import DevStack
from tests.faults.conftest import assert_ledger_owes, metric
from tests.faults.test_hostile_delivery import COMPLETIONS, completion_events
from tests.helpers import eventually

pytestmark = pytest.mark.e2e
LAG = "jifen_kafka_consumer_lag_events"


async def _produce(stack: DevStack, events: list[dict[str, object]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=stack.broker.bootstrap, linger_ms=5)
    await producer.start()
    try:
        for e in events:
            await producer.send(COMPLETIONS, orjson.dumps(e), key=str(e["subject"]).encode())
        await producer.flush()
    finally:
        await producer.stop()


async def test_a_frozen_ledger_worker_catches_up_and_applies_each_event_once(
    fstack: DevStack, ledger_db: asyncpg.Connection
) -> None:
    run = uuid.uuid4().hex[:6]
    accounts = [f"vol-lag-{run}-{i}" for i in range(10)]
    owed: dict[str, tuple[int, int]] = {}
    events = []
    for i in range(1500):
        account, points = accounts[i % len(accounts)], 1 + i % 9
        events.append(completion_events(account, points)[0])
        n, s = owed.get(account, (0, 0))
        owed[account] = (n + 1, s + points)
    worker = fstack.procs["points-worker"]
    port = worker.port

    async def applied() -> int:
        return int(
            await ledger_db.fetchval(
                "SELECT count(*) FROM ledger_entry WHERE account_id = ANY($1)", accounts
            )
        )

    os.kill(worker.popen.pid, signal.SIGSTOP)
    try:
        backlog, sent = [], 0
        for part in (events[:500], events[500:]):
            await _produce(fstack, part)
            sent += len(part)
            backlog.append(sent - await applied())
        # the backlog (sent, not applied) grew with what was sent; the ledger did not move
        assert backlog == [500, 1500], backlog
        async with httpx.AsyncClient(timeout=2) as http:
            with pytest.raises(httpx.TimeoutException):
                await http.get(f"http://127.0.0.1:{port}/healthz")  # a frozen process is silent
    finally:
        os.kill(worker.popen.pid, signal.SIGCONT)

    lags: list[float] = []

    async def caught_up() -> int | None:
        try:
            lags.append(await metric(port, LAG))
        except httpx.HTTPError:
            pass
        n = await applied()
        return n if n >= len(events) else None

    await eventually(caught_up, timeout=150, what="the thawed worker through its backlog")
    # it reported the lag it was working off, in batches of JIFEN_POINTS_BATCH_MAX (20)
    assert max(lags) > 0, lags

    async def lag_gone() -> bool:
        return await metric(port, LAG) == 0

    await eventually(lag_gone, timeout=60, what="the lag back to zero")
    async with httpx.AsyncClient(timeout=5) as http:

        async def ready() -> bool:
            return (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200

        await eventually(ready, timeout=60, what="the worker ready again")
    await assert_ledger_owes(ledger_db, accounts, owed)
