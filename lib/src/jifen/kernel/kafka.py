"""Kafka clients for Apache Kafka (embedded and deployed), and the opt-in Tansu broker.

Producers are idempotent (no duplicates from the producer's own retries), except on Tansu,
which refuses InitProducerId (``JIFEN_BROKER=tansu``). No transactions: correctness comes
from the outbox plus idempotent consumers (DESIGN.md). Offsets are committed by hand, only
after the database commit of the batch they belong to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from jifen.kernel import topics
from jifen.kernel.contracts import isoformat, utcnow
from jifen.kernel.metrics import CONSUMER_RESTARTS, DEAD_LETTERED
from jifen.kernel.settings import KAFKA_FETCH_MAX_WAIT_MS, KAFKA_SESSION_TIMEOUT_MS

log = logging.getLogger(__name__)

# The CloudEvents Kafka protocol binding, structured mode: the whole event (attributes and data)
# is the record's value, and the record says so in its content-type header.
CLOUDEVENTS_HEADERS = [("content-type", b"application/cloudevents+json")]
# a dead letter is not an event: a JSON record about one (the original kept inside it)
DEAD_LETTER_CONTENT_TYPE = ("content-type", b"application/json")


def on_tansu() -> bool:
    """The opt-in light broker, which lacks idempotent producers (INFRA-FACTS.md)."""
    return os.environ.get("JIFEN_BROKER", "").strip().lower() == "tansu"


def make_producer(bootstrap: str, **overrides: Any) -> AIOKafkaProducer:
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "acks": "all",
        "enable_idempotence": not on_tansu(),
        "linger_ms": 5,
        "max_batch_size": 256 * 1024,
        "request_timeout_ms": 15_000,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


def make_consumer(
    bootstrap: str,
    group_id: str,
    *topic_names: str,
    fetch_max_wait_ms: int = KAFKA_FETCH_MAX_WAIT_MS,
    session_timeout_ms: int = KAFKA_SESSION_TIMEOUT_MS,
    **overrides: Any,
) -> AIOKafkaConsumer:
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "group_id": group_id,
        "enable_auto_commit": False,
        # a new group (or a partition whose offsets are gone) reads everything from the start
        "auto_offset_reset": "earliest",
        "fetch_max_wait_ms": fetch_max_wait_ms,
        "session_timeout_ms": session_timeout_ms,
        "heartbeat_interval_ms": max(session_timeout_ms // 4, 500),
        "max_poll_records": 2000,
        # a subscribed topic deleted and re-created comes back into the assignment at the next
        # metadata refresh: every 5 s, not aiokafka's 5 min (on Kafka, a consumer held nothing
        # for minutes without: tests/integration/kernel/test_broker_forgets.py)
        "metadata_max_age_ms": 5_000,
        "max_partition_fetch_bytes": 4 * 1024 * 1024,
        "fetch_max_bytes": 16 * 1024 * 1024,
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topic_names, **options)


async def stop_consumer(consumer: AIOKafkaConsumer) -> None:
    """``consumer.stop()``, minus a stray CancelledError.

    In aiokafka 0.14 ``Fetcher.close`` cancels its pending fetch tasks and awaits them without
    catching their CancelledError, so ``stop()`` can raise it although nobody cancelled *us*
    (seen after broker restarts): re-raised, it ended the consumer loop silently and left
    the process up, consuming nothing. It is swallowed unless this task is being cancelled,
    and the client's connections are closed, which that ``stop()`` did not reach.
    """
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        log.warning("aiokafka raised CancelledError while stopping a consumer; ignored")
        with contextlib.suppress(Exception):
            await consumer._client.close()


class BrokerForgot(KafkaError):  # type: ignore[misc]
    """The broker no longer has the group's committed offsets: it restarted empty."""


class OffsetGuard:
    """Commits a consumer's offsets, and notices a broker that has forgotten them.

    On Apache Kafka a topic deleted and re-created under a running consumer (an operator's
    mistake, a restore) begins again at offset 0 and takes the group's committed offsets with
    it, but the consumer keeps its in-memory fetch position: past the first records of the new
    log, which it would silently never read (the opt-in Tansu forgets so on every restart). So
    before each commit, and every ``check_every`` seconds when idle, the guard asks the broker
    for the group's committed offsets of the partitions it holds. One missing, or lower than
    the last offset this consumer committed or started from, means the broker forgot:
    :class:`BrokerForgot` is raised *instead of* committing, and the caller restarts its
    consumer, which joins the group afresh and (with nothing committed) reads from the
    beginning. Records already applied come again and the idempotent consumers absorb them;
    nothing is skipped. Shown on Kafka by tests/integration/kernel/test_broker_forgets.py; on a
    healthy cluster the check costs one OffsetFetch round trip and never fires. (Records an
    unclean leader election drops are another matter: their senders send them again, see the
    tasks republisher and redeem's resend loop.)

    A subscribed topic that vanishes from the cluster's metadata and stays gone (a single
    broker that lost its log folder, a topic deleted and not re-created) is forgetting too: the
    consumer would sit with no partitions for ever, and only a consumer that starts afresh
    re-creates its topics (``EventConsumer.ensure``). So a topic this guard once saw in the
    metadata and no longer does also raises :class:`BrokerForgot`
    (tests/integration/kernel/test_broker_forgets.py).
    """

    def __init__(self, consumer: AIOKafkaConsumer, group: str, *, check_every: float = 2.0) -> None:
        self.consumer = consumer
        self.group = group
        self.check_every = check_every
        self.known: dict[TopicPartition, int] = {}
        self.seen_topics: set[str] = set()
        self._gone_since: dict[str, float] = {}
        self._checked = 0.0

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        await self.check()
        await self.consumer.commit(offsets)
        self.known.update(offsets)

    async def idle(self) -> None:
        """Check now and then while no records come (a restart may leave a consumer idle)."""
        if asyncio.get_running_loop().time() - self._checked >= self.check_every:
            await self.check()

    async def check(self) -> None:
        self._checked = asyncio.get_running_loop().time()
        self._check_topics()
        held = self.consumer.assignment()
        self.known = {tp: o for tp, o in self.known.items() if tp in held}
        if not held:
            return
        try:
            # one OffsetFetch for every partition held (consumer.committed() asks one at a time)
            theirs = await asyncio.wait_for(
                self.consumer._coordinator.fetch_committed_offsets(list(held)), 5.0
            )
        except TimeoutError:
            return  # the broker is away: the commit that follows will fail and say so
        lost = [tp for tp, o in self.known.items() if tp not in theirs or theirs[tp].offset < o]
        if lost:
            CONSUMER_RESTARTS.labels(self.group).inc()
            raise BrokerForgot(
                f"the broker has forgotten group {self.group}'s offsets for "
                + ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(lost)[:8])
            )
        for tp in held:
            if tp not in self.known and tp in theirs:
                self.known[tp] = theirs[tp].offset  # where this member started from

    def _check_topics(self) -> None:
        """Raise BrokerForgot when a subscribed topic seen before has been gone from the
        metadata for ``check_every`` seconds or more (not on one odd metadata answer)."""
        now = asyncio.get_running_loop().time()
        subscribed = set(self.consumer.subscription())
        present = subscribed & set(self.consumer._client.cluster.topics())
        self.seen_topics |= present
        for t in present:
            self._gone_since.pop(t, None)
        for t in (self.seen_topics & subscribed) - present:
            self._gone_since.setdefault(t, now)
        gone = [t for t, since in self._gone_since.items() if now - since >= self.check_every]
        if gone:
            self._gone_since.clear()
            CONSUMER_RESTARTS.labels(self.group).inc()
            raise BrokerForgot(
                f"topics {', '.join(sorted(gone))} of group {self.group} are gone from the broker"
            )


async def ensure_topics(
    bootstrap: str, names: Iterable[str] | None = None, *, partitions: int = 4, timeout: float = 30
) -> None:
    """Create the topics that do not exist yet (idempotent; safe from every process), with
    their settings from deploy/kafka/topics.json: ``partitions`` (JIFEN_TOPIC_PARTITIONS),
    replication and ``min.insync.replicas`` capped at the brokers the cluster has."""
    wanted = list(names or topics.with_dead_letters())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [n for n in wanted if n not in existing]
            if missing:
                brokers = len((await admin.describe_cluster())["brokers"])
                specs = [topics.spec(n, partitions=partitions, brokers=brokers) for n in missing]
                try:
                    await admin.create_topics(
                        [
                            NewTopic(
                                t.name,
                                num_partitions=t.partitions,
                                replication_factor=t.replicas,
                                topic_configs=t.config if not on_tansu() else {},
                            )
                            for t in specs
                        ]
                    )
                except TopicAlreadyExistsError:
                    pass
                missing = [n for n in wanted if n not in set(await admin.list_topics())]
                if missing:  # created, but not yet in this broker's metadata: ask again
                    raise KafkaError(f"topics not yet visible: {missing}")
            return
        except (KafkaError, OSError) as exc:
            if loop.time() > deadline:
                raise TimeoutError(f"broker at {bootstrap} not usable: {exc!r}") from exc
            await asyncio.sleep(0.5)
        finally:
            await admin.close()


async def dead_letter(
    producer: AIOKafkaProducer,
    topic: str,
    *,
    value: bytes | None,
    key: bytes | None,
    reason: str,
    partition: int | None = None,
    offset: int | None = None,
    consumer: str,
) -> None:
    """Publish a record that could not be applied to ``<topic>.dlq`` with the reason.

    The original bytes are kept as they came (base64 would hide nothing a reader needs; we
    store them as text when they decode, else as hex) so nothing is lost.
    """
    original: str
    encoding: str
    try:
        original, encoding = (value or b"").decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        original, encoding = (value or b"").hex(), "hex"
    record = {
        "reason": reason,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "consumer": consumer,
        "dead_lettered_at": isoformat(utcnow()),
        "original_encoding": encoding,
        "original": original,
    }
    await producer.send_and_wait(
        topics.dlq(topic),
        orjson.dumps(record),
        key=key,
        headers=[DEAD_LETTER_CONTENT_TYPE, ("jifen-dlq-reason", reason[:500].encode())],
    )
    DEAD_LETTERED.labels(topic=topic, reason=_reason_label(reason)).inc()
    log.warning("dead-lettered record from %s[%s]@%s: %s", topic, partition, offset, reason)


def _reason_label(reason: str) -> str:
    """A bounded label for metrics: the reason's first word (e.g. ``envelope:``)."""
    head = reason.split(":", 1)[0].split(" ", 1)[0]
    return head[:40] if head else "unknown"
