"""CPU per operation of each process a part runs, from /proc: the stack's own processes (by the
name the dev stack gave them, with their descendants), PostgreSQL (the postmaster and all its
children), the broker's JVM, and the load generator (this process and the children it reaped,
wrk among them); and the machine's load during the part (/proc/loadavg, /proc/stat's idle share).

The parsers are pure (tests/unit/bench/test_cpu.py); ``Meter`` reads /proc around a part.
Discovery is generic: a process the stack starts under a new name shows up as its own role."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
LOAD_GENERATOR = "load generator"


@dataclass(frozen=True)
class Stat:
    pid: int
    comm: str
    ppid: int
    utime: int  # clock ticks
    stime: int
    cutime: int  # reaped children's ticks
    cstime: int

    @property
    def own(self) -> int:
        return self.utime + self.stime

    @property
    def reaped(self) -> int:
        return self.cutime + self.cstime


def parse_stat(text: str) -> Stat:
    """One /proc/<pid>/stat line. The command name is in parentheses and may hold spaces or
    parentheses itself, so the fields are counted from the last ')'."""
    lpar, rpar = text.index("("), text.rindex(")")
    pid = int(text[:lpar].strip())
    rest = text[rpar + 2 :].split()
    # rest[0] is field 3 (state); utime is field 14, so rest[11]
    return Stat(
        pid=pid,
        comm=text[lpar + 1 : rpar],
        ppid=int(rest[1]),
        utime=int(rest[11]),
        stime=int(rest[12]),
        cutime=int(rest[13]),
        cstime=int(rest[14]),
    )


def parse_cpu_line(text: str) -> tuple[int, int]:
    """(idle ticks incl. iowait, total ticks) from /proc/stat's first 'cpu' line."""
    for line in text.splitlines():
        if line.startswith("cpu "):
            v = [int(x) for x in line.split()[1:]]
            # user nice system idle iowait irq softirq steal [guest guest_nice: in user already]
            return v[3] + (v[4] if len(v) > 4 else 0), sum(v[:8])
    raise ValueError("no cpu line in /proc/stat")


def parse_loadavg(text: str) -> float:
    return float(text.split()[0])


def descendants(root: int, stats: Iterable[Stat]) -> set[int]:
    """root and every process below it, from a table of (pid, ppid)."""
    kids: dict[int, list[int]] = {}
    for s in stats:
        kids.setdefault(s.ppid, []).append(s.pid)
    out, todo = set(), [root]
    while todo:
        p = todo.pop()
        if p in out:
            continue
        out.add(p)
        todo.extend(kids.get(p, ()))
    return out


def read_all() -> dict[int, Stat]:
    table: dict[int, Stat] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                table[int(d.name)] = parse_stat((d / "stat").read_text())
    return table


def role_ticks(roots: dict[str, int], table: dict[int, Stat]) -> dict[str, int]:
    """Ticks per role: each root's own and reaped ticks plus those of its live descendants.
    A child that exits between two readings moves from the live sum into its parent's reaped
    ticks, so a difference of two readings still counts it once. A pid claimed by an earlier
    role is not counted again (the load generator is this process: its services are not)."""
    seen: set[int] = set()
    out: dict[str, int] = {}
    # the narrowest roots first, so that this process (an ancestor of the services) comes last
    for role, root in sorted(roots.items(), key=lambda kv: kv[0] == LOAD_GENERATOR):
        if root not in table:
            out[role] = 0
            continue
        tree = descendants(root, table.values()) - seen
        if role == LOAD_GENERATOR:  # this process and the short-lived tools it runs
            tree = {root} | {p for p in tree if table[p].ppid == root}
        seen |= tree
        out[role] = sum(table[p].own + table[p].reaped for p in tree)
    return out


@dataclass
class Reading:
    at: float
    ticks: dict[str, int]
    idle: int
    total: int
    load: float


def per_op(before: Reading, after: Reading, ops: float, tick: int = TICK) -> dict[str, Any]:
    """CPU µs per operation of each role, each role's share of one core, and the machine."""
    wall = max(after.at - before.at, 1e-9)
    roles = {}
    for role in after.ticks:
        t = after.ticks[role] - before.ticks.get(role, 0)
        secs = t / tick
        roles[role] = {
            "cpu_s": round(secs, 3),
            "us_per_op": round(secs * 1e6 / ops, 1) if ops else None,
            "cores": round(secs / wall, 2),
        }
    dt = after.total - before.total
    idle = (after.idle - before.idle) / dt if dt > 0 else float("nan")
    return {
        "roles": roles,
        "wall_s": round(wall, 3),
        "ops": ops,
        "idle_share": round(idle, 3),
        "load": [before.load, after.load],
    }


def bound_by(cpu: dict[str, Any], cores: int | None) -> str:
    """What bounds a figure: the busiest process if it used ≥ 85% of one core, the machine if
    it had < 10% idle, else nothing's CPU (waiting: locks, round trips, the client's pace)."""
    roles = cpu.get("roles") or {}
    if not roles:
        return "unknown"
    role, top = max(roles.items(), key=lambda kv: kv[1]["cores"])
    idle = cpu.get("idle_share", float("nan"))
    share = f"{role} at {top['cores']:.2f} cores"
    if top["cores"] >= 0.85:
        return f"CPU of {share}" + (f" (machine idle {idle:.0%})" if idle == idle else "")
    if idle == idle and idle < 0.10:
        return f"the machine's CPU (idle {idle:.0%}, {cores or '?'} cores; busiest {share})"
    return f"no process's CPU (busiest {share}, machine idle {idle:.0%}): waiting"


@dataclass
class Meter:
    """Reads every role's ticks around a part. ``roots`` is called at each reading so that
    processes started between readings (a worker the part starts) are found by name."""

    roots: Callable[[], dict[str, int]]
    readings: list[Reading] = field(default_factory=list)

    def read(self) -> Reading:
        table = read_all()
        ticks = role_ticks(self.roots(), table)
        idle, total = parse_cpu_line(Path("/proc/stat").read_text())
        load = parse_loadavg(Path("/proc/loadavg").read_text())
        return Reading(time.perf_counter(), ticks, idle, total, load)


def stack_roots(stack: Any, extra: dict[str, int] | None = None) -> dict[str, int]:
    """The roles of a dev stack: each process in its table by name, PostgreSQL's postmaster,
    the broker's JVM (each node of a cluster), plus ``extra``; and this process."""
    roots = {name: p.popen.pid for name, p in stack.procs.items() if p.popen.poll() is None}
    with contextlib.suppress(OSError, ValueError, IndexError):
        pm = stack.pg.data_dir / "postmaster.pid"
        roots["postgres"] = int(pm.read_text().split()[0])
    brokers = list(stack.broker) if hasattr(stack.broker, "__iter__") else [stack.broker]
    for i, b in enumerate(brokers):
        proc = getattr(b, "proc", None)
        if proc is not None and proc.poll() is None:
            roots["broker" if len(brokers) == 1 else f"broker-{i + 1}"] = proc.pid
    roots.update(extra or {})
    roots[LOAD_GENERATOR] = os.getpid()
    return roots


def loadavg() -> float:
    return parse_loadavg(Path("/proc/loadavg").read_text())
