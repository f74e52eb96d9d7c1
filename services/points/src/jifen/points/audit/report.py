"""`jifen audit report`: one self-contained HTML file for a union officer (no network, no
scripts needed to read it; charts are inline SVG).

It verifies the export first (the same checks as `jifen audit verify`) and shows: the result
and any findings, points issued and redeemed per month, per category and per organisation,
outstanding liability, the largest earners, and anomalies that can be seen from the ledger
alone (volunteers far above their peers, bursts of credits, balances that went below zero).
Anomalies that need the tasks service's data (who verified what, job windows, freezes) are
listed as not covered rather than guessed. Built against a running points service (``--url``),
it also shows the service's live integrity signals (GET /v1/signals: the flags Prometheus
alerts on as ``JifenIntegrityFlag``), so the report and the alerts agree; offline, it says
that they were not checked rather than "none".

Chinese first, English beside it (``lang`` set on each), category names rather than slugs,
and a CJK font stack so 积分 renders with a real font wherever one is installed.
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

# the tasks service's job categories (jifen.tasks.domain.jobs.Category): Chinese, English
CATEGORY_NAMES = {
    "meal_delivery": ("助老送餐", "Meal delivery to elders"),
    "elder_visit": ("探访老人", "Visiting elders"),
    "traffic_guidance": ("交通疏导", "Traffic guidance"),
    "civility_persuasion": ("文明劝导", "Civility persuasion"),
    "hazard_patrol": ("隐患巡查", "Hazard patrol"),
    "free_repair_day": ("免费维修日", "Free e-bike repair day"),
    "lost_person_search": ("寻找走失老人", "Finding lost people"),
    "emergency_response": ("应急响应", "Emergency response"),
    "other": ("其他", "Other"),
}
# the points service's integrity signals (jifen.points.domain.signals)
SIGNAL_NAMES = {
    "volunteer_completions_per_hour": ("志愿者每小时完成数过多", "Completions per hour"),
    "volunteer_points_per_day": ("志愿者单日积分远高于同伴", "Points per day above peers"),
    "officer_volunteer_completions_per_day": (
        "同一核验员集中核验同一志愿者",
        "One officer verifying one volunteer",
    ),
    "community_completions_per_5min": ("社区五分钟内完成数突增", "Community burst of completions"),
}
FONT_STACK = (
    '"Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC", "Microsoft YaHei", '
    '"WenQuanYi Micro Hei", sans-serif'
)


def category_name(slug: str | None) -> str:
    zh, en = CATEGORY_NAMES.get(slug or "other", (slug or "other", slug or "other"))
    return f"{zh} {en}" if zh != en else zh


def _bi(zh: str, en: str) -> str:
    """Chinese, then the English beside it, each marked with its language."""
    return f'{zh} <span lang="en" class="en">{en}</span>'


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


def _signals_html(signals: dict[str, Any] | None) -> tuple[str, list[str]]:
    """The live signals section and the flags as anomalies (Chinese, then English)."""
    if signals is None:
        return (
            '<p id="signals" class="unchecked">'
            + _bi(
                "未查询：此报告离线生成。",
                "Not checked: this report was built offline; run `jifen audit report` with "
                "--url and --token to include the points service's GET /v1/signals.",
            )
            + "</p>",
            [],
        )
    notes = []
    for f in signals.get("flags", []):
        zh, en = SIGNAL_NAMES.get(f["signal"], (f["signal"], f["signal"]))
        notes.append(
            f'{_esc(zh)} <span lang="en">{_esc(en)}</span>: {_esc(f["subject"])} '
            f"({_esc(f['community_id'])}, {_esc(f['window_start'])}) "
            f"{f['value']:g} &gt; {f['threshold']:g} — {_esc(f['detail'])}"
        )
    count = len(notes)
    body = (
        f'<p id="signals" class="figure {"bad" if count else "ok"}">'
        + _bi(f"{count} 个标记", f"{count} flags")
        + f" ({_esc(signals.get('org_id', ''))}, GET /v1/signals)</p>"
    )
    return body, notes


def render(
    entries: list[dict[str, Any]],
    result: Result,
    generated: datetime,
    signals: dict[str, Any] | None = None,
) -> str:
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
    faults = result.faults
    status = (
        _bi("核验通过", "verified")
        if result.ok
        else _bi(f"发现 {len(faults)} 个问题", f"{len(faults)} findings")
    )
    signals_html, flags = _signals_html(signals)
    anomalies = _anomalies(entries, result)
    rows = "".join(
        f"<tr><td>{_esc(a)}</td><td>{s.earned}</td><td>{s.spent}</td><td>{s.balance}</td>"
        f"<td>{s.entries}</td></tr>"
        for a, s in top
    )
    findings = "".join(f'<li lang="en">{_esc(f)}</li>' for f in faults[:500])
    notes = "".join(f'<li lang="en">{_esc(n)}</li>' for n in anomalies)
    notes += "".join(f"<li>{n}</li>" for n in flags)
    if not notes:
        if signals is None:
            notes = (
                "<li>"
                + _bi(
                    "账本中未发现；实时信号未查询",
                    "none found in the ledger; live signals not checked",
                )
                + "</li>"
            )
        else:
            notes = "<li>" + _bi("未发现", "none found") + "</li>"
    cats = sorted(by_category)
    checkpoint_text = (
        f"size {cp.tree_size}, root {cp.root_hash.hex()}, signed {cp.issued_at} by key {cp.key_id}"
        if cp
        else "none"
    )
    month_chart = bar_chart(
        "每月积分 Points per month",
        months,
        {"发放 issued": issued, "兑换 redeemed": redeemed},
        "chart-months",
    )
    category_chart = bar_chart(
        "各类服务发放积分 Points per category",
        [category_name(c) for c in cats],
        {"发放 issued": [by_category[c] for c in cats]},
        "chart-categories",
    )
    cat_rows = "".join(
        f"<tr><td>{_esc(category_name(c))}</td><td>{by_category[c]}</td></tr>" for c in cats
    )
    org_rows = "".join(
        f"<tr><td>{_esc(o)}</td><td>{v}</td></tr>" for o, v in sorted(by_org.items())
    )
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>积分账本审计报告 Jifen ledger audit report</title>
<style>
body {{ font-family: {FONT_STACK}; margin: 2em; max-width: 60em; color: #1a202c; }}
svg text {{ font-family: {FONT_STACK}; }}
.en {{ color: #4a5568; }}
.ok {{ color: #276749; }} .bad {{ color: #c53030; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #cbd5e0; padding: 4px 8px; }}
.figure {{ font-size: 1.4em; font-weight: bold; }}
</style></head><body>
<h1 id="title">{_bi("积分账本审计报告", "Jifen points ledger: audit report")}</h1>
<p>{
        _bi(
            f"生成于 {generated:%Y-%m-%d %H:%M} UTC（离线），导出共 {result.tree_size} 个账本位置："
            f"本组织条目 {result.entries_checked} 条，其他组织 {result.redacted} 条仅核对哈希。",
            f"Generated {generated:%Y-%m-%d %H:%M} UTC, offline, from an export of "
            f"{result.tree_size} ledger positions ({result.entries_checked} entries of your "
            f"organisation, {result.redacted} of others checked by hash only).",
        )
    }</p>
<h2>{_bi("核验结果", "Verification")}</h2>
<p id="verification" class="figure {"ok" if result.ok else "bad"}">{status}</p>
<p>{_bi("检查点", "Checkpoint")}: <span lang="en">{_esc(checkpoint_text)}</span></p>
<ul id="findings">{findings}</ul>
<h2>{_bi("未兑换积分（负债）", "Outstanding liability")}</h2>
<p id="liability" class="figure">{liability} {_bi("分", "points")}</p>
<p>{
        _bi(
            f"{len(result.accounts)} 位志愿者持有、仍可兑换的积分。",
            f"Points held by {len(result.accounts)} volunteers that can still be redeemed.",
        )
    }</p>
<h2>{_bi("每月发放与兑换", "Points issued and redeemed per month")}</h2>
{month_chart}
<h2>{_bi("各类服务发放积分", "Points issued per category")}</h2>
{category_chart}
<table id="categories"><tr><th>{_bi("服务类别", "category")}</th>
<th>{_bi("发放积分", "points issued")}</th></tr>{cat_rows}</table>
<h2>{_bi("各组织", "Per organisation")}</h2>
<table id="orgs"><tr><th>{_bi("组织", "organisation")}</th>
<th>{_bi("发放积分", "points issued")}</th></tr>
{org_rows}</table>
<h2>{_bi("获得积分最多者", "Largest earners")}</h2>
<table id="earners"><tr><th>{_bi("账户", "account")}</th><th>{_bi("获得", "earned")}</th>
<th>{_bi("花费", "spent")}</th><th>{_bi("余额", "balance")}</th>
<th>{_bi("条目", "entries")}</th></tr>{rows}</table>
<h2>{_bi("实时完整性信号", "Live integrity signals")}</h2>
{signals_html}
<h2>{_bi("需要关注的异常", "Anomalies to look at")}</h2>
<ul id="anomalies">{notes}</ul>
<p><small>{
        _bi(
            "仅凭账本无法覆盖：哪位核验员核验了哪项完成、处于任务时间窗边缘的完成、各社区合计、"
            "账户冻结（这些在任务服务中；请用 jifen audit reconcile）。",
            "Not covered from the ledger alone: which officer verified which completion, "
            "completions at the edge of their job's window, per-community totals, and account "
            "freezes (these live in the tasks service; use <code>jifen audit reconcile</code>).",
        )
    }</small></p>
</body></html>
"""


def write_report(
    exports: list[Path],
    keys: dict[str, Ed25519PublicKey],
    checkpoints: Path | None,
    out: Path,
    signals: dict[str, Any] | None = None,
) -> bool:
    """Write the report (to ``out.part``, then renamed); True when the export verified."""
    result = verify_files(exports, keys, checkpoints)
    html_text = render(_entries(exports), result, datetime.now(UTC), signals)
    tmp = out.with_name(out.name + ".part")
    tmp.write_text(html_text, encoding="utf-8")
    tmp.replace(out)
    return result.ok
