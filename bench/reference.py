"""The HTTP reference server's life in a run: its own database on the stack's PostgreSQL, its
tables seeded like Jifen's for the part, and bench/refserver.py under uvicorn, registered in the
stack's process table as ``ref-http`` so its CPU is read like any other process's."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass

import asyncpg
import httpx

from bench.refserver import SCHEMA
from jifen.devtools.devstack import DevStack, Proc
from jifen.devtools.stack import free_port
from jifen.kernel.settings import REPO_ROOT

NAME = "ref-http"


@dataclass
class Ref:
    url: str
    dsn: str


async def start(stack: DevStack, database: str) -> Ref:
    subprocess.run(  # noqa: ASYNC221
        [
            str(stack.pg.bin_dir / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(stack.ports.pg),
            "-U",
            "postgres",
            database,
        ],
        check=False,
        capture_output=True,
    )
    dsn = stack.pg.dsn(database)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(SCHEMA)
    finally:
        await conn.close()
    port = free_port()
    log = (stack.home / "log" / f"{NAME}.log").open("ab")
    popen = subprocess.Popen(  # noqa: ASYNC220
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.refserver:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env={**stack.env(), "BENCH_REF_DSN": dsn},
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO_ROOT,
    )
    stack.procs[NAME] = Proc(NAME, port, popen)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(timeout=2) as http:
        while time.monotonic() < deadline:
            if popen.poll() is not None:
                raise RuntimeError(f"reference server exited {popen.returncode}; see its log")
            try:
                if (await http.get(url + "/readyz")).status_code == 200:
                    return Ref(url, dsn)
            except httpx.HTTPError:
                pass
            time.sleep(0.1)  # noqa: ASYNC251
    raise TimeoutError("reference server not ready")


async def seed_redeem(
    ref: Ref,
    accounts: list[str],
    points_each: int,
    rewards: dict[str, str],
    stocks: dict[str, tuple[int, int]],
) -> None:
    conn = await asyncpg.connect(ref.dsn)
    try:
        await conn.executemany(
            "INSERT INTO wallet VALUES ($1, $2) ON CONFLICT DO NOTHING",
            [(a, points_each) for a in accounts],
        )
        await conn.executemany(
            "INSERT INTO reward VALUES ($1, $2, $3)",
            [(rewards[n], p, s) for n, (p, s) in stocks.items()],
        )
    finally:
        await conn.close()


async def seed_claims(ref: Ref, pairs: list[tuple[str, str]]) -> None:
    """(job, account) claims, as the tasks API holds them before its completions."""
    import uuid

    conn = await asyncpg.connect(ref.dsn)
    try:
        await conn.copy_records_to_table(
            "claim",
            records=[(uuid.uuid4(), j, a, False) for j, a in pairs],
            columns=["id", "job_id", "account_id", "completed"],
        )
    finally:
        await conn.close()


def stop(stack: DevStack, ref: Ref | None = None) -> None:
    stack.stop_process(NAME)
