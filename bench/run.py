"""The benchmark: every Jifen figure next to a reference measured in the same run.

One embedded stack (own PostgreSQL + Tansu on free ports in a temporary folder, never the
ports of a running ``make run``). Phases, in this order so that no phase's leftovers load the
next one's CPU: HTTP edge and redemptions with the services running; then the services stop
and a lone points worker ingests; the bare COPY and the ``eventsourcing`` peer run on the same
PostgreSQL; the audit verifier last, offline. Prints one table, writes results/<stamp>/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaProducer

from jifen.devtools.devstack import SERVICES, DevStack, Ports, Proc
from jifen.devtools.stack import free_port
from jifen.kernel.contracts import Contracts, isoformat
from jifen.kernel.kafka import ensure_topics
from jifen.kernel.settings import REPO_ROOT
from jifen.points.db.repo import LEDGER_COLUMNS

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
        "audit": 1_000_000,
    },
}
ORG = "jiangmen-riders"
CONTRACTS = Contracts(REPO_ROOT / "schemas")


@dataclass
class Report:
    size: str
    started: str
    machine: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, part: str, what: str, value: float | None, unit: str, **extra: Any) -> None:
        self.rows.append({"part": part, "what": what, "value": value, "unit": unit, **extra})
        shown = "-" if value is None else f"{value:,.1f}"
        print(f"  {part:<12} {what:<52} {shown:>12} {unit}", flush=True)

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append({"check": name, "ok": ok, "detail": detail})
        print(f"  check {'OK  ' if ok else 'FAIL'} {name}: {detail}", flush=True)

    def value(self, what: str) -> float | None:
        for r in self.rows:
            if r["what"] == what:
                return float(r["value"]) if r["value"] is not None else None
        return None


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 1024
    pg = subprocess.run(  # the server version the stack uses
        ["bash", "-c", "ls /usr/lib/postgresql | sort -n | tail -1"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem,
        "python": platform.python_version(),
        "postgresql": pg,
        "os": platform.platform(),
    }


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


# ---------------------------------------------------------------------------------------------
# events and rows


def completion_event(account: str, points: int, at: datetime | None = None) -> dict[str, Any]:
    now = at or datetime.now(UTC)
    return CONTRACTS.new_event(
        "jifen.tasks.completion.verified.v1",
        source="/jifen/tasks",
        subject=account,
        time=now,
        data={
            "completion_id": str(uuid.uuid4()),
            "job_id": str(uuid.uuid4()),
            "account_id": account,
            "org_id": ORG,
            "community_id": "bench-grid",
            "category": "hazard_patrol",
            "points": points,
            "verified_by": "officer-li",
            "verified_at": isoformat(now),
        },
    )


async def produce(bootstrap: str, events: list[dict[str, Any]]) -> float:
    """Send prepared events to tasks.completions, keyed by account; returns the seconds taken."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, acks="all", max_batch_size=256 * 1024
    )
    await producer.start()
    try:
        t = time.perf_counter()
        for e in events:
            await producer.send("tasks.completions", orjson.dumps(e), key=e["subject"].encode())
        await producer.flush()
        return time.perf_counter() - t
    finally:
        await producer.stop()


def ledger_rows(n: int, accounts: int, tag: str) -> list[tuple[Any, ...]]:
    """N rows shaped like ledger_entry (same columns, hash-chained per account)."""
    heads: dict[str, tuple[int, int, str]] = {}
    now = datetime.now(UTC)
    rows = []
    for i in range(n):
        acct = f"{tag}-{i % accounts:05d}"
        seq, bal, prev = heads.get(acct, (0, 0, "0" * 64))
        amount = 1 + i % 37
        h = hashlib.sha256(f"{prev}|{acct}|{seq + 1}|{amount}".encode()).hexdigest()
        heads[acct] = (seq + 1, bal + amount, h)
        rows.append(
            (
                i + 1,
                acct,
                seq + 1,
                "credit",
                amount,
                bal + amount,
                ORG,
                "hazard_patrol",
                uuid.uuid4(),
                "jifen.tasks.completion.verified.v1",
                uuid.uuid4(),
                uuid.uuid4(),
                None,
                now,
                now,
                prev,
                h,
            )
        )
    return rows


# the ledger's own columns but reward_id (a reporting column the benchmark rows leave out)
COPY_COLUMNS = [c for c in LEDGER_COLUMNS if c != "reward_id"]


# ---------------------------------------------------------------------------------------------
# (1) the limit: bare COPY


async def bench_copy(stack: DevStack, rep: Report, n: int, accounts: int, batch: int) -> float:
    rows = ledger_rows(n, accounts, "copy")
    conn = await asyncpg.connect(stack.owner_dsn("points"))
    try:
        await conn.execute("DROP TABLE IF EXISTS bench_copy")
        # the ledger's own columns, constraints and indexes (LIKE does not copy its triggers)
        await conn.execute("CREATE TABLE bench_copy (LIKE ledger_entry INCLUDING ALL)")
        t = time.perf_counter()
        for i in range(0, n, batch):
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "bench_copy", records=rows[i : i + batch], columns=COPY_COLUMNS
                )
        took = time.perf_counter() - t
        await conn.execute("DROP TABLE bench_copy")
    finally:
        await conn.close()
    rate = n / took
    rep.add("1 limit", f"bare COPY of {n:,} ledger rows ({batch}/tx)", rate, "rows/s")
    return rate


# ---------------------------------------------------------------------------------------------
# (2) Jifen ingest through the broker and the real points worker


def start_worker(
    stack: DevStack, name: str, group: str, prefix: list[str] | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    full = {
        **stack.env(),
        "JIFEN_POINTS_WORKER_PORT": str(port),
        "JIFEN_POINTS_CONSUMER_GROUP": group,
    }
    log = (stack.home / "log" / f"{name}.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, *(prefix or []), "-m", "jifen.points", "worker"],
        env=full,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO_ROOT,
    )
    return proc, port


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
    stack: DevStack, rep: Report, n: int, accounts: int, rate: int, seconds: int, profile: bool
) -> float:
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
    proc, port = start_worker(stack, "ingest-worker", group, prefix=prefix if profile else [])
    conn = await asyncpg.connect(stack.owner_dsn("points"))
    db_before = await conn.fetchval("SELECT pg_database_size(current_database())")
    try:
        t0 = await wait_ready(proc, port)
        t1 = await wait_count(conn, tag, n, timeout=max(120, n / 500))
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
        proc.send_signal(2 if profile else 15)  # SIGINT lets pyinstrument write its report
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return ingest


# ---------------------------------------------------------------------------------------------
# (3) the peer: the eventsourcing library on the same PostgreSQL


def bench_peer(stack: DevStack, rep: Report, n: int, accounts: int, batch: int) -> float:
    subprocess.run(
        [
            str(stack.pg.bin_dir / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(stack.ports.pg),
            "-U",
            "postgres",
            "bench_es",
        ],
        check=True,
        capture_output=True,
    )
    code = PEER.format(n=n, accounts=accounts, batch=batch)
    env = {
        **os.environ,
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": "bench_es",
        "POSTGRES_HOST": "127.0.0.1",
        "POSTGRES_PORT": str(stack.ports.pg),
        "POSTGRES_USER": "postgres",
        "POSTGRES_PASSWORD": "",
        "POSTGRES_CREATE_TABLE": "y",
    }
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        rep.add("3 peer", "eventsourcing: failed (see notes)", None, "events/s")
        rep.notes.append("peer failed: " + out.stderr[-800:])
        return float("nan")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    rate = n / result["seconds"]
    rep.add(
        "3 peer",
        f"eventsourcing {result['version']}, {n:,} credits, save({batch} events)",
        rate,
        "events/s",
        stored=result["stored"],
    )
    rep.check("peer stored all", result["stored"] == n, f"{result['stored']:,} of {n:,} events")
    return rate


# runs in its own process: the library reads its configuration from the environment
PEER = """
import json, time, eventsourcing
from importlib.metadata import version
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

class Account(Aggregate):
    @event("Opened")
    def __init__(self, account_id: str):
        self.account_id = account_id
        self.balance = 0
    @event("Credited")
    def credit(self, amount: int, completion_id: str):
        self.balance += amount

class Ledger(Application):
    pass

app = Ledger()
n, accounts, batch = {n}, {accounts}, {batch}
aggs = {{}}
t = time.perf_counter()
pending = {{}}
count = 0
for i in range(n):
    key = i % accounts
    a = aggs.get(key)
    if a is None:
        a = aggs[key] = Account(f"peer-{{key:05d}}")
    a.credit(1 + i % 37, str(i))
    pending[key] = a
    count += 1
    if count % batch == 0:
        app.save(*pending.values())
        pending = {{}}
if pending:
    app.save(*pending.values())
took = time.perf_counter() - t
rec = app.recorder
stored = 0
with rec.datastore.get_connection() as c, c.cursor() as cur:
    cur.execute("SELECT count(*) AS n FROM " + rec.events_table_name)
    row = cur.fetchone()
    stored = (row["n"] if isinstance(row, dict) else row[0]) - len(aggs)
print(json.dumps({{"seconds": took, "stored": stored, "version": version("eventsourcing")}}))
"""


# ---------------------------------------------------------------------------------------------
# services for (4) and (5)


def start_services(stack: DevStack, profile: bool = False) -> None:
    """The six service processes (not the signals app: it would replay every benchmark event).
    ``profile``: the redeem API runs under pyinstrument (redeem-api-profile.txt)."""
    for s in SERVICES:
        subprocess.run(
            [sys.executable, "-m", f"jifen.{s}", "migrate"],
            env=stack.env(),
            check=True,
            cwd=REPO_ROOT,
            capture_output=True,
        )
    order = [(s, k) for s in SERVICES for k in ("api", "worker")]
    for s, k in order:
        if profile and (s, k) == ("redeem", "api"):
            out = stack.home / "redeem-api-profile.txt"
            log = (stack.home / "log" / "redeem-api.log").open("ab")
            cmd = [sys.executable, "-m", "pyinstrument", "-r", "text", "-o", str(out)]
            popen = subprocess.Popen(
                [*cmd, "-m", "jifen.redeem", "api"],
                env=stack.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
            )
            stack.procs["redeem-api"] = Proc("redeem-api", stack.ports.redeem, popen)
        else:
            stack.start_process(s, k)
    for s, k in order:
        stack.wait_ready(stack.procs[f"{s}-{k}"])


def auth(stack: DevStack, role: str, subject: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.token(role, subject)}"}


# (5) the HTTP edge: completions posted to the tasks API


async def bench_http(stack: DevStack, rep: Report, n: int, clients: int) -> None:
    base = stack.url("tasks")
    officer, app = auth(stack, "officer"), auth(stack, "app")
    now = datetime.now(UTC)
    run = uuid.uuid4().hex[:6]
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
        # only accounts registered with the job's community may claim and complete (not timed)
        r = await http.post(
            "/v1/communities", headers=officer, json={"id": "bench-grid", "name": "Bench grid"}
        )
        if r.status_code != 409:
            r.raise_for_status()
        accounts = [f"http-{run}-{i:05d}" for i in range(n)]

        async def report_in(part: list[str]) -> None:
            for acct in part:
                r = await http.post(
                    "/v1/communities/bench-grid/members", headers=app, json={"account_id": acct}
                )
                r.raise_for_status()

        await asyncio.gather(*[report_in(accounts[k::clients]) for k in range(clients)])
        jobs = []
        for _ in range((n + 999) // 1000):  # a job takes at most 1,000 claims
            r = await http.post(
                "/v1/jobs",
                headers=officer,
                json={
                    "community_id": "bench-grid",
                    "title": "Bench patrol",
                    "category": "hazard_patrol",
                    "points": 5,
                    "capacity": 1000,
                    "starts_at": (now - timedelta(hours=1)).isoformat(),
                    "ends_at": (now + timedelta(hours=3)).isoformat(),
                },
            )
            r.raise_for_status()
            jobs.append(r.json()["id"])
        work = [(jobs[i // 1000], accounts[i]) for i in range(n)]

        async def drive(path: str, make: Any) -> tuple[float, list[float], Counter[int]]:
            lat: list[float] = []
            codes: Counter[int] = Counter()
            queue = list(reversed(work))
            deadline = time.monotonic() + 300  # bounded in time as well as in count

            async def client() -> None:
                while queue and time.monotonic() < deadline:
                    job, acct = queue.pop()
                    t = time.perf_counter()
                    for attempt in range(4):  # a dropped connection: retried, same key
                        try:
                            r = await http.post(path.format(job=job), **make(acct))
                            break
                        except httpx.TransportError:
                            codes[0] += 1
                            if attempt == 3:
                                raise
                    lat.append(time.perf_counter() - t)
                    codes[r.status_code] += 1

            t0 = time.perf_counter()
            await asyncio.gather(*[client() for _ in range(clients)])
            return time.perf_counter() - t0, lat, codes

        took, lat, codes = await drive(
            "/v1/jobs/{job}/claims", lambda a: {"headers": app, "json": {"account_id": a}}
        )
        rep.add("5 http", f"claims posted, {clients} clients", len(lat) / took, "req/s")
        took, lat, codes = await drive(
            "/v1/jobs/{job}/completions",
            lambda a: {"headers": {**app, "Idempotency-Key": f"k-{a}"}, "json": {"account_id": a}},
        )
        rep.add(
            "5 http",
            f"completions posted, {clients} clients, {n:,} requests",
            len(lat) / took,
            "req/s",
            codes=dict(codes),
        )
        rep.add("5 http", "completion POST p50", pct(lat, 0.5) * 1000, "ms")
        rep.add("5 http", "completion POST p99", pct(lat, 0.99) * 1000, "ms")
        rep.check(
            "completions accepted",
            codes.get(201, 0) + codes.get(200, 0) == n,
            f"status codes {dict(codes)}",
        )
        # the floor of this edge: the same client against /healthz (no auth, no database)
        t0 = time.perf_counter()
        hl: list[float] = []

        async def ping(k: int) -> None:
            for _ in range(k):
                t = time.perf_counter()
                await http.get("/healthz")
                hl.append(time.perf_counter() - t)

        await asyncio.gather(*[ping(n // clients) for _ in range(clients)])
        rep.add(
            "5 http",
            "reference: GET /healthz, same client",
            len(hl) / (time.perf_counter() - t0),
            "req/s",
        )


# (4) redemptions through the real redeem API, against a bare locked transaction


async def bench_redeem(stack: DevStack, rep: Report, requests: int, clients: int) -> None:
    run = uuid.uuid4().hex[:4]
    accounts = [f"red{run}-{i}" for i in range(5)]
    # scarce: stock is worth 1,350 points per 600 requests, the accounts hold 1,500 between them,
    # and the requests ask for about 10,500: both stock and points run out
    points_each = requests // 2
    await produce(stack.broker.bootstrap, [completion_event(a, points_each) for a in accounts])
    admin = auth(stack, "admin")
    base = stack.url("redeem")
    stocks = {"cheap": (10, requests // 10), "dear": (25, requests // 20)}
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        rewards = {}
        for name, (price, stock) in stocks.items():
            r = await http.post(
                "/v1/rewards",
                headers=admin,
                json={
                    "name_zh": "奖品",
                    "name_en": name,
                    "merchant_id": f"shop-{run}",
                    "points": price,
                    "stock": stock,
                },
            )
            r.raise_for_status()
            rewards[name] = r.json()["id"]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            got = [
                (await http.get(f"/v1/wallets/{a}", headers=auth(stack, "volunteer", a))).json()
                for a in accounts
            ]
            if all(w.get("spendable") == points_each for w in got):
                break
            await asyncio.sleep(0.3)
        else:
            raise TimeoutError(f"wallets never learnt their credits: {got}")

    plan = [
        (accounts[i % 5], "cheap" if i % 2 else "dear", f"b-{run}-{i}") for i in range(requests)
    ]
    tokens = {a: auth(stack, "volunteer", a) for a in accounts}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    lat: list[float] = []
    transport_errors = [0]
    results: list[tuple[str, str, int, str]] = []
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as http:

        async def one(acct: str, name: str, key: str) -> None:
            t = time.perf_counter()
            for attempt in range(4):  # a dropped connection is retried with the same key
                try:
                    r = await http.post(
                        "/v1/redemptions",
                        json={"reward_id": rewards[name]},
                        headers={**tokens[acct], "Idempotency-Key": key},
                    )
                    break
                except httpx.TransportError:
                    transport_errors[0] += 1
                    if attempt == 3:
                        raise
            lat.append(time.perf_counter() - t)
            # a retry whose first try had landed answers 200 with the original: accepted once
            code = 201 if r.status_code in (200, 201) else r.status_code
            results.append((acct, name, code, r.json().get("reason", "")))

        sem = asyncio.Semaphore(clients)

        async def bounded(*a: str) -> None:
            async with sem:
                await one(*a)

        t0 = time.perf_counter()
        await asyncio.gather(*[bounded(*p) for p in plan])
        took = time.perf_counter() - t0
        stock_after = {
            x["id"]: x["stock"]
            for x in (await http.get("/v1/rewards", headers=tokens[accounts[0]])).json()
        }
        wallets = {
            a: (await http.get(f"/v1/wallets/{a}", headers=tokens[a])).json() for a in accounts
        }
    accepted = [(a, nm) for a, nm, code, _ in results if code == 201]
    reasons = Counter(reason for *_, code, reason in results if code != 201)
    rep.add(
        "4 redeem",
        f"API: {requests} redemptions, {clients} clients, 5 accounts",
        len(accepted) / took,
        "accepted/s",
        attempts_per_s=requests / took,
        accepted=len(accepted),
        refused=dict(reasons),
        transport_errors_retried=transport_errors[0],
    )
    rep.add("4 redeem", "API: attempts decided", requests / took, "req/s")
    if transport_errors[0]:
        rep.notes.append(
            f"redeem: {transport_errors[0]} dropped connections, retried with the same key"
        )
    rep.add("4 redeem", "API: redemption POST p99", pct(lat, 0.99) * 1000, "ms")
    _redeem_checks(
        rep,
        "API",
        accepted,
        stocks,
        points_each,
        accounts,
        {n: stock_after.get(rewards[n]) for n in stocks},
        {a: w.get("spendable") for a, w in wallets.items()},
    )
    await bench_locked(stack, rep, plan, stocks, points_each, accounts, clients)


def _redeem_checks(
    rep: Report,
    who: str,
    accepted: list[tuple[str, str]],
    stocks: dict[str, tuple[int, int]],
    points_each: int,
    accounts: list[str],
    stock_after: dict[str, Any],
    spendable: dict[str, Any],
) -> None:
    taken = Counter(nm for _, nm in accepted)
    spent = Counter[str]()
    for a, nm in accepted:
        spent[a] += stocks[nm][0]
    oversold = {n: taken[n] - s for n, (_, s) in stocks.items() if taken[n] > s}
    overdrawn = {a: points_each - spent[a] for a in accounts if spent[a] > points_each}
    rep.check(
        f"{who}: no oversell",
        not oversold and all(stock_after[n] == s - taken[n] for n, (_, s) in stocks.items()),
        f"taken {dict(taken)} of stock {dict((n, s) for n, (_, s) in stocks.items())}, "
        f"left {stock_after}",
    )
    rep.check(
        f"{who}: no overdraft",
        not overdrawn and all(spendable[a] == points_each - spent[a] for a in accounts),
        f"spent {dict(spent)} of {points_each} each; spendable after {spendable}",
    )


async def bench_locked(
    stack: DevStack,
    rep: Report,
    plan: list[tuple[str, str, str]],
    stocks: dict[str, tuple[int, int]],
    points_each: int,
    accounts: list[str],
    clients: int,
) -> None:
    """The reference: a bare locked transaction doing the same writes (lock wallet and stock,
    check, update both, insert the redemption), same plan, same concurrency."""
    subprocess.run(  # noqa: ASYNC221
        [
            str(stack.pg.bin_dir / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(stack.ports.pg),
            "-U",
            "postgres",
            "bench_locked",
        ],
        check=True,
        capture_output=True,
    )
    dsn = stack.pg.dsn("bench_locked")
    conn = await asyncpg.connect(dsn)
    await conn.execute("""
        CREATE TABLE wallet (account_id text PRIMARY KEY, balance bigint NOT NULL);
        CREATE TABLE reward (name text PRIMARY KEY, price int NOT NULL, stock int NOT NULL);
        CREATE TABLE redemption (id uuid PRIMARY KEY, key text UNIQUE, account_id text,
                                 reward text, points int, created_at timestamptz DEFAULT now());
    """)
    await conn.executemany(
        "INSERT INTO wallet VALUES ($1, $2)", [(a, points_each) for a in accounts]
    )
    await conn.executemany(
        "INSERT INTO reward VALUES ($1, $2, $3)", [(n, p, s) for n, (p, s) in stocks.items()]
    )
    await conn.close()
    # as many connections as the redeem API's pool would open at most
    pool = await asyncpg.create_pool(dsn, min_size=10, max_size=10)
    accepted: list[tuple[str, str]] = []
    lat: list[float] = []

    async def one(acct: str, name: str, key: str) -> None:
        t = time.perf_counter()
        async with pool.acquire() as c, c.transaction():
            bal = await c.fetchval(
                "SELECT balance FROM wallet WHERE account_id=$1 FOR UPDATE", acct
            )
            price, stock = await c.fetchrow(
                "SELECT price, stock FROM reward WHERE name=$1 FOR UPDATE", name
            )
            if bal >= price and stock > 0:
                await c.execute(
                    "UPDATE wallet SET balance=balance-$2 WHERE account_id=$1", acct, price
                )
                await c.execute("UPDATE reward SET stock=stock-1 WHERE name=$1", name)
                await c.execute(
                    "INSERT INTO redemption (id, key, account_id, reward, points)"
                    " VALUES ($1, $2, $3, $4, $5)",
                    uuid.uuid4(),
                    key,
                    acct,
                    name,
                    price,
                )
                accepted.append((acct, name))
        lat.append(time.perf_counter() - t)

    sem = asyncio.Semaphore(clients)

    async def bounded(*a: str) -> None:
        async with sem:
            await one(*a)

    t0 = time.perf_counter()
    await asyncio.gather(*[bounded(*p) for p in plan])
    took = time.perf_counter() - t0
    async with pool.acquire() as c:
        left = {r["name"]: r["stock"] for r in await c.fetch("SELECT name, stock FROM reward")}
        bal = {r["account_id"]: r["balance"] for r in await c.fetch("SELECT * FROM wallet")}
    await pool.close()
    rep.add(
        "4 redeem",
        "reference: bare locked tx, same plan and clients",
        len(accepted) / took,
        "accepted/s",
        attempts_per_s=len(plan) / took,
    )
    rep.add("4 redeem", "reference: bare locked tx p99", pct(lat, 0.99) * 1000, "ms")
    _redeem_checks(rep, "bare tx", accepted, stocks, points_each, accounts, left, bal)


# ---------------------------------------------------------------------------------------------
# (6) the audit verifier


def bench_audit(home: Path, rep: Report, n: int) -> None:
    from bench.audit import bench_audit as run_audit

    try:
        run_audit(home, rep, n, cache=REPO_ROOT / "results" / ".audit-cache")
    except Exception as exc:  # the verifier is someone else's work in progress
        rep.add("6 audit", "not done: " + type(exc).__name__, None, "")
        rep.notes.append(f"audit part not done: {exc!r}")


# ---------------------------------------------------------------------------------------------


def ratios(rep: Report) -> None:
    limit = next((r for r in rep.rows if r["part"] == "1 limit"), None)
    copy = limit["value"] if limit else None
    ingest = next((r for r in rep.rows if r["what"].startswith("Jifen ingest")), None)
    peer = next((r for r in rep.rows if r["part"] == "3 peer"), None)
    if copy and ingest:
        v = ingest["value"] / copy
        rep.add(
            "ratio", "Jifen ingest / bare COPY (target ≥ 0.5)", v, "×", target=0.5, met=v >= 0.5
        )
    if ingest and peer and peer["value"]:
        v = ingest["value"] / peer["value"]
        rep.add("ratio", "Jifen ingest / eventsourcing (target ≥ 3)", v, "×", target=3, met=v >= 3)
    p99 = next((r["value"] for r in rep.rows if "ledger tx, p99" in r["what"]), None)
    if p99 is not None:
        rep.add("ratio", "latency p99 / 1 s target", p99 / 1000, "×", target=1, met=p99 < 1000)
    verify = next((r for r in rep.rows if r["what"] == "verify rate"), None)
    sha = next((r for r in rep.rows if r["what"].startswith("reference: bare SHA-256")), None)
    if verify and sha:
        rep.add(
            "ratio",
            "audit verify / bare SHA-256 of the export, entries/s",
            verify["value"] / sha["value"],
            "×",
        )
    edge = next((r for r in rep.rows if r["what"].startswith("completions posted")), None)
    health = next((r for r in rep.rows if r["what"].startswith("reference: GET /healthz")), None)
    if edge and health:
        rep.add(
            "ratio", "completion POSTs / GET /healthz, req/s", edge["value"] / health["value"], "×"
        )
    api = next(
        (r for r in rep.rows if r["what"].startswith("API: ") and r["unit"] == "accepted/s"), None
    )
    bare = next((r for r in rep.rows if r["what"].startswith("reference: bare locked tx,")), None)
    if api and bare and bare["value"]:
        v = api["attempts_per_s"] / bare["attempts_per_s"]
        rep.add(
            "ratio",
            "redeem API / bare locked tx, decisions/s (target ≥ 1)",
            v,
            "×",
            target=1,
            met=v >= 1,
        )


def chart(rep: Report, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = [
        (r["what"], r["value"])
        for r in rep.rows
        if r["unit"] in ("rows/s", "events/s", "accepted/s", "req/s", "entries/s") and r["value"]
    ]
    ratio_rows = [(r["what"], r["value"]) for r in rep.rows if r["part"] == "ratio"]
    fig, (a, b) = plt.subplots(
        2,
        1,
        figsize=(11, 2 + 0.45 * (len(pairs) + len(ratio_rows))),
        gridspec_kw={"height_ratios": [len(pairs) or 1, len(ratio_rows) or 1]},
    )
    a.barh([w for w, _ in pairs][::-1], [v for _, v in pairs][::-1], color="#3a7")
    a.set_xscale("log")
    a.set_title(f"Jifen bench ({rep.size}, {rep.started}, {rep.machine['cores']} cores)")
    a.set_xlabel("per second (log scale)")
    b.barh([w for w, _ in ratio_rows][::-1], [v for _, v in ratio_rows][::-1], color="#37a")
    for w, v in ratio_rows:
        b.text(v, w, f" {v:.2f}", va="center")
    b.set_xlabel("ratio")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


async def main_async(args: argparse.Namespace) -> Report:
    size = dict(SIZES[args.size])
    if args.n:
        size["n"] = args.n
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    rep = Report(
        size=args.size if not args.n else f"{args.size}, n={args.n}",
        started=stamp,
        machine=machine(),
    )
    print(f"jifen bench: size {rep.size}, {rep.machine['cores']} cores, {rep.machine['cpu']}")
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
                await bench_http(stack, rep, size["http"], size["http_clients"])
            if "4" in only:
                await bench_redeem(stack, rep, size["redeem"], size["clients"])
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
        if "1" in only:
            await bench_copy(stack, rep, size["n"], size["accounts"], 2000)
        if "2" in only:
            await bench_ingest(
                stack, rep, size["n"], size["accounts"], size["rate"], size["seconds"], args.profile
            )
        if "3" in only:
            bench_peer(stack, rep, size["n"], size["accounts"], 2000)
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
    (out / "bench.json").write_text(json.dumps(rep.__dict__, indent=2, default=str) + "\n")
    with contextlib.suppress(Exception):
        chart(rep, out / "bench.png")
    print_table(rep)
    print(f"\nwritten: {out}/bench.json, bench.png")
    return rep


def print_table(rep: Report) -> None:
    print(f"\n{'part':<10} {'measure':<58} {'value':>12}  unit")
    print("-" * 92)
    for r in rep.rows:
        v = (
            "-"
            if r["value"] is None
            else f"{r['value']:,.2f}"
            if r["unit"] == "×"
            else f"{r['value']:,.0f}"
        )
        flag = ""
        if "met" in r:
            flag = "  target met" if r["met"] else "  TARGET MISSED"
        print(f"{r['part']:<10} {r['what']:<58} {v:>12}  {r['unit']}{flag}")
    bad = [c for c in rep.checks if not c["ok"]]
    print(
        f"\nchecks: {len(rep.checks) - len(bad)} of {len(rep.checks)} passed"
        + ("" if not bad else "; FAILED: " + ", ".join(c["check"] for c in bad))
    )
    for n in rep.notes:
        print("note:", n)


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--size", choices=sorted(SIZES), default="quick")
    p.add_argument("--n", type=int, default=0, help="ingest events (overrides the size's n)")
    p.add_argument("--only", default="", help="comma-separated parts to run, e.g. 1,2,3")
    p.add_argument(
        "--profile",
        action="store_true",
        help="run the ingest worker and the redeem API under pyinstrument",
    )
    args = p.parse_args()
    rep = asyncio.run(main_async(args))
    _ = statistics  # (kept for ad-hoc use from a REPL)
    return 1 if any(not c["ok"] for c in rep.checks) else 0
