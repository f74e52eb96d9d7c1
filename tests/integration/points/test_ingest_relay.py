"""The outbox relay publishing record batches per partition (real PostgreSQL and broker): every
row is published once, on the partition the producer's own ``send`` would have chosen for its
key, in id order per key, and deleted only after the broker acknowledged it."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from jifen.devtools.devstack import DevStack
from jifen.kernel.outbox import OutboxRelay, enqueue_many
from jifen.points.db import MIGRATIONS


async def test_relay_publishes_batches_on_the_keys_partitions_in_order(
    stack: DevStack, fresh_db: Callable[[Path], Awaitable[str]]
) -> None:
    dsn = await fresh_db(MIGRATIONS)
    topic = "test.relay." + uuid.uuid4().hex[:8]
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.broker.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
    finally:
        await admin.close()
    # 1,300 rows over 37 keys and a few keyless, ~600 B each: several batches per partition
    rows = []
    for i in range(1300):
        key = None if i % 97 == 0 else f"vol-{i % 37:03d}"
        event = {"id": str(uuid.uuid4()), "type": "t.v1", "n": i, "pad": "x" * 600}
        rows.append((topic, key, event))
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await enqueue_many(conn, rows)
        producer = AIOKafkaProducer(
            bootstrap_servers=stack.broker.bootstrap, max_batch_size=32 * 1024, linger_ms=5
        )
        await producer.start()
        try:
            relay = OutboxRelay(dsn, producer, service="test", batch=500)
            sent = 0
            while n := await relay.publish_batch(conn):
                sent += n
            assert sent == 1300
            assert await conn.fetchval("SELECT count(*) FROM outbox") == 0
            # where producer.send would have put each key
            expected = {}
            for key in {k for _, k, _ in rows if k is not None}:
                md = await (await producer.send(topic, b"probe", key=key.encode()))
                expected[key] = md.partition
        finally:
            await producer.stop()
    finally:
        await conn.close()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=stack.broker.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id="test-relay-" + uuid.uuid4().hex[:6],
    )
    await consumer.start()
    seen: dict[str | None, list[int]] = defaultdict(list)
    got = 0
    try:
        async with asyncio.timeout(60):
            while got < 1300:
                for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                    for r in records:
                        if r.value == b"probe":
                            continue
                        key = r.key.decode() if r.key is not None else None
                        if key is not None:
                            assert tp.partition == expected[key], key
                        seen[key].append(orjson.loads(r.value)["n"])
                        got += 1
    finally:
        await consumer.stop()
    assert sorted(n for ns in seen.values() for n in ns) == list(range(1300))
    for key, ns in seen.items():
        if key is not None:
            assert ns == sorted(ns), key  # one key's events in enqueue order
