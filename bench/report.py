"""The report: rows, checks and notes as the parts measure them, the ratios between them,
and the output (the table on stdout, bench.json, bench.png)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.cpu import bound_by


@dataclass
class Report:
    size: str
    started: str
    machine: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, part: str, what: str, value: float | None, unit: str, **extra: Any) -> None:
        """A figure; ``ref=<what of another row>`` puts the ratio to it beside the figure,
        ``cpu=`` (bench.cpu.per_op) the CPU per operation of each process and what bounds it."""
        row = {"part": part, "what": what, "value": value, "unit": unit, **extra}
        if extra.get("cpu"):
            row["bound"] = bound_by(extra["cpu"], self.machine.get("cores"))
        self.rows.append(row)
        shown = "-" if value is None else f"{value:,.1f}"
        ratio = self.ratio_of(row)
        beside = "" if ratio is None else f"  ({ratio:.2f}× {row['ref']})"
        print(f"  {part:<12} {what:<52} {shown:>12} {unit}{beside}", flush=True)
        if row.get("cpu"):
            print("      " + cpu_line(row["cpu"]), flush=True)
            print("      bound: " + row["bound"], flush=True)

    def ratio_of(self, row: dict[str, Any]) -> float | None:
        ref = self.value(row["ref"]) if row.get("ref") else None
        if ref is None or not ref or row["value"] is None:
            return None
        return float(row["value"]) / ref

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append({"check": name, "ok": ok, "detail": detail})
        print(f"  check {'OK  ' if ok else 'FAIL'} {name}: {detail}", flush=True)

    def value(self, what: str) -> float | None:
        for r in self.rows:
            if r["what"] == what:
                return float(r["value"]) if r["value"] is not None else None
        return None


def cpu_line(cpu: dict[str, Any], floor: float = 0.02) -> str:
    """One line: CPU µs per operation of each process (its share of a core in brackets), the
    busiest first; processes under ``floor`` of the part's CPU summed as "others"; then the
    machine's idle share and load average over the part."""
    roles = sorted(
        ((r, v) for r, v in (cpu.get("roles") or {}).items() if v.get("cpu_s")),
        key=lambda rv: -rv[1]["cpu_s"],
    )
    total = sum(v["cpu_s"] for _, v in roles)
    shown, rest = [], [v for _, v in roles if v["cpu_s"] < floor * total]
    for r, v in roles:
        if v["cpu_s"] < floor * total:
            continue
        if v.get("us_per_op") is not None:
            shown.append(f"{r} {v['us_per_op']:,.0f} µs ({v['cores']:.2f} cores)")
        else:
            shown.append(f"{r} {v['cpu_s']:.2f} s")
    if rest and all(v.get("us_per_op") is not None for v in rest):
        shown.append(f"{len(rest)} others {sum(v['us_per_op'] for v in rest):,.0f} µs")
    idle = cpu.get("idle_share")
    load = cpu.get("load") or []
    machine = (
        f"machine idle {idle:.0%}" if isinstance(idle, float) and idle == idle else "machine ?"
    ) + (f", load {load[0]:.1f}→{load[-1]:.1f}" if load else "")
    return "cpu/op: " + (" · ".join(shown) or "none measured") + f"; {machine}"


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def _row(rep: Report, pred: Any) -> dict[str, Any] | None:
    return next((r for r in rep.rows if r.get("value") is not None and pred(r)), None)


def _target(rep: Report, what: str, v: float, target: float, met: bool) -> None:
    rep.add("ratio", what, v, "×", target=target, met=met)


def ratios(rep: Report) -> None:
    """The targets of issue 18, each from figures of this run."""
    copy = _row(rep, lambda r: r["part"] == "1 limit")
    ingest = _row(rep, lambda r: r["what"].startswith("Jifen ingest"))
    if copy and ingest:
        v = ingest["value"] / copy["value"]
        _target(rep, "Jifen ingest / bare COPY (target ≥ 0.5)", v, 0.5, v >= 0.5)
    for feed in ("memory", "kafka"):
        peer = _row(rep, lambda r, f=feed: r["part"] == "3 peer" and r.get("feed") == f)
        if ingest and peer:
            v = ingest["value"] / peer["value"]
            if feed == "memory":  # the target is on the peer's best case
                _target(
                    rep,
                    "Jifen ingest / eventsourcing from memory (target ≥ 1.25)",
                    v,
                    1.25,
                    v >= 1.25,
                )
            else:
                rep.add("ratio", "Jifen ingest / eventsourcing fed from the same topic", v, "×")
    if ingest and ingest.get("cpu"):
        roles = ingest["cpu"]["roles"]
        us = sum(
            v["us_per_op"] or 0
            for k, v in roles.items()
            if k == "postgres" or k.startswith("points-")
        )
        rep.add(
            "ratio",
            "ingest: points processes + PostgreSQL CPU per event (target ≤ 100 µs)",
            us,
            "µs",
            target=100,
            met=us <= 100,
        )
    p99 = _row(rep, lambda r: "ledger tx, p99" in r["what"])
    if p99 is not None:
        v = p99["value"] / 1000
        _target(rep, "latency p99 / 1 s target", v, 1, v < 1)
    verify = _row(rep, lambda r: r["what"] == "verify rate")
    sha = _row(rep, lambda r: r["what"].startswith("reference: bare SHA-256"))
    if verify and sha:
        rep.add(
            "ratio",
            "audit verify / bare SHA-256 of the export, entries/s",
            verify["value"] / sha["value"],
            "×",
        )
    for loop in ("closed", "open"):
        api = _row(
            rep,
            lambda r, lp=loop: (
                r["what"].startswith("API: ")
                and r["unit"] == "decisions/s"
                and f"{lp} loop" in r["what"]
            ),
        )
        if api and loop == "closed" and rep.ratio_of(api) is not None:
            # (in the open loop both keep to the offered rate: its verdict is the p99)
            v = rep.ratio_of(api) or 0.0
            _target(
                rep,
                f"redeem API / bare locked tx, decisions/s, {loop} loop (target ≥ 1)",
                v,
                1,
                v >= 1,
            )
        lat = _row(
            rep, lambda r, lp=loop: r["what"].startswith("API p99") and f"{lp} loop" in r["what"]
        )
        if lat and rep.ratio_of(lat) is not None:
            v = rep.ratio_of(lat) or 0.0
            _target(
                rep, f"redeem API p99 / bare locked tx p99, {loop} loop (target ≤ 2)", v, 2, v <= 2
            )
    for part, role, what in (
        ("4 redeem", "redeem-api", "redemption"),
        ("5 http", "tasks-api", "completion"),
    ):
        api = _row(
            rep,
            lambda r, p=part: (
                r["part"] == p
                and r["what"].startswith("API: ")
                and "closed loop" in r["what"]
                and "healthz" not in r["what"]
            ),
        )
        cpu = ((api or {}).get("cpu") or {}).get("roles", {}).get(role)
        if cpu and cpu.get("us_per_op") is not None:
            # in µs: whole milliseconds would show 0.48 ms as "0 ms" and 1.4 ms as "1 ms"
            us = cpu["us_per_op"]
            rep.add(
                "ratio",
                f"{role} CPU per {what} POST (target ≤ 1 ms)",
                us,
                "µs",
                target=1000,
                met=us <= 1000,
            )


def chart(rep: Report, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = [
        (r["what"], r["value"])
        for r in rep.rows
        if r["unit"] in ("rows/s", "events/s", "decisions/s", "req/s", "entries/s") and r["value"]
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


def _fmt(r: dict[str, Any]) -> str:
    if r["value"] is None:
        return "-"
    return f"{r['value']:,.2f}" if r["unit"] == "×" else f"{r['value']:,.0f}"


def print_table(rep: Report) -> None:
    print(f"\n{'part':<10} {'measure':<58} {'value':>12}  unit")
    print("-" * 92)
    for r in rep.rows:
        flag = ""
        if "met" in r:
            flag = "  target met" if r["met"] else "  TARGET MISSED"
        ratio = rep.ratio_of(r)
        beside = "" if ratio is None else f"   {ratio:.2f}× of “{r['ref']}”"
        print(f"{r['part']:<10} {r['what']:<58} {_fmt(r):>12}  {r['unit']}{flag}{beside}")
        if r.get("cpu"):
            print(f"{'':<11}{cpu_line(r['cpu'])}")
            print(f"{'':<11}bound: {r['bound']}")
    bad = [c for c in rep.checks if not c["ok"]]
    print(
        f"\nchecks: {len(rep.checks) - len(bad)} of {len(rep.checks)} passed"
        + ("" if not bad else "; FAILED: " + ", ".join(c["check"] for c in bad))
    )
    for n in rep.notes:
        print("note:", n)
    m = rep.machine
    print(
        f"machine: {m.get('cpu')}, {m.get('cores')} cores; load average {m.get('load', '?')} at "
        f"the start, {m.get('load_end', '?')} at the end; each part's idle share in its cpu/op line"
    )


DOCS_BEGIN = "<!-- bench:table:begin (written by `make bench BENCH_ARGS=--write-docs`) -->"
DOCS_END = "<!-- bench:table:end -->"


def markdown_table(rep: Report) -> str:
    """The run as a Markdown table: each figure, the ratio to its same-run reference, CPU per
    operation of each process, and what bounds it; then the checks and the machine's load."""
    m = rep.machine
    out = [
        f"`make bench` (SIZE={rep.size}), results `{rep.started}`; {m.get('cpu')}, "
        f"{m.get('cores')} cores, {m.get('memory_gib')} GiB, Python {m.get('python')}, "
        f"PostgreSQL {m.get('postgresql')}; load average {m.get('load', '?')} at the start, "
        f"{m.get('load_end', '?')} at the end (each figure's own window: machine idle share and "
        "load in its CPU column).",
        "",
        "| part | measure | value | ratio to the reference (same run) | CPU per operation"
        " | bound by |",
        "|---|---|---|---|---|---|",
    ]
    for r in rep.rows:
        ratio = rep.ratio_of(r)
        rtxt = f"{ratio:.2f}× {r['ref']}" if ratio is not None else ""
        if "met" in r:
            rtxt = ("target met" if r["met"] else "**target missed**") + (
                f" ({rtxt})" if rtxt else ""
            )
        cpu = cpu_line(r["cpu"]).removeprefix("cpu/op: ") if r.get("cpu") else ""
        cells = [r["part"], r["what"], f"{_fmt(r)} {r['unit']}", rtxt, cpu, r.get("bound", "")]
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    bad = [c for c in rep.checks if not c["ok"]]
    out += [
        "",
        f"Checks: {len(rep.checks) - len(bad)} of {len(rep.checks)} passed"
        + ("." if not bad else "; FAILED: " + ", ".join(c["check"] for c in bad) + "."),
    ]
    out += [f"Note: {n}" for n in rep.notes]
    return "\n".join(out) + "\n"


def replace_docs_table(doc: str, table: str) -> str:
    """docs/BENCH.md with the text between the markers replaced by ``table``."""
    start, end = doc.index(DOCS_BEGIN) + len(DOCS_BEGIN), doc.index(DOCS_END)
    return doc[:start] + "\n" + table + doc[end:]
