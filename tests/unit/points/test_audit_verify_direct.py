"""`jifen audit verify` answered without typer (audit/cli.py's ``direct``, called by the
kernel's ``main`` before typer is imported): the same output and exit status as the typer
command for every plain command line, typer for anything else, and neither typer nor pydantic
imported on the way."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jifen.points.audit.cli import app, direct
from tests.unit.points.test_audit_cli import write_export
from tests.unit.points.test_audit_verify import KEY, long_ledger


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    from jifen.points.audit.domain.checkpoint import b64, raw_public_key

    keys = tmp_path / "keys.json"
    keys.write_text(
        json.dumps(
            [
                {
                    "key_id": "k1",
                    "algorithm": "Ed25519",
                    "public_key": b64(raw_public_key(KEY.public_key())),
                }
            ]
        )
    )
    entries = long_ledger(90)
    return {
        "keys": keys,
        "good": write_export(tmp_path / "good.ndjson", entries),
        "gap": write_export(tmp_path / "gap.ndjson", entries, drop=40),
    }


@pytest.mark.parametrize(
    "case",
    [
        ["good"],
        ["gap"],
        ["gap", "--json"],
        ["good", "--no-progress", "--jobs", "2"],
        ["gap", "--progress", "--jobs", "1", "--json"],
        ["missing"],
    ],
)
def test_direct_says_what_the_typer_command_says(
    files: dict[str, Path], tmp_path: Path, case: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    export = files.get(case[0], tmp_path / "missing.ndjson")
    args = ["verify", str(export), "--keys", str(files["keys"]), *case[1:]]
    typer_run = CliRunner().invoke(app, args)
    code = direct(args)
    out = capsys.readouterr()
    assert code == typer_run.exit_code
    assert out.out == typer_run.stdout
    assert out.err == typer_run.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["verify", "--help"],
        ["verify", "x.ndjson"],  # no --keys: typer says it is missing
        ["verify", "--keys", "k.json"],  # no export
        ["verify", "x.ndjson", "--keys"],
        ["verify", "x.ndjson", "--keys=k.json"],
        ["verify", "x.ndjson", "--keys", "k.json", "--jobs", "-1"],
        ["verify", "x.ndjson", "--keys", "k.json", "--colour"],
        ["report", "x.ndjson", "--keys", "k.json", "--out", "r.html"],
        [],
    ],
)
def test_anything_else_is_left_to_typer(args: list[str]) -> None:
    assert direct(args) is None


def test_the_jifen_command_verifies_without_importing_typer_or_pydantic(
    files: dict[str, Path],
) -> None:
    probe = (
        "import sys\n"
        "from jifen.kernel.cli import _direct\n"
        f"code = _direct(['jifen', 'audit', 'verify', {str(files['good'])!r}, "
        f"'--keys', {str(files['keys'])!r}])\n"
        "print(code, 'typer' in sys.modules, 'pydantic' in sys.modules, file=sys.stderr)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.stderr.strip().splitlines()[-1] == "0 False False", run.stderr
    assert "OK: 90 positions" in run.stdout
