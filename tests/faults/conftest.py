"""One stack for all the fault tests: PostgreSQL, the broker and the seven service processes
of their own (never the session's: these tests kill, freeze and restart them). Each test
leaves it whole again: the `whole_again` fixture restarts what a test killed, thaws what it
froze and starts PostgreSQL if it was stopped, so the tests do not depend on their order."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from jifen.devtools.devstack import DevStack
from tests.helpers import Api, isolated_stack

PROCESSES = [(s, k) for s in ("tasks", "points", "redeem") for k in ("api", "worker")]
PROCESSES.append(("points", "signals"))


@pytest.fixture(scope="package")
def fault_stack() -> Iterator[DevStack]:
    env = {
        # the tasks worker republishes what the ledger has not credited after this long;
        # long enough that a test sees its own fault's redelivery, not this one
        "JIFEN_TASKS_CREDIT_TIMEOUT_SECONDS": "60",
        # redeem asks the ledger again for unanswered redemptions after this long
        "JIFEN_REDEEM_RESEND_AFTER_SECONDS": "5",
        # a frozen or killed member's partitions move on quickly
        "JIFEN_KAFKA_SESSION_TIMEOUT_MS": "6000",
        # small batches: a backlog takes many batches, so its lag is seen shrinking
        "JIFEN_POINTS_BATCH_MAX": "20",
    }
    with isolated_stack("jifen-faultpkg-", env) as s:
        try:
            s.start_services()
            yield s
        finally:
            for proc in s.procs.values():  # a frozen process would not hear SIGTERM
                with contextlib.suppress(ProcessLookupError):
                    proc.popen.send_signal(signal.SIGCONT)


async def start(stack: DevStack, service: str, kind: str) -> None:
    """Start one service process and wait for its /readyz (in a thread: the wait blocks)."""
    proc = stack.start_process(service, kind)
    await asyncio.to_thread(stack.wait_ready, proc, 120)


def kill(stack: DevStack, service: str, kind: str, sig: int = signal.SIGKILL) -> None:
    stack.stop_process(f"{service}-{kind}", sig)


@pytest.fixture
async def fstack(fault_stack: DevStack) -> AsyncIterator[DevStack]:
    """The package's stack, made whole again after the test whatever the test did to it."""
    yield fault_stack
    s = fault_stack
    if not s.pg.running():
        await asyncio.to_thread(s.pg.start)
    for proc in s.procs.values():
        with contextlib.suppress(ProcessLookupError):
            proc.popen.send_signal(signal.SIGCONT)
    for service, kind in PROCESSES:
        name = f"{service}-{kind}"
        proc = s.procs.get(name)
        if proc is not None and proc.popen.poll() is None:
            continue
        s.procs.pop(name, None)
        await start(s, service, kind)
    for service, kind in PROCESSES:
        await asyncio.to_thread(s.wait_ready, s.procs[f"{service}-{kind}"], 120)


@pytest.fixture
async def fapis(fstack: DevStack) -> AsyncIterator[dict[str, Api]]:
    clients = {s: Api(fstack, s) for s in ("tasks", "points", "redeem")}
    yield clients
    for c in clients.values():
        await c.close()


@pytest.fixture
async def ledger_db(fstack: DevStack) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(fstack.owner_dsn("points"))
    yield conn
    with contextlib.suppress(Exception):
        await conn.close()


async def metric(port: int, name: str) -> float:
    """The sum of a metric's samples on one process's /metrics."""
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.get(f"http://127.0.0.1:{port}/metrics")
    r.raise_for_status()
    total = 0.0
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            if sample.name == name:
                total += sample.value
    return total


async def account_ledger(conn: asyncpg.Connection, account: str) -> list[asyncpg.Record]:
    """One account's entries in chain order."""
    return await conn.fetch(
        "SELECT kind, amount, balance_after, account_seq, cause_event_id::text AS event_id,"
        " completion_id::text AS completion_id, redemption_id::text AS redemption_id"
        " FROM ledger_entry WHERE account_id = $1 ORDER BY account_seq",
        account,
    )


def assert_consistent(entries: list[asyncpg.Record]) -> None:
    """The running balance of each entry is the sum of the entries up to it, never below
    zero, one entry per causing event, and the sequence has no gap."""
    running = 0
    for i, e in enumerate(entries, 1):
        running += e["amount"]
        assert e["account_seq"] == i, entries
        assert e["balance_after"] == running, entries
        assert running >= 0, f"balance below zero: {entries}"
    assert len({e["event_id"] for e in entries}) == len(entries), entries


async def assert_ledger_owes(
    ledger_db: asyncpg.Connection, accounts: list[str], owed: dict[str, tuple[int, int]]
) -> None:
    """Exactly what is owed (entries, points) per account, and every chain consistent."""
    rows = await ledger_db.fetch(
        "SELECT account_id, count(*)::int AS n, sum(amount)::int AS s FROM ledger_entry"
        " WHERE account_id = ANY($1) GROUP BY account_id",
        accounts,
    )
    assert {r["account_id"]: (r["n"], r["s"]) for r in rows} == owed
    for account in accounts:
        assert_consistent(await account_ledger(ledger_db, account))
