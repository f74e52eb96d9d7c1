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

from jifen.devtools.devstack import DevStack
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


COMPOSE_PROM = REPO_ROOT / "deploy" / "compose" / "prometheus.yml"


def test_the_deployed_config_and_rules_are_valid(tmp_path: Path) -> None:
    # promtool opens the credentials file, which only the deployment has: a stand-in here
    stand_in = tmp_path / "metrics-scrape-token"
    stand_in.write_text("stand-in\n")
    for config in (PROM / "prometheus.yml", COMPOSE_PROM):
        text = re.sub(r"credentials_file: \S+", f"credentials_file: {stand_in}", config.read_text())
        assert text.count("credentials_file:") == 3, f"{config}: every job presents the credential"
        copy = tmp_path / config.parent.name / "prometheus.yml"
        copy.parent.mkdir(exist_ok=True)
        copy.write_text(text)
        (copy.parent / "rules").symlink_to(PROM / "rules")
        assert "SUCCESS" in promtool("check", "config", copy)
    for rules in (PROM / "rules").glob("*.yml"):
        assert "SUCCESS" in promtool("check", "rules", rules)


def test_the_alert_rules_pass_their_unit_tests() -> None:
    tests = sorted((PROM / "tests").glob("*.yml"))
    assert tests
    assert "SUCCESS" in promtool("test", "rules", *tests)


def test_the_embedded_config_is_valid(tmp_path: Path, stack: DevStack) -> None:
    from jifen.devtools.stack import PrometheusServer

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
            "points_relay",
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
    import time

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
    # the audit gauges appear with the points worker's first checkpoint (every 60 s), not
    # before: a process exports a gauge only once it has something true to say
    deadline = time.monotonic() + 150
    while True:
        exported = _exported(services)
        missing = {n: where for n, where in used.items() if n not in exported}
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(1)  # polling the services' /metrics until the deadline
    assert not missing, f"metrics used but exported by no service: {missing}"
