"""Hostile events on the ledger's input topic: an oversized event is dead-lettered with the
reason, a replayed event (the same id again, even with altered content) changes nothing, and
the events after them are applied. (Malformed and impossible events: tests/e2e/points/test_dlq.py.
Events are not signed; see docs/SECURITY.md.)"""

from __future__ import annotations

import uuid

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from tests.e2e.points.test_dlq import read_dlq, verified_event
from tests.helpers import Api, eventually

from jifen.devtools.devstack import DevStack
from jifen.kernel.contracts import MAX_EVENT_BYTES, Contracts
from jifen.kernel.settings import REPO_ROOT

pytestmark = pytest.mark.e2e


async def test_oversized_and_replayed_events_never_stop_the_ledger(
    services: DevStack, apis: dict[str, Api]
) -> None:
    contracts = Contracts(REPO_ROOT / "schemas")
    account = f"vol-evil-{uuid.uuid4().hex[:6]}"
    marker = uuid.uuid4().hex
    oversized = verified_event(contracts, account, 500)
    oversized["data"]["verified_by"] = f"officer-{marker}-" + "x" * (MAX_EVENT_BYTES + 1000)
    first = verified_event(contracts, account, 7)
    tampered_replay = orjson.loads(orjson.dumps(first))
    tampered_replay["data"]["points"] = 700  # same event id, different content
    later = verified_event(contracts, account, 3)

    producer = AIOKafkaProducer(
        bootstrap_servers=services.broker.bootstrap, max_request_size=4 * 1024 * 1024
    )
    await producer.start()
    try:
        key = account.encode()
        await producer.send_and_wait("tasks.completions", orjson.dumps(oversized), key=key)
        await producer.send_and_wait("tasks.completions", orjson.dumps(first), key=key)
        await producer.send_and_wait("tasks.completions", orjson.dumps(first), key=key)
        await producer.send_and_wait("tasks.completions", orjson.dumps(tampered_replay), key=key)
        await producer.send_and_wait("tasks.completions", orjson.dumps(later), key=key)
    finally:
        await producer.stop()

    points = apis["points"]

    async def balance() -> dict[str, int] | None:
        r = await points.http.get(
            f"/v1/accounts/{account}/balance", headers=points.auth("volunteer", account)
        )
        body: dict[str, int] = r.json()
        return body if body["balance"] == 10 else None

    b = await eventually(balance, what="the first and the later event applied, once each")
    assert (b["earned"], b["entries"]) == (10, 2)

    letters = await read_dlq(services.broker.bootstrap, "tasks.completions", marker.encode(), 1)
    assert f"exceeds {MAX_EVENT_BYTES}" in letters[0]["reason"], letters[0]["reason"]
    # and a replay after all that still adds nothing
    producer = AIOKafkaProducer(bootstrap_servers=services.broker.bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait("tasks.completions", orjson.dumps(later), key=account.encode())
        probe = verified_event(contracts, account, 1)
        await producer.send_and_wait("tasks.completions", orjson.dumps(probe), key=account.encode())
    finally:
        await producer.stop()

    async def after_probe() -> dict[str, int] | None:
        r = await points.http.get(
            f"/v1/accounts/{account}/balance", headers=points.auth("volunteer", account)
        )
        body: dict[str, int] = r.json()
        return body if body["entries"] == 3 else None

    b = await eventually(after_probe, what="the probe event after the second replay")
    assert b["balance"] == 11
