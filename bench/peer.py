"""Part 3, the peer: the ``eventsourcing`` library crediting accounts on the same PostgreSQL,
fed from memory (its best case, as before) and from the same Kafka topic as Jifen's worker by a
plain aiokafka consumer (bench/peer_worker.py). CPU per event of the peer's process and of
PostgreSQL beside each rate."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from typing import Any

from bench.cpu import TICK, Meter, per_op, stack_roots
from bench.report import Report
from jifen.devtools.devstack import DevStack
from jifen.kernel.settings import REPO_ROOT


def _children_ticks() -> int:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return round((r.ru_utime + r.ru_stime) * TICK)


def _run_peer(
    stack: DevStack, args: list[str], database: str
) -> tuple[dict[str, Any] | None, str, dict[str, Any]]:
    env = {
        **os.environ,
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": database,
        "POSTGRES_HOST": "127.0.0.1",
        "POSTGRES_PORT": str(stack.ports.pg),
        "POSTGRES_USER": "postgres",
        "POSTGRES_PASSWORD": "",
        "POSTGRES_CREATE_TABLE": "y",
    }
    # the peer's CPU: what this process reaped from it; the rest of the stack from /proc
    meter = Meter(lambda: stack_roots(stack))
    before, kids = meter.read(), _children_ticks()
    out = subprocess.run(
        [sys.executable, "-m", "bench.peer_worker", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
    )
    after, peer_ticks = meter.read(), _children_ticks() - kids
    if out.returncode != 0:
        return None, out.stderr[-800:], {}
    result = json.loads(out.stdout.strip().splitlines()[-1])
    cpu = per_op(before, after, result["stored"] or 1)
    # the peer replaces the load generator's role (it is the process this one reaped)
    cpu["roles"].pop("load generator", None)
    # the peer's CPU in its timed window (its imports left out); the process total if absent
    secs = float(result.get("cpu_s", peer_ticks / TICK))
    cpu["roles"] = {
        "peer (eventsourcing)": {
            "cpu_s": round(secs, 3),
            "us_per_op": round(secs * 1e6 / max(result["stored"], 1), 1),
            "cores": round(secs / max(result["seconds"], 1e-9), 2),
        },
        **{k: v for k, v in cpu["roles"].items() if k in ("postgres",) or k.startswith("broker")},
    }
    return result, "", cpu


def bench_peer(
    stack: DevStack, rep: Report, n: int, accounts: int, batch: int, tag: str | None = None
) -> float:
    feeds: list[tuple[str, list[str]]] = [("memory", [])]
    if tag:
        feeds.append(("kafka", ["--bootstrap", stack.broker.bootstrap, "--tag", tag]))
    rate = float("nan")
    for feed, extra in feeds:
        args = ["--feed", feed, "--n", str(n), "--accounts", str(accounts), "--batch", str(batch)]
        database = f"bench_es_{feed}"  # a database each: the stored counts stay apart
        subprocess.run(
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
            check=True,
            capture_output=True,
        )
        result, err, cpu = _run_peer(stack, [*args, *extra], database)
        what = (
            f"eventsourcing, {n:,} credits from memory (its best case), save({batch})"
            if feed == "memory"
            else f"eventsourcing fed from tasks.completions (aiokafka), {n:,} events"
        )
        if result is None:
            rep.add("3 peer", what + ": failed (see notes)", None, "events/s")
            rep.notes.append(f"peer ({feed}) failed: {err}")
            continue
        r = n / result["seconds"]
        if feed == "memory":
            rate = r
        rep.add(
            "3 peer",
            what,
            r,
            "events/s",
            stored=result["stored"],
            feed=feed,
            version=result["version"],
            cpu=cpu,
        )
        rep.check(
            f"peer ({feed}) stored all",
            result["stored"] == n,
            f"{result['stored']:,} of {n:,} events",
        )
    return rate
