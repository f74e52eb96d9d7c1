"""The joint fixtures: one real PostgreSQL cluster and one real broker per test session (Apache
Kafka, one KRaft node; `JIFEN_BROKER=tansu` for the light one), on free ports in a temporary
folder (never clashing with a running `make run`), and the six service processes for the
end-to-end tests. Nothing here is mocked."""

from __future__ import annotations

import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from jifen.devtools.devstack import DevStack
from jifen.kernel.db import migrate
from tests.helpers import Api, isolated_stack


def pytest_configure(config: pytest.Config) -> None:
    """A terminated run (CI's time limit, `timeout`) still tears its stacks down: SIGTERM becomes
    the KeyboardInterrupt on which pytest runs the fixtures' finalizers. Without it PostgreSQL
    (daemonised by pg_ctl) and the broker (its own session) outlive the run."""

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt("terminated")

    signal.signal(signal.SIGTERM, interrupt)


FAILURES = Path(__file__).resolve().parents[1] / "results" / "failures.log"


def pytest_sessionstart(session: pytest.Session) -> None:
    FAILURES.unlink(missing_ok=True)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Each failure written out the moment it happens (``results/failures.log``), not only in
    the summary at the end: a run stopped by CI's time limit, or watched while it runs on a
    loaded machine, still says what failed and why."""
    if report.failed:
        FAILURES.parent.mkdir(parents=True, exist_ok=True)
        with FAILURES.open("a", encoding="utf-8") as f:
            f.write(f"=== {report.nodeid} ({report.when}, {report.duration:.1f}s)\n")
            f.write(f"{report.longreprtext}\n")
            for title, content in report.sections:  # what it printed and logged before failing
                f.write(f"--- {title}\n{content[-20_000:]}\n")
            f.write("\n")


@pytest.fixture(scope="session")
def stack() -> Iterator[DevStack]:
    """PostgreSQL and the broker, started for the session and stopped after it."""
    env = {
        "JIFEN_TASKS_CREDIT_TIMEOUT_SECONDS": "3",
        # the webhook tests' receivers listen here; a failed delivery is tried again soon
        "JIFEN_TASKS_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
        "JIFEN_TASKS_WEBHOOK_RETRY_SECONDS": "0.5",
        # claim reminders are looked for every second (test_tasks_reminders waits for one)
        "JIFEN_TASKS_REMIND_EVERY_SECONDS": "1",
    }
    with isolated_stack("jifen-test-", env) as s:
        yield s


@pytest.fixture(scope="session")
def services(stack: DevStack) -> DevStack:
    """The three services' APIs and workers as real processes against the session's infra."""
    if not stack.procs:
        stack.start_services()
    return stack


@pytest.fixture
async def fresh_db(stack: DevStack) -> AsyncIterator[Callable[[Path], Awaitable[str]]]:
    """Make a new, empty database migrated with a service's migrations; dropped after."""
    made: list[str] = []

    async def make(migrations: Path) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        admin = await asyncpg.connect(stack.pg.dsn())
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        made.append(name)
        dsn = stack.pg.dsn(name)
        await migrate(dsn, migrations)
        return dsn

    yield make
    admin = await asyncpg.connect(stack.pg.dsn())
    try:
        for name in made:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def apis(services: DevStack) -> AsyncIterator[dict[str, Api]]:
    clients = {s: Api(services, s) for s in ("tasks", "points", "redeem")}
    yield clients
    for c in clients.values():
        await c.close()
