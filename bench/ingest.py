"""Part 2, ingest: completion events through the broker and a lone real points worker to
the ledger commit; storage per entry; latency at a fixed moderate rate."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
import uuid

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaProducer

from bench.cpu import Meter, per_op, stack_roots
from bench.events import completion_event, produce
from bench.report import Report, pct
from jifen.devtools.devstack import DevStack, Proc
from jifen.kernel.settings import REPO_ROOT


def points_kinds(stack: DevStack) -> list[str]:
    """The points processes besides the API that the dev stack has a port for (worker today;
    a relay or sequencer of its own once it has one), the signals app excepted: it would
    replay every benchmark event."""
    return [
        f.removeprefix("points_")
        for f in stack.ports.__dataclass_fields__
        if f.startswith("points_") and f != "points_signals"
    ]


async def start_worker(
    stack: DevStack, name: str, group: str, prefix: list[str] | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """The ingest processes on a fresh consumer group: every points kind the stack knows,
    started through it (so they are in its process table, by name, for the CPU readings);
    the others first and ready, the worker last (it starts consuming as soon as it is up, and
    the CPU readings start at its /readyz); returns the worker's process and port.
    ``prefix``: the worker under a profiler."""
    stack.extra_env["JIFEN_POINTS_CONSUMER_GROUP"] = group
    try:
        kinds = points_kinds(stack)
        for kind in [k for k in kinds if k != "worker"]:
            p = stack.start_process("points", kind)
            await wait_ready(p.popen, p.port)
        for kind in [k for k in kinds if k == "worker"]:
            if kind == "worker" and prefix:
                port = stack.ports.points_worker
                log = (stack.home / "log" / f"{name}.log").open("ab")
                popen = subprocess.Popen(  # noqa: ASYNC220
                    [sys.executable, *prefix, "-m", "jifen.points", "worker"],
                    env=stack.env(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=REPO_ROOT,
                )
                stack.procs["points-worker"] = Proc("points-worker", port, popen)
            else:
                stack.start_process("points", kind)
    finally:
        stack.extra_env.pop("JIFEN_POINTS_CONSUMER_GROUP", None)
    w = stack.procs["points-worker"]
    return w.popen, w.port


def stop_workers(stack: DevStack, sig: int = signal.SIGTERM) -> None:
    for name in [n for n in stack.procs if n.startswith("points-")]:
        stack.stop_process(name, sig)


async def wait_ready(proc: subprocess.Popen[bytes], port: int, timeout: float = 90) -> float:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"points worker exited with {proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return time.perf_counter()
            await asyncio.sleep(0.05)
    raise TimeoutError("points worker not ready")


async def count_tag(conn: asyncpg.Connection, tag: str) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM ledger_entry WHERE account_id LIKE $1", f"{tag}-%"
        )
    )


async def wait_count(conn: asyncpg.Connection, tag: str, n: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await count_tag(conn, tag) >= n:
            return time.perf_counter()
        await asyncio.sleep(0.1)
    raise TimeoutError(f"only {await count_tag(conn, tag)} of {n} {tag} entries after {timeout}s")


async def bench_ingest(
    stack: DevStack,
    rep: Report,
    n: int,
    accounts: int,
    rate: int,
    seconds: int,
    profile: bool,
    batch: int,
) -> str:
    """``batch``: the worker's records a transaction, which the COPY reference (part 1) wrote
    too."""
    tag = "ing" + uuid.uuid4().hex[:4]
    events = [completion_event(f"{tag}-{i % accounts:05d}", 1 + i % 37) for i in range(n)]
    took = await produce(stack.broker.bootstrap, events)
    rep.add(
        "2 ingest", f"produce {n:,} completion events (aiokafka, acks=all)", n / took, "events/s"
    )
    group = "bench-" + tag
    # --profile: the worker under pyinstrument (the figures of that run are slower; read the
    # profile for where the time goes, not the rate)
    prefix = ["-m", "pyinstrument", "-r", "text", "-o", str(stack.home / "worker-profile.txt")]
    proc, port = await start_worker(stack, "ingest-worker", group, prefix=prefix if profile else [])
    conn = await asyncpg.connect(stack.owner_dsn("points"))
    db_before = await conn.fetchval("SELECT pg_database_size(current_database())")
    try:
        t0 = await wait_ready(proc, port)
        meter = Meter(lambda: stack_roots(stack))
        before = meter.read()
        t1 = await wait_count(conn, tag, n, timeout=max(120, n / 500))
        after = meter.read()
        span = await conn.fetchval(
            "SELECT extract(epoch FROM max(recorded_at) - min(recorded_at)) FROM ledger_entry"
            " WHERE account_id LIKE $1",
            f"{tag}-%",
        )
        ingest = n / (t1 - t0)
        rep.add(
            "2 ingest",
            f"Jifen ingest, {n:,} events, broker → ledger commit",
            ingest,
            "events/s",
            seconds=t1 - t0,
            first_to_last_tx_seconds=float(span),
            cpu=per_op(before, after, n),
            ref=f"bare COPY of {n:,} ledger rows ({batch}/tx)",
        )
        got = await conn.fetchrow(
            "SELECT count(*) AS n, sum(amount) AS s FROM ledger_entry WHERE account_id LIKE $1",
            f"{tag}-%",
        )
        want = sum(e["data"]["points"] for e in events)
        rep.check(
            "ingest exact",
            got["n"] == n and got["s"] == want,
            f"{got['n']:,} entries (sent {n:,}), sum {got['s']:,} (sent {want:,})",
        )

        # storage per entry, for sizing (docs/SCALING.md): the ledger table with its indexes,
        # and the whole database's growth (inbox, outbox, audit tree included)
        await conn.execute("CHECKPOINT")
        rows = await conn.fetchval("SELECT count(*) FROM ledger_entry")
        table = await conn.fetchval("SELECT pg_total_relation_size('ledger_entry')")
        grown = await conn.fetchval("SELECT pg_database_size(current_database())") - db_before
        rep.add(
            "2 storage", "ledger_entry bytes per entry, indexes included", table / rows, "bytes"
        )
        rep.add("2 storage", "database growth per ingested entry", grown / n, "bytes")

        # latency at a fixed moderate rate, the worker already running and caught up
        lat = "lat" + uuid.uuid4().hex[:4]
        total = rate * seconds
        producer = AIOKafkaProducer(bootstrap_servers=stack.broker.bootstrap, linger_ms=0)
        await producer.start()
        lat_before = meter.read()
        try:
            start = time.perf_counter()
            for i in range(total):
                due = start + i / rate
                if (wait := due - time.perf_counter()) > 0:
                    await asyncio.sleep(wait)
                e = completion_event(f"{lat}-{i % 200:05d}", 5)
                await producer.send("tasks.completions", orjson.dumps(e), key=e["subject"].encode())
            await producer.flush()
        finally:
            await producer.stop()
        await wait_count(conn, lat, total, timeout=120)
        lat_cpu = per_op(lat_before, meter.read(), total)
        # recorded_at is the ledger transaction's start, a few ms before its commit
        secs = [
            float(r[0])
            for r in await conn.fetch(
                "SELECT extract(epoch FROM recorded_at - occurred_at) FROM ledger_entry"
                " WHERE account_id LIKE $1",
                f"{lat}-%",
            )
        ]
        rep.add(
            "2 latency",
            f"event time → ledger tx, p50 at {rate}/s for {seconds}s",
            pct(secs, 0.50) * 1000,
            "ms",
            cpu=lat_cpu,
        )
        rep.add(
            "2 latency",
            f"event time → ledger tx, p99 at {rate}/s for {seconds}s",
            pct(secs, 0.99) * 1000,
            "ms",
        )
        async with httpx.AsyncClient(timeout=5) as http:
            metrics = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
        (stack.home / "worker-metrics.txt").write_text(metrics)
    finally:
        await conn.close()
        # SIGINT lets pyinstrument write its report
        stop_workers(stack, signal.SIGINT if profile else signal.SIGTERM)
    return tag
