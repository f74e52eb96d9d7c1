"""Topic settings come from one place, deploy/kafka/topics.json: the kernel creates topics with
them (checked on a real Apache Kafka broker), and the Strimzi KafkaTopic resources and the
Compose init script say the same."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from jifen.devtools.stack import KafkaBroker, free_port
from jifen.kernel import topics
from jifen.kernel.kafka import ensure_topics
from jifen.kernel.settings import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"


def strimzi_topics() -> dict[str, dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all((DEPLOY / "k8s" / "kafka.yaml").read_text()) if d]
    return {d["spec"]["topicName"]: d["spec"] for d in docs if d["kind"] == "KafkaTopic"}


def config_map_partitions() -> int:
    docs = [d for d in yaml.safe_load_all((DEPLOY / "k8s" / "config.yaml").read_text()) if d]
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap"]
    return int(cm["data"]["JIFEN_TOPIC_PARTITIONS"])


def test_strimzi_topics_are_the_settings_file() -> None:
    strimzi = strimzi_topics()
    assert set(strimzi) == set(topics.with_dead_letters())
    for name, spec in strimzi.items():
        want = topics.spec(name, partitions=config_map_partitions())
        assert spec["replicas"] == want.replicas, name
        assert spec["partitions"] == want.partitions, name
        assert {k: str(v) for k, v in spec["config"].items()} == want.config, name


def test_compose_script_creates_the_settings_file() -> None:
    script = (DEPLOY / "compose" / "kafka-topics.sh").read_text()
    flags = {}
    for block in re.split(r'\n    "\$KT"', script)[1:]:
        target = re.search(r'--topic "([^"]+)"', block)
        assert target is not None
        configs = dict(re.findall(r"--config ([\w.]+)=(\S+)", block))
        replicas = re.search(r"--replication-factor (\d+)", block)
        assert replicas is not None
        flags[target.group(1)] = (int(replicas.group(1)), configs)
    main = topics.spec(topics.TASKS_JOBS)
    dlq = topics.spec(topics.dlq(topics.TASKS_JOBS))
    replicas, configs = flags["$t"]
    assert replicas == main.replicas
    # the ledger topics' retention is the RETENTION_MS knob; topics.json's value is its default
    assert configs.pop("retention.ms") == '"$RETENTION_MS"'
    assert configs == {k: v for k, v in main.config.items() if k != "retention.ms"}
    compose = (DEPLOY / "compose" / "compose.yaml").read_text()
    assert f"JIFEN_TOPIC_RETENTION_MS:-{main.config['retention.ms']}" in compose
    assert flags["$t.dlq"] == (dlq.replicas, dlq.config)


def test_capped_to_the_brokers_there_are() -> None:
    one = topics.spec(topics.POINTS_LEDGER, partitions=4, brokers=1)
    assert (one.partitions, one.replicas, one.config["min.insync.replicas"]) == (4, 1, "1")
    three = topics.spec(topics.POINTS_LEDGER, brokers=3)
    assert (three.replicas, three.config["min.insync.replicas"]) == (3, "2")
    assert topics.spec("anything.else").config == topics.spec(topics.TASKS_JOBS).config


@pytest.fixture
def one_broker(tmp_path: Path):  # type: ignore[no-untyped-def]
    broker = KafkaBroker(free_port(), tmp_path / "kafka", tmp_path / "broker.log")
    broker.start()
    print(f"\nApache Kafka broker started in {broker.last_start_seconds:.1f}s")
    yield broker
    broker.stop()


async def test_the_kernel_creates_topics_with_these_settings(one_broker: KafkaBroker) -> None:
    names = [topics.TASKS_COMPLETIONS, topics.dlq(topics.TASKS_COMPLETIONS)]
    await ensure_topics(one_broker.bootstrap, names, partitions=3)
    await ensure_topics(one_broker.bootstrap, names, partitions=3)  # again: a no-op
    admin = AIOKafkaAdminClient(bootstrap_servers=one_broker.bootstrap)
    await admin.start()
    try:
        described = {t["topic"]: t for t in await admin.describe_topics(names)}
        resources = [ConfigResource(ConfigResourceType.TOPIC, n) for n in names]
        (response,) = await admin.describe_configs(resources)
    finally:
        await admin.close()
    for name in names:
        assert len(described[name]["partitions"]) == 3
        assert all(len(p["replicas"]) == 1 for p in described[name]["partitions"])
    got = {r[3]: {c[0]: c[1] for c in r[4]} for r in response.resources}
    for name in names:
        want = topics.spec(name, brokers=1).config
        assert {k: got[name][k] for k in want} == want, name
