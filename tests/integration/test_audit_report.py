"""The union officer's HTML report, rendered by a real headless Chromium: the verification
result, the liability, both charts laid out with their bars, and the anomalies."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest

from jifen.points.audit.offline import load_keys
from jifen.points.audit.report import write_report
from jifen.points.db import MIGRATIONS
from tests.integration.test_audit_fixtures import ledger_in, sample_batches

FreshDb = Callable[[Path], Awaitable[str]]

# Added to a copy of the report only: the browser measures what it laid out and writes it down.
PROBE = """<script>
const out = [...document.querySelectorAll('svg.chart')].map(s => {
  const bars = [...s.querySelectorAll('rect.bar')];
  const tall = bars.filter(b => b.getBBox().height > 0).length;
  return s.id + ':' + Math.round(s.getBBox().width) + ':' + bars.length + ':' + tall;
});
const pre = document.createElement('pre');
pre.id = 'probe';
pre.textContent = out.join(';');
document.body.appendChild(pre);
</script>"""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("chromium is not installed (make deps installs it)")
    return found


async def test_report_renders_in_a_real_browser(fresh_db: FreshDb, tmp_path: Path) -> None:
    browser = chromium()
    async with ledger_in(await fresh_db(MIGRATIONS), tmp_path / "keys") as lg:
        for b in sample_batches(lg.book):
            await lg.append(b)
        # a burst: six credits for vol-b within the hour, well above everyone else's
        lg.book.clock += timedelta(days=40)
        burst = []
        for _ in range(6):
            p = lg.book.credit("vol-b", 200)
            burst.append(p)
            lg.book.clock -= timedelta(hours=7) - timedelta(minutes=5)
        await lg.append(burst)
        await lg.append([lg.book.credit(f"vol-{i}", 10) for i in "defgh"])
        await lg.checkpoint()
        export = await lg.export(tmp_path / "export.ndjson", tmp_path / "keys.json")
    out = tmp_path / "report.html"
    assert write_report([export], load_keys(tmp_path / "keys.json"), None, out)
    page = out.read_text()
    # nothing to fetch: no links, sources, styles or scripts from elsewhere
    assert not re.search(r"(src|href)=|<script|@import|url\(", page)
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"))
    dom = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--dump-dom",
            probed.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    ).stdout
    assert re.search(r'id="verification"[^>]*>verified<', dom), dom[:2000]
    # 6 + 12 * 200 ... everyone's balances: vol-a 102, vol-b 60 + 1200, vol-c 5, five × 10
    assert re.search(r'id="liability"[^>]*>1417 points<', dom)
    probe = re.search(r'<pre id="probe">([^<]*)</pre>', dom)
    assert probe, dom[-2000:]
    charts = {c.split(":")[0]: c.split(":")[1:] for c in probe.group(1).split(";")}
    assert "chart-months" in charts, probe.group(1)
    months, categories = charts["chart-months"], charts["chart-categories"]
    assert int(months[0]) > 300 and int(categories[0]) > 300  # laid out at full width
    # September and October: an issued and a redeemed bar for each, drawn with their height
    assert int(months[1]) == 2 * 2 and int(months[2]) == 3  # October redeemed nothing
    assert int(categories[1]) == int(categories[2]) == 1  # one category, one visible bar
    anomalies = re.search(r'<ul id="anomalies">(.*?)</ul>', dom, re.S)
    assert anomalies and "vol-b: 5 credited completions within" in anomalies.group(1)
    assert "vol-b earned 1260 points, far above the median" in anomalies.group(1)
