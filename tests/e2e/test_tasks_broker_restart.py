"""Credit after a broker restart: the embedded broker forgets every topic and offset when it
restarts. Completions verified before, during and after the outage must each end up credited
exactly once — the outbox keeps what the broker lost, the tasks worker republishes what the
ledger has not acknowledged, and the ledger ignores what it already applied.

This test disrupts the broker, so it runs its own stack (module-scoped), not the session's."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from jifen.kernel.devstack import DevStack
from tests.conftest import _free_ports
from tests.helpers import Api, eventually

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def own_stack() -> Iterator[DevStack]:
    home = Path(tempfile.mkdtemp(prefix="jifen-restart-"))
    os.chmod(home, 0o755)  # noqa: S103 - the 'postgres' user must reach the data dir
    s = DevStack(
        home, _free_ports(), say=False, extra_env={"JIFEN_TASKS_CREDIT_TIMEOUT_SECONDS": "2"}
    )
    try:
        s.start_infra()
        s.start_services()
        yield s
    finally:
        s.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
async def own_apis(own_stack: DevStack) -> AsyncIterator[dict[str, Api]]:
    clients = {s: Api(own_stack, s) for s in ("tasks", "points")}
    yield clients
    for c in clients.values():
        await c.close()


async def _earn(tasks: Api, account: str, points: int) -> str:
    now = datetime.now(UTC)
    officer, app = tasks.auth("officer"), tasks.auth("app")
    r = await tasks.http.post(
        "/v1/jobs",
        headers=officer,
        json={
            "community_id": "penglai-grid",
            "title": "应急响应 Emergency response",
            "category": "emergency_response",
            "points": points,
            "capacity": 1,
            "starts_at": (now - timedelta(hours=1)).isoformat(),
            "ends_at": (now + timedelta(hours=1)).isoformat(),
        },
    )
    assert r.status_code == 201, r.text
    job = r.json()["id"]
    r = await tasks.http.post(f"/v1/jobs/{job}/claims", headers=app, json={"account_id": account})
    assert r.status_code == 201, r.text
    r = await tasks.http.post(
        f"/v1/jobs/{job}/completions",
        headers={**app, "Idempotency-Key": f"k-{uuid.uuid4()}"},
        json={"account_id": account},
    )
    assert r.status_code == 201, r.text
    completion: str = r.json()["id"]
    r = await tasks.http.post(f"/v1/completions/{completion}/verify", headers=officer)
    assert r.status_code == 200 and r.json()["status"] == "verified", r.text
    return completion


async def _entries(points: Api, account: str) -> list[dict[str, Any]]:
    r = await points.http.get(
        f"/v1/accounts/{account}/entries", headers=points.auth("volunteer", account)
    )
    assert r.status_code == 200, r.text
    entries: list[dict[str, Any]] = r.json()["entries"]
    return entries


async def test_every_verified_completion_is_credited_exactly_once_across_a_broker_restart(
    own_stack: DevStack, own_apis: dict[str, Api]
) -> None:
    tasks, points = own_apis["tasks"], own_apis["points"]
    run = uuid.uuid4().hex[:6]
    owed: dict[str, dict[str, int]] = {}  # account -> completion -> points

    async def earn(i: int, phase: str) -> None:
        account = f"vol-{run}-{i}"
        pts = 10 + i
        owed.setdefault(account, {})[await _earn(tasks, account, pts)] = pts

    # before: credited and acknowledged
    for i in range(3):
        await earn(i, "before")

    async def all_credited() -> bool:
        for account, completions in owed.items():
            credits = [e for e in await _entries(points, account) if e["kind"] == "credit"]
            if sorted(e["completion_id"] for e in credits) != sorted(completions):
                return False
        return True

    await eventually(all_credited, timeout=60, what="credits before the restart")

    # verified while the broker is down: they wait in the outbox
    own_stack.broker.stop()
    for i in range(3, 5):
        await earn(i, "during")
    own_stack.broker.start()
    # and after it came back empty
    for i in range(5, 7):
        await earn(i, "after")
    # a second completion for an account credited before the restart
    owed[f"vol-{run}-0"][await _earn(tasks, f"vol-{run}-0", 5)] = 5

    await eventually(all_credited, timeout=180, what="every completion credited after restart")

    # exactly once: one credit per completion, balances equal what was owed
    for account, completions in owed.items():
        entries = await _entries(points, account)
        assert sorted(e["completion_id"] for e in entries) == sorted(completions), account
        assert all(e["kind"] == "credit" for e in entries)
        r = await points.http.get(
            f"/v1/accounts/{account}/balance", headers=points.auth("volunteer", account)
        )
        assert r.json()["balance"] == sum(completions.values()), account

    # and the tasks service heard back about every one of them (end-to-end acknowledgement)
    async def all_acked() -> bool:
        for completions in owed.values():
            for cid in completions:
                r = await tasks.http.get(f"/v1/completions/{cid}", headers=tasks.auth("officer"))
                if r.json()["credited_at"] is None:
                    return False
        return True

    await eventually(all_acked, timeout=180, what="credit acknowledgements after restart")
