"""Test helpers: polling with a deadline (never a sleep as synchronisation), API clients."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx

from jifen.devtools.devstack import DevStack, Ports
from jifen.devtools.stack import KafkaCluster, free_port

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, timeout: float = 30, what: str = "condition"
) -> T:
    """Poll ``probe`` until it returns something truthy, or fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while loop.time() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout}s (last: {last!r})")


def free_ports() -> Ports:
    return Ports(**{name: free_port() for name in Ports.__dataclass_fields__})


@contextmanager
def isolated_stack(
    prefix: str, extra_env: dict[str, str] | None = None, *, kafka_cluster: bool = False
) -> Iterator[DevStack]:
    """PostgreSQL and the broker of the caller's own, on free ports in a new folder under /tmp
    (never clashing with `make run` or another test's stack), started, and stopped and removed
    after. For tests that kill, freeze or restart things. ``JIFEN_KEEP_TEST_HOME=1`` keeps the
    folder (the services' logs are in ``log/``). The broker is the one ``JIFEN_BROKER`` names;
    ``kafka_cluster`` makes it three Apache Kafka KRaft nodes (RF 3, min ISR 2) instead."""
    # /tmp itself, not pytest's 0700 tmp folder: the 'postgres' user must reach the data dir
    home = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(home, 0o755)  # noqa: S103
    broker = KafkaCluster(home) if kafka_cluster else None
    stack = DevStack(home, free_ports(), say=False, extra_env=extra_env, broker=broker)
    try:
        stack.start_infra()
        yield stack
    finally:
        stack.stop()
        if os.environ.get("JIFEN_KEEP_TEST_HOME"):
            print(f"\ntest stack kept in {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)


class Api:
    """A small client for one service with a token per role."""

    def __init__(self, stack: DevStack, service: str, org: str = "jiangmen-riders") -> None:
        self.stack = stack
        self.base = stack.url(service)
        self.org = org
        self.http = httpx.AsyncClient(base_url=self.base, timeout=20)

    def auth(self, role: str, subject: str | None = None, org: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.stack.token(role, subject, org or self.org)}"}

    async def close(self) -> None:
        await self.http.aclose()


async def ensure_community(
    tasks: Api, community_id: str = "penglai-grid", org: str | None = None
) -> None:
    """The community exists in the organisation (an officer adds it; there already: fine)."""
    r = await tasks.http.post(
        "/v1/communities",
        headers=tasks.auth("officer", org=org),
        json={"id": community_id, "name": community_id},
    )
    assert r.status_code == 201 or (
        r.status_code == 409 and r.json()["reason"] == "community_exists"
    ), r.text


async def register(
    tasks: Api, account: str, community_id: str = "penglai-grid", org: str | None = None
) -> None:
    """Report ``account`` in to the community (made first if need be), as its app does: only
    registered accounts may claim, complete and be credited."""
    await ensure_community(tasks, community_id, org)
    r = await tasks.http.post(
        f"/v1/communities/{community_id}/members",
        headers=tasks.auth("app", org=org),
        json={"account_id": account},
    )
    assert r.status_code in (200, 201), r.text
