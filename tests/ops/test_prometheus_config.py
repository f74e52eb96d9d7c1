"""Prometheus configuration, alert rules (with their unit tests) and the dashboard: checked
with promtool, and every metric they use is one the services really export."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import httpx
import orjson
import pytest

from jifen.kernel.devstack import DevStack
from jifen.kernel.metrics import SCRAPE_TOKEN_FILE
from jifen.kernel.settings import REPO_ROOT

PROM = REPO_ROOT / "deploy" / "prometheus"
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "jifen-overview.json"
METRIC = re.compile(r"\b(jifen_[a-z0-9_]+)")

pytestmark = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool missing: `make deps` installs it"
)


def promtool(*args: str | Path) -> str:
    result = subprocess.run(["promtool", *map(str, args)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_deployed_config_and_rules_are_valid() -> None:
    assert "SUCCESS" in promtool("check", "config", PROM / "prometheus.yml")
    for rules in (PROM / "rules").glob("*.yml"):
        assert "SUCCESS" in promtool("check", "rules", rules)


def test_the_alert_rules_pass_their_unit_tests() -> None:
    tests = sorted((PROM / "tests").glob("*.yml"))
    assert tests
    assert "SUCCESS" in promtool("test", "rules", *tests)


def test_the_embedded_config_is_valid(tmp_path: Path, stack: DevStack) -> None:
    from jifen.kernel.stack import PrometheusServer

    server = PrometheusServer(1, tmp_path, PROM / "rules")
    assert "SUCCESS" in promtool("check", "config", server.write_config(stack.scrape_jobs(), "5s"))


def _exported(services: DevStack) -> set[str]:
    names: set[str] = set()
    ports = [
        getattr(services.ports, p)
        for p in (
            "tasks",
            "points",
            "redeem",
            "tasks_worker",
            "points_worker",
            "redeem_worker",
            "points_signals",
        )
    ]
    # as Prometheus scrapes: with the credential that unlocks the per-organisation figures
    token = (services.keys_dir / SCRAPE_TOKEN_FILE).read_text().strip()
    for port in ports:
        text = httpx.get(
            f"http://127.0.0.1:{port}/metrics",
            timeout=10,
            headers={"Authorization": f"Bearer {token}"},
        ).text
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                name, kind = line.split()[2:4]
                names.add(name)
                if kind == "counter":
                    names.add(f"{name}_total")
                if kind == "histogram":
                    names.update(f"{name}_{s}" for s in ("bucket", "sum", "count"))
    return names


def test_rules_and_dashboard_use_only_metrics_the_services_export(services: DevStack) -> None:
    exported = _exported(services)
    used: dict[str, str] = {}
    for rules in (PROM / "rules").glob("*.yml"):
        for name in METRIC.findall(rules.read_text()):
            used[name] = rules.name
    dashboard = orjson.loads(DASHBOARD.read_bytes())
    assert dashboard["panels"], "the dashboard has panels"
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            for name in METRIC.findall(target["expr"]):
                used[name] = f"dashboard panel {panel['title']!r}"
    missing = {n: where for n, where in used.items() if n not in exported}
    assert not missing, f"metrics used but exported by no service: {missing}"
