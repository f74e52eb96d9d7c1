"""Part 5, the HTTP edge: completions POSTed to the tasks API against the bare transaction behind
bench/refserver.py (lock the claim, check, write the completion and its outbox row), both driven
by wrk with one plan file (same paths, bodies, bearer tokens; a fresh Idempotency-Key each);
a closed loop, then an open loop at a fixed rate; and ``GET /healthz`` on both servers (the
floor of each edge). Members and claims are set up through the API with wrk too (not compared)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench import reference, wrk
from bench.cpu import Meter, per_op, stack_roots
from bench.report import Report
from bench.services import auth
from jifen.devtools.devstack import DevStack


def _drive(
    stack: DevStack, url: str, lines: list[wrk.Line], clients: int, rate: float, key: str
) -> tuple[wrk.WrkResult, dict[str, Any]]:
    meter = Meter(lambda: stack_roots(stack))
    before = meter.read()
    cap = max(60, int(len(lines) / rate) + 60) if rate else 300
    res = wrk.run(
        url, lines, connections=clients, threads=2, seconds=cap, key_prefix=key, rate=rate
    )
    after = meter.read()
    return res, per_op(before, after, max(res.count(200, 201), 1))


async def bench_http(stack: DevStack, rep: Report, n: int, clients: int, seconds: int) -> None:
    if not wrk.available():
        rep.add("5 http", "not done: wrk not installed (make system)", None, "")
        return
    base = stack.url("tasks")
    officer, app = auth(stack, "officer"), auth(stack, "app")
    app_token = app["Authorization"].removeprefix("Bearer ")
    now = datetime.now(UTC)
    run = uuid.uuid4().hex[:6]
    # accounts for the closed loop and (at most as many) for the open loop
    accounts = [f"http-{run}-{i:05d}" for i in range(2 * n)]
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        r = await http.post(
            "/v1/communities", headers=officer, json={"id": "bench-grid", "name": "Bench grid"}
        )
        if r.status_code != 409:
            r.raise_for_status()
        jobs = []
        for _ in range((len(accounts) + 999) // 1000):  # a job takes at most 1,000 claims
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
    pairs = [(jobs[i // 1000], a) for i, a in enumerate(accounts)]
    # only accounts registered with the job's community may claim and complete
    for path, what in (
        ("/v1/communities/bench-grid/members", "members registered"),
        ("/v1/jobs/{job}/claims", "claims posted"),
    ):
        lines = [
            wrk.Line("POST", path.format(job=j), app_token, {"account_id": a}) for j, a in pairs
        ]
        res, cpu = _drive(stack, base, lines, clients, 0, f"s{run}{what[0]}")
        ok = res.count(200, 201)
        rep.add(
            "5 http",
            f"setup: {what}, closed loop, {clients} connections",
            ok / res.seconds,
            "req/s",
            statuses=res.statuses,
            cpu=cpu,
        )
        rep.check(
            f"setup: {what}", ok == len(lines), f"statuses {res.statuses}, errors {res.errors}"
        )
    ref = await reference.start(stack, "bench_ref_tasks")
    try:
        await reference.seed_claims(ref, pairs)
        api_rate = float("nan")
        for loop, part in (("closed", pairs[:n]), ("open", pairs[n:])):
            if loop == "closed":
                rate = 0.0
            else:
                rate = round(max(5.0, 0.5 * api_rate), 1) if api_rate == api_rate else 20.0
                part = part[: max(50, min(n, int(rate * seconds)))]
            how = (
                f"closed loop, {clients} connections"
                if loop == "closed"
                else f"open loop at {rate:g}/s, {clients} connections"
            )
            lines = [
                wrk.Line("POST", f"/v1/jobs/{j}/completions", app_token, {"account_id": a})
                for j, a in part
            ]
            for who, url in (("API", base), ("bare tx", ref.url)):
                res, cpu = _drive(stack, url, lines, clients, rate, f"c{run}{loop[0]}{who[0]}")
                ok = res.count(200, 201)
                what = f"{who}: {len(lines):,} completion POSTs, {how}"
                rep.add(
                    "5 http",
                    what,
                    ok / res.seconds if res.seconds else None,
                    "req/s",
                    statuses=res.statuses,
                    errors=res.errors,
                    late=res.late,
                    cpu=cpu,
                    ref=f"bare tx: {len(lines):,} completion POSTs, {how}"
                    if who == "API"
                    else None,
                )
                rep.add(
                    "5 http",
                    f"{who} completion POST p99, {how}",
                    res.p99_ms,
                    "ms",
                    p50_ms=res.p50_ms,
                    ref=f"bare tx completion POST p99, {how}" if who == "API" else None,
                )
                rep.check(
                    f"{who} ({loop}): completions accepted",
                    ok == len(lines),
                    f"statuses {res.statuses}, errors {res.errors}",
                )
                if loop == "closed" and who == "API":
                    api_rate = ok / res.seconds if res.seconds else float("nan")
                if loop == "open" and res.late:
                    rep.notes.append(
                        f"completions {who}, open loop: {res.late} of {res.sent} sends after "
                        f"their slot (mean {res.late_mean_ms:.0f} ms): coordinated omission"
                    )
        # the floor of each edge: GET /healthz (no auth, no database), same connections
        pings = [wrk.Line("GET", "/healthz")] * max(2000, 4 * n)
        for who, url in (("API", base), ("bare tx", ref.url)):
            res, cpu = _drive(stack, url, pings, clients, 0, f"h{run}{who[0]}")
            rep.add(
                "5 http",
                f"{who}: GET /healthz, closed loop, {clients} connections",
                res.count(200) / res.seconds if res.seconds else None,
                "req/s",
                p99_ms=res.p99_ms,
                cpu=cpu,
                ref=f"bare tx: GET /healthz, closed loop, {clients} connections"
                if who == "API"
                else None,
            )
    finally:
        reference.stop(stack, ref)
