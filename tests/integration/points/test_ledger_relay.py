"""The ledger as its own outbox (real PostgreSQL and broker): the ledger relay publishes every
entry once, byte for byte the event the write path would have written to the outbox, in chain
order per (org, account), whatever order the writers' transactions took their ids and
committed in; entries written before migration 0012 still go out through the outbox, first."""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from jifen.devtools.devstack import DevStack
from jifen.kernel import topics
from jifen.kernel.contracts import Contracts, encode, isoformat
from jifen.kernel.db import migrate
from jifen.kernel.outbox import OutboxRelay, enqueue_many
from jifen.kernel.settings import REPO_ROOT
from jifen.points.db import MIGRATIONS, queries
from jifen.points.db.repo import LEDGER_COLUMNS, _row
from jifen.points.domain.ledger import Head, Kind, Posting, append
from jifen.points.handlers.ledger import append_postings, ledger_event_unchecked
from jifen.points.ledger_relay import LedgerRelay

CONTRACTS = Contracts(REPO_ROOT / "schemas")
ORG = "jiangmen-riders"
FreshDb = Callable[[Path], Awaitable[str]]


def credit(account: str, points: int, org: str = ORG) -> Posting:
    return Posting(
        event_id=str(uuid.uuid4()),
        event_type="jifen.tasks.completion.verified.v1",
        account_id=account,
        kind=Kind.CREDIT,
        amount=points,
        org_id=org,
        category="meal_delivery",
        job_id=str(uuid.uuid4()),
        completion_id=str(uuid.uuid4()),
        redemption_id=None,
        occurred_at=datetime.now(UTC),
    )


def debit(account: str, points: int, org: str = ORG) -> Posting:
    return Posting(
        event_id=str(uuid.uuid4()),
        event_type="jifen.redeem.redemption.placed.v1",
        account_id=account,
        kind=Kind.DEBIT,
        amount=-points,
        org_id=org,
        category=None,
        job_id=None,
        completion_id=None,
        redemption_id=str(uuid.uuid4()),
        occurred_at=datetime.now(UTC),
        reward_id=str(uuid.uuid4()),
    )


@pytest.fixture
async def topic(stack: DevStack) -> str:
    name = "test.ledger-relay." + uuid.uuid4().hex[:8]
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.broker.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=4, replication_factor=1)])
    finally:
        await admin.close()
    return name


@pytest.fixture
async def producer(stack: DevStack) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(bootstrap_servers=stack.broker.bootstrap, linger_ms=5)
    await p.start()
    yield p
    await p.stop()


def app_dsn(dsn: str) -> str:
    return dsn.replace("postgres@", "jifen_points_app@", 1)


async def consume_all(stack: DevStack, topic: str, n: int, timeout: float = 120) -> list[dict]:
    """Every record of ``topic`` (at least ``n``), per partition in log order, as
    (partition, event) dicts; then waits a moment more for any duplicate."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=stack.broker.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id="test-" + uuid.uuid4().hex[:6],
    )
    await consumer.start()
    out: list[dict] = []
    try:
        async with asyncio.timeout(timeout):
            while len(out) < n:
                for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                    for r in records:
                        out.append({"partition": tp.partition, "key": r.key, "raw": r.value})
        for tp, records in (await consumer.getmany(timeout_ms=1500)).items():
            out += [{"partition": tp.partition, "key": r.key, "raw": r.value} for r in records]
    finally:
        await consumer.stop()
    for o in out:
        o["event"] = orjson.loads(o["raw"])
    return out


async def test_events_are_the_bytes_the_outbox_held(
    stack: DevStack, fresh_db: FreshDb, producer: AIOKafkaProducer, topic: str
) -> None:
    """What the write path built from each entry (and used to write to the outbox) is what the
    relay builds from the stored row: credits, debits, two organisations, a category-less row."""
    dsn = await fresh_db(MIGRATIONS)
    conn = await asyncpg.connect(app_dsn(dsn))
    try:
        async with conn.transaction():
            plan, ids = await append_postings(
                conn,
                queries(),
                CONTRACTS,
                [credit("vol-1", 10), credit("vol-2", 7), credit("vol-1", 4, org="org-b")],
            )
        async with conn.transaction():
            plan2, ids2 = await append_postings(conn, queries(), CONTRACTS, [debit("vol-1", 6)])
        recorded = {
            r["id"]: isoformat(r["recorded_at"])
            for r in await conn.fetch("SELECT id, recorded_at FROM ledger_entry")
        }
        expected = [
            encode(ledger_event_unchecked(i, e, recorded[i]))
            for i, e in zip(ids + ids2, plan.entries + plan2.entries, strict=True)
        ]
        assert await conn.fetchval("SELECT count(*) FROM outbox") == 0, "no outbox row per entry"
        relay = LedgerRelay(app_dsn(dsn), producer, queries(), topic=topic)
        assert await relay.publish_batch(conn) == 4
        assert await relay.publish_batch(conn) == 0
    finally:
        await conn.close()
    got = await consume_all(stack, topic, 4)
    assert sorted(g["raw"] for g in got) == sorted(expected)
    for g in got:
        assert g["key"] == g["event"]["subject"].encode()
        CONTRACTS.validate(g["event"])


async def test_a_later_entry_with_a_lower_xid_waits_for_its_predecessor(
    fresh_db: FreshDb, producer: AIOKafkaProducer, topic: str
) -> None:
    """T2 takes its transaction id first, then waits for vol-a's head while T1 (a higher id)
    appends vol-a#1 and commits; T2 appends vol-a#2. T3, between them, is still open. Tailing
    by the writer's own xid would publish #2 (below the xmin) before #1 (above it); the write
    path gives #2 its predecessor's tx, so neither goes out until T3 ends, then both in order."""
    dsn = app_dsn(await fresh_db(MIGRATIONS))
    q = queries()
    t1, t2, t3, relay_conn = [await asyncpg.connect(dsn) for _ in range(4)]
    try:
        tx2 = t2.transaction()
        await tx2.start()
        xid2 = await t2.fetchval("SELECT pg_current_xact_id()")
        tx3 = t3.transaction()
        await tx3.start()
        xid3 = await t3.fetchval("SELECT pg_current_xact_id()")
        async with t1.transaction():
            xid1 = await t1.fetchval("SELECT pg_current_xact_id()")
            await append_postings(t1, q, CONTRACTS, [credit("vol-a", 5)])
        assert xid2 < xid3 < xid1
        await append_postings(t2, q, CONTRACTS, [credit("vol-a", 3)])
        await tx2.commit()
        rows = await relay_conn.fetch(
            "SELECT account_seq, tx FROM ledger_entry WHERE account_id = 'vol-a'"
            " ORDER BY account_seq"
        )
        assert [r["tx"] for r in rows] == [xid1, xid1], "#2 carries its predecessor's tx"

        relay = LedgerRelay(dsn, producer, q, topic=topic)
        assert await relay.publish_batch(relay_conn) == 0, "T3 is open below both"
        await append_postings(t3, q, CONTRACTS, [credit("vol-c", 1)])
        await tx3.commit()
        assert await relay.publish_batch(relay_conn) == 3
        sent = await relay_conn.fetch(
            "SELECT account_id, account_seq FROM ledger_entry ORDER BY tx, id"
        )
        assert [(r["account_id"], r["account_seq"]) for r in sent] == [
            ("vol-c", 1),
            ("vol-a", 1),
            ("vol-a", 2),
        ]
    finally:
        for c in (t1, t2, t3, relay_conn):
            await c.close()


async def test_concurrent_writers_committing_out_of_order_lose_and_repeat_nothing(
    stack: DevStack, fresh_db: FreshDb, producer: AIOKafkaProducer, topic: str
) -> None:
    """Sixteen writers append to eight accounts of two organisations while the relay runs:
    each takes its transaction id at a random moment (before or after waiting for the heads),
    holds its ids a random while before committing, and some roll back. Every committed entry
    is published exactly once, on its key's partition, in chain order per (org, account)."""
    dsn = app_dsn(await fresh_db(MIGRATIONS))
    q = queries()
    accounts = [(org, f"vol-{i}") for org in (ORG, "org-b") for i in range(4)]
    rng = random.Random(18)
    rolled_back = 0

    async def writer(n: int) -> None:
        nonlocal rolled_back
        conn = await asyncpg.connect(dsn)
        try:
            for _ in range(25):
                picked = rng.sample(accounts, rng.randint(1, 3))
                postings = [credit(a, rng.randint(1, 9), org=o) for o, a in picked]
                try:
                    async with conn.transaction():
                        if rng.random() < 0.5:  # an xid before waiting for the heads' locks
                            await conn.execute("SELECT pg_current_xact_id()")
                            await asyncio.sleep(rng.random() * 0.02)
                        await append_postings(conn, q, CONTRACTS, postings)
                        await asyncio.sleep(rng.random() * 0.03)  # commit later than others
                        if rng.random() < 0.08:
                            raise _RollBack
                except _RollBack:
                    rolled_back += 1
        finally:
            await conn.close()

    relay = LedgerRelay(dsn, producer, q, topic=topic, batch=37, poll_seconds=0.01)
    running = asyncio.create_task(relay.run())
    try:
        await asyncio.gather(*(writer(n) for n in range(16)))
        conn = await asyncpg.connect(dsn)
        try:
            total = await conn.fetchval("SELECT count(*) FROM ledger_entry")
            entries = {
                r["cause_event_id"]: (r["org_id"], r["account_id"], r["account_seq"])
                for r in await conn.fetch(
                    "SELECT cause_event_id::text, org_id, account_id, account_seq FROM ledger_entry"
                )
            }
            async with asyncio.timeout(60):
                while relay.published < total:
                    await asyncio.sleep(0.05)
            inverted = await conn.fetchval(
                "SELECT count(*) FROM ledger_entry a JOIN ledger_entry b"
                " ON a.org_id = b.org_id AND a.account_id = b.account_id"
                " AND b.account_seq = a.account_seq + 1 WHERE (b.tx, b.id) < (a.tx, a.id)"
            )
            # entries whose tx was raised to their predecessor's (their writer's own xid, the
            # row's xmin, was lower): the case that tailing by the writer's xid gets wrong
            raised = await conn.fetchval(
                "SELECT count(*) FROM ledger_entry"
                " WHERE (tx::text::bigint % 4294967296) <> xmin::text::bigint"
            )
        finally:
            await conn.close()
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    assert rolled_back > 0 and total > 600, (rolled_back, total)  # the run had both
    assert raised > 0, "no writer took its xid before a predecessor's: the run proved little"
    assert inverted == 0, "tx, id never decrease along a chain"
    assert relay.published == total, "published once each (no duplicates, none left out)"

    got = await consume_all(stack, topic, total)
    by_cause = [g["event"]["data"]["cause_event_id"] for g in got]
    assert len(by_cause) == total and set(by_cause) == set(entries), "none skipped or repeated"
    partition_of: dict[bytes, int] = {}
    seqs: dict[tuple[str, str], list[int]] = defaultdict(list)
    for g in got:  # consumed per partition in log order
        assert partition_of.setdefault(g["key"], g["partition"]) == g["partition"]
        d = g["event"]["data"]
        seqs[(d["org_id"], d["account_id"])].append(d["account_seq"])
    for key, order in seqs.items():
        assert order == list(range(1, len(order) + 1)), f"{key} out of chain order: {order}"


class _RollBack(Exception):
    pass


async def test_entries_before_the_migration_go_out_through_the_outbox_first(
    stack: DevStack, fresh_db: FreshDb, producer: AIOKafkaProducer, topic: str, tmp_path: Path
) -> None:
    """A ledger migrated to 0012 with events of earlier entries still in the outbox: those go
    out through the outbox relay as before, and the ledger relay publishes nothing (not even
    later entries of the same accounts) until they have, then only the new entries."""
    old = tmp_path / "migrations-0011"
    old.mkdir()
    for f in sorted(MIGRATIONS.glob("*.sql")):
        if f.name[:4] <= "0011":
            shutil.copy(f, old / f.name)
    owner = await fresh_db(old)
    dsn = app_dsn(owner)
    conn = await asyncpg.connect(owner)
    try:
        # the previous write path: entries, and one outbox row each, in one transaction
        legacy = [credit("vol-1", 10), credit("vol-2", 3)]
        async with conn.transaction():
            at = datetime.now(UTC)
            rows, events = [], []
            for p in legacy:
                head, entry = append(Head(p.account_id, org_id=p.org_id), p)
                entry_id = await conn.fetchval("SELECT nextval('ledger_entry_id_seq')")
                rows.append(_row(entry_id, entry, at))
                events.append(ledger_event_unchecked(entry_id, entry, isoformat(at)))
                await conn.execute(
                    "INSERT INTO account (org_id, account_id, seq, balance, earned, head_hash)"
                    " VALUES ($1, $2, $3, $4, $4, $5)",
                    head.org_id,
                    head.account_id,
                    head.seq,
                    head.balance,
                    head.hash,
                )
            await conn.copy_records_to_table("ledger_entry", records=rows, columns=LEDGER_COLUMNS)
            await enqueue_many(conn, [(topic, ev["subject"], ev) for ev in events])
        # 0012 onto the old ledger (and the later ones after it)
        later = [p.name for p in sorted(MIGRATIONS.glob("*.sql")) if p.name[:4] >= "0012"]
        assert await migrate(owner, MIGRATIONS) == later
        assert later[0] == "0012_ledger_relay.sql"
    finally:
        await conn.close()

    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await append_postings(conn, queries(), CONTRACTS, [credit("vol-1", 1)])
        assert await conn.fetchval("SELECT count(*) FROM ledger_entry WHERE tx IS NULL") == 2
        relay = LedgerRelay(dsn, producer, queries(), topic=topic)
        assert await relay.publish_batch(conn) == 0, "the outbox's ledger events go first"
        outbox = OutboxRelay(dsn, producer, service="points")
        assert await outbox.publish_batch(conn) == 2
        assert await relay.publish_batch(conn) == 1
        assert await relay.publish_batch(conn) == 0
    finally:
        await conn.close()
    got = await consume_all(stack, topic, 3)
    assert [g["event"]["data"]["account_seq"] for g in got if g["key"] == b"vol-1"] == [1, 2]
    assert len(got) == 3
    assert topics.POINTS_LEDGER != topic  # the test's own topic, not the stack's


async def test_an_outbox_waiting_on_the_broker_does_not_hold_the_ledger_back(
    fresh_db: FreshDb, producer: AIOKafkaProducer, topic: str
) -> None:
    """The outbox relay waits on the broker (here: a topic the broker does not have, as after
    it lost its disk) while a ledger entry commits: the ledger relay still publishes it. The
    outbox relay used to hold ``SELECT … FOR UPDATE`` open while awaiting the acks; that
    transaction's id kept the cluster's snapshot xmin below every later entry, and in the
    unclean-election test credits arrived but their ledger events did not for minutes."""
    dsn = app_dsn(await fresh_db(MIGRATIONS))
    q = queries()
    writer, outbox_conn, relay_conn = [await asyncpg.connect(dsn) for _ in range(3)]
    outbox = OutboxRelay(dsn, producer, service="points")
    sending = asyncio.Event()
    send = outbox._send

    async def observed_send(rows: list[asyncpg.Record]) -> list[asyncio.Future[object]]:
        sending.set()  # the rows are read: from here the relay awaits the broker
        return await send(rows)

    outbox._send = observed_send  # type: ignore[method-assign]
    stuck: asyncio.Task[int] | None = None
    try:
        missing = "test.missing." + uuid.uuid4().hex[:8]
        async with writer.transaction():
            _, entry = append(Head("vol-x", org_id=ORG), credit("vol-x", 1))
            event = ledger_event_unchecked(1, entry, isoformat(datetime.now(UTC)))
            await enqueue_many(writer, [(missing, "vol-x", event)])
        stuck = asyncio.create_task(outbox.publish_batch(outbox_conn))
        async with asyncio.timeout(30):
            await sending.wait()
        async with writer.transaction():
            await append_postings(writer, q, CONTRACTS, [credit("vol-y", 4)])
        relay = LedgerRelay(dsn, producer, q, topic=topic)
        assert not stuck.done(), "the outbox relay is still waiting on the broker"
        assert await relay.publish_batch(relay_conn) == 1
    finally:
        if stuck is not None:
            stuck.cancel()
            with contextlib.suppress(BaseException):
                await stuck
        for c in (writer, outbox_conn, relay_conn):
            await c.close()
