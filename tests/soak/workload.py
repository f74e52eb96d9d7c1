"""The soak's workload: volunteers earn (claim, complete, verified by an officer, some
rejected, some revoked later) and members spend (redeem, some cancelled later), through the
real HTTP APIs, in several concurrent lanes, until told to stop.

It reuses the demo's client (``jifen.devtools.simulate.Demo``: tokens, calls, tallies, the
district's job categories and merchants) and adds what a soak needs: every call is retried
through a fault (a restarting PostgreSQL answers 500, a request may time out), with the same
Idempotency-Key where the API takes one, and an unclear outcome is settled by reading the
resource back.

Volunteers are split in two: earners (whose credits may be revoked) never redeem, and members
who redeem never have a credit revoked. So no reversal can take a balance below zero, and
any balance below zero at the end is a fault of the system, not of the workload.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from jifen.devtools.simulate import CATEGORIES, COMMUNITIES, MERCHANTS, ORG, Demo
from jifen.kernel.auth import issue_token

RETRYABLE = {429, 500, 502, 503, 504}


class Unavailable(Exception):
    """A call that kept failing for the whole retry budget (the journey is abandoned)."""


@dataclass
class Known:
    """What the APIs acknowledged to the workload (checked against the databases at the end)."""

    verified: set[str] = field(default_factory=set)
    revoked: set[str] = field(default_factory=set)
    placed: dict[str, str] = field(default_factory=dict)  # redemption id -> account
    cancelled: set[str] = field(default_factory=set)


class Workload(Demo):
    def __init__(
        self,
        urls: dict[str, str],
        keys_dir: Path,
        *,
        volunteers: int,
        lanes: int,
        seed: int,
        revoke_share: float = 0.15,
        reject_share: float = 0.05,
        redeem_share: float = 0.7,
        cancel_share: float = 0.3,
    ) -> None:
        super().__init__(urls, keys_dir, volunteers=volunteers, jobs=0, seed=seed)
        self.volunteers = [f"soak-{self.run_id}-{i:04d}" for i in range(volunteers)]
        self.lanes = lanes
        self.seed = seed
        self.revoke_share = revoke_share
        self.reject_share = reject_share
        self.redeem_share = redeem_share
        self.cancel_share = cancel_share
        self.known = Known()
        self.retries = 0
        self.abandoned: Counter[str] = Counter()
        self.jobs_made: list[str] = []
        self.next_job: dict[str, int] = {}
        self.job_lock = asyncio.Lock()
        self.rewards: list[dict[str, Any]] = []
        self.later: set[asyncio.Task[None]] = set()
        self.stopping = asyncio.Event()
        self._tokens: dict[tuple[str, str, int], dict[str, str]] = {}

    # -- plumbing ------------------------------------------------------------------------
    def auth(self, role: str, subject: str) -> dict[str, str]:
        # one token per role and subject per half hour (signing each request costs CPU)
        key = (role, subject, int(time.time() // 1800))
        if key not in self._tokens:
            token = issue_token(
                self.keys_dir, subject=subject, role=role, org=ORG, ttl_seconds=3600
            )
            self._tokens[key] = {"Authorization": f"Bearer {token}"}
        return self._tokens[key]

    async def ask(
        self,
        method: str,
        service: str,
        path: str,
        who: dict[str, str],
        *,
        budget: float = 120,
        **kw: Any,
    ) -> httpx.Response:
        """The demo's call, retried through faults until an answer that is not a fault."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        delay = 0.2
        while True:
            try:
                r = await self.call(method, service, path, who, **kw)
                if r.status_code not in RETRYABLE:
                    return r
                reason = f"{r.status_code}"
            except (httpx.HTTPError, RuntimeError) as exc:  # RuntimeError: the demo's 5xx
                reason = type(exc).__name__
            self.retries += 1
            if loop.time() > deadline:
                raise Unavailable(f"{method} {service}{path}: {reason}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 3.0)

    # -- setup ---------------------------------------------------------------------------
    async def setup(self, hours: float) -> None:
        admin = self.auth("admin", "admin-chen")
        await self.report_in(self.ask)
        for merchant, zh, en, points in MERCHANTS:
            r = await self.ask(
                "POST",
                "redeem",
                "/v1/rewards",
                admin,
                json={
                    "merchant_id": merchant,
                    "name_zh": zh,
                    "name_en": f"{en} (soak {self.run_id})",
                    "points": points,
                    "stock": 1_000_000,
                },
            )
            if r.status_code != 201:
                raise RuntimeError(f"could not list a reward: {r.status_code} {r.text}")
            self.rewards.append(r.json())
        self.hours = hours

    async def job_for(self, volunteer: str) -> str:
        """The next job this volunteer has not claimed (a job takes each volunteer once)."""
        i = self.next_job.get(volunteer, 0)
        self.next_job[volunteer] = i + 1
        async with self.job_lock:
            while len(self.jobs_made) <= i:
                category, title, points = CATEGORIES[len(self.jobs_made) % len(CATEGORIES)]
                now = datetime.now(UTC)
                r = await self.ask(
                    "POST",
                    "tasks",
                    "/v1/jobs",
                    self.auth("officer", "officer-li"),
                    json={
                        "community_id": COMMUNITIES[len(self.jobs_made) % 2],
                        "title": title,
                        "category": category,
                        "points": points,
                        "capacity": len(self.volunteers),
                        "starts_at": (now - timedelta(hours=1)).isoformat(),
                        "ends_at": (now + timedelta(hours=self.hours)).isoformat(),
                    },
                )
                if r.status_code != 201:
                    raise RuntimeError(f"could not publish a job: {r.status_code} {r.text}")
                self.jobs_made.append(r.json()["id"])
            return self.jobs_made[i]

    # -- journeys ------------------------------------------------------------------------
    async def run(self, *_: Any) -> dict[str, Any]:  # type: ignore[override]
        lanes = [asyncio.create_task(self.lane(i)) for i in range(self.lanes)]
        await self.stopping.wait()
        await asyncio.gather(*lanes, return_exceptions=True)
        if self.later:  # revocations and cancellations still waiting for their moment
            await asyncio.wait(self.later, timeout=180)
        return dict(self.tally.outcomes)

    async def lane(self, n: int) -> None:
        rng = random.Random(self.seed * 1000 + n)
        mine = self.volunteers[n :: self.lanes]
        while not self.stopping.is_set():
            volunteer = rng.choice(mine)
            shopper = int(volunteer.rsplit("-", 1)[1]) % 2 == 0
            try:
                completion = await self.earn(volunteer, rng)
                if completion and not shopper and rng.random() < self.revoke_share:
                    self.soon(self.revoke(completion, rng.uniform(0, 8)))
                if shopper and rng.random() < self.redeem_share:
                    await self.shop(volunteer, rng)
            except Unavailable as exc:
                self.abandoned[str(exc).split(":", 1)[0]] += 1

    def soon(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self.later.add(task)
        task.add_done_callback(self.later.discard)

    async def earn(self, volunteer: str, rng: random.Random) -> str | None:
        app, officer = self.auth("app", "app-qishou"), self.auth("officer", "officer-li")
        job = await self.job_for(volunteer)
        r = await self.ask(
            "POST", "tasks", f"/v1/jobs/{job}/claims", app, json={"account_id": volunteer}
        )
        # a retried claim that had landed answers already_claimed: the place is ours all the same
        if r.status_code != 201 and r.json().get("reason") != "already_claimed":
            self.tally.outcomes[f"claim refused: {r.json().get('reason')}"] += 1
            return None
        r = await self.ask(
            "POST",
            "tasks",
            f"/v1/jobs/{job}/completions",
            {**app, "Idempotency-Key": f"soak-{self.run_id}-{volunteer}-{job}"},
            json={"account_id": volunteer, "evidence": {"note": "soak"}},
        )
        if r.status_code not in (200, 201):
            self.tally.outcomes[f"completion refused: {r.json().get('reason')}"] += 1
            return None
        completion: str = r.json()["id"]
        if rng.random() < self.reject_share:
            await self.ask(
                "POST",
                "tasks",
                f"/v1/completions/{completion}/reject",
                officer,
                json={"reason": "no evidence at the site"},
            )
            self.tally.outcomes["completions rejected"] += 1
            return None
        await self.ask("POST", "tasks", f"/v1/completions/{completion}/verify", officer)
        status = await self.status_of(completion)
        if status == "held":  # over an organisation limit: its admin approves
            await self.ask(
                "POST",
                "tasks",
                f"/v1/completions/{completion}/approve",
                self.auth("admin", "admin-chen"),
                json={"reason": "checked the sign-in sheet"},
            )
            status = await self.status_of(completion)
        if status != "verified":
            self.tally.outcomes[f"completions left {status}"] += 1
            return None
        self.tally.outcomes["completions verified"] += 1
        self.known.verified.add(completion)
        return completion

    async def status_of(self, completion: str) -> str:
        """The completion's state as the tasks service has it (a retried verify may have
        answered 409 because its first attempt had landed)."""
        r = await self.ask(
            "GET", "tasks", f"/v1/completions/{completion}", self.auth("officer", "officer-li")
        )
        return str(r.json().get("status"))

    async def revoke(self, completion: str, after: float) -> None:
        await asyncio.sleep(after)
        try:
            await self.ask(
                "POST",
                "tasks",
                f"/v1/completions/{completion}/revoke",
                self.auth("officer", "officer-li"),
                json={"reason": "the same delivery was reported twice"},
            )
            status = await self.status_of(completion)
        except Unavailable as exc:
            self.abandoned[str(exc).split(":", 1)[0]] += 1
            return
        if status == "revoked":
            self.known.revoked.add(completion)
            self.tally.outcomes["completions revoked"] += 1
        else:
            self.tally.outcomes[f"revocation left {status}"] += 1

    async def shop(self, volunteer: str, rng: random.Random) -> None:
        who = self.auth("volunteer", volunteer)
        reward = rng.choice(self.rewards)
        r = await self.ask(
            "POST",
            "redeem",
            "/v1/redemptions",
            {**who, "Idempotency-Key": f"soak-{uuid.uuid4()}"},
            json={"reward_id": reward["id"]},
        )
        if r.status_code not in (200, 201):
            self.tally.outcomes[f"redemptions refused: {r.json().get('reason')}"] += 1
            return
        rid: str = r.json()["id"]
        self.known.placed[rid] = volunteer
        self.tally.outcomes["redemptions placed"] += 1
        if rng.random() < self.cancel_share:
            # some while the debit is still on its way (cancelling), some once confirmed
            self.soon(self.cancel(who, rid, rng.uniform(0, 6)))

    async def cancel(self, who: dict[str, str], rid: str, after: float) -> None:
        await asyncio.sleep(after)
        try:
            r = await self.ask(
                "POST",
                "redeem",
                f"/v1/redemptions/{rid}/cancel",
                who,
                json={"reason": "changed my mind"},
            )
        except Unavailable as exc:
            self.abandoned[str(exc).split(":", 1)[0]] += 1
            return
        status = r.json().get("status") if r.status_code == 200 else r.json().get("reason")
        if status in ("cancelling", "cancelled"):
            self.known.cancelled.add(rid)
            self.tally.outcomes["redemptions cancelled"] += 1
        else:
            self.tally.outcomes[f"cancellation refused: {status}"] += 1

    async def close(self) -> None:
        await self.http.aclose()

    def sent(self) -> int:
        k = self.known
        return len(k.verified) + len(k.revoked) + len(k.placed) + len(k.cancelled)
