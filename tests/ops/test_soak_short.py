"""`make soak` in miniature: the soak driver runs for 45 seconds with a fault every few
seconds (worker SIGKILLs, broker and PostgreSQL restarts), converges, and its verdict passes.
It keeps the soak's machinery working in `make test`; the ten-minute soak and its figures are
in docs/RELIABILITY.md."""

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
            "1",  # draws a broker restart and a SIGKILL of the points worker
            "--interval",
            "6-10",
            "--faults",
            "points-worker,tasks-worker,redeem-worker,broker,postgres",
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
