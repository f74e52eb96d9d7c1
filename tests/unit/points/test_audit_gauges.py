"""The audit gauges belong to the process running the audit loop, and only from the moment
they say something true: importing the points code (as the API, the signals process and the
worker before its first checkpoint all do) exports none of them, so no 0 can page anyone."""

from __future__ import annotations

import subprocess
import sys

import pytest

from jifen.kernel.settings import REPO_ROOT

GAUGES = (
    "jifen_points_audit_verification_ok",
    "jifen_points_audit_last_verification_timestamp_seconds",
    "jifen_points_audit_checkpoint_timestamp_seconds",
    "jifen_points_audit_checkpoint_tree_size",
)


@pytest.mark.parametrize(
    "modules",
    [
        "jifen.points.__main__",  # what every points process imports first
        "jifen.points.__main__, jifen.points.api.app",  # the API
        "jifen.points.worker_app, jifen.points.audit.loop",  # the worker, before its checkpoint
    ],
)
def test_importing_the_points_code_exports_no_audit_gauge(modules: str) -> None:
    script = (
        f"import {modules}\n"
        "from prometheus_client import generate_latest\n"
        "print(generate_latest().decode())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO_ROOT, check=True
    ).stdout
    assert "jifen_" in out or "python_info" in out  # it did print the exposition
    assert [g for g in GAUGES if g in out] == []


def test_the_loop_exports_a_gauge_once_however_often_it_says_so() -> None:
    script = (
        "from jifen.points.audit import loop\n"
        "from prometheus_client import generate_latest\n"
        "loop.VERIFIED_OK.set(1)\n"
        "assert b'verification_ok' not in generate_latest()\n"
        "loop.export(loop.VERIFIED_OK, loop.VERIFIED_AT)\n"
        "loop.export(loop.VERIFIED_OK)\n"
        "text = generate_latest().decode()\n"
        "print([l for l in text.splitlines() if l.startswith('jifen_points_audit_verif')])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO_ROOT, check=True
    ).stdout
    assert "'jifen_points_audit_verification_ok 1.0'" in out
