"""The alert rules against a real Prometheus (Debian's) scraping real processes: a healthy stack
under traffic pages no one, and a real fault makes exactly its own alert fire.

The rules are the deployed ones (deploy/prometheus/rules), unchanged: no `for:` is shortened.
Prometheus scrapes and evaluates every second, so a rule's `for:` is waited for in full
(JifenServiceDown's minute included).

- the healthy run uses the session's stack, with traffic shaped like a real scheme's (several
  officers and communities, a few completions a minute each: nothing the integrity signals
  should flag), for ``HEALTHY_SECONDS``;
- the faults run on a stack of their own (they stop a process, dead-letter an event and
  tamper a ledger row, which the session's stack must never see).
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from jifen.devtools.devstack import DevStack
from jifen.devtools.stack import PrometheusServer, free_port
from jifen.kernel.metrics import SCRAPE_TOKEN_FILE
from jifen.kernel.settings import REPO_ROOT
from tests.helpers import Api, eventually, isolated_stack, register

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        shutil.which("prometheus") is None, reason="prometheus missing: `make deps` installs it"
    ),
]

RULES = REPO_ROOT / "deploy" / "prometheus" / "rules"
HEALTHY_SECONDS = 150.0
PROCESSES = 8  # each service's API and worker, the points relay and signals


def start_prometheus(stack: DevStack, home_name: str) -> PrometheusServer:
    server = PrometheusServer(
        free_port(),
        stack.home / home_name,
        RULES,
        scrape_token_file=stack.keys_dir / SCRAPE_TOKEN_FILE,
    )
    server.start(stack.scrape_jobs(), interval="1s")
    return server


class Prom:
    """The few Prometheus HTTP API calls these tests make."""

    def __init__(self, server: PrometheusServer) -> None:
        self.http = httpx.AsyncClient(base_url=server.url, timeout=10)

    async def query(self, expr: str) -> list[dict[str, Any]]:
        r = await self.http.get("/api/v1/query", params={"query": expr})
        assert r.status_code == 200, r.text
        result: list[dict[str, Any]] = r.json()["data"]["result"]
        return result

    async def alerts(self) -> list[dict[str, Any]]:
        """Every alert pending or firing now."""
        r = await self.http.get("/api/v1/alerts")
        assert r.status_code == 200, r.text
        alerts: list[dict[str, Any]] = r.json()["data"]["alerts"]
        return alerts

    async def firing(self) -> set[str]:
        return {a["labels"]["alertname"] for a in await self.alerts() if a["state"] == "firing"}

    async def rules_evaluated(self) -> bool:
        """Every rule was evaluated at least once, and none failed to evaluate."""
        r = await self.http.get("/api/v1/rules")
        groups = r.json()["data"]["groups"]
        rules = [rule for g in groups for rule in g["rules"]]
        bad = [(rule["name"], rule.get("lastError")) for rule in rules if rule["health"] == "err"]
        assert not bad, f"rules that fail to evaluate: {bad}"
        return bool(rules) and all(rule["health"] == "ok" for rule in rules)

    async def all_up(self, n: int = PROCESSES) -> bool:
        up = await self.query('up{job=~"jifen-(tasks|points|redeem)"}')
        return len(up) == n and all(s["value"][1] == "1" for s in up)

    async def close(self) -> None:
        await self.http.aclose()


def _window() -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "starts_at": (now - timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(hours=1)).isoformat(),
    }


async def earn_as(tasks: Api, *, community: str, publisher: str, verifier: str, points: int) -> str:
    """One volunteer, one job in ``community`` published by one officer and verified by
    another: the everyday shape of a scheme's work. Returns the account."""
    account = f"vol-{uuid.uuid4().hex[:10]}"
    await register(tasks, account, community)
    r = await tasks.http.post(
        "/v1/jobs",
        headers=tasks.auth("officer", publisher),
        json={
            "community_id": community,
            "title": "交通引导 Traffic guidance",
            "category": "traffic_guidance",
            "points": points,
            "capacity": 1,
            **_window(),
        },
    )
    assert r.status_code == 201, r.text
    job = r.json()["id"]
    app = tasks.auth("app")
    r = await tasks.http.post(f"/v1/jobs/{job}/claims", headers=app, json={"account_id": account})
    assert r.status_code == 201, r.text
    r = await tasks.http.post(
        f"/v1/jobs/{job}/completions",
        headers={**app, "Idempotency-Key": f"k-{uuid.uuid4()}"},
        json={"account_id": account},
    )
    assert r.status_code == 201, r.text
    r = await tasks.http.post(
        f"/v1/completions/{r.json()['id']}/verify", headers=tasks.auth("officer", verifier)
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "verified", r.json()
    return account


# -- a healthy stack ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def healthy_prometheus(services: DevStack) -> Iterator[PrometheusServer]:
    server = start_prometheus(services, f"prometheus-alerts-{uuid.uuid4().hex[:6]}")
    yield server
    server.stop()


@pytest.mark.timeout(HEALTHY_SECONDS + 240)
async def test_a_healthy_stack_under_traffic_pages_no_one(
    services: DevStack, healthy_prometheus: PrometheusServer
) -> None:
    prom = Prom(healthy_prometheus)
    org = f"alerts-{uuid.uuid4().hex[:6]}"  # an organisation of its own: its figures only
    tasks, points = Api(services, "tasks", org), Api(services, "points", org)
    try:
        await eventually(prom.all_up, timeout=60, what="all eight processes scraped and up")
        await eventually(prom.rules_evaluated, timeout=30, what="every rule evaluated")
        # integrity flags that other tests of the session raised in their organisations (one
        # volunteer earning far above the others in a day) are true, not false pages: not
        # this test's to judge. Its own organisation's traffic must raise none.

        # Likewise the dead letters of the hostile-event tests warn for ten minutes after:
        # theirs too, as long as this run dead-letters nothing (asserted at the end).
        dead_letters = "sum(jifen_kafka_events_dead_lettered_total) or vector(0)"
        dead_before = float((await prom.query(dead_letters))[0]["value"][1])

        def theirs(a: dict[str, Any]) -> bool:
            labels = a["labels"]
            if labels["alertname"] == "JifenDeadLetters":
                return True
            return labels["alertname"] == "JifenIntegrityFlag" and labels.get("org") != org

        officers = [f"officer-{org}-{i}" for i in range(4)]
        communities = [f"grid-{i}" for i in range(3)]
        pairs = itertools.cycle(
            [(c, officers[i % 4], officers[(i + 1) % 4]) for i, c in enumerate(communities * 4)]
        )
        raised: dict[tuple[str, str], dict[str, Any]] = {}
        loop = asyncio.get_running_loop()
        start = loop.time()
        earned = 0
        next_report = start
        while loop.time() - start < HEALTHY_SECONDS:
            community, publisher, verifier = next(pairs)
            account = await earn_as(
                tasks, community=community, publisher=publisher, verifier=verifier, points=5
            )
            earned += 1
            r = await points.http.get(
                f"/v1/accounts/{account}/balance", headers=points.auth("volunteer", account)
            )
            assert r.status_code == 200, r.text
            for a in await prom.alerts():
                if not theirs(a):
                    raised[(a["labels"]["alertname"], str(sorted(a["labels"].items())))] = a
            if loop.time() >= next_report:
                elapsed = loop.time() - start
                print(f"  healthy run: {elapsed:.0f}/{HEALTHY_SECONDS:.0f} s, {earned} earned")
                next_report += 30
            # a few completions a minute per community, as a scheme's day has them
            await asyncio.sleep(3)  # pacing the traffic, not waiting for a result
        assert earned >= 20
        dead_after = float((await prom.query(dead_letters))[0]["value"][1])
        assert dead_after == dead_before, "the healthy traffic dead-lettered events"
        assert not raised, "alerts raised on a healthy stack: " + "; ".join(
            f"{a['labels']['alertname']} {a['state']} {a['labels']}" for a in raised.values()
        )
        assert await prom.all_up()
        # the audit gauges come from the points relay alone, and say the ledger held
        ok = await prom.query("jifen_points_audit_verification_ok")
        worker = f"127.0.0.1:{services.ports.points_relay}"
        assert [s["metric"]["instance"] for s in ok] == [worker], ok
        assert ok[0]["value"][1] == "1"
        stamps = await prom.query("jifen_points_audit_checkpoint_timestamp_seconds")
        assert [s["metric"]["instance"] for s in stamps] == [worker], stamps
    finally:
        await tasks.close()
        await points.close()
        await prom.close()


# -- faults, each firing its own alert -----------------------------------------------------


@pytest.fixture(scope="module")
def alert_stack() -> Iterator[DevStack]:
    env = {
        # checkpoints (and the self-verification that follows each) every few seconds
        "JIFEN_POINTS_AUDIT_CHECKPOINT_SECONDS": "4",
        "JIFEN_TASKS_CREDIT_TIMEOUT_SECONDS": "60",
    }
    with isolated_stack("jifen-alerts-", env) as s:
        s.start_services()
        yield s


@pytest.fixture(scope="module")
async def fault_prom(alert_stack: DevStack) -> AsyncIterator[Prom]:
    server = start_prometheus(alert_stack, "prometheus")
    prom = Prom(server)
    await eventually(prom.all_up, timeout=60, what="all seven processes scraped and up")
    await eventually(prom.rules_evaluated, timeout=30, what="every rule evaluated")
    yield prom
    await prom.close()
    server.stop()


def _key(a: dict[str, Any]) -> tuple[str, str]:
    return a["labels"]["alertname"], str(sorted(a["labels"].items()))


async def raised_now(prom: Prom) -> set[tuple[str, str]]:
    return {_key(a) for a in await prom.alerts()}


async def firing_exactly(
    prom: Prom, alert: str, timeout: float, before: set[tuple[str, str]]
) -> list[dict[str, Any]]:
    """Wait until ``alert`` fires; then it must be the only alert the fault raised (pending
    or firing, beyond those raised ``before`` it)."""

    async def fires() -> list[dict[str, Any]]:
        return [
            a
            for a in await prom.alerts()
            if a["labels"]["alertname"] == alert and a["state"] == "firing"
        ]

    fired = await eventually(fires, timeout=timeout, what=f"{alert} firing")
    others = [
        a
        for a in await prom.alerts()
        if a["labels"]["alertname"] != alert and _key(a) not in before
    ]
    assert not others, f"besides {alert}: " + "; ".join(
        f"{a['labels']['alertname']} {a['state']} {a['labels']}" for a in others
    )
    return fired


async def nothing_raised(prom: Prom) -> bool:
    return not await prom.alerts()


@pytest.mark.timeout(300)
async def test_a_stopped_process_fires_service_down_and_nothing_else(
    alert_stack: DevStack, fault_prom: Prom
) -> None:
    await eventually(lambda: nothing_raised(fault_prom), timeout=60, what="a quiet start")
    alert_stack.stop_process("redeem-worker")
    t = time.monotonic()
    try:
        fired = await firing_exactly(fault_prom, "JifenServiceDown", timeout=120, before=set())
        assert [a["labels"]["instance"] for a in fired] == [
            f"127.0.0.1:{alert_stack.ports.redeem_worker}"
        ]
        assert fired[0]["labels"]["job"] == "jifen-redeem"
        assert fired[0]["labels"]["severity"] == "page"
        assert time.monotonic() - t >= 60, "fired before its minute (for: 1m)"
    finally:
        proc = alert_stack.start_process("redeem", "worker")
        await asyncio.to_thread(alert_stack.wait_ready, proc, 120)
    await eventually(lambda: nothing_raised(fault_prom), timeout=60, what="the page resolved")


@pytest.mark.timeout(180)
async def test_an_event_dead_lettered_fires_dead_letters_and_nothing_else(
    alert_stack: DevStack, fault_prom: Prom
) -> None:
    from aiokafka import AIOKafkaProducer

    await eventually(lambda: nothing_raised(fault_prom), timeout=60, what="a quiet start")
    producer = AIOKafkaProducer(bootstrap_servers=alert_stack.broker.bootstrap, linger_ms=0)
    await producer.start()
    try:  # not an event at all: the ledger worker dead-letters it with the reason
        await producer.send_and_wait("tasks.completions", b"{not json", key=b"vol-dlq")
    finally:
        await producer.stop()
    fired = await firing_exactly(fault_prom, "JifenDeadLetters", timeout=60, before=set())
    assert {a["labels"]["topic"] for a in fired} == {"tasks.completions"}
    assert fired[0]["labels"]["severity"] == "warn"


@pytest.mark.timeout(240)
async def test_a_tampered_ledger_row_fires_verification_failed_and_nothing_else(
    alert_stack: DevStack, fault_prom: Prom
) -> None:
    """Runs last in the module: a failed verification pages for an hour."""

    # the dead letter of the test before warns for its ten minutes: raised before, not by this
    before = await raised_now(fault_prom)
    assert not {name for name, _ in before} - {"JifenDeadLetters"}, before
    tasks = Api(alert_stack, "tasks")
    conn = await asyncpg.connect(alert_stack.owner_dsn("points"))
    try:
        await conn.execute("ALTER TABLE ledger_entry DISABLE TRIGGER USER")

        async def failed() -> bool:
            got = await fault_prom.query("jifen_points_audit_verification_ok == 0")
            return bool(got)

        for attempt in range(5):  # the next checkpoint must not slip in before the tampering
            account = await earn_as(
                tasks,
                community="penglai-grid",
                publisher="officer-li",
                verifier="officer-wang",
                points=7,
            )
            deadline = time.monotonic() + 30
            row = None
            while row is None and time.monotonic() < deadline:
                row = await conn.fetchval(
                    "SELECT id FROM ledger_entry WHERE account_id = $1", account
                )
                await asyncio.sleep(0.02)
            assert row is not None, "the credit did not reach the ledger"
            await conn.execute("UPDATE ledger_entry SET amount = 700 WHERE id = $1", row)
            try:
                await eventually(failed, timeout=20, what="a failed self-verification")
                break
            except AssertionError:
                print(f"  attempt {attempt + 1}: a checkpoint came before the tampering")
        else:
            raise AssertionError("no self-verification saw the tampered row")
        fired = await firing_exactly(fault_prom, "JifenVerificationFailed", 30, before)
        assert [a["labels"]["instance"] for a in fired] == [
            f"127.0.0.1:{alert_stack.ports.points_relay}"
        ]
        assert fired[0]["labels"]["severity"] == "page"
    finally:
        await conn.close()
        await tasks.close()
