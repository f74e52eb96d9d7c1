"""SIGKILL of the tasks outbox relay after it published a completion and before it deleted it
from the outbox: the event goes out again after the restart, and the ledger credits it once.

The fault is placed from outside the product: a BEFORE DELETE trigger on the tasks outbox
that waits while a row sits in a `fault_hold` table. The relay publishes, then blocks in its
DELETE; the ledger credits; the worker is killed; its transaction never commits."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from jifen.devtools.devstack import DevStack
from tests.e2e.test_typical_journey import complete
from tests.faults.conftest import account_ledger, assert_consistent, kill, metric, start
from tests.helpers import Api, eventually

pytestmark = pytest.mark.e2e

HOLD = """
CREATE TABLE IF NOT EXISTS fault_hold (id int);
CREATE OR REPLACE FUNCTION fault_hold_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WHILE EXISTS (SELECT 1 FROM fault_hold) LOOP
        PERFORM pg_sleep(0.05);
    END LOOP;
    RETURN NULL;
END $$;
CREATE TRIGGER fault_hold_delete BEFORE DELETE ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION fault_hold_delete();
INSERT INTO fault_hold VALUES (1);
"""
RELEASE = """
DROP TRIGGER IF EXISTS fault_hold_delete ON outbox;
DROP FUNCTION IF EXISTS fault_hold_delete();
DROP TABLE IF EXISTS fault_hold;
"""


async def test_relay_killed_between_publishing_and_deleting_publishes_again_credited_once(
    fstack: DevStack, fapis: dict[str, Api], ledger_db: asyncpg.Connection
) -> None:
    tasks = fapis["tasks"]
    account = f"vol-relay-{uuid.uuid4().hex[:6]}"
    completion = (await complete(tasks, account, 23))["id"]
    outbox = await asyncpg.connect(fstack.owner_dsn("tasks"))
    try:

        async def outbox_empty() -> bool:
            return await outbox.fetchval("SELECT count(*) FROM outbox") == 0

        await eventually(outbox_empty, timeout=60, what="the job's events published")
        await outbox.execute(HOLD)
        try:
            r = await tasks.http.post(
                f"/v1/completions/{completion}/verify", headers=tasks.auth("officer")
            )
            assert r.status_code == 200 and r.json()["status"] == "verified", r.text
            held = await outbox.fetchval(
                "SELECT event_id::text FROM outbox"
                " WHERE event_type = 'jifen.tasks.completion.verified.v1'"
            )
            assert held is not None

            async def credited() -> bool:
                return len(await account_ledger(ledger_db, account)) == 1

            # the relay published (the ledger has it) but its DELETE waits on the trigger
            await eventually(credited, timeout=90, what="the ledger crediting the completion")
            blocked = await outbox.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND query LIKE 'DELETE FROM outbox%' AND state = 'active'"
            )
            assert blocked is not None, "the relay is not inside its DELETE"
            assert await outbox.fetchval(
                "SELECT count(*) FROM outbox WHERE event_id::text = $1", held
            )
            dupes_before = await metric(
                fstack.ports.points_worker, "jifen_points_duplicate_events_total"
            )

            kill(fstack, "tasks", "worker")  # SIGKILL: published, not marked
            # its stuck backend goes with it (PostgreSQL would notice only after the sleep)
            assert await outbox.fetchval("SELECT pg_terminate_backend($1, 10000)", blocked)
        finally:
            await outbox.execute(RELEASE)
        # still there: the kill left the row unpublished as far as the outbox knows
        assert await outbox.fetchval("SELECT count(*) FROM outbox WHERE event_id::text = $1", held)

        await start(fstack, "tasks", "worker")
        await eventually(outbox_empty, timeout=90, what="the outbox drained after the restart")

        async def absorbed() -> float | None:
            n = await metric(fstack.ports.points_worker, "jifen_points_duplicate_events_total")
            return n if n > dupes_before else None

        await eventually(absorbed, timeout=90, what="the ledger absorbing the second delivery")
    finally:
        await outbox.close()

    entries = await account_ledger(ledger_db, account)
    assert [(e["kind"], e["amount"], e["completion_id"]) for e in entries] == [
        ("credit", 23, completion)
    ]
    assert entries[0]["event_id"] == held
    assert_consistent(entries)
    points = fapis["points"]
    r = await points.http.get(
        f"/v1/accounts/{account}/balance", headers=points.auth("volunteer", account)
    )
    assert r.status_code == 200 and r.json()["balance"] == 23, r.text

    async def acknowledged() -> bool:
        r = await tasks.http.get(f"/v1/completions/{completion}", headers=tasks.auth("officer"))
        return r.json()["credited_at"] is not None

    await eventually(acknowledged, timeout=120, what="the credit acknowledged to tasks")
