"""The bench's /proc readers: stat lines, the cpu line, process trees, CPU per operation and
what bounds a figure (bench/cpu.py)."""

from __future__ import annotations

from bench.cpu import (
    LOAD_GENERATOR,
    Reading,
    Stat,
    bound_by,
    descendants,
    parse_cpu_line,
    parse_loadavg,
    parse_stat,
    per_op,
    role_ticks,
)

# a real line's shape: pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt
# cmajflt utime stime cutime cstime priority nice ...
LINE = "4242 (python -m (x)) S 17 4242 4242 0 -1 4194560 900 0 0 0 350 50 7 3 20 0 1 0 77 0"


def stat(pid: int, ppid: int, own: int, reaped: int = 0) -> Stat:
    return Stat(pid, f"p{pid}", ppid, own, 0, reaped, 0)


def test_stat_fields_are_counted_from_the_last_parenthesis() -> None:
    s = parse_stat(LINE)
    assert (s.pid, s.comm, s.ppid) == (4242, "python -m (x)", 17)
    assert (s.utime, s.stime, s.cutime, s.cstime) == (350, 50, 7, 3)
    assert (s.own, s.reaped) == (400, 10)


def test_cpu_line_idle_counts_iowait_and_total_leaves_guest_out() -> None:
    text = "cpu  100 5 50 800 40 1 2 2 30 0\ncpu0 1 1 1 1 1 1 1 1 0 0\n"
    assert parse_cpu_line(text) == (840, 1000)


def test_loadavg() -> None:
    assert parse_loadavg("5.20 2.86 2.41 3/811 32009\n") == 5.2


def test_descendants_walk_the_whole_tree() -> None:
    table = [stat(1, 0, 0), stat(10, 1, 0), stat(11, 10, 0), stat(12, 11, 0), stat(20, 1, 0)]
    assert descendants(10, table) == {10, 11, 12}


def test_roles_sum_their_trees_and_the_load_generator_keeps_only_its_own_tools() -> None:
    me = 100
    table = {
        s.pid: s
        for s in [
            stat(me, 1, 30, reaped=5),  # this process; 5 ticks of a wrk it reaped
            stat(101, me, 200),  # a service it started
            stat(102, 101, 40),  # that service's own child
            stat(103, me, 9),  # a wrk still running
            stat(500, 1, 10, reaped=60),  # the postmaster (backends that exited: 60)
            stat(501, 500, 70),  # a backend
            stat(502, 500, 20),  # the checkpointer
        ]
    }
    roots = {"tasks-api": 101, "postgres": 500, LOAD_GENERATOR: me}
    assert role_ticks(roots, table) == {"tasks-api": 240, "postgres": 160, LOAD_GENERATOR: 44}


def test_a_process_gone_between_readings_counts_zero() -> None:
    assert role_ticks({"gone": 9}, {}) == {"gone": 0}


def test_a_child_exiting_between_readings_is_counted_once() -> None:
    before = role_ticks({"postgres": 500}, {500: stat(500, 1, 10), 501: stat(501, 500, 70)})
    after = role_ticks({"postgres": 500}, {500: stat(500, 1, 10, reaped=75)})
    assert after["postgres"] - before["postgres"] == 5


def test_per_op_and_what_bounds_it() -> None:
    before = Reading(at=0.0, ticks={"redeem-api": 0, "postgres": 0}, idle=0, total=0, load=5.0)
    after = Reading(
        at=10.0, ticks={"redeem-api": 950, "postgres": 200}, idle=100, total=2000, load=6.0
    )
    cpu = per_op(before, after, ops=1000, tick=100)
    assert cpu["roles"]["redeem-api"] == {"cpu_s": 9.5, "us_per_op": 9500.0, "cores": 0.95}
    assert cpu["roles"]["postgres"]["us_per_op"] == 2000.0
    assert cpu["idle_share"] == 0.05 and cpu["load"] == [5.0, 6.0]
    assert bound_by(cpu, 2).startswith("CPU of redeem-api at 0.95 cores")


def test_bound_by_the_machine_or_by_waiting() -> None:
    busy = {"roles": {"a": {"cores": 0.4, "cpu_s": 4, "us_per_op": 1}}, "idle_share": 0.05}
    assert bound_by(busy, 2).startswith("the machine's CPU (idle 5%")
    idle = {"roles": {"a": {"cores": 0.4, "cpu_s": 4, "us_per_op": 1}}, "idle_share": 0.6}
    assert "waiting" in bound_by(idle, 2)
    assert bound_by({}, 2) == "unknown"
