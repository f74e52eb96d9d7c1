"""The benchmark: every Jifen figure next to a reference measured in the same run, with the
CPU per operation of each process beside every rate and the machine's load during each part.

One embedded stack (own PostgreSQL + the default broker on free ports in a temporary folder,
never the ports of a running ``make run``). Phases, in this order so that no phase's leftovers
load the next one's CPU: HTTP edge and redemptions with the services running, driven by wrk
against Jifen's APIs and the bare-transaction reference server; then the services stop and the
points processes ingest alone; the bare COPY and the ``eventsourcing`` peer (fed from memory and
from the same topic) run on the same PostgreSQL; the audit verifier last, offline. Prints one
table, writes results/<stamp>/ (bench.json, table.md); ``--write-docs`` puts the table into
docs/BENCH.md between its markers.
"""

# One module per part, each taking the stack and the Report: limit (1), ingest (2), peer (3),
# redeem (4), edge (5), audit (6); events and services are what the parts share; report holds
# the Report, the ratios and the output; machine what the run ran on. This module only
# orchestrates, and nothing imports it.

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

from bench.audit import bench_audit as run_audit
from bench.cpu import loadavg
from bench.edge import bench_http
from bench.events import completion_event, produce
from bench.ingest import bench_ingest
from bench.limit import bench_copy
from bench.machine import machine
from bench.peer import bench_peer
from bench.redeem import bench_redeem
from bench.report import (
    Report,
    chart,
    markdown_table,
    print_table,
    ratios,
    replace_docs_table,
)
from bench.services import start_services
from jifen.devtools.devstack import DevStack, Ports
from jifen.devtools.stack import free_port
from jifen.kernel.kafka import ensure_topics
from jifen.kernel.settings import REPO_ROOT
from jifen.points.settings import PointsSettings

SIZES: dict[str, dict[str, int]] = {
    # n: ingest events (and COPY rows, and peer events); rate/seconds: the latency run
    "quick": {
        "n": 30_000,
        "accounts": 2_000,
        "rate": 300,
        "seconds": 10,
        "redeem": 600,
        "clients": 200,
        "http": 800,
        "http_clients": 32,
        "open_seconds": 10,
        "audit": 1_000_000,
    },
    "full": {
        "n": 200_000,
        "accounts": 10_000,
        "rate": 300,
        "seconds": 30,
        "redeem": 2_000,
        "clients": 300,
        "http": 4_000,
        "http_clients": 64,
        "open_seconds": 30,
        "audit": 1_000_000,
    },
}


def bench_audit(home: Path, rep: Report, n: int) -> None:
    try:
        run_audit(home, rep, n, cache=REPO_ROOT / "results" / ".audit-cache")
    except Exception as exc:  # the verifier is someone else's work in progress
        rep.add("6 audit", "not done: " + type(exc).__name__, None, "")
        rep.notes.append(f"audit part not done: {exc!r}")


async def main_async(args: argparse.Namespace) -> Report:
    size = dict(SIZES[args.size])
    if args.n:
        size["n"] = args.n
    if args.requests:  # small development runs of parts 4 and 5
        size["http"] = size["redeem"] = args.requests
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    rep = Report(
        size=args.size if not args.n else f"{args.size}, n={args.n}",
        started=stamp,
        machine=machine(),
    )
    rep.machine["load"] = f"{loadavg():.2f}"
    print(
        f"jifen bench: size {rep.size}, {rep.machine['cores']} cores, {rep.machine['cpu']}, "
        f"load average {rep.machine['load']}"
    )
    home = Path(tempfile.mkdtemp(prefix="jifen-bench-"))
    os.chmod(home, 0o755)  # noqa: S103 - the postgres user must reach the data folder
    ports = Ports(**{k: free_port() for k in Ports.__dataclass_fields__})
    stack = DevStack(
        home,
        ports,
        say=False,
        extra_env={"JIFEN_KAFKA_SESSION_TIMEOUT_MS": "6000", "JIFEN_LOG_LEVEL": "WARNING"},
    )
    only = set(args.only.split(",")) if args.only else {"1", "2", "3", "4", "5", "6"}
    try:
        stack.start_infra()
        await ensure_topics(stack.broker.bootstrap)
        if only & {"4", "5"}:
            start_services(stack, profile=args.profile)
            if "5" in only:
                await bench_http(
                    stack, rep, size["http"], size["http_clients"], size["open_seconds"]
                )
            if "4" in only:
                await bench_redeem(
                    stack, rep, size["redeem"], size["clients"], size["open_seconds"]
                )
            profiled = stack.procs.get("redeem-api") if args.profile else None
            if profiled is not None:  # pyinstrument renders its report on exit: give it time
                profiled.popen.send_signal(signal.SIGINT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    profiled.popen.wait(120)
            for name in list(stack.procs):
                stack.stop_process(name)
        else:
            subprocess.run(  # noqa: ASYNC221
                [sys.executable, "-m", "jifen.points", "migrate"],
                env=stack.env(),
                check=True,
                capture_output=True,
                cwd=REPO_ROOT,
            )
        # the references write as many rows a transaction as the worker's batch holds (its
        # setting, JIFEN_POINTS_BATCH_MAX included): the same unit of work on each side
        batch = PointsSettings().batch_max
        if "1" in only:
            await bench_copy(stack, rep, size["n"], size["accounts"], batch)
        tag = None
        if "2" in only:
            tag = await bench_ingest(
                stack,
                rep,
                size["n"],
                size["accounts"],
                size["rate"],
                size["seconds"],
                args.profile,
                batch,
            )
        if "3" in only:
            if tag is None:  # the peer's second feed reads the events part 2 would have sent
                tag = "ing" + uuid.uuid4().hex[:4]
                await produce(
                    stack.broker.bootstrap,
                    [
                        completion_event(f"{tag}-{i % size['accounts']:05d}", 1 + i % 37)
                        for i in range(size["n"])
                    ],
                )
            bench_peer(stack, rep, size["n"], size["accounts"], batch, tag=tag)
        for extra in ("worker-profile.txt", "worker-metrics.txt", "redeem-api-profile.txt"):
            if (home / extra).exists():
                (REPO_ROOT / "results" / stamp).mkdir(parents=True, exist_ok=True)
                shutil.copy(home / extra, REPO_ROOT / "results" / stamp / extra)
    finally:
        stack.stop()
        out = REPO_ROOT / "results" / stamp
        out.mkdir(parents=True, exist_ok=True)
        if (home / "log").exists():
            shutil.copytree(home / "log", out / "log", dirs_exist_ok=True)
    try:
        if "6" in only:
            bench_audit(home, rep, size["audit"])
    finally:
        shutil.rmtree(home, ignore_errors=True)
    ratios(rep)
    rep.machine["load_end"] = f"{loadavg():.2f}"
    (out / "table.md").write_text(markdown_table(rep))
    if args.write_docs:
        doc = REPO_ROOT / "docs" / "BENCH.md"
        doc.write_text(replace_docs_table(doc.read_text(), markdown_table(rep)))
    (out / "bench.json").write_text(json.dumps(rep.__dict__, indent=2, default=str) + "\n")
    with contextlib.suppress(Exception):
        chart(rep, out / "bench.png")
    print_table(rep)
    print(f"\nwritten: {out}/bench.json, table.md, bench.png")
    return rep


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--size", choices=sorted(SIZES), default="quick")
    p.add_argument("--n", type=int, default=0, help="ingest events (overrides the size's n)")
    p.add_argument(
        "--requests", type=int, default=0, help="HTTP posts and redemptions (overrides the size's)"
    )
    p.add_argument("--only", default="", help="comma-separated parts to run, e.g. 1,2,3")
    p.add_argument(
        "--profile",
        action="store_true",
        help="run the ingest worker and the redeem API under pyinstrument",
    )
    p.add_argument(
        "--write-docs",
        action="store_true",
        help="write the run's table into docs/BENCH.md (between its bench:table markers)",
    )
    args = p.parse_args()
    rep = asyncio.run(main_async(args))
    return 1 if any(not c["ok"] for c in rep.checks) else 0
