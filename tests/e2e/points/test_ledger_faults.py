"""The ledger worker under faults, as real processes on their own broker and PostgreSQL:
SIGKILL in the middle of its work, and a group of workers losing a member. Each ends with
every event applied exactly once (count and sum per account) and every chain intact."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from jifen.devtools.devstack import DevStack
from jifen.devtools.stack import free_port
from jifen.kernel.contracts import Contracts, isoformat
from jifen.kernel.kafka import ensure_topics
from jifen.kernel.settings import REPO_ROOT
from tests.helpers import eventually, isolated_stack
from tests.integration.points.test_ledger_exactly_once import assert_chains_intact

pytestmark = pytest.mark.e2e
CONTRACTS = Contracts(REPO_ROOT / "schemas")


@pytest.fixture(scope="module")
def own_stack() -> Iterator[DevStack]:
    """A broker and PostgreSQL of this module's own: these tests kill and restart workers."""
    env = {"JIFEN_KAFKA_SESSION_TIMEOUT_MS": "6000", "JIFEN_POINTS_BATCH_MAX": "100"}  # fmt: skip
    with isolated_stack("jifen-faults-", env) as stack:
        subprocess.run([sys.executable, "-m", "jifen.points", "migrate"], env=stack.env(),
                       check=True, capture_output=True)  # fmt: skip
        yield stack


@pytest.fixture
async def ledger(own_stack: DevStack) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(own_stack.owner_dsn("points"))
    yield conn
    await conn.close()


def start_worker(stack: DevStack, name: str) -> subprocess.Popen[bytes]:
    env = {**stack.env(), "JIFEN_POINTS_WORKER_PORT": str(free_port())}
    log = (stack.home / "log" / f"{name}.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "jifen.points", "worker"], env=env,
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    proc.port = int(env["JIFEN_POINTS_WORKER_PORT"])  # type: ignore[attr-defined]
    return proc


async def produce(stack: DevStack, n: int, accounts: int, tag: str) -> dict[str, tuple[int, int]]:
    """Send ``n`` verified completions over ``accounts`` accounts; return (count, sum) each."""
    await ensure_topics(stack.broker.bootstrap)
    producer = AIOKafkaProducer(bootstrap_servers=stack.broker.bootstrap, linger_ms=5)
    await producer.start()
    sent: dict[str, tuple[int, int]] = {}
    try:
        for i in range(n):
            account = f"{tag}-{i % accounts:03d}"
            points = 1 + i % 37
            now = datetime.now(UTC)
            event = CONTRACTS.new_event(
                "jifen.tasks.completion.verified.v1", source="/jifen/tasks", subject=account,
                time=now,
                data={"completion_id": str(uuid.uuid4()), "job_id": str(uuid.uuid4()),
                      "account_id": account, "org_id": "jiangmen-riders", "community_id": "grid",
                      "category": "hazard_patrol", "points": points, "verified_by": "officer-li",
                      "verified_at": isoformat(now)},
            )  # fmt: skip
            await producer.send("tasks.completions", orjson.dumps(event), key=account.encode())
            c, s = sent.get(account, (0, 0))
            sent[account] = (c + 1, s + points)
        await producer.flush()
    finally:
        await producer.stop()
    return sent


async def ledger_of(conn: asyncpg.Connection, tag: str) -> dict[str, tuple[int, int]]:
    rows = await conn.fetch(
        "SELECT account_id, count(*)::int AS n, sum(amount)::int AS s FROM ledger_entry"
        " WHERE account_id LIKE $1 GROUP BY account_id", f"{tag}-%")  # fmt: skip
    return {r["account_id"]: (r["n"], r["s"]) for r in rows}


async def count_of(conn: asyncpg.Connection, tag: str) -> int:
    return int(await conn.fetchval(
        "SELECT count(*) FROM ledger_entry WHERE account_id LIKE $1", f"{tag}-%"))  # fmt: skip


async def chains(conn: asyncpg.Connection, tag: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT account_id, account_seq, kind, amount, balance_after, org_id, category,"
        " cause_event_id::text, job_id::text, completion_id::text, redemption_id::text,"
        " occurred_at, prev_hash, entry_hash FROM ledger_entry WHERE account_id LIKE $1"
        " ORDER BY account_id, account_seq", f"{tag}-%")  # fmt: skip


def kill(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        proc.wait(15)


async def test_sigkill_mid_run_then_restart_applies_each_event_once(
    own_stack: DevStack, ledger: asyncpg.Connection
) -> None:
    tag = f"kill{uuid.uuid4().hex[:4]}"
    total = 12_000
    sent = await produce(own_stack, total, accounts=40, tag=tag)
    worker = start_worker(own_stack, f"{tag}-a")
    try:
        progressed = await eventually(
            lambda: _at_least(ledger, tag, 1_500), timeout=60, what="the worker under way"
        )
        kill(worker)  # SIGKILL: no clean shutdown, offsets of the batch in flight not committed
        at_kill = await count_of(ledger, tag)
        assert progressed >= 1_500 and at_kill < total, "the kill did not land mid-run"
    finally:
        kill(worker)
    again = start_worker(own_stack, f"{tag}-b")
    try:

        async def done() -> dict[str, tuple[int, int]] | None:
            got = await ledger_of(ledger, tag)
            return got if sum(n for n, _ in got.values()) >= total else None

        await eventually(done, timeout=90, what="all events applied after the restart")
        assert await ledger_of(ledger, tag) == sent
        assert_chains_intact(await chains(ledger, tag))
    finally:
        kill(again, signal.SIGTERM)


async def _at_least(conn: asyncpg.Connection, tag: str, n: int) -> int | None:
    c = await count_of(conn, tag)
    return c if c >= n else None


# deadlines of 245 s beside worker kills and restarts: above pytest's 300 s backstop on a
# loaded machine, so the deadlines decide (#23)
@pytest.mark.timeout(600)
async def test_a_group_losing_a_worker_mid_run_stays_exact(
    own_stack: DevStack, ledger: asyncpg.Connection
) -> None:
    tag = f"grp{uuid.uuid4().hex[:4]}"
    a, b = start_worker(own_stack, f"{tag}-a"), start_worker(own_stack, f"{tag}-b")
    c: subprocess.Popen[bytes] | None = None
    try:
        async with httpx.AsyncClient(timeout=5) as http:

            async def both_assigned() -> bool:
                for p in (a, b):
                    try:
                        r = await http.get(f"http://127.0.0.1:{p.port}/readyz")  # type: ignore[attr-defined]
                    except httpx.HTTPError:
                        return False
                    if r.status_code != 200:
                        return False
                return True

            # the partitions are shared: both members hold some at the same time
            await eventually(both_assigned, timeout=60, what="both workers holding partitions")
        total = 10_000
        sent = await produce(own_stack, total, accounts=30, tag=tag)
        await eventually(lambda: _at_least(ledger, tag, 1_000), timeout=60, what="progress")
        kill(a)  # its partitions move to b at session timeout; a new member joins too
        c = start_worker(own_stack, f"{tag}-c")

        async def done() -> dict[str, tuple[int, int]] | None:
            got = await ledger_of(ledger, tag)
            return got if sum(n for n, _ in got.values()) >= total else None

        await eventually(done, timeout=120, what="all events applied by the remaining workers")
        assert await ledger_of(ledger, tag) == sent
        assert_chains_intact(await chains(ledger, tag))
    finally:
        for p in (a, b, c):
            if p is not None:
                kill(p, signal.SIGTERM)
