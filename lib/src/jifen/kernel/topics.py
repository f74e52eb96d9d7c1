"""Topic names: ``<service>.<stream>``, and ``<topic>.dlq`` for its dead letters.

Their settings (partitions, replication, retention, min ISR, cleanup policy) are read from
``deploy/kafka/topics.json``, the one place the embedded stack, the Compose script and the
Strimzi ``KafkaTopic`` resources take them from (tests/kafka/test_topic_settings.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

TASKS_JOBS = "tasks.jobs"
TASKS_COMPLETIONS = "tasks.completions"
REDEEM_REDEMPTIONS = "redeem.redemptions"
POINTS_LEDGER = "points.ledger"
POINTS_ADJUSTMENTS = "points.adjustments"

ALL = (TASKS_JOBS, TASKS_COMPLETIONS, REDEEM_REDEMPTIONS, POINTS_LEDGER, POINTS_ADJUSTMENTS)

SETTINGS_FILE = Path(__file__).resolve().parents[4] / "deploy" / "kafka" / "topics.json"


def dlq(topic: str) -> str:
    return f"{topic}.dlq"


def with_dead_letters() -> list[str]:
    return [*ALL, *(dlq(t) for t in ALL)]


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replicas: int
    config: dict[str, str] = field(default_factory=dict)


@cache
def _settings(path: Path = SETTINGS_FILE) -> dict[str, Any]:
    if not path.exists():
        # an installation without the file (the images carry it, deploy/docker/Dockerfile;
        # a wheel installed elsewhere may not): there the topics exist already (kafka-init,
        # KafkaTopic); should one be missing, it is made replicated as deployed (capped at the
        # brokers present), with the broker's retention
        return {
            "partitions": 12,
            "replicas": 3,
            "config": {"min.insync.replicas": "2"},
            "dead_letter_config": {"min.insync.replicas": "2"},
            "topics": {},
        }
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def spec(name: str, *, partitions: int | None = None, brokers: int | None = None) -> TopicSpec:
    """The settings of topic ``name`` (a known topic, its ``.dlq``, or any other name, which gets
    the defaults). ``partitions`` overrides the file's count (JIFEN_TOPIC_PARTITIONS: 4 on one
    machine, 12 deployed); with ``brokers`` fewer than the replicas, replication and
    ``min.insync.replicas`` are capped to what that many brokers can hold."""
    s = _settings()
    base = name.removesuffix(".dlq")
    own = s["topics"].get(base, {})
    config = dict(s["dead_letter_config"] if name.endswith(".dlq") else s["config"])
    config.update(own.get("dlq_config" if name.endswith(".dlq") else "config", {}))
    replicas = int(own.get("replicas", s["replicas"]))
    if brokers is not None and brokers < replicas:
        replicas = max(1, brokers)
    if "min.insync.replicas" in config:
        # one fewer than the replicas at most, so a single broker down never stops writes
        wanted = int(config["min.insync.replicas"])
        config["min.insync.replicas"] = str(max(1, min(wanted, replicas - 1 or 1)))
    count = partitions if partitions is not None else int(own.get("partitions", s["partitions"]))
    return TopicSpec(name, count, replicas, {k: str(v) for k, v in config.items()})
