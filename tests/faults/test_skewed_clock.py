"""Clock skew between services, within the configured bound (JIFEN_MAX_CLOCK_SKEW_SECONDS,
300 s by default).

A tasks API whose clock runs 90 s ahead (a real process under libfaketime) has its
completions credited, stamped with the time it sent; a token from an issuer 2 minutes ahead
is accepted. An event stamped an hour ahead is dead-lettered with a reason naming the skew
and the bound, nothing is credited for it, and the events after it are still applied."""

from __future__ import annotations

import asyncio
import glob
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from jifen.devtools.devstack import DevStack, Proc
from jifen.devtools.stack import free_port
from jifen.kernel.auth import issue_token
from jifen.kernel.contracts import Contracts
from jifen.kernel.settings import REPO_ROOT
from tests.e2e.points.test_dlq import read_dlq, verified_event
from tests.e2e.test_typical_journey import earn
from tests.faults.conftest import account_ledger, assert_consistent
from tests.helpers import Api, eventually

pytestmark = pytest.mark.e2e
AHEAD = 90  # seconds; well inside the default bound of 300


def _libfaketime() -> str:
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    if not found:
        pytest.fail("libfaketime is missing: `make system` installs the Debian package faketime")
    return found[0]


@pytest.fixture
async def skewed_tasks(fstack: DevStack) -> AsyncIterator[Api]:
    """A second tasks API on the same database whose clock reads AHEAD seconds in the future."""
    port = free_port()
    env = {
        **fstack.env(),
        "JIFEN_TASKS_PORT": str(port),
        "LD_PRELOAD": _libfaketime(),
        "FAKETIME": f"+{AHEAD}s",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",  # asyncio's timers stay on the real clock
    }
    log = (fstack.home / "log" / "tasks-api-skewed.log").open("ab")
    popen = subprocess.Popen(
        [sys.executable, "-m", "jifen.tasks", "api"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO_ROOT,
        start_new_session=True,
    )
    api = Api(fstack, "tasks")
    try:
        await eventually_ready(fstack, Proc("tasks-api-skewed", port, popen))
        await api.http.aclose()
        api.base = f"http://127.0.0.1:{port}"
        api.http = httpx.AsyncClient(base_url=api.base, timeout=20)
        yield api
    finally:
        await api.close()
        popen.terminate()
        try:
            popen.wait(15)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait(5)
        log.close()


async def eventually_ready(stack: DevStack, proc: Proc) -> None:
    await asyncio.to_thread(stack.wait_ready, proc, 120)


async def test_a_service_ahead_within_the_bound_is_credited_as_sent(
    fstack: DevStack, skewed_tasks: Api, fapis: dict[str, Api], ledger_db: asyncpg.Connection
) -> None:
    account = f"vol-skew-{uuid.uuid4().hex[:6]}"
    before = datetime.now(UTC)
    completion = await earn(skewed_tasks, account, 17)
    # the skewed process really does run ahead: it stamped the verification in our future
    verified_at = datetime.fromisoformat(completion["verified_at"])
    assert verified_at > before + timedelta(seconds=AHEAD - 30), completion

    async def credited() -> list[asyncpg.Record]:
        return await account_ledger(ledger_db, account)

    entries = await eventually(credited, timeout=90, what="the skewed completion credited")
    assert [(e["kind"], e["amount"], e["completion_id"]) for e in entries] == [
        ("credit", 17, completion["id"])
    ]
    assert_consistent(entries)
    occurred = await ledger_db.fetchval(
        "SELECT occurred_at FROM ledger_entry WHERE account_id = $1", account
    )
    # kept as sent: the entry carries the skewed clock's time, not the ledger's
    assert occurred > before + timedelta(seconds=AHEAD - 30), occurred
    r = await fapis["points"].http.get(
        f"/v1/accounts/{account}/balance", headers=fapis["points"].auth("volunteer", account)
    )
    assert r.json()["balance"] == 17, r.text

    # a token from an issuer whose clock is ahead: accepted within the bound, refused beyond
    points = fapis["points"]
    for ahead, status in ((120, 200), (900, 401)):
        iat = int(time.time()) + ahead
        token = issue_token(
            fstack.keys_dir,
            subject=account,
            role="volunteer",
            org="jiangmen-riders",
            extra_claims={"iat": iat, "exp": iat + 3600},
        )
        r = await points.http.get(
            f"/v1/accounts/{account}/balance", headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status_code == status, (ahead, r.text)
        if status == 401:
            assert "clock skew" in r.text and "300" in r.text, r.text


async def test_an_event_beyond_the_bound_is_dead_lettered_and_credits_nothing(
    fstack: DevStack, ledger_db: asyncpg.Connection
) -> None:
    contracts = Contracts(REPO_ROOT / "schemas")
    account = f"vol-skew-{uuid.uuid4().hex[:6]}"
    marker = uuid.uuid4().hex
    future = verified_event(contracts, account, 40)
    future["time"] = (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    future["data"]["verified_by"] = f"officer-{marker}"
    after = verified_event(contracts, account, 3)  # same account, same partition, next
    producer = AIOKafkaProducer(bootstrap_servers=fstack.broker.bootstrap)
    await producer.start()
    try:
        for event in (future, after):
            await producer.send_and_wait(
                "tasks.completions", orjson.dumps(event), key=account.encode()
            )
    finally:
        await producer.stop()

    async def applied() -> list[asyncpg.Record]:
        return await account_ledger(ledger_db, account)

    entries = await eventually(applied, timeout=90, what="the event after it applied")
    dead = await read_dlq(fstack.broker.bootstrap, "tasks.completions", marker.encode(), 1)
    assert len(dead) == 1
    reason = dead[0]["reason"]
    assert "clock skew" in reason and "ahead" in reason and "allowed 300 s" in reason, reason
    assert orjson.loads(dead[0]["original"])["id"] == future["id"]
    assert [(e["kind"], e["amount"], e["event_id"]) for e in entries] == [
        ("credit", 3, after["id"])
    ]
    assert not await ledger_db.fetchval(
        "SELECT count(*) FROM ledger_entry WHERE cause_event_id = $1", uuid.UUID(future["id"])
    )
