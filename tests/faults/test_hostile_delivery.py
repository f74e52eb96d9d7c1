"""Hostile delivery, produced straight to the real broker: events of one completion or one
redemption arriving out of order on different partitions, and the same events delivered
many times over, interleaved, on any partition.

What the ledger's rules say (points/domain/ledger.py): a reversal needs its credit and a
refund its debit, so one that arrives first is refused and dead-lettered with the reason;
the producers send it again later (tasks republishes unreversed revocations, redeem re-asks
for unanswered refunds), and then it applies, once. Duplicates add nothing, whatever their
number and order."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from jifen.devtools.devstack import DevStack
from jifen.kernel.contracts import Contracts, isoformat
from jifen.kernel.settings import REPO_ROOT
from tests.e2e.points.test_dlq import read_dlq
from tests.faults.conftest import account_ledger, assert_consistent, assert_ledger_owes, metric
from tests.helpers import eventually

pytestmark = pytest.mark.e2e
CONTRACTS = Contracts(REPO_ROOT / "schemas")
ORG = "jiangmen-riders"
COMPLETIONS, REDEMPTIONS = "tasks.completions", "redeem.redemptions"


def completion_events(account: str, points: int, marker: str = "x") -> tuple[dict[str, Any], ...]:
    """A verified completion and its revocation."""
    now = datetime.now(UTC)
    ids = {"completion_id": str(uuid.uuid4()), "job_id": str(uuid.uuid4())}
    common = {**ids, "account_id": account, "org_id": ORG, "community_id": "penglai-grid"}
    common |= {"category": "traffic_guidance", "points": points}
    verified = CONTRACTS.new_event(
        "jifen.tasks.completion.verified.v1",
        source="/jifen/tasks",
        subject=account,
        time=now,
        data={**common, "verified_by": "officer-li", "verified_at": isoformat(now)},
    )
    revoked = CONTRACTS.new_event(
        "jifen.tasks.completion.revoked.v1",
        source="/jifen/tasks",
        subject=account,
        time=now,
        data={
            **common,
            "revoked_by": "officer-li",
            "reason": f"duplicate report {marker}",
            "revoked_at": isoformat(now),
        },
    )
    return verified, revoked


def redemption_events(account: str, points: int, marker: str) -> tuple[dict[str, Any], ...]:
    """A placed redemption (the debit) and its cancellation (the refund)."""
    now = datetime.now(UTC)
    common = {"redemption_id": str(uuid.uuid4()), "account_id": account, "org_id": ORG}
    common |= {"reward_id": str(uuid.uuid4()), "points": points}
    placed = CONTRACTS.new_event(
        "jifen.redeem.redemption.placed.v1",
        source="/jifen/redeem",
        subject=account,
        time=now,
        data={**common, "placed_at": isoformat(now)},
    )
    cancelled = CONTRACTS.new_event(
        "jifen.redeem.redemption.cancelled.v1",
        source="/jifen/redeem",
        subject=account,
        time=now,
        data={**common, "reason": f"member cancelled {marker}", "cancelled_at": isoformat(now)},
    )
    return placed, cancelled


async def test_events_out_of_order_across_partitions_end_correct(
    fstack: DevStack, ledger_db: asyncpg.Connection
) -> None:
    run = uuid.uuid4().hex[:6]
    revoker, spender = f"vol-ooo-{run}-r", f"vol-ooo-{run}-s"
    m1, m2 = uuid.uuid4().hex, uuid.uuid4().hex
    verified, revoked = completion_events(revoker, 30, m1)
    funding, _ = completion_events(spender, 50)
    placed, cancelled = redemption_events(spender, 10, m2)
    producer = AIOKafkaProducer(bootstrap_servers=fstack.broker.bootstrap, linger_ms=0)
    await producer.start()

    async def send(topic: str, event: dict[str, Any], partition: int) -> None:
        key = event["subject"].encode()
        await producer.send_and_wait(topic, orjson.dumps(event), key=key, partition=partition)

    async def entries_of(account: str, n: int) -> list[asyncpg.Record] | None:
        got = await account_ledger(ledger_db, account)
        return got if len(got) >= n else None

    try:
        await send(COMPLETIONS, funding, 0)
        await eventually(lambda: entries_of(spender, 1), timeout=90, what="the funding credit")
        # the revocation and the refund first, each on a partition of its own
        await send(COMPLETIONS, revoked, 3)
        await send(REDEMPTIONS, cancelled, 2)
        dead = await read_dlq(fstack.broker.bootstrap, COMPLETIONS, m1.encode(), 1)
        assert "has no credit entry" in dead[0]["reason"], dead
        dead = await read_dlq(fstack.broker.bootstrap, REDEMPTIONS, m2.encode(), 1)
        assert "has no debit entry" in dead[0]["reason"], dead
        assert await account_ledger(ledger_db, revoker) == []
        # then what they depend on, on other partitions
        await send(COMPLETIONS, verified, 1)
        await send(REDEMPTIONS, placed, 0)
        await eventually(lambda: entries_of(revoker, 1), timeout=90, what="the credit")
        await eventually(lambda: entries_of(spender, 2), timeout=90, what="the debit")
        dupes_before = await metric(
            fstack.ports.points_worker, "jifen_points_duplicate_events_total"
        )
        # sent again, as the producers do for what the ledger never answered: now they apply;
        # and once more each, all of it twice: nothing more
        for _ in range(2):
            await send(COMPLETIONS, revoked, 2)
            await send(REDEMPTIONS, cancelled, 3)
            await send(COMPLETIONS, verified, 0)
            await send(REDEMPTIONS, placed, 1)
        await eventually(lambda: entries_of(revoker, 2), timeout=90, what="the reversal")
        await eventually(lambda: entries_of(spender, 3), timeout=90, what="the refund")

        async def six_absorbed() -> bool:
            n = await metric(fstack.ports.points_worker, "jifen_points_duplicate_events_total")
            return n - dupes_before >= 6  # verified and placed twice, revoked and cancelled once

        await eventually(six_absorbed, timeout=90, what="the second copies absorbed")
    finally:
        await producer.stop()

    r = await account_ledger(ledger_db, revoker)
    assert [(e["kind"], e["amount"], e["event_id"]) for e in r] == [
        ("credit", 30, verified["id"]),
        ("reversal", -30, revoked["id"]),
    ]
    assert_consistent(r)
    s = await account_ledger(ledger_db, spender)
    assert [(e["kind"], e["amount"], e["event_id"]) for e in s] == [
        ("credit", 50, funding["id"]),
        ("debit", -10, placed["id"]),
        ("refund", 10, cancelled["id"]),
    ]
    assert_consistent(s)
    assert s[-1]["balance_after"] == 50


async def test_duplicates_at_a_high_rate_interleaved_are_absorbed_exactly_once(
    fstack: DevStack, ledger_db: asyncpg.Connection
) -> None:
    run = uuid.uuid4().hex[:6]
    accounts = [f"vol-dup-{run}-{i:02d}" for i in range(30)]
    rng = random.Random(run)
    owed: dict[str, tuple[int, int]] = {}
    unique: list[dict[str, Any]] = []
    for account in accounts:
        for _ in range(5):
            points = rng.randint(1, 40)
            unique.append(completion_events(account, points)[0])
            n, s = owed.get(account, (0, 0))
            owed[account] = (n + 1, s + points)
    copies = 5
    sends = [e for e in unique for _ in range(copies)]
    rng.shuffle(sends)
    dupes_before = await metric(fstack.ports.points_worker, "jifen_points_duplicate_events_total")
    producer = AIOKafkaProducer(bootstrap_servers=fstack.broker.bootstrap, linger_ms=2)
    await producer.start()
    try:
        # four concurrent senders, each copy on a random partition (not only its key's)
        async def sender(part: list[dict[str, Any]]) -> None:
            for e in part:
                await producer.send(
                    COMPLETIONS,
                    orjson.dumps(e),
                    key=e["subject"].encode(),
                    partition=rng.randrange(4),
                )

        await asyncio.gather(*(sender(sends[i::4]) for i in range(4)))
        await producer.flush()
    finally:
        await producer.stop()

    async def all_duplicates_seen() -> float | None:
        n = await metric(fstack.ports.points_worker, "jifen_points_duplicate_events_total")
        applied = await ledger_db.fetchval(
            "SELECT count(*) FROM ledger_entry WHERE account_id = ANY($1)", accounts
        )
        enough = n - dupes_before >= len(sends) - len(unique) and applied >= len(unique)
        return n if enough else None

    # every copy was read: as many absorbed as were sent beyond the first of each
    await eventually(all_duplicates_seen, timeout=150, what="every copy consumed")
    await assert_ledger_owes(ledger_db, accounts, owed)
