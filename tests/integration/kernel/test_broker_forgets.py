"""A consumer outlives a broker that forgets: the records published afterwards start again at
offset 0, below the consumer's position, and the group's committed offsets are gone. On Apache
Kafka that is a topic deleted and re-created under a running consumer (an operator's mistake, a
restore); on the opt-in Tansu it is any restart (memory only). aiokafka, finding its partitions
gone, usually rejoins and resets the position in time; when a fetch and a commit from the old
position come first, the records below it would never be read. The kernel's OffsetGuard checks
before every commit, so every record is applied exactly once either way. (On Kafka this test
first found a consumer left with no partitions for up to five minutes after the re-creation,
until aiokafka's default metadata refresh: the kernel's consumers refresh every 5 s.)

A real broker of the test's own on a free port (Kafka, and Tansu) and the session's PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from jifen.devtools.stack import Broker, EmbeddedBroker, KafkaBroker, free_port
from jifen.kernel.consumer import EventConsumer
from jifen.kernel.contracts import Contracts, encode
from jifen.kernel.kafka import ensure_topics, make_producer
from jifen.kernel.metrics import CONSUMER_RESTARTS
from jifen.kernel.settings import REPO_ROOT
from tests.helpers import eventually

CONTRACTS = Contracts(REPO_ROOT / "schemas")
EXAMPLE = REPO_ROOT / "schemas/examples/jifen.tasks.job.published.v1/valid-repair-day.json"
TOPIC = "jifen.test.forgetful"


def _event() -> bytes:
    event: dict[str, Any] = orjson.loads(EXAMPLE.read_bytes())
    event["id"] = str(uuid.uuid4())
    CONTRACTS.validate(event)
    return encode(event)


async def _publish(bootstrap: str, n: int) -> list[str]:
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        values = [_event() for _ in range(n)]
        await asyncio.gather(*[await producer.send(TOPIC, v, partition=0) for v in values])
        return [orjson.loads(v)["id"] for v in values]
    finally:
        await producer.stop()


async def forget(broker: EmbeddedBroker) -> None:
    """Kafka: the topic deleted (its records and the group's offsets with it) and re-created.
    Tansu: a restart, after which it has no topic, record or committed offset."""
    if isinstance(broker, KafkaBroker):
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            await admin.delete_topics([TOPIC])

            async def gone() -> bool:
                return TOPIC not in await admin.list_topics()

            await eventually(gone, timeout=30, what="the topic deleted")
        finally:
            await admin.close()
    else:
        broker.stop()
        broker.start()


# the test's own deadlines, added up, are more than pytest's default 300 s: a broker JVM that
# takes its 120 s to start on a loaded machine, 60 s for the first records, 30 s for the topic
# to go, 150 s for the rest. The loaded fresh-clone run of b78ee37 was cut off at 300 s with
# no more said (#23); each phase now prints how long it took, shown with a failure
@pytest.mark.timeout(600)
@pytest.mark.parametrize("kind", ["kafka", "tansu"])
async def test_consumer_reads_everything_after_the_broker_forgets(
    fresh_db: Callable[[Path], Awaitable[str]],
    tmp_path: Path,
    kind: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("JIFEN_BROKER", kind)  # Tansu's producers: not idempotent
    dsn = await fresh_db(tmp_path)  # the kernel's tables only (applied_event)
    broker: EmbeddedBroker = (
        KafkaBroker(free_port(), tmp_path / "kafka", tmp_path / "broker.log")
        if kind == "kafka"
        else Broker(free_port(), tmp_path / "broker.log")
    )
    phase = _Phases()
    broker.start()
    phase("broker started")
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    producer = make_producer(broker.bootstrap)
    applied: list[str] = []

    async def handler(_conn: asyncpg.Connection, event: dict[str, Any]) -> None:
        applied.append(event["id"])

    group = f"forgetful-{uuid.uuid4().hex[:6]}"
    consumer = EventConsumer(
        service="test", bootstrap=broker.bootstrap, group_id=group, topic_names=[TOPIC],
        contracts=CONTRACTS, pool=pool, producer=producer,
        handlers={"jifen.tasks.job.published.v1": handler}, session_timeout_ms=30_000,
    )  # fmt: skip
    task: asyncio.Task[None] | None = None
    try:
        await ensure_topics(broker.bootstrap, [TOPIC], partitions=1)
        await producer.start()
        before = await _publish(broker.bootstrap, 30)
        task = asyncio.create_task(consumer.run())
        await eventually(lambda: _ready(applied, before), timeout=60, what="first records")
        phase("first 30 records applied")
        forgot = CONSUMER_RESTARTS.labels(group)._value.get()
        caplog.set_level(logging.INFO, logger="aiokafka")
        caplog.clear()

        await forget(broker)
        phase("the broker forgot")
        await ensure_topics(broker.bootstrap, [TOPIC], partitions=1)
        # offsets 0..59: the consumer, still at position 30, would read 30..59 and commit 60
        # before its next heartbeat (every 7.5 s here) tells it the group is gone
        after = await _publish(broker.bootstrap, 60)
        phase("60 more published")

        # 150 s: on a loaded machine this test's own broker JVM runs beside the session's, and
        # a consumer that restarts makes its topics, joins afresh and waits for a metadata
        # refresh (5 s); a loaded fresh-clone run once missed 90 s, with no more said than that
        try:
            await eventually(
                lambda: _ready(applied, before + after), timeout=150, what="records after it"
            )
        except AssertionError as exc:
            held = consumer.consumer.assignment() if consumer.consumer is not None else None
            raise AssertionError(
                f"{exc}: {len(set(before) - set(applied))} of the first 30 and"
                f" {len(set(after) - set(applied))} of the later 60 not applied;"
                f" {CONSUMER_RESTARTS.labels(group)._value.get() - forgot:.0f} restart(s) by the"
                f" guard; the consumer holds {held}"
            ) from exc
        phase("all 90 applied")
        assert sorted(applied) == sorted(before + after), "each record applied exactly once"
        noticed = CONSUMER_RESTARTS.labels(group)._value.get() - forgot
        if kind == "tansu":
            # the group's coordinator forgot the group too. Either the guard notices (offsets
            # gone before a commit) or aiokafka does first: its heartbeat finds the group gone
            # and it rejoins, or its fetch at position 30 of an empty log is out of range, and
            # with nothing committed it reads from the earliest record. Both read everything
            # again (asserted above); the quiet fresh-clone run of b7bc459 took aiokafka's way
            by_aiokafka = [
                r.getMessage()
                for r in caplog.records
                if r.name.startswith("aiokafka")
                and ("joining group" in r.getMessage() or "out of range" in r.getMessage())
            ]
            assert noticed > 0 or by_aiokafka, (
                "the restart was noticed; aiokafka said: "
                + "; ".join(r.getMessage() for r in caplog.records if r.name.startswith("aiokafka"))
            )
        # on Kafka the consumer usually sees its partitions vanish and come back (a metadata
        # refresh every 5 s) and rejoins before it fetches again; the guard is the backstop
        # for when a fetch and a commit from the old position come first
        print(f"\n{kind}: the OffsetGuard noticed the forgetting {noticed:.0f} time(s)")
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await producer.stop()
        await pool.close()
        broker.stop()


async def _ready(applied: list[str], wanted: list[str]) -> bool:
    return set(wanted) <= set(applied)


class _Phases:
    """Prints how long each phase took (shown with a failure, and in results/failures.log)."""

    def __init__(self) -> None:
        self.start = self.last = time.monotonic()

    def __call__(self, what: str) -> None:
        now = time.monotonic()
        print(f"{now - self.start:6.1f}s (+{now - self.last:5.1f}s) {what}", flush=True)
        self.last = now


@pytest.mark.timeout(600)  # its deadlines add up to 360 s with the broker's start (above)
async def test_consumer_re_creates_a_topic_the_broker_lost(
    fresh_db: Callable[[Path], Awaitable[str]], tmp_path: Path
) -> None:
    """A topic gone and not re-created by anyone (a single broker that lost its log folder):
    the consumer, left with no partitions, would wait for ever; the guard notices the topic
    gone from the metadata, the consumer starts afresh, re-creates it and reads what comes."""
    dsn = await fresh_db(tmp_path)
    broker = KafkaBroker(free_port(), tmp_path / "kafka", tmp_path / "broker.log")
    broker.start()
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    producer = make_producer(broker.bootstrap)
    applied: list[str] = []

    async def handler(_conn: asyncpg.Connection, event: dict[str, Any]) -> None:
        applied.append(event["id"])

    group = f"lost-{uuid.uuid4().hex[:6]}"
    consumer = EventConsumer(
        service="test", bootstrap=broker.bootstrap, group_id=group, topic_names=[TOPIC],
        contracts=CONTRACTS, pool=pool, producer=producer,
        handlers={"jifen.tasks.job.published.v1": handler}, session_timeout_ms=30_000,
        ensure=lambda: ensure_topics(broker.bootstrap, [TOPIC], partitions=1),
    )  # fmt: skip
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    task: asyncio.Task[None] | None = None
    try:
        await admin.start()
        await ensure_topics(broker.bootstrap, [TOPIC], partitions=1)
        await producer.start()
        before = await _publish(broker.bootstrap, 10)
        task = asyncio.create_task(consumer.run())
        await eventually(lambda: _ready(applied, before), timeout=60, what="first records")
        forgot = CONSUMER_RESTARTS.labels(group)._value.get()

        await admin.delete_topics([TOPIC])

        async def back() -> bool:  # re-made by the consumer alone: the test never re-creates it
            if CONSUMER_RESTARTS.labels(group)._value.get() <= forgot:
                return False
            # one metadata request at a time, bounded: an answer lost while the topic is gone
            # and back is asked again, not waited for for ever (a run once hung here or below)
            try:
                return TOPIC in await asyncio.wait_for(admin.list_topics(), 10)
            except TimeoutError:
                return False

        await eventually(back, timeout=90, what="the consumer re-creating its lost topic")
        after = await asyncio.wait_for(_publish(broker.bootstrap, 20), 60)
        await eventually(
            lambda: _ready(applied, before + after), timeout=90, what="records after the loss"
        )
        assert sorted(applied) == sorted(before + after), "each record applied exactly once"
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, 30)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(admin.close(), 10)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(producer.stop(), 30)
        await pool.close()
        broker.stop()
