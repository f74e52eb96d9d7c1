"""`jifen demo` drives the running stack through a (small) simulated month and its summary
reports what happened, including an offline audit that passes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from jifen.devtools.devstack import DevStack

pytestmark = pytest.mark.e2e


def test_the_demo_runs_end_to_end_and_the_audit_passes(services: DevStack) -> None:
    env = {
        **os.environ,
        "JIFEN_TASKS_PORT": str(services.ports.tasks),
        "JIFEN_POINTS_PORT": str(services.ports.points),
        "JIFEN_REDEEM_PORT": str(services.ports.redeem),
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "jifen.kernel.cli",
            "demo",
            "--volunteers",
            "40",
            "--jobs",
            "10",
            "--keys-dir",
            str(services.keys_dir),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    summary = {
        line.strip().split("  ", 1)[0]: line.strip().split("  ", 1)[-1].strip()
        for line in result.stdout.splitlines()
        if line.startswith("  ")
    }
    assert summary["audit verification"].startswith("passed"), out
    assert int(summary["points issued (net of reversals)"]) > 0
    assert int(summary.get("redemption accepted", "0")) > 0, out
    assert summary["redemptions not debited after 1 min"] == "0", out
    assert int(summary["points redeemed"]) > 0
    assert summary.get("hazard report done") == "1", out
    assert summary.get("credits still pending after 2 min") == "0", out
    assert int(summary.get("completion verified", "0")) > 20
    assert "revocation 200" in summary, out
