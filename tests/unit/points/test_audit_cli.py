"""`jifen audit verify` and `report` through the real command (a subprocess of the installed
`jifen` entry point): exit 0 when clean, 1 on any finding, 2 with one line that says what to
do on every error (missing file, not an export, bad keys, a server that is down)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from jifen.points.audit.domain.canonical import leaf_bytes
from jifen.points.audit.domain.checkpoint import b64, raw_public_key
from jifen.points.audit.domain.merkle import leaf_hash
from jifen.points.audit.domain.verify import EXPORT_FORMAT
from tests.unit.points.test_audit_verify import KEY, checkpoint, long_ledger

JIFEN = Path(sys.executable).with_name("jifen")


def jifen(*args: str | Path) -> subprocess.CompletedProcess[str]:
    # offline: no points service to reach unless a test names one
    env = {
        k: v for k, v in os.environ.items() if k not in ("JIFEN_POINTS_URL", "JIFEN_AUDIT_TOKEN")
    }
    return subprocess.run(
        [str(JIFEN), "audit", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def one_line_error(run: subprocess.CompletedProcess[str], *words: str) -> str:
    """Exit 2, nothing on stdout, exactly one line on stderr, no traceback."""
    assert run.returncode == 2, (run.returncode, run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "Traceback" not in run.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def write_export(path: Path, entries: list[dict[str, Any]], drop: int | None = None) -> Path:
    cp = checkpoint(entries)
    header = {
        "format": EXPORT_FORMAT,
        "start": 0,
        "end": len(entries),
        "checkpoint": cp.to_json(),
        "legacy_cutover": 0,
    }
    lines = [json.dumps(header)]
    for i, e in enumerate(entries):
        if i != drop:
            lines.append(
                json.dumps({"position": i, "leaf_hash": leaf_hash(leaf_bytes(e)).hex(), "entry": e})
            )
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
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
    entries = long_ledger(120)
    return {
        "keys": keys,
        "good": write_export(tmp_path / "good.ndjson", entries),
        "gap": write_export(tmp_path / "gap.ndjson", entries, drop=40),
    }


def test_verify_and_report_exit_0_when_clean_and_1_on_any_finding(
    files: dict[str, Path], tmp_path: Path
) -> None:
    ok = jifen("verify", files["good"], "--keys", files["keys"])
    assert ok.returncode == 0 and "OK: 120 positions" in ok.stdout, ok.stdout + ok.stderr
    bad = jifen("verify", files["gap"], "--keys", files["keys"])
    assert bad.returncode == 1, bad.stdout + bad.stderr
    # one deleted line: one finding line, naming the position and the entry, then the summary
    lines = bad.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("1 findings"), bad.stdout
    assert "[position_gap] entry 41, position 40, account b" in lines[0]
    as_json = jifen("verify", files["gap"], "--keys", files["keys"], "--json")
    [finding] = [json.loads(x) for x in as_json.stdout.splitlines()]
    assert (finding["code"], finding["position"], finding["entry_id"]) == ("position_gap", 40, 41)
    report = tmp_path / "report.html"
    r = jifen("report", files["good"], "--keys", files["keys"], "--out", report)
    assert r.returncode == 0 and report.exists(), r.stdout + r.stderr
    r = jifen("report", files["gap"], "--keys", files["keys"], "--out", report)
    assert r.returncode == 1 and "FINDINGS" in r.stdout, r.stdout + r.stderr
    assert "position_gap" in report.read_text()  # written all the same


def test_a_missing_file_is_one_line_exit_2(files: dict[str, Path], tmp_path: Path) -> None:
    missing = tmp_path / "nope.ndjson"
    one_line_error(jifen("verify", missing, "--keys", files["keys"]), "no such file", str(missing))
    one_line_error(
        jifen("verify", files["good"], "--keys", tmp_path / "keys-missing.json"), "no such file"
    )
    one_line_error(
        jifen("report", missing, "--keys", files["keys"], "--out", tmp_path / "r.html"),
        "no such file",
    )


def test_a_file_that_is_not_an_export_is_one_line_exit_2(
    files: dict[str, Path], tmp_path: Path
) -> None:
    not_json = tmp_path / "photo.ndjson"
    not_json.write_bytes(b"\x89PNG\r\n\x1a\n binary")
    line = one_line_error(jifen("verify", not_json, "--keys", files["keys"]), "not a ledger export")
    assert "jifen audit fetch" in line
    wrong_header = tmp_path / "other.ndjson"
    wrong_header.write_text(json.dumps({"format": "something.else.v1"}) + "\n")
    one_line_error(jifen("verify", wrong_header, "--keys", files["keys"]), "not a ledger export")
    # a damaged line in the middle: which line, and what to do
    damaged = tmp_path / "damaged.ndjson"
    lines = files["good"].read_text().splitlines()
    lines[7] = lines[7][:30]
    damaged.write_text("\n".join(lines) + "\n")
    line = one_line_error(jifen("verify", damaged, "--keys", files["keys"]), "line 8 is not JSON")
    assert "fetch it again" in line
    one_line_error(
        jifen("report", wrong_header, "--keys", files["keys"], "--out", tmp_path / "r.html"),
        "not a ledger export",
    )
    # and keys that are not keys
    one_line_error(jifen("verify", files["good"], "--keys", files["good"]), "public keys")


def test_a_server_that_is_down_is_one_line_exit_2(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    run = jifen("fetch", "--out", tmp_path / "e.ndjson", "--url", url, "--token", "t")
    line = one_line_error(run, "cannot reach the points service", url, "JIFEN_POINTS_URL")
    assert line.startswith("jifen audit: ")
    assert not (tmp_path / "e.ndjson").exists()
    witness = jifen(
        "witness",
        "--url",
        url,
        "--token",
        "t",
        "--name",
        "u",
        "--key",
        tmp_path / "k.pem",
        "--state",
        tmp_path / "w",
    )
    one_line_error(witness, "cannot reach the points service")
