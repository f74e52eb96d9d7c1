"""`jifen audit report`: one self-contained HTML file for a union officer (no network, no
scripts needed to read it; charts are inline SVG).

It verifies the export first (the same checks as `jifen audit verify`) and shows: the result
and any findings, points issued and redeemed per month, per category and per organisation,
outstanding liability, the largest earners, and anomalies that can be seen from the ledger
alone (volunteers far above their peers, bursts of credits, balances that went below zero).
Anomalies that need the tasks service's data (who verified what, job windows, freezes) are
listed as not covered rather than guessed.
"""

from __future__ import annotations

import html
import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from jifen.points.audit.domain.verify import AccountState, Result
from jifen.points.audit.offline import verify_files

BURST_WINDOW_SECONDS = 3600
BURST_COUNT = 5


def _entries(exports: list[Path]) -> list[dict[str, Any]]:
    out = []
    for path in exports:
        with path.open("rb") as f:
            f.readline()
            for line in f:
                if line.strip():
                    rec = orjson.loads(line)
                    if "entry" in rec:
                        out.append(rec["entry"])
    return out


def _esc(x: object) -> str:
    return html.escape(str(x))


def bar_chart(title: str, labels: list[str], series: dict[str, list[int]], ident: str) -> str:
    """A grouped bar chart as inline SVG (no script, no external font or style)."""
    colours = ["#2b6cb0", "#c05621", "#2f855a", "#6b46c1"]
    width, height, pad, left = 720, 260, 30, 60
    top = max([1, *(v for vs in series.values() for v in vs)])
    n = max(1, len(labels))
    group = (width - left - pad) / n
    bar = max(2.0, group * 0.8 / max(1, len(series)))
    parts = [
        f'<svg class="chart" id="{ident}" role="img" aria-label="{_esc(title)}" '
        f'width="{width}" height="{height + 60}" '
        f'viewBox="0 0 {width} {height + 60}">',
        f'<text x="{left}" y="18" font-size="14" font-weight="bold">{_esc(title)}</text>',
        f'<line x1="{left}" y1="{height}" x2="{width - pad}" y2="{height}" stroke="#333"/>',
        f'<text x="{left - 6}" y="{pad + 4}" font-size="10" text-anchor="end">{top}</text>',
        f'<text x="{left - 6}" y="{height}" font-size="10" text-anchor="end">0</text>',
    ]
    for si, (name, values) in enumerate(series.items()):
        colour = colours[si % len(colours)]
        parts.append(
            f'<rect x="{left + 120 * si}" y="{height + 40}" width="10" height="10" '
            f'fill="{colour}"/><text x="{left + 14 + 120 * si}" y="{height + 49}" '
            f'font-size="11">{_esc(name)}</text>'
        )
        for i, v in enumerate(values):
            h = (height - pad) * v / top
            x = left + i * group + si * bar + group * 0.1
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{height - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{_esc(labels[i])} {_esc(name)}: '
                f"{v}</title></rect>"
            )
    for i, label in enumerate(labels):
        x = left + i * group + group / 2
        parts.append(
            f'<text x="{x:.1f}" y="{height + 14}" font-size="10" '
            f'text-anchor="middle">{_esc(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _labelled(result: Result) -> dict[str, AccountState]:
    """Accounts by name: the account id in a one-organisation export, else ``org/account``
    (a ledger account is (organisation, account))."""
    orgs = {org for org, _ in result.accounts}
    if len(orgs) <= 1:
        return {acct: st for (_, acct), st in result.accounts.items()}
    return {f"{org}/{acct}": st for (org, acct), st in result.accounts.items()}


def _anomalies(entries: list[dict[str, Any]], result: Result) -> list[str]:
    notes: list[str] = []
    accounts = _labelled(result)
    earned = {a: s.earned for a, s in accounts.items()}
    values = sorted(earned.values())
    if len(values) >= 5:
        median = statistics.median(values)
        mad = statistics.median(abs(v - median) for v in values) or 1
        for account, v in sorted(earned.items(), key=lambda kv: -kv[1]):
            if v > median + 5 * mad and v > 2 * median:
                notes.append(
                    f"{account} earned {v} points, far above the median of {median:g} "
                    f"(median absolute deviation {mad:g})"
                )
    credits: dict[str, list[datetime]] = defaultdict(list)
    for e in entries:
        if e["kind"] == "credit":
            credits[e["account_id"]].append(datetime.fromisoformat(e["occurred_at"]))
    for account, times in sorted(credits.items()):
        times.sort()
        for i in range(len(times) - BURST_COUNT + 1):
            span = (times[i + BURST_COUNT - 1] - times[i]).total_seconds()
            if span <= BURST_WINDOW_SECONDS:
                notes.append(
                    f"{account}: {BURST_COUNT} credited completions within "
                    f"{span / 60:.0f} minutes from {times[i]:%Y-%m-%d %H:%M} UTC (burst)"
                )
                break
    for account, s in sorted(accounts.items()):
        if s.min_balance < 0 and s.frozen_entries:
            notes.append(
                f"{account}: frozen — a reversal came after the points were spent "
                f"(lowest balance {s.min_balance})"
            )
        elif s.min_balance < 0:
            notes.append(f"{account}: balance went below zero (lowest {s.min_balance})")
    return notes


def render(entries: list[dict[str, Any]], result: Result, generated: datetime) -> str:
    months = sorted({m for m, _ in result.monthly})
    issued = [
        result.monthly.get((m, "credit"), 0) + result.monthly.get((m, "reversal"), 0)
        for m in months
    ]
    redeemed = [
        -(result.monthly.get((m, "debit"), 0) + result.monthly.get((m, "refund"), 0))
        for m in months
    ]
    by_category: Counter[str] = Counter()
    by_org: Counter[str] = Counter()
    for e in entries:
        if e["kind"] in ("credit", "reversal"):
            by_category[e["category"] or "other"] += e["amount"]
            by_org[e["org_id"]] += e["amount"]
    liability = sum(s.balance for s in result.accounts.values())
    top = sorted(_labelled(result).items(), key=lambda kv: -kv[1].earned)[:10]
    cp = result.checkpoint
    status = "verified" if result.ok else f"{len(result.findings)} findings"
    anomalies = _anomalies(entries, result)
    rows = "".join(
        f"<tr><td>{_esc(a)}</td><td>{s.earned}</td><td>{s.spent}</td><td>{s.balance}</td>"
        f"<td>{s.entries}</td></tr>"
        for a, s in top
    )
    findings = "".join(f"<li>{_esc(f)}</li>" for f in result.findings[:500])
    notes = "".join(f"<li>{_esc(n)}</li>" for n in anomalies) or "<li>none found</li>"
    cats = sorted(by_category)
    checkpoint_text = (
        f"size {cp.tree_size}, root {cp.root_hash.hex()}, signed {cp.issued_at} by key {cp.key_id}"
        if cp
        else "none"
    )
    month_chart = bar_chart(
        "Points per month", months, {"issued": issued, "redeemed": redeemed}, "chart-months"
    )
    category_chart = bar_chart(
        "Points per category", cats, {"issued": [by_category[c] for c in cats]}, "chart-categories"
    )
    org_rows = "".join(
        f"<tr><td>{_esc(o)}</td><td>{v}</td></tr>" for o, v in sorted(by_org.items())
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Jifen ledger audit report</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 60em; color: #1a202c; }}
.ok {{ color: #276749; }} .bad {{ color: #c53030; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #cbd5e0; padding: 4px 8px; }}
.figure {{ font-size: 1.4em; font-weight: bold; }}
</style></head><body>
<h1>Jifen (积分) points ledger: audit report</h1>
<p>Generated {generated:%Y-%m-%d %H:%M} UTC, offline, from an export of
{result.tree_size} ledger positions ({result.entries_checked} entries of your organisation,
{result.redacted} of others checked by hash only).</p>
<h2>Verification</h2>
<p id="verification" class="figure {"ok" if result.ok else "bad"}">{_esc(status)}</p>
<p>Checkpoint: {_esc(checkpoint_text)}</p>
<ul id="findings">{findings}</ul>
<h2>Outstanding liability</h2>
<p id="liability" class="figure">{liability} points</p>
<p>Points held by {len(result.accounts)} volunteers that can still be redeemed.</p>
<h2>Points issued and redeemed per month</h2>
{month_chart}
<h2>Points issued per category</h2>
{category_chart}
<h2>Per organisation</h2>
<table id="orgs"><tr><th>organisation</th><th>points issued</th></tr>
{org_rows}</table>
<h2>Largest earners</h2>
<table id="earners"><tr><th>account</th><th>earned</th><th>spent</th><th>balance</th>
<th>entries</th></tr>{rows}</table>
<h2>Anomalies to look at</h2>
<ul id="anomalies">{notes}</ul>
<p><small>Not covered from the ledger alone: which officer verified which completion, completions
at the edge of their job's window, per-community totals, and account freezes (these live in the
tasks service; use <code>jifen audit reconcile</code>).</small></p>
</body></html>
"""


def write_report(
    exports: list[Path],
    keys: dict[str, Ed25519PublicKey],
    checkpoints: Path | None,
    out: Path,
) -> bool:
    result = verify_files(exports, keys, checkpoints)
    out.write_text(render(_entries(exports), result, datetime.now(UTC)), encoding="utf-8")
    return result.ok
