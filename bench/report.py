"""The report: rows, checks and notes as the parts measure them, the ratios between them,
and the output (the table on stdout, bench.json, bench.png)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


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
