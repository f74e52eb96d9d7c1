"""Driving HTTP parts with wrk (Debian's ``wrk``) and bench/wrk/plan.lua.

A plan is a list of requests written one a line (method, path, bearer token, JSON body); the
Lua script sends each line once (or cycles), a fresh Idempotency-Key on every request, in a
closed loop (``rate=0``: each connection sends as soon as its answer is in) or paced to a fixed
total rate (open loop by ``delay()``, see the script for its coordinated-omission caveat), and
prints one ``BENCH-JSON`` line that ``parse_output`` reads. The writer and the parser are pure
(tests/unit/bench/test_wrk.py)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).parent / "wrk" / "plan.lua"
MARK = "BENCH-JSON "


@dataclass(frozen=True)
class Line:
    method: str
    path: str
    token: str = ""
    body: Any = None  # JSON-able, or None


def plan_text(lines: Iterable[Line]) -> str:
    out = []
    for ln in lines:
        body = "-" if ln.body is None else json.dumps(ln.body, separators=(",", ":"))
        for field in (ln.method, ln.path, ln.token, body):
            if "\t" in field or "\n" in field:
                raise ValueError(f"a tab or newline in a plan field: {field!r}")
        out.append(f"{ln.method}\t{ln.path}\t{ln.token or '-'}\t{body}\n")
    return "".join(out)


@dataclass
class WrkResult:
    sent: int
    responses: int
    seconds: float  # first send to last answer, from the script's monotonic clock
    statuses: dict[int, int]
    errors: dict[str, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    late: int  # open loop: sends that went after their slot (all connections were busy)
    late_mean_ms: float
    late_max_ms: float

    @property
    def rate(self) -> float:
        return self.responses / self.seconds if self.seconds > 0 else float("nan")

    def count(self, *codes: int) -> int:
        return sum(self.statuses.get(c, 0) for c in codes)


def parse_output(text: str) -> WrkResult:
    """The script's BENCH-JSON line from wrk's stdout (wrk's own summary around it is ignored)."""
    line = next((ln for ln in text.splitlines() if ln.startswith(MARK)), None)
    if line is None:
        raise ValueError("no BENCH-JSON line in wrk's output:\n" + text[-2000:])
    d = json.loads(line[len(MARK) :])
    lat = d["latency_us"]
    late = int(d.get("late", 0))
    return WrkResult(
        sent=int(d["sent"]),
        responses=int(d["responses"]),
        seconds=float(d["span_us"]) / 1e6,
        statuses={int(k): int(v) for k, v in d["statuses"].items()},
        errors={k: int(v) for k, v in d["errors"].items()},
        p50_ms=lat["p50"] / 1000,
        p90_ms=lat["p90"] / 1000,
        p99_ms=lat["p99"] / 1000,
        p999_ms=lat["p999"] / 1000,
        max_ms=lat["max"] / 1000,
        late=late,
        late_mean_ms=(float(d.get("late_us_sum", 0)) / late / 1000) if late else 0.0,
        late_max_ms=float(d.get("late_us_max", 0)) / 1000,
    )


def available() -> bool:
    return shutil.which("wrk") is not None


def command(
    url: str,
    plan: Path,
    *,
    connections: int,
    threads: int,
    seconds: int,
    key_prefix: str,
    mode: str = "once",
    rate: float = 0,
    done_prefix: str = "",
    timeout_s: int = 30,
) -> list[str]:
    threads = max(1, min(threads, connections))
    return [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        f"--timeout={timeout_s}s",
        "--latency",
        "-s",
        str(SCRIPT),
        url,
        "--",
        str(plan),
        key_prefix,
        str(threads),
        mode,
        f"{rate:g}",
        done_prefix,
    ]


def run(
    url: str,
    lines: list[Line],
    *,
    connections: int,
    threads: int = 2,
    seconds: int = 60,
    key_prefix: str,
    rate: float = 0,
    on_start: Callable[[], None] | None = None,
) -> WrkResult:
    """Send every line once (at most ``seconds``); the run ends as soon as every thread has
    its last answer (the script says so in a file, and wrk's SIGINT ends it early)."""
    threads = max(1, min(threads, connections, len(lines) or 1))
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        plan = Path(tmp) / "plan.tsv"
        plan.write_text(plan_text(lines))
        done = str(Path(tmp) / "done-")
        cmd = command(
            url,
            plan,
            connections=connections,
            threads=threads,
            seconds=seconds,
            key_prefix=key_prefix,
            rate=rate,
            done_prefix=done,
        )
        if on_start is not None:
            on_start()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + seconds + 30
        while proc.poll() is None and time.monotonic() < deadline:
            if all(Path(f"{done}{k}").exists() for k in range(threads)):
                proc.send_signal(signal.SIGINT)  # wrk prints its summary and exits
                break
            time.sleep(0.05)
        out, err = proc.communicate(timeout=60)
        if proc.returncode not in (0, -signal.SIGINT):
            raise RuntimeError(f"wrk exited {proc.returncode}: {err[-1000:]}")
        return parse_output(out)
