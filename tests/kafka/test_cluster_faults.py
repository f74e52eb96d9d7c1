"""The ledger on a three-node Apache Kafka cluster (RF 3, min ISR 2) while brokers die: the
partition leader's node SIGKILLed and started again, two of three killed and brought back, and
a rolling restart of all three, each under a mixed load: a stream of verified completions from
an idempotent producer into two points workers in one group, and members of the same accounts
redeeming (some cancelling) through the redeem API and worker. Every acknowledged completion
is credited exactly once (count and sum per account), every redemption is confirmed with one
debit or cancelled and refunded once, no balance goes below zero, every wallet ends equal to
its ledger and every chain stays intact. Then Kafka's own kafka-consumer-groups shows the
ledger's group and its lag, as docs/SCALING.md does."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import uuid
from datetime import UTC, datetime

import asyncpg
import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from jifen.devtools.devstack import DevStack
from jifen.devtools.stack import KAFKA_JVM, java_bin, kafka_libs
from jifen.kernel import topics
from jifen.kernel.contracts import isoformat
from jifen.kernel.kafka import ensure_topics, make_producer
from tests.e2e.points.test_ledger_faults import CONTRACTS, chains, kill, start_worker
from tests.helpers import eventually
from tests.integration.points.test_ledger_exactly_once import assert_chains_intact
from tests.kafka.conftest import cluster, fully_replicated, partition_state, restart
from tests.kafka.redemptions import Shopper, all_settled

pytestmark = pytest.mark.e2e
WATCHED = [topics.TASKS_COMPLETIONS, topics.POINTS_LEDGER, "__consumer_offsets"]


class Load:
    """Verified completions sent in small acknowledged batches until stopped; ``sent`` holds
    only what the cluster acknowledged (acks=all: on at least min ISR replicas)."""

    def __init__(self, stack: DevStack, tag: str, accounts: int = 30) -> None:
        self.stack = stack
        self.tag = tag
        self.accounts = accounts
        self.sent: dict[str, tuple[int, int]] = {}
        self.acked = 0
        self.errors: list[str] = []
        self._stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def account(self, i: int) -> str:
        return f"{self.tag}-{i % self.accounts:03d}"

    def event(self, i: int) -> tuple[str, int, bytes]:
        account = self.account(i)
        points = 1 + i % 29
        now = datetime.now(UTC)
        event = CONTRACTS.new_event(
            "jifen.tasks.completion.verified.v1", source="/jifen/tasks", subject=account,
            time=now,
            data={"completion_id": str(uuid.uuid4()), "job_id": str(uuid.uuid4()),
                  "account_id": account, "org_id": "jiangmen-riders", "community_id": "grid",
                  "category": "hazard_patrol", "points": points, "verified_by": "officer-li",
                  "verified_at": isoformat(now)},
        )  # fmt: skip
        return account, points, orjson.dumps(event)

    async def run(self) -> None:
        # long enough to wait out a cluster without quorum (two of three down) and retry
        producer = make_producer(cluster(self.stack).bootstrap, request_timeout_ms=120_000)
        await producer.start()
        i = 0
        try:
            while not self._stop.is_set():
                batch = [self.event(i + k) for k in range(50)]
                i += len(batch)
                try:
                    futures = [
                        await producer.send(topics.TASKS_COMPLETIONS, v, key=a.encode())
                        for a, _, v in batch
                    ]
                    await asyncio.gather(*futures)
                except KafkaError as exc:  # not acknowledged: may or may not be written
                    self.errors.append(repr(exc))
                    return
                for account, points, _ in batch:
                    c, s = self.sent.get(account, (0, 0))
                    self.sent[account] = (c + 1, s + points)
                self.acked += len(batch)
                await asyncio.sleep(0.02)
        finally:
            await producer.stop()

    def start(self) -> None:
        self.task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        self._stop.set()
        if self.task is not None:
            await self.task
        assert not self.errors, f"sends the cluster did not acknowledge: {self.errors[:3]}"

    async def grown_by(self, n: int) -> None:
        start = self.acked
        await eventually(
            lambda: _true(self.acked >= start + n or bool(self.errors)),
            timeout=60,
            what=f"{n} more completions acknowledged",
        )
        assert not self.errors, self.errors[:3]


async def _true(value: bool) -> bool:
    return value


class Mixed:
    """The completions of :class:`Load` and, on the same accounts, members redeeming."""

    def __init__(self, stack: DevStack, reward: dict[str, object], tag: str) -> None:
        self.load = Load(stack, tag)
        accounts = sorted({self.load.account(i) for i in range(self.load.accounts)})
        self.shop = Shopper(stack, reward, accounts)

    def start(self) -> None:
        self.load.start()
        self.shop.start()

    async def grown_by(self, n: int) -> None:
        """``n`` more completions acknowledged, and members spending (the faults wait for both)."""
        await self.load.grown_by(n)
        await self.shop.wait_open()

    async def stop(self) -> None:
        stopped = await asyncio.gather(self.load.stop(), self.shop.stop(), return_exceptions=True)
        for outcome in stopped:
            if isinstance(outcome, BaseException):
                raise outcome

    async def all_done(self, stack: DevStack, ledger: asyncpg.Connection) -> None:
        await all_credited(ledger, self.load)
        await all_settled(stack, self.shop, self.load.tag)
        print(f"\n{self.load.acked} completions, redemptions: {dict(self.shop.outcomes)}")


async def credits_of(conn: asyncpg.Connection, tag: str) -> dict[str, tuple[int, int]]:
    rows = await conn.fetch(
        "SELECT account_id, count(*)::int AS n, sum(amount)::int AS s FROM ledger_entry"
        " WHERE account_id LIKE $1 AND kind = 'credit' GROUP BY account_id",
        f"{tag}-%",
    )
    return {r["account_id"]: (r["n"], r["s"]) for r in rows}


async def all_credited(ledger: asyncpg.Connection, load: Load) -> None:
    total = sum(n for n, _ in load.sent.values())

    async def done() -> dict[str, tuple[int, int]] | None:
        got = await credits_of(ledger, load.tag)
        return got if sum(n for n, _ in got.values()) >= total else None

    await eventually(done, timeout=120, what=f"all {total} completions credited")
    assert await credits_of(ledger, load.tag) == load.sent, "lost or doubled credits"
    assert_chains_intact(await chains(ledger, load.tag))


@pytest.fixture
async def workers(cluster_stack: DevStack):  # type: ignore[no-untyped-def]
    await ensure_topics(cluster(cluster_stack).bootstrap)
    await eventually(
        lambda: fully_replicated(cluster_stack, WATCHED[:2]), timeout=60, what="topics replicated"
    )
    procs = [start_worker(cluster_stack, f"kw-{uuid.uuid4().hex[:4]}") for _ in range(2)]
    yield procs
    for p in procs:
        kill(p)


async def test_topics_replicated_three_times_with_min_isr_two(
    cluster_stack: DevStack, workers: list[object]
) -> None:
    state = await partition_state(cluster(cluster_stack).bootstrap, topics.TASKS_COMPLETIONS)
    assert state and all(len(isr) == 3 for _, isr in state.values()), state
    admin = AIOKafkaAdminClient(bootstrap_servers=cluster(cluster_stack).bootstrap)
    await admin.start()
    try:
        (resp,) = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topics.TASKS_COMPLETIONS)]
        )
    finally:
        await admin.close()
    configs = {c[0]: c[1] for c in resp.resources[0][4]}
    assert configs["min.insync.replicas"] == "2"
    assert configs["retention.ms"] == topics.spec(topics.TASKS_COMPLETIONS).config["retention.ms"]


async def test_sigkill_the_partition_leader_then_restart_it(
    cluster_stack: DevStack,
    workers: list[object],
    ledger: asyncpg.Connection,
    redeem_service: dict[str, object],
) -> None:
    load = Mixed(cluster_stack, redeem_service, f"klead{uuid.uuid4().hex[:4]}")
    load.start()
    try:
        await load.grown_by(500)
        state = await partition_state(cluster(cluster_stack).bootstrap, topics.TASKS_COMPLETIONS)
        leader = cluster(cluster_stack).node(state[0][0])
        leader.kill()  # SIGKILL: no controlled shutdown, the log not closed
        await load.grown_by(500)  # the other two take over partition 0; writes go on
        after = await partition_state(cluster(cluster_stack).bootstrap, topics.TASKS_COMPLETIONS)
        assert after[0][0] not in (leader.node_id, -1), after
        await restart(cluster_stack, leader, WATCHED)
        await load.grown_by(300)
    finally:
        await load.stop()
    await load.all_done(cluster_stack, ledger)


async def test_two_of_three_killed_and_brought_back(
    cluster_stack: DevStack,
    workers: list[object],
    ledger: asyncpg.Connection,
    redeem_service: dict[str, object],
) -> None:
    """With one node left the partitions have too few in-sync replicas (min ISR 2): writes wait
    (the producer retries) rather than land on one copy, while the redeem API goes on taking
    redemptions (held in PostgreSQL); both nodes back, everything lands once."""
    c = cluster(cluster_stack)
    await ensure_topics(c.bootstrap, [PROBE])
    load = Mixed(cluster_stack, redeem_service, f"ktwo{uuid.uuid4().hex[:4]}")
    load.start()
    try:
        await load.grown_by(300)
        down = [c.node(2), c.node(3)]
        for node in down:
            node.kill()
        # one copy left: a write is refused (or never acknowledged), not kept on one disk
        await eventually(lambda: refused(c.bootstrap), timeout=60, what="a write refused")
        for node in down:
            node.start(wait=False)
        for node in down:
            node.wait_started()
        await eventually(
            lambda: fully_replicated(cluster_stack, WATCHED), timeout=180, what="cluster whole"
        )
        await load.grown_by(300)
    finally:
        await load.stop()
    await load.all_done(cluster_stack, ledger)


PROBE = "jifen.test.isr-probe"


async def refused(bootstrap: str) -> bool:
    producer = make_producer(bootstrap, request_timeout_ms=3_000)
    try:
        await asyncio.wait_for(producer.start(), 10)
        await asyncio.wait_for(producer.send_and_wait(PROBE, b"probe"), 10)
    except (KafkaError, TimeoutError):
        return True
    finally:
        with contextlib.suppress(Exception):  # a half-started producer may not stop cleanly
            await asyncio.wait_for(producer.stop(), 10)
    return False


async def test_rolling_restart_of_all_three(
    cluster_stack: DevStack,
    workers: list[object],
    ledger: asyncpg.Connection,
    redeem_service: dict[str, object],
) -> None:
    c = cluster(cluster_stack)
    load = Mixed(cluster_stack, redeem_service, f"kroll{uuid.uuid4().hex[:4]}")
    load.start()
    try:
        await load.grown_by(300)
        for node in c:
            node.stop()  # SIGTERM: a controlled shutdown moves leadership away first
            await load.grown_by(200)
            await restart(cluster_stack, node, WATCHED)
        await load.grown_by(200)
    finally:
        await load.stop()
    await load.all_done(cluster_stack, ledger)


def consumer_groups(bootstrap: str, group: str) -> list[dict[str, str]]:
    """``kafka-consumer-groups --describe --group``, by the installed jars as docs/SCALING.md
    runs it: one row per partition (GROUP, TOPIC, PARTITION, CURRENT-OFFSET, LAG, ...)."""
    out = subprocess.run(
        [java_bin(), *KAFKA_JVM, "-cp", f"{kafka_libs()}/*",
         "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
         "--bootstrap-server", bootstrap, "--describe", "--group", group],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    lines = [line.split() for line in out.splitlines() if line.strip()]
    (header,) = [cols for cols in lines if cols[:2] == ["GROUP", "TOPIC"]]
    return [dict(zip(header, cols, strict=False)) for cols in lines if cols[0] == group]


async def test_kafka_consumer_groups_shows_the_ledger_group_and_its_lag(
    cluster_stack: DevStack, workers: list[object], ledger: asyncpg.Connection
) -> None:
    load = Load(cluster_stack, f"kcg{uuid.uuid4().hex[:4]}")
    load.start()
    try:
        await load.grown_by(100)
    finally:
        await load.stop()
    await all_credited(ledger, load)
    group = "jifen-points-ledger"

    async def caught_up() -> list[dict[str, str]] | None:
        rows = await asyncio.to_thread(consumer_groups, cluster(cluster_stack).bootstrap, group)
        mine = [r for r in rows if r["TOPIC"] == topics.TASKS_COMPLETIONS]
        return rows if mine and all(r["LAG"] == "0" for r in mine) else None

    rows = await eventually(caught_up, timeout=90, what="kafka-consumer-groups shows no lag")
    partitions = {int(r["PARTITION"]) for r in rows if r["TOPIC"] == topics.TASKS_COMPLETIONS}
    assert partitions == set(await partition_state(cluster(cluster_stack).bootstrap,
                                                   topics.TASKS_COMPLETIONS))  # fmt: skip
    assert {topics.TASKS_COMPLETIONS, topics.REDEEM_REDEMPTIONS} <= {r["TOPIC"] for r in rows}
    for r in rows:
        if r["CURRENT-OFFSET"] != "-":
            assert int(r["LAG"]) == int(r["LOG-END-OFFSET"]) - int(r["CURRENT-OFFSET"]), r
