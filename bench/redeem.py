"""Part 4, redemptions: Jifen's redeem API against the bare locked transaction served over HTTP
(bench/refserver.py), both driven by wrk with the same plan file (same bodies, same bearer
tokens, a fresh Idempotency-Key each request) and the same connections: a closed loop, then an
open loop at a fixed rate (half the API's closed-loop decisions/s, the same rate for both).

Each run has its own accounts and rewards of scarce stock (both stock and points run out).
After each run the checks are read from the databases, not from the answers: stock taken ≤
stock and stock left = stock − taken (no oversell), spent ≤ credited and spendable = credited −
spent (no overdraft), and the accepted answers = the redemptions written."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from typing import Any

import asyncpg
import httpx

from bench import reference, wrk
from bench.cpu import Meter, per_op, stack_roots
from bench.events import completion_event, produce
from bench.report import Report
from bench.services import auth
from jifen.devtools.devstack import DevStack

ACCOUNTS = 5


def scarce(requests: int) -> dict[str, tuple[int, int]]:
    # stock worth 1,350 points per 600 requests, the accounts hold 1,500 between them, and the
    # requests ask for about 10,500: both stock and points run out
    return {"cheap": (10, max(1, requests // 10)), "dear": (25, max(1, requests // 20))}


async def _rewards(
    http: httpx.AsyncClient, admin: dict[str, str], run: str, stocks: dict[str, tuple[int, int]]
) -> dict[str, str]:
    ids = {}
    for name, (price, stock) in stocks.items():
        r = await http.post(
            "/v1/rewards",
            headers=admin,
            json={
                "name_zh": "奖品",
                "name_en": f"{name}-{run}",
                "merchant_id": f"shop-{run}",
                "points": price,
                "stock": stock,
            },
        )
        r.raise_for_status()
        ids[name] = r.json()["id"]
    return ids


async def _wait_wallets(
    http: httpx.AsyncClient, stack: DevStack, accounts: list[str], pts: int
) -> None:
    deadline = time.monotonic() + 180
    got: list[Any] = []
    while time.monotonic() < deadline:
        got = [
            (await http.get(f"/v1/wallets/{a}", headers=auth(stack, "volunteer", a))).json()
            for a in accounts
        ]
        if all(w.get("spendable") == pts for w in got):
            return
        await asyncio.sleep(0.3)
    raise TimeoutError(f"wallets never learnt their credits: {got}")


def _plan(accounts: list[str], n: int, run: str) -> list[tuple[str, str]]:
    return [(accounts[i % len(accounts)], "cheap" if i % 2 else "dear") for i in range(n)]


def decisions(res: wrk.WrkResult) -> int:
    """Answers that decided (placed, the original again, or refused in the domain's words)."""
    return res.count(200, 201, 409, 422)


async def bench_redeem(
    stack: DevStack, rep: Report, requests: int, clients: int, seconds: int
) -> None:
    if not wrk.available():
        rep.add("4 redeem", "not done: wrk not installed (make system)", None, "")
        return
    run = uuid.uuid4().hex[:4]
    sets = {
        loop: [f"red{run}{loop[0]}-{i}" for i in range(ACCOUNTS)] for loop in ("closed", "open")
    }
    points_each = requests // 2
    await produce(
        stack.broker.bootstrap,
        [completion_event(a, points_each) for accts in sets.values() for a in accts],
    )
    admin = auth(stack, "admin")
    ref = await reference.start(stack, "bench_ref_redeem")
    try:
        api_rate = float("nan")
        for loop, accounts in sets.items():
            if loop == "closed":
                n, rate = requests, 0.0
            else:
                # the same fixed rate for both, one the API kept up with in the closed loop
                rate = round(max(5.0, 0.5 * api_rate), 1) if api_rate == api_rate else 20.0
                n = min(requests, max(50, int(rate * seconds)))
            stocks = scarce(n)
            async with httpx.AsyncClient(base_url=stack.url("redeem"), timeout=60) as http:
                rewards = await _rewards(http, admin, f"{run}{loop[0]}", stocks)
                await _wait_wallets(http, stack, accounts, points_each)
            await reference.seed_redeem(ref, accounts, points_each, rewards, stocks)
            plan = _plan(accounts, n, run)
            tokens = {a: stack.token("volunteer", a) for a in accounts}
            # one plan file for both: the API reads the account from the token, the
            # reference from the body (the API accepts a volunteer's own account_id too)
            lines = [
                wrk.Line(
                    "POST",
                    "/v1/redemptions",
                    tokens[a],
                    {"account_id": a, "reward_id": rewards[name]},
                )
                for a, name in plan
            ]
            how = (
                f"closed loop, {clients} connections"
                if loop == "closed"
                else f"open loop at {rate:g}/s, {clients} connections"
            )
            for who, url in (("API", stack.url("redeem")), ("bare locked tx", ref.url)):
                res, cpu = _drive(
                    stack, url, lines, clients, rate, seconds, f"r{run}{loop[0]}{who[0]}"
                )
                what = f"{who}: {n} redemptions, {how}, {ACCOUNTS} accounts"
                ref_what = (
                    None
                    if who == "bare locked tx"
                    else f"bare locked tx: {n} redemptions, {how}, {ACCOUNTS} accounts"
                )
                dec = decisions(res)
                rep.add(
                    "4 redeem",
                    what,
                    dec / res.seconds if res.seconds else None,
                    "decisions/s",
                    accepted=res.count(200, 201),
                    statuses=res.statuses,
                    errors=res.errors,
                    late=res.late,
                    late_mean_ms=res.late_mean_ms,
                    cpu=per_op(cpu[0], cpu[1], dec),
                    ref=ref_what,  # the reference's row comes next: print_table shows the ratio
                )
                rep.add(
                    "4 redeem",
                    f"{who} p99, {how}",
                    res.p99_ms,
                    "ms",
                    p50_ms=res.p50_ms,
                    p999_ms=res.p999_ms,
                    ref=None if who == "bare locked tx" else f"bare locked tx p99, {how}",
                )
                if loop == "closed" and who == "API":
                    api_rate = dec / res.seconds if res.seconds else float("nan")
                if loop == "open" and res.late:
                    rep.notes.append(
                        f"redeem {who}, open loop: {res.late} of {res.sent} sends after their "
                        f"slot (mean {res.late_mean_ms:.0f} ms late): all connections were busy; "
                        "latency is from the actual send (coordinated omission)"
                    )
                if who == "API":
                    await _check_api(
                        stack, rep, f"API ({loop})", res, accounts, rewards, stocks, points_each
                    )
                else:
                    await _check_ref(
                        ref, rep, f"bare tx ({loop})", res, accounts, rewards, stocks, points_each
                    )
    finally:
        reference.stop(stack, ref)


def _drive(
    stack: DevStack,
    url: str,
    lines: list[wrk.Line],
    clients: int,
    rate: float,
    seconds: int,
    key_prefix: str,
) -> tuple[wrk.WrkResult, tuple[Any, Any]]:
    meter = Meter(lambda: stack_roots(stack))
    before = meter.read()
    cap = max(60, int(len(lines) / rate) + 60) if rate else 300
    res = wrk.run(
        url, lines, connections=clients, threads=2, seconds=cap, key_prefix=key_prefix, rate=rate
    )
    after = meter.read()
    return res, (before, after)


def _verdicts(
    rep: Report,
    who: str,
    res: wrk.WrkResult,
    accepted: list[tuple[str, str]],
    stocks: dict[str, tuple[int, int]],
    points_each: int,
    accounts: list[str],
    stock_after: dict[str, Any],
    spendable: dict[str, Any],
) -> None:
    taken = Counter(nm for _, nm in accepted)
    spent = Counter[str]()
    for a, nm in accepted:
        spent[a] += stocks[nm][0]
    oversold = {n: taken[n] - s for n, (_, s) in stocks.items() if taken[n] > s}
    overdrawn = {a: points_each - spent[a] for a in accounts if spent[a] > points_each}
    rep.check(
        f"{who}: no oversell",
        not oversold and all(stock_after[n] == s - taken[n] for n, (_, s) in stocks.items()),
        f"taken {dict(taken)} of stock {dict((n, s) for n, (_, s) in stocks.items())}, "
        f"left {stock_after}",
    )
    rep.check(
        f"{who}: no overdraft",
        not overdrawn and all(spendable[a] == points_each - spent[a] for a in accounts),
        f"spent {dict(spent)} of {points_each} each; spendable after {spendable}",
    )
    rep.check(
        f"{who}: every request decided, accepted answers = rows written",
        decisions(res) == res.sent and res.count(200, 201) == len(accepted),
        f"{res.sent} sent, statuses {res.statuses}, errors {res.errors}, {len(accepted)} written",
    )


async def _check_api(
    stack: DevStack,
    rep: Report,
    who: str,
    res: wrk.WrkResult,
    accounts: list[str],
    rewards: dict[str, str],
    stocks: dict[str, tuple[int, int]],
    points_each: int,
) -> None:
    by_id = {v: k for k, v in rewards.items()}
    conn = await asyncpg.connect(stack.owner_dsn("redeem"))
    try:
        rows = await conn.fetch(
            "SELECT account_id, reward_id::text AS reward_id FROM redemption"
            " WHERE reward_id::text = ANY($1::text[]) AND status <> 'cancelled'",
            list(by_id),
        )
        left = {
            by_id[r["id"]]: r["stock"]
            for r in await conn.fetch(
                "SELECT id::text AS id, stock FROM reward WHERE id::text = ANY($1::text[])",
                list(by_id),
            )
        }
    finally:
        await conn.close()
    async with httpx.AsyncClient(base_url=stack.url("redeem"), timeout=60) as http:
        spendable = {
            a: (await http.get(f"/v1/wallets/{a}", headers=auth(stack, "volunteer", a)))
            .json()
            .get("spendable")
            for a in accounts
        }
    accepted = [(r["account_id"], by_id[r["reward_id"]]) for r in rows]
    _verdicts(rep, who, res, accepted, stocks, points_each, accounts, left, spendable)


async def _check_ref(
    ref: reference.Ref,
    rep: Report,
    who: str,
    res: wrk.WrkResult,
    accounts: list[str],
    rewards: dict[str, str],
    stocks: dict[str, tuple[int, int]],
    points_each: int,
) -> None:
    by_id = {v: k for k, v in rewards.items()}
    conn = await asyncpg.connect(ref.dsn)
    try:
        rows = await conn.fetch(
            "SELECT account_id, reward_id FROM redemption WHERE reward_id = ANY($1::text[])",
            list(by_id),
        )
        left = {
            by_id[r["id"]]: r["stock"]
            for r in await conn.fetch(
                "SELECT id, stock FROM reward WHERE id = ANY($1::text[])", list(by_id)
            )
        }
        bal = {
            r["account_id"]: r["balance"]
            for r in await conn.fetch(
                "SELECT * FROM wallet WHERE account_id = ANY($1::text[])", accounts
            )
        }
    finally:
        await conn.close()
    accepted = [(r["account_id"], by_id[r["reward_id"]]) for r in rows]
    _verdicts(rep, who, res, accepted, stocks, points_each, accounts, left, bal)
