"""Part 3, the peer: the ``eventsourcing`` library crediting accounts on the same PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from bench.report import Report
from jifen.devtools.devstack import DevStack


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
