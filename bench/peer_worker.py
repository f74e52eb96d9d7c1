"""The ``eventsourcing`` peer, run in a process of its own (the library reads its configuration
from the environment): one aggregate per account, N credits, ``app.save(*aggregates)`` every
``batch`` events, aggregates kept in memory (no reloads). Fed two ways:

- ``--feed memory``: credits generated in the process (its best case: no broker, no decoding);
- ``--feed kafka``: the completion events of part 2, read from tasks.completions by a plain
  aiokafka consumer (fresh group, from the earliest offset, JSON decoded, only the run's tag),
  timed from the partitions' assignment to the last save, as Jifen's worker is from /readyz.

Prints one JSON line: seconds, cpu_s (this process's CPU in the timed window: its start-up and
imports left out), stored, version."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from importlib.metadata import version
from typing import Any


def _app() -> tuple[Any, Any]:
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event

    class Account(Aggregate):  # type: ignore[misc,unused-ignore]
        @event("Opened")  # type: ignore[untyped-decorator,unused-ignore]
        def __init__(self, account_id: str):
            self.account_id = account_id
            self.balance = 0

        @event("Credited")  # type: ignore[untyped-decorator,unused-ignore]
        def credit(self, amount: int, completion_id: str) -> None:
            self.balance += amount

    class Ledger(Application):  # type: ignore[misc,unused-ignore]
        pass

    return Ledger(), Account


def _stored(app: Any, aggregates: int) -> int:
    rec = app.recorder
    with rec.datastore.get_connection() as c, c.cursor() as cur:
        cur.execute("SELECT count(*) AS n FROM " + rec.events_table_name)  # noqa: S608
        row = cur.fetchone()
        return int(row["n"] if isinstance(row, dict) else row[0]) - aggregates


def from_memory(n: int, accounts: int, batch: int) -> dict[str, Any]:
    app, account = _app()
    aggs: dict[int, Any] = {}
    pending: dict[int, Any] = {}
    t, c = time.perf_counter(), time.process_time()
    for i in range(n):
        key = i % accounts
        a = aggs.get(key)
        if a is None:
            a = aggs[key] = account(f"peer-{key:05d}")
        a.credit(1 + i % 37, str(i))
        pending[key] = a
        if (i + 1) % batch == 0:
            app.save(*pending.values())
            pending = {}
    if pending:
        app.save(*pending.values())
    took, cpu = time.perf_counter() - t, time.process_time() - c
    return {"seconds": took, "cpu_s": cpu, "stored": _stored(app, len(aggs))}


async def from_kafka(bootstrap: str, topic: str, tag: str, n: int, batch: int) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer

    app, account = _app()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id="bench-peer-" + uuid.uuid4().hex[:6],
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        while not consumer.assignment():  # partitions assigned: the clock starts
            await asyncio.sleep(0.01)
        t, c = time.perf_counter(), time.process_time()
        aggs: dict[str, Any] = {}
        pending: dict[str, Any] = {}
        done = since = 0
        prefix = tag + "-"
        while done < n:
            got = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in got.values():
                for r in records:
                    e = json.loads(r.value)
                    acct = e.get("subject") or ""
                    if not acct.startswith(prefix):
                        continue
                    a = aggs.get(acct)
                    if a is None:
                        a = aggs[acct] = account(acct)
                    d = e["data"]
                    a.credit(int(d["points"]), d["completion_id"])
                    pending[acct] = a
                    done += 1
                    since += 1
                    if since >= batch:
                        app.save(*pending.values())
                        pending, since = {}, 0
            if time.perf_counter() - t > 600:
                break
        if pending:
            app.save(*pending.values())
        took, cpu = time.perf_counter() - t, time.process_time() - c
        await consumer.commit()
    finally:
        await consumer.stop()
    return {"seconds": took, "cpu_s": cpu, "stored": _stored(app, len(aggs))}


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.peer_worker")
    p.add_argument("--feed", choices=["memory", "kafka"], required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--accounts", type=int, default=2000)
    p.add_argument("--batch", type=int, default=2000)
    p.add_argument("--bootstrap", default="")
    p.add_argument("--topic", default="tasks.completions")
    p.add_argument("--tag", default="")
    a = p.parse_args()
    if a.feed == "memory":
        out = from_memory(a.n, a.accounts, a.batch)
    else:
        out = asyncio.run(from_kafka(a.bootstrap, a.topic, a.tag, a.n, a.batch))
    out["version"] = version("eventsourcing")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
