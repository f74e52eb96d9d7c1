"""The events the parts send: completion events as tasks publishes them, produced to
tasks.completions the way its relay does (keyed by account)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from jifen.kernel.contracts import Contracts, isoformat
from jifen.kernel.settings import REPO_ROOT

ORG = "jiangmen-riders"
CONTRACTS = Contracts(REPO_ROOT / "schemas")


def completion_event(account: str, points: int, at: datetime | None = None) -> dict[str, Any]:
    now = at or datetime.now(UTC)
    return CONTRACTS.new_event(
        "jifen.tasks.completion.verified.v1",
        source="/jifen/tasks",
        subject=account,
        time=now,
        data={
            "completion_id": str(uuid.uuid4()),
            "job_id": str(uuid.uuid4()),
            "account_id": account,
            "org_id": ORG,
            "community_id": "bench-grid",
            "category": "hazard_patrol",
            "points": points,
            "verified_by": "officer-li",
            "verified_at": isoformat(now),
        },
    )


async def produce(bootstrap: str, events: list[dict[str, Any]]) -> float:
    """Send prepared events to tasks.completions, keyed by account; returns the seconds taken."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, acks="all", max_batch_size=256 * 1024
    )
    await producer.start()
    try:
        t = time.perf_counter()
        for e in events:
            await producer.send("tasks.completions", orjson.dumps(e), key=e["subject"].encode())
        await producer.flush()
        return time.perf_counter() - t
    finally:
        await producer.stop()
