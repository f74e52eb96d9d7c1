"""An unclean leader election on the three-node Apache Kafka cluster: records that only the
partition leader held are gone for good, and the system still credits every verified completion
exactly once.

Staged on real brokers (no mock): ``tasks.completions`` and ``points.ledger`` get
``unclean.leader.election.enable=true`` and ``min.insync.replicas=1``; ``__consumer_offsets``
and ``tasks.jobs`` only ``min.insync.replicas=1`` (so that the consumers can commit on one copy,
and the tasks relay, which publishes its outbox in order, is not held back by a job's event).
Node 1 is left alone (nodes 2 and 3 shut down: every ISR shrinks to node 1; the controller
quorum goes with them, but a leader needs none to take writes into an ISR of itself).
Completions verified then land on node 1 only: the first ones read by the ledger, credited,
announced and their offsets committed; the later ones (ledger worker stopped) never read. Node
1 is SIGKILLed; nodes 2 and 3 come back (two of three voters: a quorum, the least that can
elect; the controller looks for leaderless partitions every second) and one of them is elected
leader of every partition of both topics out of sync. The test asserts that this happened from
the cluster's own metadata: the leaders changed away from node 1 and the partitions' log end
offsets went back, behind the ledger's committed offsets. Node 1 comes back, truncates what it
alone had, and is in sync again with the new, shorter logs.

Then the tasks worker republishes what the ledger did not acknowledge (after
``JIFEN_TASKS_CREDIT_TIMEOUT_SECONDS``, 2 s here) and the consumers, their committed offsets past
the new log ends, read on: every completion verified before, during and after the fault is
credited exactly once (points API: one credit per completion id), shown credited by the tasks
API, every chain intact, no dead letters for these accounts, and a completion verified after
the fault is credited too (nothing stalls)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from jifen.devtools.devstack import DevStack
from jifen.devtools.stack import KAFKA_JVM, KafkaCluster, java_bin, kafka_libs
from jifen.kernel import topics
from jifen.kernel.kafka import ensure_topics
from tests.e2e.points.test_ledger_faults import chains, kill, start_worker
from tests.e2e.test_typical_journey import earn
from tests.helpers import Api, eventually
from tests.integration.points.test_ledger_exactly_once import assert_chains_intact
from tests.kafka.conftest import cluster, fully_replicated, partition_state

pytestmark = pytest.mark.e2e

UNCLEAN = [topics.TASKS_COMPLETIONS, topics.POINTS_LEDGER]
OFFSETS = "__consumer_offsets"
WATCHED = [*UNCLEAN, topics.TASKS_JOBS, OFFSETS]
LEDGER_GROUP = "jifen-points-ledger"
CHECK = "unclean.leader.election.interval.ms"
# what the staging changes, per topic; put back as it was at the end
ONE_COPY = {"unclean.leader.election.enable": "true", "min.insync.replicas": "1"}
STAGED = {
    topics.TASKS_COMPLETIONS: ONE_COPY,
    topics.POINTS_LEDGER: ONE_COPY,
    # the tasks relay publishes its outbox in order: a job's event refused would hold back the
    # completions behind it (clean elections only there, as for the offsets)
    topics.TASKS_JOBS: {"min.insync.replicas": "1"},
    OFFSETS: {"min.insync.replicas": "1"},
}


# -- the cluster's own view -------------------------------------------------------------------
async def topic_configs(bootstrap: str, topic: str) -> dict[str, str]:
    """The settings set on ``topic`` itself (not inherited from the broker's defaults)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        (resp,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    entries = resp.resources[0][4]
    # v1+: (name, value, read_only, source, sensitive, synonyms); source 1 = the topic's own
    return {e[0]: e[1] for e in entries if len(e) >= 6 and e[3] == 1}


async def set_topic_configs(bootstrap: str, configs: dict[str, dict[str, str]]) -> None:
    """AlterConfigs replaces a topic's own settings as a whole: send every one of them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        resources = [ConfigResource(ConfigResourceType.TOPIC, t, c) for t, c in configs.items()]
        (resp,) = await admin.alter_configs(resources)
    finally:
        await admin.close()
    errors = [(r[2], r[0], r[1]) for r in resp.resources if r[0] != 0]
    assert not errors, errors


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """partition -> log end offset, as each partition's leader reports it now."""
    state = await partition_state(bootstrap, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(state)]
        got = await asyncio.wait_for(consumer.end_offsets(tps), 30)
    finally:
        await consumer.stop()
    return {tp.partition: off for tp, off in got.items()}


async def logs_ends(bootstrap: str) -> dict[str, dict[int, int]]:
    return {t: await end_offsets(bootstrap, t) for t in UNCLEAN}


async def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp.partition: om.offset for tp, om in offsets.items() if tp.topic == topic}


async def _or_none(probe: Any) -> Any:
    """A probe that may fail while nodes come and go: not yet."""
    try:
        return await probe
    except Exception:
        return None


def elect_unclean(bootstrap: str, topic_partitions: list[tuple[str, int]], home: Path) -> str:
    """Kafka's own kafka-leader-election --election-type unclean, for these partitions only."""
    path = home / f"unclean-{uuid.uuid4().hex[:6]}.json"
    path.write_text(
        json.dumps({"partitions": [{"topic": t, "partition": p} for t, p in topic_partitions]})
    )
    done = subprocess.run(
        [java_bin(), *KAFKA_JVM, "-cp", f"{kafka_libs()}/*",
         "org.apache.kafka.tools.LeaderElectionCommand", "--bootstrap-server", bootstrap,
         "--election-type", "unclean", "--path-to-json-file", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return done.stdout + done.stderr


async def forget_earlier_tests(bootstrap: str) -> int:
    """Delete the records before this test on the two unclean topics (as retention would);
    how many. The package's cluster is shared: the tests before this one leave ~45,000 events
    on each (their completions go straight to the topic; no tasks database knows them). A
    group whose offsets are out of range after the election starts again from the earliest
    record, and a new tasks worker starts there too: beside stress-ng it applied ~210 a second,
    25,000 in this test's 120 s without reaching its own two (two loaded fresh-clone runs
    failed so). Not this test's to read again."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await consumer.start()
    await admin.start()
    try:
        await consumer._client.force_metadata_update()
        parts = [
            TopicPartition(t, p) for t in UNCLEAN for p in consumer.partitions_for_topic(t) or ()
        ]
        assert len(parts) >= len(UNCLEAN), "the unclean topics are in the metadata"
        ends = await consumer.end_offsets(parts)
        starts = await consumer.beginning_offsets(parts)
        await admin.delete_records({tp: RecordsToDelete(ends[tp]) for tp in parts})
        return sum(ends[tp] - starts[tp] for tp in parts)
    finally:
        await admin.close()
        await consumer.stop()


# -- the services ------------------------------------------------------------------------------
def start_tasks_worker(stack: DevStack) -> subprocess.Popen[bytes]:
    """The tasks worker (outbox relay, acknowledgements, republishing) with a 2 s credit bound."""
    env = {**stack.env(), "JIFEN_TASKS_CREDIT_TIMEOUT_SECONDS": "2"}
    log = (stack.home / "log" / "unclean-tasks-worker.log").open("ab")
    return subprocess.Popen([sys.executable, "-m", "jifen.tasks", "worker"], env=env,
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, and SIGKILL if it is still there after 30 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            kill(proc)


async def ready(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    async def up() -> bool:
        assert proc.poll() is None, f"{what} exited with {proc.returncode}"
        try:
            async with httpx.AsyncClient(timeout=3) as http:
                return (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    await eventually(up, timeout=120, what=f"{what} ready")


async def outbox_empty(stack: DevStack, service: str) -> bool:
    conn = await asyncpg.connect(stack.owner_dsn(service))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM outbox")) == 0
    finally:
        await conn.close()


@pytest.fixture
async def services(cluster_stack: DevStack) -> AsyncIterator[dict[str, Api]]:
    """The tasks and points APIs on the cluster (started here, stopped after)."""
    subprocess.run([sys.executable, "-m", "jifen.tasks", "migrate"], env=cluster_stack.env(),
                   check=True, capture_output=True)  # fmt: skip
    procs = [cluster_stack.start_process(s, "api") for s in ("tasks", "points")]
    for proc in procs:
        cluster_stack.wait_ready(proc, timeout=120)
    clients = {s: Api(cluster_stack, s) for s in ("tasks", "points")}
    yield clients
    for c in clients.values():
        await c.close()
    for proc in procs:
        cluster_stack.stop_process(proc.name)


async def test_an_unclean_leader_election_loses_records_and_every_completion_is_credited_once(
    cluster_stack: DevStack, services: dict[str, Api], ledger: asyncpg.Connection
) -> None:
    t0 = time.monotonic()
    c: KafkaCluster = cluster(cluster_stack)
    tasks, points = services["tasks"], services["points"]
    tag = f"uncl{uuid.uuid4().hex[:4]}"
    owed: dict[str, dict[str, int]] = {}  # account -> completion id -> points

    async def verify(i: int) -> None:
        account = f"{tag}-{i % 6}"
        pts = 3 + i
        owed.setdefault(account, {})[(await earn(tasks, account, pts))["id"]] = pts

    async def credits(account: str) -> list[dict[str, Any]]:
        r = await points.http.get(
            f"/v1/accounts/{account}/entries", headers=points.auth("volunteer", account)
        )
        assert r.status_code == 200, r.text
        return [e for e in r.json()["items"] if e["kind"] == "credit"]

    async def all_credited() -> bool:
        for account, completions in owed.items():
            got = sorted(e["completion_id"] for e in await credits(account))
            if got != sorted(completions):
                assert len(got) <= len(set(got)), f"a completion credited twice: {got}"
                return False
        return True

    async def all_acknowledged() -> bool:
        for completions in owed.values():
            for cid in completions:
                r = await tasks.http.get(f"/v1/completions/{cid}", headers=tasks.auth("officer"))
                if r.status_code != 200 or r.json()["credited_at"] is None:
                    return False
        return True

    def phase(what: str) -> None:
        print(f"  [{time.monotonic() - t0:5.1f}s] {what}", flush=True)

    await ensure_topics(c.bootstrap)
    await eventually(lambda: fully_replicated(cluster_stack, UNCLEAN), timeout=120,
                     what="topics replicated")  # fmt: skip
    original: dict[str, dict[str, str]] = {}
    phase(f"earlier tests' records deleted: {await forget_earlier_tests(c.bootstrap)}")
    tasks_worker = start_tasks_worker(cluster_stack)
    ledger_worker = start_worker(cluster_stack, f"{tag}-ledger-a")
    port = cluster_stack.ports.tasks_worker
    lone, stale = c.node(1), [c.node(2), c.node(3)]
    try:
        await ready(port, tasks_worker, "tasks worker")
        await ready(ledger_worker.port, ledger_worker, "ledger worker")  # type: ignore[attr-defined]
        for i in range(2):  # before the fault: credited and acknowledged on three copies
            await verify(i)
        await eventually(all_credited, timeout=120, what="credits before the fault")
        await eventually(all_acknowledged, timeout=120, what="acknowledged before the fault")
        phase("before the fault: credited and acknowledged")
        # the groups have committed: __consumer_offsets is there
        await eventually(lambda: fully_replicated(cluster_stack, WATCHED), timeout=120,
                         what="offsets replicated")  # fmt: skip
        original.update({t: await topic_configs(c.bootstrap, t) for t in STAGED})
        # AlterConfigs sends a topic's settings whole: the ones it had must have been read
        assert "retention.ms" in original[topics.TASKS_COMPLETIONS], original
        assert original[OFFSETS].get("cleanup.policy") == "compact", original

        await set_topic_configs(c.bootstrap, {t: {**original[t], **STAGED[t]} for t in STAGED})
        for t in STAGED:
            assert STAGED[t].items() <= (await topic_configs(c.bootstrap, t)).items(), t
        for node in stale:
            node.stop()  # a controlled shutdown: out of every ISR, leadership to node 1

        async def alone() -> dict[str, Any] | None:
            states = {t: await _or_none(partition_state(c.bootstrap, t)) for t in UNCLEAN}
            ok = all(s and all(v == (1, [1]) for v in s.values()) for s in states.values())
            return states if ok else None

        await eventually(alone, timeout=120, what="node 1 the only in-sync replica")
        phase("nodes 2 and 3 down: node 1 leads every partition, alone in its ISR")

        # read by the ledger, credited, announced and committed: on node 1 only
        base = await end_offsets(c.bootstrap, topics.TASKS_COMPLETIONS)
        for i in range(2, 6):
            await verify(i)
        await eventually(all_credited, timeout=180, what="credits on node 1 alone")
        await eventually(lambda: outbox_empty(cluster_stack, "points"), timeout=120,
                         what="the ledger's announcements published")  # fmt: skip

        async def committed_to_end() -> dict[int, int] | None:
            ends = await end_offsets(c.bootstrap, topics.TASKS_COMPLETIONS)
            got = await committed(c.bootstrap, LEDGER_GROUP, topics.TASKS_COMPLETIONS)
            return got if all(got.get(p, 0) >= e for p, e in ends.items()) else None

        read_and_committed = await eventually(
            lambda: _or_none(committed_to_end()), timeout=120, what="offsets committed on node 1"
        )
        stop(ledger_worker)
        # never read: verified and published while the ledger is stopped
        for i in range(6, 12):
            await verify(i)
        await eventually(lambda: outbox_empty(cluster_stack, "tasks"), timeout=120,
                         what="the tasks outbox published")  # fmt: skip
        stop(tasks_worker)  # nothing republished while the logs are measured
        before = {t: await end_offsets(c.bootstrap, t) for t in UNCLEAN}
        grown = {p for p, e in before[topics.TASKS_COMPLETIONS].items() if e > base[p]}
        assert grown, "no completion landed on node 1 alone"
        phase(f"on node 1 only: {before}")

        lone.kill()  # SIGKILL: the only in-sync replica dies
        for node in stale:
            # the controller's look for leaderless partitions of topics that allow an unclean
            # election: every second, not every five minutes (a node setting, read at start)
            node.extra[CHECK] = "1000"
            node.start(wait=False)
        for node in stale:
            node.wait_started(timeout=180)
        phase("node 1 killed; nodes 2 and 3 back, out of sync")

        async def elected() -> dict[str, Any] | None:
            states = {t: await _or_none(partition_state(c.bootstrap, t)) for t in UNCLEAN}
            ok = all(s and all(v[0] in (2, 3) for v in s.values()) for s in states.values())
            return states if ok else None

        forced = ""
        try:
            after_state = await eventually(elected, timeout=120, what="an unclean election")
        except AssertionError:  # not elected on its own: ask for it, as an operator would
            states = {t: await _or_none(partition_state(c.bootstrap, t)) for t in UNCLEAN}
            leaderless = [(t, p) for t, s in states.items() for p, v in (s or {}).items()
                          if v[0] not in (2, 3)]  # fmt: skip
            forced = await asyncio.to_thread(
                elect_unclean, c.bootstrap, leaderless, cluster_stack.home
            )
            after_state = await eventually(elected, timeout=120, what="an unclean election")
        phase(f"elected out of sync{' (kafka-leader-election)' if forced else ''}: {after_state}")
        if forced:
            print(forced)

        after = await eventually(lambda: _or_none(logs_ends(c.bootstrap)), timeout=60,
                                 what="the new leaders' log end offsets")  # fmt: skip
        phase(f"log end offsets now: {after}")
        # the fault really happened: the logs went back, below what the ledger committed
        for t in UNCLEAN:
            assert sum(after[t].values()) < sum(before[t].values()), (t, before[t], after[t])
            assert all(after[t][p] <= before[t][p] for p in before[t]), (t, before[t], after[t])
        beyond = {
            p: (read_and_committed[p], after[topics.TASKS_COMPLETIONS][p])
            for p in read_and_committed
            if read_and_committed[p] > after[topics.TASKS_COMPLETIONS][p]
        }
        assert beyond, "no committed offset lies beyond the new log end"
        lost = {t: sum(before[t].values()) - sum(after[t].values()) for t in UNCLEAN}
        phase(f"records lost: {lost}; committed beyond the end (committed, end): {beyond}")

        lone.start(timeout=180)
        await eventually(lambda: fully_replicated(cluster_stack, WATCHED), timeout=240,
                         what="node 1 back in sync")  # fmt: skip
        # node 1 truncated what it alone had: the logs are the new leaders' ones
        ends = await eventually(lambda: _or_none(logs_ends(c.bootstrap)), timeout=60,
                                what="log end offsets")  # fmt: skip
        assert ends == after, (before, after, ends)
        phase("node 1 back in every ISR, its extra records truncated")

        tasks_worker = start_tasks_worker(cluster_stack)
        ledger_worker = start_worker(cluster_stack, f"{tag}-ledger-b")
        await ready(port, tasks_worker, "tasks worker")
        for i in range(12, 14):  # after the fault: later records are read, not skipped
            await verify(i)
        await eventually(all_credited, timeout=240, what="every completion credited")
        await eventually(all_acknowledged, timeout=240, what="every credit acknowledged")
        phase("every completion credited and acknowledged")
    finally:
        kill(ledger_worker)
        stop(tasks_worker)
        for node in c:
            node.extra.pop(CHECK, None)
            if not node.running():
                node.start(wait=False)
        for node in c:
            with contextlib.suppress(Exception):
                node.wait_started(timeout=180)
        with contextlib.suppress(Exception):
            await eventually(lambda: fully_replicated(cluster_stack, WATCHED), timeout=240,
                             what="cluster whole")  # fmt: skip
            if original:
                await set_topic_configs(c.bootstrap, original)

    # exactly once, and every chain intact
    for account, completions in owed.items():
        got = sorted(e["completion_id"] for e in await credits(account))
        assert got == sorted(completions), (account, got)
        r = await points.http.get(
            f"/v1/accounts/{account}/balance", headers=points.auth("volunteer", account)
        )
        assert r.json()["balance"] == sum(completions.values()), account
    rows = await chains(ledger, tag)
    assert len(rows) == sum(len(v) for v in owed.values())
    assert_chains_intact(rows)
    assert await dead_letters(c.bootstrap, tag) == []
    for t in STAGED:
        assert await topic_configs(c.bootstrap, t) == original[t], t
    phase(f"{sum(len(v) for v in owed.values())} completions, each credited once")


async def dead_letters(bootstrap: str, tag: str) -> list[str]:
    """The dead letters of the two topics, read from the beginning, that name these accounts."""
    found: list[str] = []
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await consumer.start()
    try:
        tps = [TopicPartition(topics.dlq(t), p) for t in UNCLEAN
               for p in await partition_state(bootstrap, topics.dlq(t))]  # fmt: skip
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        deadline = time.monotonic() + 120
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            assert time.monotonic() < deadline, "the dead letters not read to their end"
            batch = await consumer.getmany(timeout_ms=2_000)
            for records in batch.values():
                found += [r.value.decode(errors="replace") for r in records
                          if r.value and tag.encode() in r.value]  # fmt: skip
    finally:
        await consumer.stop()
    return found
