"""Part 5, the HTTP edge: claims and completions posted to the tasks API, against
``GET /healthz`` with the same client."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench.report import Report, pct
from bench.services import auth
from jifen.devtools.devstack import DevStack


async def bench_http(stack: DevStack, rep: Report, n: int, clients: int) -> None:
    base = stack.url("tasks")
    officer, app = auth(stack, "officer"), auth(stack, "app")
    now = datetime.now(UTC)
    run = uuid.uuid4().hex[:6]
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
        # only accounts registered with the job's community may claim and complete (not timed)
        r = await http.post(
            "/v1/communities", headers=officer, json={"id": "bench-grid", "name": "Bench grid"}
        )
        if r.status_code != 409:
            r.raise_for_status()
        accounts = [f"http-{run}-{i:05d}" for i in range(n)]

        async def report_in(part: list[str]) -> None:
            for acct in part:
                r = await http.post(
                    "/v1/communities/bench-grid/members", headers=app, json={"account_id": acct}
                )
                r.raise_for_status()

        await asyncio.gather(*[report_in(accounts[k::clients]) for k in range(clients)])
        jobs = []
        for _ in range((n + 999) // 1000):  # a job takes at most 1,000 claims
            r = await http.post(
                "/v1/jobs",
                headers=officer,
                json={
                    "community_id": "bench-grid",
                    "title": "Bench patrol",
                    "category": "hazard_patrol",
                    "points": 5,
                    "capacity": 1000,
                    "starts_at": (now - timedelta(hours=1)).isoformat(),
                    "ends_at": (now + timedelta(hours=3)).isoformat(),
                },
            )
            r.raise_for_status()
            jobs.append(r.json()["id"])
        work = [(jobs[i // 1000], accounts[i]) for i in range(n)]

        async def drive(path: str, make: Any) -> tuple[float, list[float], Counter[int]]:
            lat: list[float] = []
            codes: Counter[int] = Counter()
            queue = list(reversed(work))
            deadline = time.monotonic() + 300  # bounded in time as well as in count

            async def client() -> None:
                while queue and time.monotonic() < deadline:
                    job, acct = queue.pop()
                    t = time.perf_counter()
                    for attempt in range(4):  # a dropped connection: retried, same key
                        try:
                            r = await http.post(path.format(job=job), **make(acct))
                            break
                        except httpx.TransportError:
                            codes[0] += 1
                            if attempt == 3:
                                raise
                    lat.append(time.perf_counter() - t)
                    codes[r.status_code] += 1

            t0 = time.perf_counter()
            await asyncio.gather(*[client() for _ in range(clients)])
            return time.perf_counter() - t0, lat, codes

        took, lat, codes = await drive(
            "/v1/jobs/{job}/claims", lambda a: {"headers": app, "json": {"account_id": a}}
        )
        rep.add("5 http", f"claims posted, {clients} clients", len(lat) / took, "req/s")
        took, lat, codes = await drive(
            "/v1/jobs/{job}/completions",
            lambda a: {"headers": {**app, "Idempotency-Key": f"k-{a}"}, "json": {"account_id": a}},
        )
        rep.add(
            "5 http",
            f"completions posted, {clients} clients, {n:,} requests",
            len(lat) / took,
            "req/s",
            codes=dict(codes),
        )
        rep.add("5 http", "completion POST p50", pct(lat, 0.5) * 1000, "ms")
        rep.add("5 http", "completion POST p99", pct(lat, 0.99) * 1000, "ms")
        rep.check(
            "completions accepted",
            codes.get(201, 0) + codes.get(200, 0) == n,
            f"status codes {dict(codes)}",
        )
        # the floor of this edge: the same client against /healthz (no auth, no database)
        t0 = time.perf_counter()
        hl: list[float] = []

        async def ping(k: int) -> None:
            for _ in range(k):
                t = time.perf_counter()
                await http.get("/healthz")
                hl.append(time.perf_counter() - t)

        await asyncio.gather(*[ping(n // clients) for _ in range(clients)])
        rep.add(
            "5 http",
            "reference: GET /healthz, same client",
            len(hl) / (time.perf_counter() - t0),
            "req/s",
        )
