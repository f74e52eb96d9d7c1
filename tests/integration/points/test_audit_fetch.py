"""`jifen audit fetch` (and the other commands' errors) through the real command, a
subprocess of the installed `jifen`, against the points API served over real HTTP (uvicorn
on a free port) on a real ledger: progress on stderr, written to OUT.part and renamed when
complete, an interrupted fetch resumed, and a refused token as one line, exit 2."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn

from jifen.points.db import MIGRATIONS
from tests.integration.points.test_audit_fixtures import Ledger, ledger_in, sample_batches
from tests.integration.points.test_audit_tamper import FreshDb

JIFEN = Path(sys.executable).with_name("jifen")


@pytest.fixture
async def served(fresh_db: FreshDb, tmp_path: Path) -> AsyncIterator[tuple[Ledger, str]]:
    async with ledger_in(await fresh_db(MIGRATIONS), tmp_path / "keys") as lg:
        for b in sample_batches(lg.book):
            await lg.append(b)
        for i in range(10):  # a few thousand lines, so the export comes in many chunks
            await lg.append([lg.book.credit(f"vol-{i}-{j}", 1 + j % 9) for j in range(300)])
        await lg.checkpoint()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(lg.app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
        )
        task = asyncio.create_task(server.serve())
        deadline = asyncio.get_running_loop().time() + 30
        while not server.started:
            assert asyncio.get_running_loop().time() < deadline, "uvicorn did not start"
            await asyncio.sleep(0.05)
        try:
            yield lg, f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            await task


async def jifen(*args: str | Path, url: str, token: str) -> tuple[int, str, str]:
    env = {**os.environ, "JIFEN_POINTS_URL": url, "JIFEN_AUDIT_TOKEN": token}
    proc = await asyncio.create_subprocess_exec(
        str(JIFEN),
        "audit",
        *map(str, args),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_fetch_shows_progress_and_renames_a_complete_export(
    served: tuple[Ledger, str], tmp_path: Path
) -> None:
    lg, url = served
    out, keys = tmp_path / "export.ndjson", tmp_path / "keys.json"
    code, stdout, stderr = await jifen(
        "fetch", "--out", out, "--keys-out", keys, url=url, token=lg.token()
    )
    assert code == 0, stderr
    total = len(out.read_bytes().splitlines()) - 1
    assert total == 14 + 3000
    # progress on stderr: bytes and entries (the last line is the final count)
    last = stderr.strip().splitlines()[-1]
    assert "MB" in last and f"{total:,} / {total:,} entries (100%)" in last, stderr
    assert f"wrote {total + 1} lines" in stdout
    assert not (tmp_path / "export.ndjson.part").exists()
    code, stdout, stderr = await jifen("verify", out, "--keys", keys, url=url, token=lg.token())
    assert code == 0, stdout + stderr
    # the report, built against the live service, carries its integrity signals (none here)
    report = tmp_path / "report.html"
    code, stdout, stderr = await jifen(
        "report", out, "--keys", keys, "--out", report, url=url, token=lg.token()
    )
    assert code == 0, stdout + stderr
    assert 'id="signals" class="figure ok">0 个标记' in report.read_text()
    code, _, stderr = await jifen(
        "report", out, "--keys", keys, "--out", report, url=url, token="not-a-token"
    )
    assert code == 2 and "401" in stderr and len(stderr.strip().splitlines()) == 1, stderr


async def test_an_interrupted_fetch_resumes_from_its_part_file(
    served: tuple[Ledger, str], tmp_path: Path
) -> None:
    lg, url = served
    whole = tmp_path / "whole.ndjson"
    assert (await jifen("fetch", "--out", whole, url=url, token=lg.token()))[0] == 0
    data = whole.read_bytes()
    # what a fetch that died mid-stream leaves: OUT.part, cut inside a line
    cut = data.index(b"\n", len(data) // 2) + 40
    out = tmp_path / "export.ndjson"
    (tmp_path / "export.ndjson.part").write_bytes(data[:cut])
    await lg.append([lg.book.credit("vol-late", 7)])  # the ledger grew meanwhile
    await lg.checkpoint()
    code, _, stderr = await jifen("fetch", "--out", out, url=url, token=lg.token())
    assert code == 0, stderr
    assert "resuming" in stderr
    # the same export as one fetch of that checkpoint: the torn line re-fetched, nothing twice
    assert out.read_bytes() == data
    assert not (tmp_path / "export.ndjson.part").exists()
    # --no-resume starts again, at the latest checkpoint
    (tmp_path / "export.ndjson.part").write_bytes(data[:cut])
    code, _, stderr = await jifen("fetch", "--out", out, "--no-resume", url=url, token=lg.token())
    assert code == 0, stderr
    assert len(out.read_bytes().splitlines()) == len(data.splitlines()) + 1


async def test_a_refused_token_is_one_line_exit_2_and_writes_nothing(
    served: tuple[Ledger, str], tmp_path: Path
) -> None:
    lg, url = served
    out = tmp_path / "export.ndjson"
    for token in ("not-a-token", lg.token("volunteer")):
        code, stdout, stderr = await jifen("fetch", "--out", out, url=url, token=token)
        assert code == 2, (stdout, stderr)
        [line] = stderr.strip().splitlines()
        assert "Traceback" not in stderr and line.startswith("jifen audit: ")
        assert ("401" in line and "JIFEN_AUDIT_TOKEN" in line) or "403" in line, line
        assert not out.exists()
    code, _, stderr = await jifen(
        "witness",
        "--name",
        "u",
        "--key",
        tmp_path / "k.pem",
        "--state",
        tmp_path / "w",
        url=url,
        token="not-a-token",
    )
    assert code == 2 and len(stderr.strip().splitlines()) == 1 and "401" in stderr, stderr
