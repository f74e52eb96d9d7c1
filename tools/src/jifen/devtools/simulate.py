"""``jifen demo``: a simulated month of a district, driven through the running stack's APIs.

Hundreds of volunteers claim and complete jobs, officers verify most and reject some, one
credit is revoked, members redeem at several merchants (some refused for want of points), a
hazard report goes from report to job to done; then the ledger is audited offline and a
summary printed. Bounded in size; every request is real HTTP against `make run`.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import tempfile
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import Progress

from jifen.kernel.auth import issue_token

ORG = "jiangmen-riders"
COMMUNITIES = ("penglai-grid", "dongcheng-grid")
CATEGORIES = [
    ("meal_delivery", "为独居老人送餐 Meal delivery to isolated elders", 20),
    ("traffic_guidance", "路口交通引导 Traffic guidance", 15),
    ("civility_persuasion", "文明劝导 Civility persuasion", 10),
    ("hazard_patrol", "消防隐患巡查 Fire-hazard patrol", 25),
    ("elder_visit", "探访独居老人 Elder visit", 20),
    ("free_repair_day", "电动车免费维修日 Free e-bike repair day", 40),
]
MERCHANTS = [
    ("merchant-battery", "电池更换券", "Battery swap voucher", 30),
    ("merchant-shop", "食用油一桶", "Cooking oil", 60),
    ("merchant-clinic", "体检套餐", "Health check", 120),
]


@dataclass
class Tally:
    http: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)


class Demo:
    def __init__(
        self, urls: dict[str, str], keys_dir: Path, volunteers: int, jobs: int, seed: int
    ) -> None:
        self.urls = urls
        self.keys_dir = keys_dir
        self.volunteers = [f"vol-m{i:04d}" for i in range(volunteers)]
        self.jobs = jobs
        self.rng = random.Random(seed)
        self.tally = Tally()
        self.run_id = uuid.uuid4().hex[:6]
        self.http = httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=24))
        self.sem = asyncio.Semaphore(16)

    def auth(self, role: str, subject: str) -> dict[str, str]:
        token = issue_token(self.keys_dir, subject=subject, role=role, org=ORG, ttl_seconds=3600)
        return {"Authorization": f"Bearer {token}"}

    async def call(
        self, method: str, service: str, path: str, who: dict[str, str], **kw: Any
    ) -> httpx.Response:
        async with self.sem:
            r = await self.http.request(method, self.urls[service] + path, headers=who, **kw)
        self.tally.http[f"{service} {r.status_code}"] += 1
        if r.status_code >= 500:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text}")
        return r

    async def report_in(self, call: Any = None) -> None:
        """The district's communities exist, and every volunteer reports in to both (riders
        work across grids): only registered accounts may claim, complete and be credited."""
        call = call or self.call
        officer, app = self.auth("officer", "officer-li"), self.auth("app", "app-qishou")
        for community in COMMUNITIES:
            r = await call(
                "POST",
                "tasks",
                "/v1/communities",
                officer,
                json={"id": community, "name": community},
            )
            if r.status_code not in (201, 409):
                raise RuntimeError(f"could not add community {community}: {r.text}")

        async def register(volunteer: str, community: str) -> None:
            r = await call(
                "POST",
                "tasks",
                f"/v1/communities/{community}/members",
                app,
                json={"account_id": volunteer},
            )
            if r.status_code not in (200, 201):
                raise RuntimeError(f"could not register {volunteer}: {r.text}")

        await asyncio.gather(*(register(v, c) for v in self.volunteers for c in COMMUNITIES))

    async def run(self, progress: Progress) -> dict[str, Any]:
        officer, admin = self.auth("officer", "officer-li"), self.auth("admin", "admin-chen")
        app = self.auth("app", "app-qishou")
        await self.report_in()
        now = datetime.now(UTC)
        # 1. the month's menu: jobs whose windows are open now (a month compressed to minutes)
        step = progress.add_task("publishing jobs", total=self.jobs)
        jobs: list[dict[str, Any]] = []
        for i in range(self.jobs):
            category, title, points = CATEGORIES[i % len(CATEGORIES)]
            r = await self.call(
                "POST",
                "tasks",
                "/v1/jobs",
                officer,
                json={
                    "community_id": COMMUNITIES[i % 2],
                    "title": title,
                    "category": category,
                    "points": points,
                    "capacity": max(2, 3 * len(self.volunteers) // self.jobs),
                    "starts_at": (now - timedelta(hours=1)).isoformat(),
                    "ends_at": (now + timedelta(hours=6)).isoformat(),
                },
            )
            jobs.append(r.json())
            progress.advance(step)
        # 2. volunteers claim and complete; officers verify most, reject some
        pairs = [(v, self.rng.choice(jobs)) for v in self.volunteers for _ in range(2)]
        step = progress.add_task("claims, completions, verifications", total=len(pairs))

        async def one(volunteer: str, job: dict[str, Any]) -> str | None:
            try:
                r = await self.call(
                    "POST",
                    "tasks",
                    f"/v1/jobs/{job['id']}/claims",
                    app,
                    json={"account_id": volunteer},
                )
                if r.status_code != 201:
                    self.tally.outcomes[f"claim refused: {r.json().get('reason')}"] += 1
                    return None
                r = await self.call(
                    "POST",
                    "tasks",
                    f"/v1/jobs/{job['id']}/completions",
                    {**app, "Idempotency-Key": f"demo-{self.run_id}-{volunteer}-{job['id']}"},
                    json={"account_id": volunteer, "evidence": {"note": "done"}},
                )
                if r.status_code not in (200, 201):
                    self.tally.outcomes[f"completion refused: {r.json().get('reason')}"] += 1
                    return None
                completion = r.json()["id"]
                if self.rng.random() < 0.08:
                    r = await self.call(
                        "POST",
                        "tasks",
                        f"/v1/completions/{completion}/reject",
                        officer,
                        json={"reason": "no evidence at the site"},
                    )
                    self.tally.outcomes["rejected"] += 1
                    return None
                r = await self.call(
                    "POST", "tasks", f"/v1/completions/{completion}/verify", officer
                )
                status = r.json().get("status") if r.status_code == 200 else r.json().get("reason")
                if status == "held":  # over a daily limit: the organisation's admin decides
                    r = await self.call(
                        "POST",
                        "tasks",
                        f"/v1/completions/{completion}/approve",
                        admin,
                        json={"reason": "checked the sign-in sheet"},
                    )
                    status = r.json().get("status") if r.status_code == 200 else "held"
                self.tally.outcomes[f"completion {status}"] += 1
                return completion if status == "verified" else None
            finally:
                progress.advance(step)

        verified = [c for c in await asyncio.gather(*(one(v, j) for v, j in pairs)) if c]
        # 3. one credit turns out to be wrong: revoked, a compensating entry follows
        if verified:
            r = await self.call(
                "POST",
                "tasks",
                f"/v1/completions/{verified[0]}/revoke",
                officer,
                json={"reason": "the same delivery was reported twice"},
            )
            self.tally.outcomes[f"revocation {r.status_code}"] += 1
        # 4. a hazard report, followed from report to done
        await self.hazard(officer, app)
        # 5. the points supermarket
        await self.settle(progress, verified[1:])
        await self.redeem(progress, admin)
        return await self.summary()

    async def hazard(self, officer: dict[str, str], app: dict[str, str]) -> None:
        reporter = self.volunteers[0]
        r = await self.call(
            "POST",
            "tasks",
            "/v1/hazards",
            app,
            json={
                "account_id": reporter,
                "community_id": COMMUNITIES[0],
                "kind": "stairwell_clutter",
                "text": "楼道堆放杂物 boxes block the stairwell of building 3",
                "evidence_ref": "photo/stair-3.jpg",
            },
        )
        if r.status_code != 201:
            self.tally.outcomes[f"hazard report {r.status_code}"] += 1
            return
        hazard = r.json()["id"]
        now = datetime.now(UTC)
        r = await self.call(
            "POST",
            "tasks",
            f"/v1/hazards/{hazard}/triage",
            officer,
            json={
                "job": {
                    "title": "清理楼道杂物 Clear the stairwell",
                    "category": "hazard_patrol",
                    "points": 30,
                    "capacity": 1,
                    "starts_at": (now - timedelta(hours=1)).isoformat(),
                    "ends_at": (now + timedelta(hours=4)).isoformat(),
                },
                "reason": "fire risk",
            },
        )
        job = r.json().get("job_id")
        fixer = self.volunteers[-1]
        await self.call("POST", "tasks", f"/v1/jobs/{job}/claims", app, json={"account_id": fixer})
        r = await self.call(
            "POST",
            "tasks",
            f"/v1/jobs/{job}/completions",
            {**app, "Idempotency-Key": f"demo-{self.run_id}-hazard"},
            json={"account_id": fixer},
        )
        await self.call("POST", "tasks", f"/v1/completions/{r.json()['id']}/verify", officer)
        r = await self.call("GET", "tasks", f"/v1/hazards/{hazard}", officer)
        self.tally.outcomes[f"hazard report {r.json().get('status')}"] += 1

    async def settle(self, progress: Progress, verified: list[str]) -> None:
        """Wait until every verified completion of this run is credited (the ledger's ack)."""
        officer = self.auth("officer", "officer-li")
        self.auditor = self.auth("auditor", "auditor-union")
        pending = set(verified)
        step = progress.add_task("waiting for the ledger's credits", total=len(pending))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 120
        while pending and loop.time() < deadline:

            async def credited(cid: str) -> str | None:
                r = await self.call("GET", "tasks", f"/v1/completions/{cid}", officer)
                return cid if r.status_code == 200 and r.json().get("credited_at") else None

            done = {c for c in await asyncio.gather(*(credited(c) for c in pending)) if c}
            pending -= done
            progress.advance(step, len(done))
            if pending:
                await asyncio.sleep(0.5)
        self.tally.outcomes["credits still pending after 2 min"] = len(pending)

    async def redeem(self, progress: Progress, admin: dict[str, str]) -> None:
        rewards = []
        for merchant, zh, en, points in MERCHANTS:
            r = await self.call(
                "POST",
                "redeem",
                "/v1/rewards",
                admin,
                json={
                    "merchant_id": merchant,
                    "name_zh": zh,
                    "name_en": f"{en} ({self.run_id})",
                    "points": points,
                    "stock": 25,
                },
            )
            rewards.append(r.json())
        shoppers = self.rng.sample(self.volunteers, k=min(120, len(self.volunteers)))
        await self.wallets_caught_up(shoppers)
        step = progress.add_task("redemptions", total=len(shoppers))

        async def shop(volunteer: str) -> None:
            reward = self.rng.choice(rewards)
            who = self.auth("volunteer", volunteer)
            r = await self.call(
                "POST",
                "redeem",
                "/v1/redemptions",
                {**who, "Idempotency-Key": f"demo-{self.run_id}-{volunteer}"},
                json={"reward_id": reward["id"]},
            )
            outcome = "accepted" if r.status_code == 201 else r.json().get("reason", r.status_code)
            self.tally.outcomes[f"redemption {outcome}"] += 1
            if r.status_code == 201:
                placed.append((who, r.json()["id"]))
            progress.advance(step)

        placed: list[tuple[dict[str, str], str]] = []
        await asyncio.gather(*(shop(v) for v in shoppers))
        # the ledger debits asynchronously: wait until every accepted redemption is confirmed
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while placed and loop.time() < deadline:
            states = await asyncio.gather(
                *(self.call("GET", "redeem", f"/v1/redemptions/{rid}", who) for who, rid in placed)
            )
            placed = [
                p
                for p, r in zip(placed, states, strict=True)
                if r.json().get("status") == "pending"
            ]
            if placed:
                await asyncio.sleep(0.3)
        self.tally.outcomes["redemptions not debited after 1 min"] = len(placed)

    async def wallets_caught_up(self, accounts: list[str], timeout: float = 30) -> None:
        """The redeem service learns balances from the ledger's events: let it catch up."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        behind = list(accounts)
        while behind and loop.time() < deadline:

            async def lagging(account: str) -> bool:
                who = self.auth("volunteer", account)
                ledger = await self.call("GET", "points", f"/v1/accounts/{account}/balance", who)
                wallet = await self.call("GET", "redeem", f"/v1/wallets/{account}", who)
                return bool(ledger.json()["balance"] != wallet.json()["ledger_balance"])

            flags = await asyncio.gather(*(lagging(a) for a in behind))
            behind = [a for a, late in zip(behind, flags, strict=True) if late]
            if behind:
                await asyncio.sleep(0.3)

    async def summary(self) -> dict[str, Any]:
        issued = redeemed = outstanding = 0
        for v in self.volunteers:
            r = await self.call("GET", "points", f"/v1/accounts/{v}/balance", self.auditor)
            if r.status_code == 200:
                b = r.json()
                issued += b["earned"]
                redeemed += b["spent"]
                outstanding += b["balance"]
        await self.http.aclose()
        return {
            "points issued (net of reversals)": issued,
            "points redeemed": redeemed,
            "points outstanding": outstanding,
            **dict(sorted(self.tally.outcomes.items())),
        }


def audit(points_url: str, keys_dir: Path) -> str:
    """Fetch a fresh checkpoint and export and verify them offline, as a union would."""
    token = issue_token(keys_dir, subject="auditor-union", role="auditor", org=ORG)
    admin = issue_token(keys_dir, subject="admin-chen", role="admin", org=ORG)
    httpx.post(
        f"{points_url}/v1/audit/checkpoints",
        headers={"Authorization": f"Bearer {admin}"},
        timeout=60,
    )
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "JIFEN_POINTS_URL": points_url, "JIFEN_AUDIT_TOKEN": token}
        jifen = [sys.executable, "-m", "jifen.kernel.cli", "audit"]
        fetch = subprocess.run(
            [*jifen, "fetch", "--out", f"{tmp}/export.ndjson", "--keys-out", f"{tmp}/keys.json"],
            env=env,
            capture_output=True,
            text=True,
        )
        if fetch.returncode != 0:
            return f"could not fetch the export: {fetch.stderr.strip()[-300:]}"
        verify = subprocess.run(
            [
                *jifen,
                "verify",
                f"{tmp}/export.ndjson",
                "--keys",
                f"{tmp}/keys.json",
                "--no-progress",
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        lines = verify.stdout.strip().splitlines() or ["(no output)"]
        if verify.returncode == 0:
            return "passed: " + lines[-1]
        return "FAILED: " + " | ".join(lines[-6:])


def main(
    urls: dict[str, str], keys_dir: Path, prometheus: str, volunteers: int, jobs: int, seed: int
) -> int:
    console = Console()
    console.print(
        f"simulating a month of {len(COMMUNITIES)} grids: {volunteers} volunteers, {jobs} jobs"
    )
    demo = Demo(urls, keys_dir, volunteers, jobs, seed)
    with Progress(console=console, transient=False) as progress:
        summary = asyncio.run(demo.run(progress))
    summary["audit verification"] = audit(urls["points"], keys_dir)
    width = max(map(len, summary))
    for k, v in summary.items():
        console.print(f"  {k:<{width}}  {v}")
    console.print(
        f"\nwatch it in Prometheus: {prometheus}  (e.g. jifen_points_issued_points_total)"
    )
    return 0 if str(summary["audit verification"]).startswith("passed") else 1
