"""`make soak` in miniature: the soak driver runs for 45 seconds with a worker SIGKILLed and
restarted every few seconds, converges, and its verdict passes. It keeps the soak's machinery
working in `make test`; the ten-minute soak with every fault, and its figures, are in
docs/RELIABILITY.md.

Broker and PostgreSQL restarts are left to the full soak for now: both can still end a
consumer loop (docs/RELIABILITY.md, "What the soaks found"), which would make this test fail
one run in a few; add them here once that is fixed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from jifen.kernel.settings import REPO_ROOT

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(420)
def test_a_short_soak_passes_its_verdict() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.soak",
            "--duration",
            "45s",
            "--seed",
            "7",
            "--interval",
            "6-10",
            "--faults",
            "points-worker,tasks-worker,redeem-worker",
            "--lanes",
            "3",
            "--settle",
            "4m",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=400,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    verdict = [line for line in result.stdout.splitlines() if line.startswith("verdict:")]
    assert verdict and verdict[0].startswith("verdict: PASS"), out
    faults = next(line for line in result.stdout.splitlines() if "faults injected" in line)
    assert not faults.split("faults injected", 1)[1].strip().startswith("0"), out
