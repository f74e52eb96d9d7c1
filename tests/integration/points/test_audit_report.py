"""The union officer's HTML report, rendered by a real headless Chromium: the verification
result, the liability, both charts laid out with their bars, and the anomalies; in Chinese
and English, category names not slugs, the points service's live integrity signals in it
(so it agrees with Prometheus), and its Chinese drawn with real glyphs, not boxes."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import uuid
import zlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from jifen.points.audit.offline import load_keys
from jifen.points.audit.report import write_report
from jifen.points.db import MIGRATIONS, queries
from jifen.points.db.signals import record
from tests.integration.points.test_audit_fixtures import ORG, ledger_in, sample_batches

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
    en = r' <span lang="en" class="en">'
    assert re.search(r'id="verification"[^>]*>核验通过' + en + "verified</span><", dom), dom[:2000]
    # 6 + 12 * 200 ... everyone's balances: vol-a 102, vol-b 60 + 1200, vol-c 5, five × 10
    assert re.search(r'id="liability"[^>]*>1417 分' + en + "points</span><", dom)
    # Chinese first, English beside it; names, not slugs; a CJK font stack
    assert page.startswith('<!doctype html>\n<html lang="zh-CN">')
    assert "助老送餐 Meal delivery to elders" in page and "meal_delivery" not in page
    assert '"Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC"' in page
    # built offline: the live signals are said to be unchecked, not "none"
    assert "live signals not checked" in page or "Not checked" in page
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


def _flagging_events(org: str, account: str, n: int) -> list[dict[str, Any]]:
    """n completions of one volunteer verified within this hour's window (the signals input).

    The windows are tumbling hours: completions two minutes apart straddled the hour when the
    test ran in its first quarter (a fresh-clone run at 19:0x UTC saw no flag). So they are
    seconds apart from the window's start, and never later than now."""
    now = datetime.now(UTC)
    start = now.replace(minute=0, second=0, microsecond=0)
    return [
        {
            "id": str(uuid.uuid4()),
            "data": {
                "verified_at": min(start + timedelta(seconds=i), now).isoformat(),
                "org_id": org,
                "community_id": "grid-7",
                "account_id": account,
                "points": 10,
                "verified_by": f"officer-{i % 3}",
            },
        }
        for i in range(n)
    ]


async def test_the_report_shows_the_live_integrity_signals(
    fresh_db: FreshDb, tmp_path: Path
) -> None:
    """The flags GET /v1/signals serves (what JifenIntegrityFlag alerts on) are in the
    report; "none found" only when there are none."""
    async with ledger_in(await fresh_db(MIGRATIONS), tmp_path / "keys") as lg:
        for b in sample_batches(lg.book):
            await lg.append(b)
        await lg.checkpoint()
        export = await lg.export(tmp_path / "export.ndjson", tmp_path / "keys.json")
        keys = load_keys(tmp_path / "keys.json")
        r = await lg.http.get("/v1/signals", headers=lg.auth())
        assert r.status_code == 200 and r.json()["flags"] == [], r.text
        quiet = tmp_path / "quiet.html"
        assert write_report([export], keys, None, quiet, r.json())
        assert re.search(
            r'<ul id="anomalies"><li>未发现 <span lang="en" class="en">none found',
            quiet.read_text(),
        )
        assert 'id="signals" class="figure ok">0 个标记' in quiet.read_text()
        # the signals process tallies eight completions of vol-a within the hour
        await record(lg.pool, queries(), _flagging_events(ORG, "vol-a", 8))
        r = await lg.http.get("/v1/signals", headers=lg.auth())
        flags = r.json()["flags"]
        assert [f["signal"] for f in flags] == ["volunteer_completions_per_hour"], flags
        flagged = tmp_path / "flagged.html"
        assert write_report([export], keys, None, flagged, r.json())
    page = flagged.read_text()
    assert 'id="signals" class="figure bad">1 个标记' in page
    anomalies = re.search(r'<ul id="anomalies">(.*?)</ul>', page, re.S)
    assert (
        anomalies and "none found" not in anomalies.group(1) and "未发现" not in anomalies.group(1)
    )
    assert "志愿者每小时完成数过多" in anomalies.group(1) and "vol-a" in anomalies.group(1)


def _screenshot(browser: str, page: Path, png: Path) -> bytes:
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--window-size=900,220",
            f"--screenshot={png}",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=90,
        check=True,
    )
    return png.read_bytes()


def _pixels(png: bytes) -> bytes:
    """The raw RGBA rows of a PNG Chromium wrote (8-bit, no interlace), without zlib tricks
    beyond the standard library: enough to compare two screenshots pixel by pixel."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", data[:8])
        elif kind == b"IDAT":
            idat += data
        pos += 12 + length
    raw = zlib.decompress(idat)
    assert width and height and len(raw) % height == 0
    return raw


async def test_the_reports_chinese_renders_with_real_glyphs_not_boxes(
    fresh_db: FreshDb, tmp_path: Path
) -> None:
    """Method: a missing glyph is drawn as the same box whatever the character, so two
    different strings without a font render identically, and two different Chinese strings
    with a font do not. The report's own heading, in its own CSS, is rendered four times in
    Chromium: as written (积分账本), with other Chinese (审计报告), and with two different
    pairs of private-use characters that no font has. The two private-use renders must be
    pixel-identical (the method works: boxes look alike here), the two Chinese renders must
    differ from each other and from the boxes."""
    browser = chromium()
    if not any("CJK" in line for line in _fc_list_zh()):
        pytest.skip("no CJK font installed (apt-get install fonts-noto-cjk; make system)")
    async with ledger_in(await fresh_db(MIGRATIONS), tmp_path / "keys") as lg:
        for b in sample_batches(lg.book):
            await lg.append(b)
        await lg.checkpoint()
        export = await lg.export(tmp_path / "export.ndjson", tmp_path / "keys.json")
    report = tmp_path / "report.html"
    write_report([export], load_keys(tmp_path / "keys.json"), None, report)
    page = report.read_text()
    style = re.search(r"<style>.*?</style>", page, re.S)
    heading = re.search(r'<h1 id="title">(.*?) <span', page)
    assert style and heading and heading.group(1) == "积分账本审计报告"
    shots = {}
    for name, text in {
        "report": "积分账本",
        "other": "审计报告",
        "box1": "\ue000\ue001\ue002\ue003",
        "box2": "\ue0a0\ue0b1\ue0c2\ue0d3",
    }.items():
        html = tmp_path / f"{name}.html"
        html.write_text(
            f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">{style.group(0)}'
            f'</head><body><h1 style="font-size:64px;margin:20px">{text}</h1></body></html>',
            encoding="utf-8",
        )
        shots[name] = _pixels(_screenshot(browser, html, tmp_path / f"{name}.png"))
    assert shots["box1"] == shots["box2"], "missing glyphs do not look alike: method unusable"
    assert shots["report"] != shots["box1"], "积分 rendered as boxes"
    assert shots["other"] != shots["box1"] and shots["report"] != shots["other"]
    # and the screenshot is not blank: the Chinese drew many dark pixels
    blank = bytes([255]) * 4
    dark = sum(
        1 for i in range(0, len(shots["report"]) - 4, 4) if shots["report"][i : i + 4] != blank
    )
    assert dark > 1000, dark


def _fc_list_zh() -> list[str]:
    found = shutil.which("fc-list")
    if found is None:
        return []
    run = subprocess.run([found, ":lang=zh"], capture_output=True, text=True, check=False)
    return run.stdout.splitlines()
