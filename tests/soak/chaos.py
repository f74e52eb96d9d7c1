"""The chaos loop, and what keeps count through it.

- ``Chaos``: at random intervals (seeded) kills a worker with SIGKILL and starts it again, or
  kills the broker (Apache Kafka: SIGKILL, a crash, then a start on its kept log; on a
  three-node cluster one node, drawn by the seed; the opt-in Tansu: a restart, after which it
  has forgotten every topic, record and committed offset), or restarts PostgreSQL (fast
  shutdown: every connection dropped). A watchdog restarts any process that exits without
  being told to, and records it.
- ``Meter``: scrapes every worker's /metrics every two seconds and sums each counter across
  the worker's restarts (a killed process's counters start again from zero; it is scraped
  once more just before it is killed, so only the increments of those last moments are lost:
  the sums are lower bounds).
- ``DeadLetters``: reads the ``*.dlq`` topics from the beginning before each broker restart
  (Tansu would forget them) and at the end, so each dead letter is counted once, with its
  reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client.parser import text_string_to_metric_families

from jifen.devtools.devstack import DevStack, Proc
from jifen.devtools.stack import KafkaBroker, KafkaCluster
from jifen.kernel import topics

WORKERS = ("points-worker", "tasks-worker", "redeem-worker")
FAULTS = {
    "points-worker": "SIGKILL + restart of the points worker (ledger consumer, its relay)",
    "tasks-worker": "SIGKILL + restart of the tasks worker (outbox relay, acks, republishing)",
    "redeem-worker": "SIGKILL + restart of the redeem worker (outbox relay, wallets, resending)",
    "broker": "broker SIGKILL + start (Kafka keeps its log; Tansu forgets every topic and offset)",
    "postgres": "PostgreSQL restart (fast shutdown: every connection dropped)",
}


async def wait_ready(proc: Proc, timeout: float) -> float:
    """Seconds until the process's /readyz answers 200 (async: a teardown never waits on it)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with httpx.AsyncClient(timeout=2) as http:
        while loop.time() - start < timeout:
            if proc.popen.poll() is not None:
                raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                r = await http.get(f"http://127.0.0.1:{proc.port}/readyz")
                if r.status_code == 200:
                    return loop.time() - start
            await asyncio.sleep(0.2)
    raise TimeoutError(f"{proc.name} not ready after {timeout:.0f} s")


class Meter:
    def __init__(self, stack: DevStack, names: tuple[str, ...] = WORKERS) -> None:
        self.stack = stack
        self.names = names
        self.totals: dict[tuple[str, str, tuple[tuple[str, str], ...]], float] = defaultdict(float)
        self.last: dict[tuple[int, str, tuple[tuple[str, str], ...]], float] = {}
        self.http = httpx.AsyncClient(timeout=3)

    async def scrape(self, name: str) -> None:
        proc = self.stack.procs.get(name)
        if proc is None or proc.popen.poll() is not None:
            return
        pid = proc.popen.pid
        try:
            r = await self.http.get(f"http://127.0.0.1:{proc.port}/metrics")
        except httpx.HTTPError:
            return
        if r.status_code != 200:
            return
        for family in text_string_to_metric_families(r.text):
            if family.type != "counter":
                continue
            for s in family.samples:
                if not s.name.endswith("_total"):
                    continue
                labels = tuple(sorted(s.labels.items()))
                seen = self.last.get((pid, s.name, labels), 0.0)
                self.totals[(name, s.name, labels)] += max(0.0, s.value - seen)
                self.last[(pid, s.name, labels)] = s.value

    async def scrape_all(self) -> None:
        await asyncio.gather(*(self.scrape(n) for n in self.names))

    async def loop(self, every: float = 2.0) -> None:
        while True:
            await self.scrape_all()
            await asyncio.sleep(every)

    def total(self, metric: str, proc: str | None = None, **labels: str) -> int:
        return int(
            sum(
                v
                for (p, name, ls), v in self.totals.items()
                if name == metric
                and (proc is None or p == proc)
                and all(dict(ls).get(k) == want for k, want in labels.items())
            )
        )

    def by_label(self, metric: str, label: str, proc: str | None = None) -> Counter[str]:
        out: Counter[str] = Counter()
        for (p, name, ls), v in self.totals.items():
            if name == metric and (proc is None or p == proc):
                out[dict(ls).get(label, "")] += int(v)
        return +out

    async def close(self) -> None:
        await self.http.aclose()


class DeadLetters:
    def __init__(self) -> None:
        self.records: dict[tuple[int, str, int, int], dict[str, Any]] = {}
        self.epoch = 0  # one per Tansu lifetime: its offsets start again at 0 after a restart
        self.failed_reads = 0

    def next_epoch(self) -> None:
        self.epoch += 1

    async def collect(self, bootstrap: str) -> None:
        try:
            await asyncio.wait_for(self._read(bootstrap), 40)
        except (TimeoutError, KafkaError, OSError):
            self.failed_reads += 1

    async def _read(self, bootstrap: str) -> None:
        names = [topics.dlq(t) for t in topics.ALL]
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=10_000,
            fetch_max_wait_ms=100,
        )
        await consumer.start()
        try:
            existing = await consumer.topics()
            tps = [
                TopicPartition(t, p)
                for t in names
                if t in existing
                for p in sorted(consumer.partitions_for_topic(t) or ())
            ]
            if not tps:
                return
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            empty = 0
            while empty < 2:  # not end offsets: Tansu's are wrong; read until quiet
                batch = await consumer.getmany(timeout_ms=1000, max_records=2000)
                if not any(batch.values()):
                    empty += 1
                    continue
                empty = 0
                for tp, records in batch.items():
                    for rec in records:
                        try:
                            body = orjson.loads(rec.value or b"{}")
                        except orjson.JSONDecodeError:
                            body = {"reason": "(unreadable dead letter)"}
                        self.records[(self.epoch, tp.topic, tp.partition, rec.offset)] = body
        finally:
            await consumer.stop()

    def reasons(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for (_, topic, _, _), body in self.records.items():
            out[f"{topic}: {_short(str(body.get('reason', '?')))}"] += 1
        return out


def _short(reason: str) -> str:
    """A reason without the ids in it, so that like reasons count together."""
    words = []
    for w in reason.split():
        bare = w.strip(".,:;()'\"")
        if len(bare) >= 32 and bare.count("-") == 4:
            w = w.replace(bare, "<id>")
        elif bare.isdigit() and len(bare) > 3:
            w = w.replace(bare, "<n>")
        words.append(w)
    text = " ".join(words)
    return text if len(text) <= 140 else text[:137] + "…"


def clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m:d}:{s:02d}"


def last_error(log: Path) -> str:
    """The last error a process logged (its JSON lines' ``msg``), to say why it exited."""
    try:
        with log.open("rb") as f:
            f.seek(max(0, log.stat().st_size - 256 * 1024))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return "no log"
    for line in reversed(lines):  # the loop that died says so; prefer that line
        if "background loop" in line and "died" in line:
            with contextlib.suppress(orjson.JSONDecodeError):
                return str(orjson.loads(line).get("msg", ""))[:200]
    for line in reversed(lines):
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            if "Error" in line or "error" in line:
                return line.strip()[:200]
            continue
        if isinstance(doc, dict) and doc.get("level") in ("error", "critical"):
            return str(doc.get("msg", ""))[:200]
    return "no error logged"


@dataclass
class Fault:
    at: float  # seconds since the soak began
    kind: str
    down: float  # seconds it stayed down
    recovered: float | None  # seconds from the restart until ready again (None: not seen)
    note: str = ""


class Chaos:
    def __init__(
        self,
        stack: DevStack,
        *,
        seed: int,
        kinds: list[str],
        interval: tuple[float, float],
        meter: Meter,
        dead_letters: DeadLetters,
        began: float,
        say: Callable[[str], None],
    ) -> None:
        self.stack = stack
        self.rng = random.Random(seed)
        self.kinds = kinds
        self.interval = interval
        self.meter = meter
        self.dead_letters = dead_letters
        self.began = began
        self.say = say
        self.faults: list[Fault] = []
        self.unexpected: list[str] = []
        self.lock = asyncio.Lock()  # the chaos and the watchdog never touch a process at once

    def elapsed(self) -> float:
        return time.monotonic() - self.began

    def counts(self) -> Counter[str]:
        return Counter(f.kind for f in self.faults)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.rng.uniform(*self.interval))
                return
            kind = self.rng.choice(self.kinds)
            async with self.lock:
                try:
                    fault = await self.inject(kind)
                except Exception as exc:  # a fault that could not be injected: say so, go on
                    fault = Fault(self.elapsed(), kind, 0.0, None, f"failed: {exc!r}"[:200])
                self.faults.append(fault)

    async def inject(self, kind: str) -> Fault:
        at = self.elapsed()
        down = self.rng.uniform(0.0, 3.0)
        recovered: float | None = None
        note = ""
        if kind in WORKERS:
            service = kind.split("-")[0]
            await self.meter.scrape(kind)  # its counters as late as possible before the kill
            await asyncio.to_thread(self.stack.stop_process, kind, signal.SIGKILL)
            await asyncio.sleep(down)
            proc = self.stack.start_process(service, "worker")
            try:
                recovered = await wait_ready(proc, 180)
            except (TimeoutError, RuntimeError) as exc:
                note = str(exc)
        elif kind == "broker":
            broker = self.stack.broker
            restart: Callable[[], None]
            await self.dead_letters.collect(broker.bootstrap)
            if isinstance(broker, KafkaCluster):  # one node crashes; the others carry on
                node = self.rng.choice(broker.nodes)
                await asyncio.to_thread(node.kill)
                note = f"node {node.node_id}"
                restart = node.start
            elif isinstance(broker, KafkaBroker):  # a crash: no controlled shutdown
                await asyncio.to_thread(broker.kill)
                restart = broker.start
            else:  # Tansu: a restart forgets everything, dead letters included
                await asyncio.to_thread(broker.stop)
                self.dead_letters.next_epoch()
                restart = broker.start
            await asyncio.sleep(down)
            t = time.monotonic()
            await asyncio.to_thread(restart)
            recovered = time.monotonic() - t
        elif kind == "postgres":
            down = self.rng.uniform(0.0, 2.0)
            await asyncio.to_thread(self.stack.pg.stop)
            await asyncio.sleep(down)
            t = time.monotonic()
            await asyncio.to_thread(self.stack.pg.start)
            recovered = time.monotonic() - t
        else:
            raise ValueError(f"unknown fault {kind!r}")
        return Fault(at, kind, down, recovered, note)

    async def watch(self) -> None:
        """Restart whatever exits without being killed by the chaos (and remember it)."""
        while True:
            await asyncio.sleep(1.0)
            async with self.lock:
                for name, proc in list(self.stack.procs.items()):
                    code = proc.popen.poll()
                    if code is None:
                        continue
                    why = last_error(self.stack.home / "log" / f"{name}.log")
                    self.unexpected.append(
                        f"{name} exited with {code} at {clock(self.elapsed())} ({why})"
                    )
                    self.say(f"  ! {name} exited with {code} by itself ({why}); restarting it")
                    self.stack.stop_process(name)
                    service, process_kind = name.split("-", 1)
                    with contextlib.suppress(RuntimeError):
                        self.stack.start_process(service, process_kind)
