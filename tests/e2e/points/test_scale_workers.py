"""Scale-out on the embedded broker: three points workers in one consumer group on topics of six
partitions share the work; one is killed (SIGKILL) mid-run and another joins; the ledger ends
exact (count and sum per account) with every chain intact."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest

from jifen.devtools.devstack import DevStack
from jifen.kernel.kafka import ensure_topics
from tests.e2e.points.test_ledger_faults import chains, kill, ledger_of, produce, start_worker
from tests.helpers import eventually, isolated_stack
from tests.integration.points.test_ledger_exactly_once import assert_chains_intact

pytestmark = pytest.mark.e2e
PARTITIONS = 6


@pytest.fixture(scope="module")
def scale_stack() -> Iterator[DevStack]:
    """A broker and PostgreSQL of this module's own: topics of six partitions, workers killed."""
    env = {"JIFEN_TOPIC_PARTITIONS": str(PARTITIONS), "JIFEN_KAFKA_SESSION_TIMEOUT_MS": "6000",
           "JIFEN_POINTS_BATCH_MAX": "100"}  # fmt: skip
    with isolated_stack("jifen-scale-", env) as stack:
        subprocess.run([sys.executable, "-m", "jifen.points", "migrate"], env=stack.env(),
                       check=True, capture_output=True)  # fmt: skip
        yield stack


@pytest.fixture
async def ledger(scale_stack: DevStack) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(scale_stack.owner_dsn("points"))
    yield conn
    await conn.close()


async def probe(worker: subprocess.Popen[bytes]) -> tuple[bool, int, set[int]]:
    """(ready, entries appended, completion partitions held) from the worker's own endpoints."""
    base = f"http://127.0.0.1:{worker.port}"  # type: ignore[attr-defined]
    async with httpx.AsyncClient(base_url=base, timeout=3) as http:
        try:
            ready = (await http.get("/readyz")).status_code == 200
            text = (await http.get("/metrics")).text
        except httpx.HTTPError:
            return False, 0, set()
    appended = sum(
        float(v)
        for v in re.findall(
            r"^jifen_points_ledger_entries_appended_total\{[^}]*\} (\S+)", text, re.M
        )
    )
    held = {
        int(p)
        for p in re.findall(
            r'^jifen_kafka_consumer_lag_events\{[^}]*partition="(\d+)"[^}]*topic="tasks\.completions"',
            text,
            re.M,
        )
    }
    return ready, int(appended), held


# deadlines of 270 s beside three worker starts and its stack's: more than pytest's 300 s on
# a loaded machine, so the deadlines, not the backstop, decide (#23)
@pytest.mark.timeout(600)
async def test_three_workers_share_six_partitions_survive_a_kill_and_a_join(
    scale_stack: DevStack, ledger: asyncpg.Connection
) -> None:
    await ensure_topics(scale_stack.broker.bootstrap, partitions=PARTITIONS)
    workers = {n: start_worker(scale_stack, f"scale-{n}") for n in ("w1", "w2", "w3")}
    try:

        async def all_ready() -> bool:
            return all([(await probe(w))[0] for w in workers.values()])

        await eventually(all_ready, timeout=60, what="three workers with partitions assigned")
        sent = await produce(scale_stack, 4_000, accounts=60, tag="scaleA")

        async def each_did_work() -> dict[str, tuple[bool, int, set[int]]] | None:
            seen = {n: await probe(w) for n, w in workers.items()}
            # a worker's partitions show in its lag gauge after its first offset commit, a
            # moment after its first append: wait until every worker shows them (a fresh-clone
            # run read three empty sets between the two)
            together = set().union(*(h for _, _, h in seen.values()))
            working = all(a > 0 and h for _, a, h in seen.values())
            return seen if working and together == set(range(PARTITIONS)) else None

        seen = await eventually(each_did_work, timeout=60, what="every worker appending")
        held = {n: h for n, (_, _, h) in seen.items()}
        # the partitions were shared: no worker holds all six, together they hold them all
        assert all(0 < len(h) < PARTITIONS for h in held.values()), held
        assert set().union(*held.values()) == set(range(PARTITIONS)), held

        # one worker dies without a word, mid-run; a new one joins; more events come
        kill(workers.pop("w2"))
        workers["w4"] = start_worker(scale_stack, "scale-w4")

        async def newcomer_ready() -> bool:
            return (await probe(workers["w4"]))[0]

        await eventually(newcomer_ready, timeout=60, what="the new worker given partitions")
        more = await produce(scale_stack, 4_000, accounts=60, tag="scaleB")
        total = sum(n for n, _ in (sent | more).values())

        async def done() -> bool:
            a = await ledger_of(ledger, "scaleA")
            b = await ledger_of(ledger, "scaleB")
            return sum(n for n, _ in (a | b).values()) >= total

        await eventually(done, timeout=90, what="every event applied after the kill and join")
        assert await ledger_of(ledger, "scaleA") == sent
        assert await ledger_of(ledger, "scaleB") == more
        assert_chains_intact(await chains(ledger, "scaleA"))
        assert_chains_intact(await chains(ledger, "scaleB"))
        # the newcomer took a share of the group's partitions and appended from them
        _, appended, held_now = await probe(workers["w4"])
        assert appended > 0 and 0 < len(held_now) < PARTITIONS, (appended, held_now)
    finally:
        for w in workers.values():
            kill(w)
