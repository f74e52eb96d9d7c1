"""`make run` on Apache Kafka: one KRaft node whose log lives under the home (``kafka/``) and is
kept between runs, supervised like the services: SIGKILLed, it is started again on its kept log,
and the system goes on (a completion verified afterwards is credited)."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from jifen.devtools.stack import free_port
from tests.e2e.devtools.test_make_run import PORT_ENV, stop, up

pytestmark = pytest.mark.e2e


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("JIFEN_BROKER", "kafka")
    path = Path(tempfile.mkdtemp(prefix="jifen-runkafka-"))
    os.chmod(path, 0o755)  # noqa: S103 - the postgres user must reach the data folder
    yield path
    shutil.rmtree(path, ignore_errors=True)


def broker_pid(home: Path) -> int | None:
    pidfile = home / "broker.pid"
    return int(pidfile.read_text()) if pidfile.exists() else None


def test_run_supervises_its_kafka_broker_and_keeps_its_log(home: Path) -> None:
    ports = {k: free_port() for k in PORT_ENV}
    proc, lines = up(home, ports)
    try:
        said = [line for line in lines if line.strip().startswith("broker")]
        assert said and "Apache Kafka" in said[0] and "started in" in said[0], lines
        assert (home / "kafka" / "meta.properties").exists(), "the KRaft log is under the home"
        first = broker_pid(home)
        assert first is not None
        os.kill(first, signal.SIGKILL)
        # the supervisor's restart, a JVM start on the kept log and the worker's rejoin shared
        # one 120 s bound, and this test failed once in a loaded run (load average 5; #23):
        # each step has its own bound now, polled
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            again = broker_pid(home)
            if again not in (None, first) and os.path.exists(f"/proc/{again}"):
                break
            time.sleep(0.2)  # polling with the deadline above
        else:
            raise AssertionError("the broker was not started again")
        # the services carry on over the restarted broker: their readiness comes back
        worker = f"http://127.0.0.1:{ports['points_worker']}/readyz"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(worker, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise AssertionError("the points worker did not become ready again")
    finally:
        stop(proc, lines)
    assert any("the broker exited; restarting it" in line for line in lines), "\n".join(lines)
    assert broker_pid(home) is None, "stopped with the stack"
    again, lines = up(home, ports)
    try:
        assert any("demo data already there" in line for line in lines), "\n".join(lines)
        assert not any("after formatting" in line for line in lines), "the log was kept"
    finally:
        stop(again, lines)
