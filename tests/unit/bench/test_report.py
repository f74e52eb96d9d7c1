"""The bench's report: ratios beside figures, the CPU line, the targets and the Markdown table
that docs/BENCH.md takes between its markers (bench/report.py)."""

from __future__ import annotations

from bench.report import (
    DOCS_BEGIN,
    DOCS_END,
    Report,
    cpu_line,
    markdown_table,
    ratios,
    replace_docs_table,
)

CPU = {
    "roles": {
        "redeem-api": {"cpu_s": 3.0, "us_per_op": 3000.0, "cores": 0.9},
        "postgres": {"cpu_s": 0.5, "us_per_op": 500.0, "cores": 0.15},
        "tasks-api": {"cpu_s": 0.0, "us_per_op": 0.0, "cores": 0.0},
        "broker": {"cpu_s": 0.03, "us_per_op": 30.0, "cores": 0.01},
        "tasks-worker": {"cpu_s": 0.02, "us_per_op": 20.0, "cores": 0.01},
    },
    "idle_share": 0.08,
    "load": [5.2, 6.0],
}


def report() -> Report:
    rep = Report(size="quick", started="20261201T180000Z", machine={"cores": 2, "cpu": "x"})
    rep.add(
        "4 redeem",
        "API: 600 redemptions, closed loop, 200 connections, 5 accounts",
        100.0,
        "decisions/s",
        cpu=CPU,
        ref="bare locked tx: 600 redemptions, closed loop, 200 connections, 5 accounts",
    )
    rep.add(
        "4 redeem",
        "bare locked tx: 600 redemptions, closed loop, 200 connections, 5 accounts",
        250.0,
        "decisions/s",
    )
    rep.add("4 redeem", "API p99, closed loop", 900.0, "ms", ref="bare locked tx p99, closed loop")
    rep.add("4 redeem", "bare locked tx p99, closed loop", 300.0, "ms")
    return rep


def test_cpu_line_lists_busy_processes_first_and_the_machine() -> None:
    line = cpu_line(CPU)
    assert line == (
        "cpu/op: redeem-api 3,000 µs (0.90 cores) · postgres 500 µs (0.15 cores) · "
        "2 others 50 µs; "
        "machine idle 8%, load 5.2→6.0"
    )


def test_ratio_beside_a_figure_and_its_bound() -> None:
    rep = report()
    assert rep.ratio_of(rep.rows[0]) == 0.4
    assert rep.ratio_of(rep.rows[1]) is None
    assert rep.rows[0]["bound"] == "CPU of redeem-api at 0.90 cores (machine idle 8%)"


def test_targets_from_the_same_run() -> None:
    rep = report()
    ratios(rep)
    got = {r["what"]: (round(r["value"], 2), r["met"]) for r in rep.rows if r["part"] == "ratio"}
    assert got == {
        "redeem API / bare locked tx, decisions/s, closed loop (target ≥ 1)": (0.4, False),
        "redeem API p99 / bare locked tx p99, closed loop (target ≤ 2)": (3.0, False),
        "redeem-api CPU per redemption POST (target ≤ 1 ms)": (3000.0, False),
    }


def test_markdown_table_goes_between_the_markers() -> None:
    rep = report()
    table = markdown_table(rep)
    assert "| 4 redeem | API: 600 redemptions" in table
    assert "0.40× bare locked tx" in table and "redeem-api 3,000 µs" in table
    doc = f"# B\n\nbefore\n{DOCS_BEGIN}\nold table\n{DOCS_END}\nafter\n"
    new = replace_docs_table(doc, table)
    assert "old table" not in new and new.startswith("# B\n\nbefore\n") and "after" in new
    assert replace_docs_table(new, table) == new  # regenerating is stable
