"""A service process started without its key stops at once with one line that says which key
and what to run, not a traceback, nor a key of its own made on the spot."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from jifen.devtools.devstack import DevStack
from jifen.devtools.stack import free_port
from jifen.kernel.cli import app
from jifen.kernel.settings import REPO_ROOT


def run(stack: DevStack, keys: Path, service: str, kind: str) -> subprocess.CompletedProcess[str]:
    env = stack.env()
    env["JIFEN_KEYS_DIR"] = str(keys)
    env[f"JIFEN_{service.upper()}_PORT"] = str(free_port())
    env[f"JIFEN_{service.upper()}_WORKER_PORT"] = str(free_port())
    return subprocess.run(
        [sys.executable, "-m", f"jifen.{service}", kind],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def plain_lines(stderr: str) -> list[str]:
    """What a person reads: stderr less the JSON log lines of the migration step before."""
    out = []
    for line in stderr.splitlines():
        try:
            orjson.loads(line)
        except orjson.JSONDecodeError:
            out.append(line)
    return out


@pytest.mark.timeout(300)
def test_an_api_without_the_token_key_stops_with_one_line(stack: DevStack, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    done = run(stack, keys, "tasks", "api")
    assert done.returncode == 2, done.stderr[-2000:]
    (line,) = plain_lines(done.stderr)
    assert line.startswith(f"jifen tasks: no token signing key in {keys}"), line
    assert "jifen keys init" in line
    assert "Traceback" not in done.stderr
    assert not any(keys.iterdir()), "no key made on the spot"


@pytest.mark.timeout(300)
def test_a_points_worker_without_its_audit_key_stops_with_one_line(
    stack: DevStack, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    result = CliRunner().invoke(app, ["keys", "init", "--keys-dir", str(keys)])
    assert result.exit_code == 0, result.output
    shutil.rmtree(keys / "audit")  # provisioned, but the checkpoint key went missing
    done = run(stack, keys, "points", "worker")
    assert done.returncode == 2, done.stderr[-2000:]
    (line,) = plain_lines(done.stderr)
    assert line.startswith("jifen points-worker: no audit checkpoint key in "), line
    assert "Traceback" not in done.stderr
    assert not (keys / "audit").exists(), "no audit key made on the spot"
