"""The consumer's lag question never holds up the batches: the broker answers the end offsets
behind a fetch it keeps open (up to ``fetch_max_wait_ms``), and while the pipeline waited for
that answer after each commit, an ingest run spent a quarter of its time there. Here the
question never comes back at all, and every record is still applied, batch after batch, on
the session's real broker and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from jifen.devtools.devstack import DevStack
from jifen.kernel import consumer as consumer_mod
from jifen.kernel.consumer import EventConsumer, Record
from jifen.kernel.contracts import Contracts
from jifen.kernel.kafka import ensure_topics, make_producer
from jifen.kernel.settings import REPO_ROOT
from tests.helpers import eventually

CONTRACTS = Contracts(REPO_ROOT / "schemas")


class Collect:
    """A batch hook that remembers each batch's values."""

    def __init__(self) -> None:
        self.batches: list[list[bytes]] = []

    def decode(self, records: list[Record]) -> list[bytes]:
        return [r.value for r in records if r.value is not None]

    async def apply(self, decoded: list[bytes]) -> None:
        self.batches.append(decoded)


async def _consume_all(
    stack: DevStack, dsn: str, monkeypatch: pytest.MonkeyPatch, observe: Any
) -> list[list[bytes]]:
    """60 records through a consumer (batches of at most 10) whose lag observation is
    ``observe``; the batches it applied, once every record was applied."""
    monkeypatch.setattr(consumer_mod, "observe_lag", observe)
    topic = f"jifen.test.lag-aside-{uuid.uuid4().hex[:6]}"
    bootstrap = stack.broker.bootstrap
    await ensure_topics(bootstrap, [topic], partitions=1)
    values = [f"record-{i}".encode() for i in range(60)]
    producer = make_producer(bootstrap)
    await producer.start()
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    hook = Collect()
    consumer = EventConsumer(
        service="test", bootstrap=bootstrap, group_id=f"lag-aside-{uuid.uuid4().hex[:6]}",
        topic_names=[topic], contracts=CONTRACTS, pool=pool, producer=producer, batch=hook,
        max_records=10, poll_ms=100, lag_when_idle=False,
        ensure=lambda: ensure_topics(bootstrap, [topic], partitions=1),
    )  # fmt: skip
    task = asyncio.create_task(consumer.run())
    try:
        for v in values:
            await producer.send_and_wait(topic, v, partition=0)

        async def all_applied() -> bool:
            return sum(map(len, hook.batches)) >= len(values)

        await eventually(all_applied, timeout=60, what="every record applied")
        assert [v for b in hook.batches for v in b] == values
        assert len(hook.batches) >= 6  # batches of at most 10: many commits
        return hook.batches
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await producer.stop()
        await pool.close()


async def test_a_lag_question_that_never_returns_stops_no_batch(
    stack: DevStack,
    fresh_db: Callable[[Path], Awaitable[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked = 0
    never = asyncio.Event()

    async def stuck(*_: Any) -> None:
        nonlocal asked
        asked += 1
        await never.wait()

    await _consume_all(stack, await fresh_db(tmp_path), monkeypatch, stuck)
    assert asked == 1  # one question at a time: the stuck one is not asked again beside it
    # the question asked aside is wound down with the consumer, not left behind
    left = [t for t in asyncio.all_tasks() if t.get_coro().__qualname__.endswith("stuck")]
    assert left == []


async def test_a_lag_question_that_fails_is_logged_and_stops_no_batch(
    stack: DevStack,
    fresh_db: Callable[[Path], Awaitable[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    asked = 0

    async def broken(*_: Any) -> None:
        nonlocal asked
        asked += 1
        raise RuntimeError("no end offsets today")

    caplog.set_level(logging.WARNING, logger="jifen.kernel.consumer")
    await _consume_all(stack, await fresh_db(tmp_path), monkeypatch, broken)
    assert asked >= 2  # asked again after each commit, the failure notwithstanding
    assert any("lag not observed" in r.getMessage() and "no end offsets today" in r.getMessage()
               for r in caplog.records)  # fmt: skip
