"""Dead letters: an event that fails its contract (or that the ledger cannot apply) lands in
`<topic>.dlq` with the reason, and the events after it are still applied."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from jifen.devtools.devstack import DevStack
from jifen.kernel.contracts import Contracts, isoformat
from jifen.kernel.settings import REPO_ROOT
from tests.helpers import Api, eventually

pytestmark = pytest.mark.e2e


def verified_event(contracts: Contracts, account: str, points: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    return contracts.new_event(
        "jifen.tasks.completion.verified.v1",
        source="/jifen/tasks",
        subject=account,
        time=now,
        data={
            "completion_id": str(uuid.uuid4()),
            "job_id": str(uuid.uuid4()),
            "account_id": account,
            "org_id": "jiangmen-riders",
            "community_id": "penglai-grid",
            "category": "meal_delivery",
            "points": points,
            "verified_by": "officer-li",
            "verified_at": isoformat(now),
        },
    )


async def read_dlq(bootstrap: str, topic: str, match: bytes, expected: int) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(
        f"{topic}.dlq",
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=f"test-{uuid.uuid4()}",
        fetch_max_wait_ms=20,
    )
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:

        async def probe() -> list[dict[str, Any]]:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for r in records:
                    doc = orjson.loads(r.value)
                    if match in doc["original"].encode():
                        found.append(doc)
            return found if len(found) >= expected else []

        return await eventually(probe, timeout=30, what=f"a dead letter in {topic}.dlq")
    finally:
        await consumer.stop()


async def test_malformed_and_impossible_events_are_dead_lettered_and_later_ones_applied(
    services: DevStack, apis: dict[str, Api]
) -> None:
    contracts = Contracts(REPO_ROOT / "schemas")
    account = f"vol-dlq-{uuid.uuid4().hex[:6]}"
    marker = uuid.uuid4().hex
    not_json = f"{{this is not json {marker}".encode()
    bad_points = verified_event(contracts, account, 5)
    bad_points["data"]["points"] = -5  # fails the schema: points are positive integers
    bad_points["data"]["verified_by"] = f"officer-{marker}"
    good = verified_event(contracts, account, 7)
    # schema-valid but impossible: a reversal for a completion the ledger never credited
    revoked = contracts.new_event(
        "jifen.tasks.completion.revoked.v1",
        source="/jifen/tasks",
        subject=account,
        data={
            **{
                k: good["data"][k]
                for k in ("job_id", "account_id", "org_id", "community_id", "category", "points")
            },
            "completion_id": str(uuid.uuid4()),
            "revoked_by": "officer-li",
            "reason": f"never credited {marker}",
            "revoked_at": isoformat(datetime.now(UTC)),
        },
    )
    producer = AIOKafkaProducer(bootstrap_servers=services.broker.bootstrap)
    await producer.start()
    try:
        key = account.encode()
        await producer.send_and_wait("tasks.completions", not_json, key=key)
        await producer.send_and_wait("tasks.completions", orjson.dumps(bad_points), key=key)
        await producer.send_and_wait("tasks.completions", orjson.dumps(revoked), key=key)
        await producer.send_and_wait("tasks.completions", orjson.dumps(good), key=key)
    finally:
        await producer.stop()

    points = apis["points"]

    async def applied() -> bool:
        r = await points.http.get(
            f"/v1/accounts/{account}/balance", headers=points.auth("volunteer", account)
        )
        return bool(r.json()["balance"] == 7)

    await eventually(applied, what="the valid event after the bad ones applied")

    letters = await read_dlq(services.broker.bootstrap, "tasks.completions", marker.encode(), 3)
    reasons = {d["original"]: d["reason"] for d in letters}
    by_kind = {
        "not json": reasons.get(not_json.decode()),
        "bad points": next((r for o, r in reasons.items() if '"points":-5' in o), None),
        "impossible": next((r for o, r in reasons.items() if "never credited" in o), None),
    }
    for kind, reason in by_kind.items():
        assert reason, f"no dead letter for the {kind} event: {letters}"
    assert by_kind["not json"].startswith("not JSON")
    assert "points" in by_kind["bad points"]
    assert "has no credit entry" in by_kind["impossible"]
    for d in letters:
        assert d["topic"] == "tasks.completions" and d["offset"] is not None
