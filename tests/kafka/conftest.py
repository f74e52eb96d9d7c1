"""A three-node Apache Kafka KRaft cluster on loopback (RF 3, min ISR 2, as deployed) with
PostgreSQL and the points ledger's database, for the tests that kill brokers."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from jifen.devtools.devstack import DevStack
from jifen.devtools.stack import KafkaBroker, KafkaCluster
from tests.helpers import eventually, isolated_stack

PRICE = 5  # points a redemption costs: small beside what a few completions credit


@pytest.fixture(scope="package")
def cluster_stack() -> Iterator[DevStack]:
    env = {"JIFEN_KAFKA_SESSION_TIMEOUT_MS": "6000", "JIFEN_POINTS_BATCH_MAX": "200"}
    with isolated_stack("jifen-kcluster-", env, kafka_cluster=True) as stack:
        subprocess.run(
            [sys.executable, "-m", "jifen.points", "migrate"],
            env=stack.env(),
            check=True,
            capture_output=True,
        )
        print(f"\nthree-node Kafka cluster started in {cluster(stack).last_start_seconds:.1f}s")
        # the ledger's events (redeem confirms and tasks marks credited from them) come from
        # the points relay, whichever ledger workers a test starts
        stack.wait_ready(stack.start_process("points", "relay"), timeout=180)
        yield stack


@pytest.fixture(scope="package")
def redeem_service(cluster_stack: DevStack) -> Iterator[dict[str, Any]]:
    """The redeem API and worker on the cluster, and one reward to spend on (its id, points)."""
    subprocess.run(
        [sys.executable, "-m", "jifen.redeem", "migrate"],
        env=cluster_stack.env(),
        check=True,
        capture_output=True,
    )
    procs = [cluster_stack.start_process("redeem", kind) for kind in ("api", "worker")]
    for proc in procs:
        cluster_stack.wait_ready(proc)
    r = httpx.post(
        f"{cluster_stack.url('redeem')}/v1/rewards",
        headers={"Authorization": f"Bearer {cluster_stack.token('admin')}"},
        json={"merchant_id": "merchant-battery", "name_zh": "电池更换券",
              "name_en": "Battery swap voucher (cluster faults)", "points": PRICE,
              "stock": 1_000_000},
        timeout=20,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    yield r.json()
    for proc in procs:
        cluster_stack.stop_process(proc.name)


def cluster(stack: DevStack) -> KafkaCluster:
    assert isinstance(stack.broker, KafkaCluster)
    return stack.broker


@pytest.fixture
async def ledger(cluster_stack: DevStack) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(cluster_stack.owner_dsn("points"))
    yield conn
    await conn.close()


async def partition_state(bootstrap: str, topic: str) -> dict[int, tuple[int, list[int]]]:
    """partition -> (leader node, in-sync replicas), as the cluster reports them now."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5_000)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return {p["partition"]: (p["leader"], sorted(p["isr"])) for p in described["partitions"]}


async def fully_replicated(stack: DevStack, topics: list[str]) -> bool:
    """Every partition of ``topics`` led by a live node, with all three replicas in sync."""
    for topic in topics:
        try:
            state = await partition_state(cluster(stack).bootstrap, topic)
        except Exception:  # a node is still starting: not yet
            return False
        if not state or any(len(isr) < 3 or leader < 0 for leader, isr in state.values()):
            return False
    return True


async def restart(stack: DevStack, node: KafkaBroker, topics: list[str]) -> None:
    """Start ``node`` again on its kept log and wait until it has caught up (back in every ISR)."""
    node.start()
    await eventually(
        lambda: fully_replicated(stack, topics), timeout=120, what=f"node {node.node_id} in sync"
    )
