"""Metrics that tell the truth: after a known workload, what the services export equals what
the databases hold — scraped directly, and through a real Prometheus server."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from jifen.devtools.devstack import DevStack
from jifen.devtools.stack import PrometheusServer, free_port
from jifen.kernel.metrics import SCRAPE_TOKEN_FILE
from tests.e2e.test_typical_journey import earn
from tests.helpers import Api, eventually

pytestmark = pytest.mark.e2e


def scrape(
    port: int, stack: DevStack | None = None, *, token: str | None = None
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """What a process exports; with the stack's scrape credential (or ``token``), the
    per-organisation figures as well."""
    if stack is not None:
        token = (stack.keys_dir / SCRAPE_TOKEN_FILE).read_text().strip()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10, headers=headers).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


async def test_ledger_counters_equal_the_ledger(services: DevStack, apis: dict[str, Api]) -> None:
    account = f"vol-metrics-{uuid.uuid4().hex[:6]}"
    for n in (11, 13, 17):
        await earn(apis["tasks"], account, n)
    conn = await asyncpg.connect(services.owner_dsn("points"))
    try:

        async def settled() -> bool:
            n = await conn.fetchval(
                "SELECT count(*) FROM ledger_entry WHERE account_id = $1", account
            )
            return bool(n == 3)

        await eventually(settled, what="three credits")
        by_kind = {
            r["kind"]: r["n"]
            for r in await conn.fetch("SELECT kind, count(*) AS n FROM ledger_entry GROUP BY kind")
        }
        issued = {
            (r["org_id"], r["category"]): r["p"]
            for r in await conn.fetch(
                "SELECT org_id, category, sum(amount) AS p FROM ledger_entry WHERE kind = 'credit'"
                " GROUP BY 1, 2"
            )
        }
    finally:
        await conn.close()
    samples = scrape(services.ports.points_worker, services)
    api = scrape(services.ports.points, services)  # adjustments are appended by the API process
    for kind, n in by_kind.items():
        if kind == "adjustment":
            assert total(api, "jifen_points_ledger_entries_appended_total", kind=kind) == n
            continue
        assert total(samples, "jifen_points_ledger_entries_appended_total", kind=kind) == n, kind
    for (org, category), points in issued.items():
        assert (
            total(samples, "jifen_points_issued_points_total", org=org, category=category) == points
        )
    assert total(samples, "jifen_kafka_events_consumed_total") >= sum(by_kind.values())


async def test_redemption_counters_equal_the_redeem_database_and_the_ledger(
    services: DevStack, apis: dict[str, Api]
) -> None:
    tasks, redeem = apis["tasks"], apis["redeem"]
    account = f"vol-metrics-{uuid.uuid4().hex[:6]}"
    await earn(tasks, account, 40)
    reward = await redeem.http.post(
        "/v1/rewards",
        headers=redeem.auth("admin"),
        json={
            "merchant_id": "union",
            "name_zh": "电影票",
            "name_en": "Cinema",
            "points": 25,
            "stock": 5,
        },
    )
    vol = redeem.auth("volunteer", account)

    async def funded() -> bool:
        r = await redeem.http.get(f"/v1/wallets/{account}", headers=vol)
        return bool(r.json()["spendable"] == 40)

    await eventually(funded, what="the wallet funded")
    for _ in range(2):  # the second is refused: 15 points left
        await redeem.http.post(
            "/v1/redemptions",
            json={"reward_id": reward.json()["id"]},
            headers={**vol, "Idempotency-Key": f"m-{uuid.uuid4()}"},
        )
    redeem_db = await asyncpg.connect(services.owner_dsn("redeem"))
    points_db = await asyncpg.connect(services.owner_dsn("points"))
    try:
        placed = await redeem_db.fetchval("SELECT count(*) FROM redemption")

        async def debited() -> bool:
            n = await points_db.fetchval(
                "SELECT count(*) FROM ledger_entry WHERE kind = 'debit' AND account_id = $1",
                account,
            )
            return bool(n == 1)

        await eventually(debited, what="the debit")
        spent = await points_db.fetchval(
            "SELECT coalesce(-sum(amount), 0) FROM ledger_entry WHERE kind = 'debit'"
        )
    finally:
        await redeem_db.close()
        await points_db.close()
    api = scrape(services.ports.redeem, services)
    assert total(api, "jifen_redeem_redemptions_total", outcome="placed") == placed
    assert total(api, "jifen_redeem_redemptions_total", outcome="insufficient_points") >= 1
    worker = scrape(services.ports.points_worker, services)
    assert total(worker, "jifen_points_redeemed_points_total") == spent


async def test_job_and_completion_gauges_equal_the_tasks_database(
    services: DevStack, apis: dict[str, Api]
) -> None:
    await earn(apis["tasks"], f"vol-metrics-{uuid.uuid4().hex[:6]}", 9)
    conn = await asyncpg.connect(services.owner_dsn("tasks"))
    try:

        async def matches() -> bool:
            jobs = {
                (r["org_id"], r["category"]): r["n"]
                for r in await conn.fetch(
                    "SELECT org_id, category, count(*) AS n FROM job GROUP BY 1, 2"
                )
            }
            done = {
                (r["org_id"], r["status"]): r["n"]
                for r in await conn.fetch(
                    "SELECT org_id, status, count(*) AS n FROM completion GROUP BY 1, 2"
                )
            }
            samples = scrape(services.ports.tasks, services)
            return all(
                total(samples, "jifen_tasks_jobs", org=o, category=c) == n
                for (o, c), n in jobs.items()
            ) and all(
                total(samples, "jifen_tasks_completions", org=o, status=st) == n
                for (o, st), n in done.items()
            )

        await eventually(matches, timeout=30, what="tasks gauges equal to the database")
    finally:
        await conn.close()


async def test_per_organisation_figures_only_behind_the_scrape_credential(
    services: DevStack, apis: dict[str, Api]
) -> None:
    """Anyone reaching /metrics sees the operational figures; which organisations run schemes
    and how many points each owes only a scraper holding the credential."""
    await earn(apis["tasks"], f"vol-metrics-{uuid.uuid4().hex[:6]}", 4)
    ports = [services.ports.tasks, services.ports.points, services.ports.points_worker]
    for port in ports:
        for token in (None, "not-the-credential"):
            open_ = scrape(port, token=token)
            assert open_, port
            with_org = sorted({n for n, ls in open_ if any(k == "org" for k, _ in ls)})
            assert not with_org, f"per-organisation series open on :{port}: {with_org}"

    async def issued_behind_credential() -> bool:
        samples = scrape(services.ports.points_worker, services)
        return total(samples, "jifen_points_issued_points_total") > 0

    await eventually(issued_behind_credential, timeout=60, what="issued points, with the token")
    assert total(scrape(services.ports.tasks, services), "jifen_tasks_jobs") > 0


@pytest.fixture(scope="module")
def prometheus(services: DevStack) -> Iterator[PrometheusServer]:
    if shutil.which("prometheus") is None:
        pytest.skip("prometheus missing: `make deps` installs it")
    server = PrometheusServer(
        free_port(),
        services.home / "prometheus-test",
        services.prometheus.rules_dir,
        scrape_token_file=services.keys_dir / SCRAPE_TOKEN_FILE,
    )
    server.start(services.scrape_jobs(), interval="1s")
    yield server
    server.stop()


async def test_prometheus_scrapes_every_process_and_sees_the_workload(
    services: DevStack, apis: dict[str, Api], prometheus: PrometheusServer
) -> None:
    async with httpx.AsyncClient(base_url=prometheus.url, timeout=10) as http:

        async def query(expr: str) -> list[dict[str, object]]:
            r = await http.get("/api/v1/query", params={"query": expr})
            assert r.status_code == 200, r.text
            result: list[dict[str, object]] = r.json()["data"]["result"]
            return result

        async def all_up() -> bool:
            up = await query('up{job=~"jifen-.*"}')
            return len(up) == 8 and all(s["value"][1] == "1" for s in up)  # type: ignore[index]

        await eventually(all_up, timeout=30, what="all eight processes scraped and up")
        account = f"vol-prom-{uuid.uuid4().hex[:6]}"
        await earn(apis["tasks"], account, 7)
        conn = await asyncpg.connect(services.owner_dsn("points"))
        try:

            async def credits_match() -> bool:
                in_db = await conn.fetchval("SELECT count(*) FROM ledger_entry WHERE kind='credit'")
                got = await query('sum(jifen_points_ledger_entries_appended_total{kind="credit"})')
                return bool(got) and float(got[0]["value"][1]) == in_db  # type: ignore[index]

            await eventually(
                credits_match, timeout=30, what="Prometheus's credit count equal to the ledger's"
            )
        finally:
            await conn.close()
        rules = (await http.get("/api/v1/rules")).json()["data"]["groups"]
        assert {r["name"] for g in rules for r in g["rules"]} >= {
            "JifenServiceDown",
            "JifenDeadLetters",
            "JifenOutboxBacklogOld",
        }


async def test_a_held_completions_count_falls_back_to_zero_once_approved(
    services: DevStack,
) -> None:
    """The gauges say what the database holds now, zeros included: the only held completion of
    an organisation approved, its `held` count is 0 again (not its last count, forever)."""
    from tests.e2e.test_typical_journey import complete

    org = f"metrics-held-{uuid.uuid4().hex[:6]}"  # an organisation of its own: counts from 0
    tasks = Api(services, "tasks", org)
    try:
        # beyond the organisation's default daily limits: held for the admin
        done = await complete(tasks, f"vol-held-{uuid.uuid4().hex[:6]}", 600)
        r = await tasks.http.post(
            f"/v1/completions/{done['id']}/verify", headers=tasks.auth("officer")
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "held", r.json()

        def count(status: str) -> float | None:
            samples = scrape(services.ports.tasks, services)
            key = ("jifen_tasks_completions", frozenset({("org", org), ("status", status)}))
            return samples.get(key)

        async def held_is(n: float) -> bool:
            return count("held") == n

        await eventually(lambda: held_is(1), timeout=30, what="held = 1")
        assert count("verified") == 0  # a status with no rows is a 0, not missing
        r = await tasks.http.post(
            f"/v1/completions/{done['id']}/approve",
            headers=tasks.auth("admin"),
            json={"reason": "测试 a test approves it"},
        )
        assert r.status_code == 200, r.text
        await eventually(lambda: held_is(0), timeout=30, what="held back to 0 after approval")
        assert count("verified") == 1
    finally:
        await tasks.close()


def test_the_audit_gauges_come_only_from_the_process_running_the_audit_loop(
    services: DevStack,
) -> None:
    """The points API and the signals process import the audit code but do not run its loop:
    they export none of its gauges (a 0 from them would page as a failed verification)."""
    audit = (
        "jifen_points_audit_verification_ok",
        "jifen_points_audit_checkpoint_timestamp_seconds",
        "jifen_points_audit_checkpoint_tree_size",
        "jifen_points_audit_last_verification_timestamp_seconds",
    )
    for port in (services.ports.points, services.ports.points_signals):
        names = {n for n, _ in scrape(port, services)}
        assert not names & set(audit), (port, names & set(audit))
    for port in (services.ports.tasks, services.ports.redeem, services.ports.points_worker):
        names = {n for n, _ in scrape(port, services)}
        assert names, port
        if port == services.ports.points_worker:  # the audit loop runs in the points relay
            assert not names & set(audit), (port, names & set(audit))
