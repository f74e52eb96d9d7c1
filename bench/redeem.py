"""Part 4, redemptions through the real redeem API, against a bare locked transaction doing
the same writes with the same plan and clients."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections import Counter
from typing import Any

import asyncpg
import httpx

from bench.events import completion_event, produce
from bench.report import Report, pct
from bench.services import auth
from jifen.devtools.devstack import DevStack


async def bench_redeem(stack: DevStack, rep: Report, requests: int, clients: int) -> None:
    run = uuid.uuid4().hex[:4]
    accounts = [f"red{run}-{i}" for i in range(5)]
    # scarce: stock is worth 1,350 points per 600 requests, the accounts hold 1,500 between them,
    # and the requests ask for about 10,500: both stock and points run out
    points_each = requests // 2
    await produce(stack.broker.bootstrap, [completion_event(a, points_each) for a in accounts])
    admin = auth(stack, "admin")
    base = stack.url("redeem")
    stocks = {"cheap": (10, requests // 10), "dear": (25, requests // 20)}
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        rewards = {}
        for name, (price, stock) in stocks.items():
            r = await http.post(
                "/v1/rewards",
                headers=admin,
                json={
                    "name_zh": "奖品",
                    "name_en": name,
                    "merchant_id": f"shop-{run}",
                    "points": price,
                    "stock": stock,
                },
            )
            r.raise_for_status()
            rewards[name] = r.json()["id"]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            got = [
                (await http.get(f"/v1/wallets/{a}", headers=auth(stack, "volunteer", a))).json()
                for a in accounts
            ]
            if all(w.get("spendable") == points_each for w in got):
                break
            await asyncio.sleep(0.3)
        else:
            raise TimeoutError(f"wallets never learnt their credits: {got}")

    plan = [
        (accounts[i % 5], "cheap" if i % 2 else "dear", f"b-{run}-{i}") for i in range(requests)
    ]
    tokens = {a: auth(stack, "volunteer", a) for a in accounts}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    lat: list[float] = []
    transport_errors = [0]
    results: list[tuple[str, str, int, str]] = []
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as http:

        async def one(acct: str, name: str, key: str) -> None:
            t = time.perf_counter()
            for attempt in range(4):  # a dropped connection is retried with the same key
                try:
                    r = await http.post(
                        "/v1/redemptions",
                        json={"reward_id": rewards[name]},
                        headers={**tokens[acct], "Idempotency-Key": key},
                    )
                    break
                except httpx.TransportError:
                    transport_errors[0] += 1
                    if attempt == 3:
                        raise
            lat.append(time.perf_counter() - t)
            # a retry whose first try had landed answers 200 with the original: accepted once
            code = 201 if r.status_code in (200, 201) else r.status_code
            results.append((acct, name, code, r.json().get("reason", "")))

        sem = asyncio.Semaphore(clients)

        async def bounded(*a: str) -> None:
            async with sem:
                await one(*a)

        t0 = time.perf_counter()
        await asyncio.gather(*[bounded(*p) for p in plan])
        took = time.perf_counter() - t0
        stock_after = {
            x["id"]: x["stock"]
            for x in (await http.get("/v1/rewards", headers=tokens[accounts[0]])).json()
        }
        wallets = {
            a: (await http.get(f"/v1/wallets/{a}", headers=tokens[a])).json() for a in accounts
        }
    accepted = [(a, nm) for a, nm, code, _ in results if code == 201]
    reasons = Counter(reason for *_, code, reason in results if code != 201)
    rep.add(
        "4 redeem",
        f"API: {requests} redemptions, {clients} clients, 5 accounts",
        len(accepted) / took,
        "accepted/s",
        attempts_per_s=requests / took,
        accepted=len(accepted),
        refused=dict(reasons),
        transport_errors_retried=transport_errors[0],
    )
    rep.add("4 redeem", "API: attempts decided", requests / took, "req/s")
    if transport_errors[0]:
        rep.notes.append(
            f"redeem: {transport_errors[0]} dropped connections, retried with the same key"
        )
    rep.add("4 redeem", "API: redemption POST p99", pct(lat, 0.99) * 1000, "ms")
    _redeem_checks(
        rep,
        "API",
        accepted,
        stocks,
        points_each,
        accounts,
        {n: stock_after.get(rewards[n]) for n in stocks},
        {a: w.get("spendable") for a, w in wallets.items()},
    )
    await bench_locked(stack, rep, plan, stocks, points_each, accounts, clients)


def _redeem_checks(
    rep: Report,
    who: str,
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


async def bench_locked(
    stack: DevStack,
    rep: Report,
    plan: list[tuple[str, str, str]],
    stocks: dict[str, tuple[int, int]],
    points_each: int,
    accounts: list[str],
    clients: int,
) -> None:
    """The reference: a bare locked transaction doing the same writes (lock wallet and stock,
    check, update both, insert the redemption), same plan, same concurrency."""
    subprocess.run(  # noqa: ASYNC221
        [
            str(stack.pg.bin_dir / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(stack.ports.pg),
            "-U",
            "postgres",
            "bench_locked",
        ],
        check=True,
        capture_output=True,
    )
    dsn = stack.pg.dsn("bench_locked")
    conn = await asyncpg.connect(dsn)
    await conn.execute("""
        CREATE TABLE wallet (account_id text PRIMARY KEY, balance bigint NOT NULL);
        CREATE TABLE reward (name text PRIMARY KEY, price int NOT NULL, stock int NOT NULL);
        CREATE TABLE redemption (id uuid PRIMARY KEY, key text UNIQUE, account_id text,
                                 reward text, points int, created_at timestamptz DEFAULT now());
    """)
    await conn.executemany(
        "INSERT INTO wallet VALUES ($1, $2)", [(a, points_each) for a in accounts]
    )
    await conn.executemany(
        "INSERT INTO reward VALUES ($1, $2, $3)", [(n, p, s) for n, (p, s) in stocks.items()]
    )
    await conn.close()
    # as many connections as the redeem API's pool would open at most
    pool = await asyncpg.create_pool(dsn, min_size=10, max_size=10)
    accepted: list[tuple[str, str]] = []
    lat: list[float] = []

    async def one(acct: str, name: str, key: str) -> None:
        t = time.perf_counter()
        async with pool.acquire() as c, c.transaction():
            bal = await c.fetchval(
                "SELECT balance FROM wallet WHERE account_id=$1 FOR UPDATE", acct
            )
            price, stock = await c.fetchrow(
                "SELECT price, stock FROM reward WHERE name=$1 FOR UPDATE", name
            )
            if bal >= price and stock > 0:
                await c.execute(
                    "UPDATE wallet SET balance=balance-$2 WHERE account_id=$1", acct, price
                )
                await c.execute("UPDATE reward SET stock=stock-1 WHERE name=$1", name)
                await c.execute(
                    "INSERT INTO redemption (id, key, account_id, reward, points)"
                    " VALUES ($1, $2, $3, $4, $5)",
                    uuid.uuid4(),
                    key,
                    acct,
                    name,
                    price,
                )
                accepted.append((acct, name))
        lat.append(time.perf_counter() - t)

    sem = asyncio.Semaphore(clients)

    async def bounded(*a: str) -> None:
        async with sem:
            await one(*a)

    t0 = time.perf_counter()
    await asyncio.gather(*[bounded(*p) for p in plan])
    took = time.perf_counter() - t0
    async with pool.acquire() as c:
        left = {r["name"]: r["stock"] for r in await c.fetch("SELECT name, stock FROM reward")}
        bal = {r["account_id"]: r["balance"] for r in await c.fetch("SELECT * FROM wallet")}
    await pool.close()
    rep.add(
        "4 redeem",
        "reference: bare locked tx, same plan and clients",
        len(accepted) / took,
        "accepted/s",
        attempts_per_s=len(plan) / took,
    )
    rep.add("4 redeem", "reference: bare locked tx p99", pct(lat, 0.99) * 1000, "ms")
    _redeem_checks(rep, "bare tx", accepted, stocks, points_each, accounts, left, bal)
