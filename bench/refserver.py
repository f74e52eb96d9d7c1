"""The HTTP references: a bare locked transaction behind a minimal raw ASGI app (no framework,
no auth, no middleware) under the same uvicorn, driven by the same wrk script as Jifen's API.

``POST /v1/redemptions`` {"account_id", "reward_id"}: lock the wallet row, lock the reward row,
check balance and stock, update both, insert the redemption (201), or refuse (409).
``POST /v1/jobs/{job}/completions`` {"account_id"}: lock the claim row, check it is not
completed, insert the completion and its outbox row, mark the claim (201), or refuse (409).
``GET /healthz``. Its tables live in a database of their own (``setup``), and its pool is as
large as a Jifen API's (10). Run: ``BENCH_REF_DSN=... python -m uvicorn bench.refserver:app``.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import asyncpg

SCHEMA = """
CREATE TABLE IF NOT EXISTS wallet (account_id text PRIMARY KEY, balance bigint NOT NULL);
CREATE TABLE IF NOT EXISTS reward (id text PRIMARY KEY, price int NOT NULL, stock int NOT NULL);
CREATE TABLE IF NOT EXISTS redemption (
    id uuid PRIMARY KEY, account_id text NOT NULL, reward_id text NOT NULL, points int NOT NULL,
    idempotency_key text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, idempotency_key));
CREATE TABLE IF NOT EXISTS claim (
    id uuid PRIMARY KEY, job_id text NOT NULL, account_id text NOT NULL,
    completed boolean NOT NULL DEFAULT false, UNIQUE (job_id, account_id));
CREATE TABLE IF NOT EXISTS completion (
    id uuid PRIMARY KEY, claim_id uuid NOT NULL UNIQUE REFERENCES claim (id),
    idempotency_key text NOT NULL UNIQUE, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS outbox (
    id bigserial PRIMARY KEY, topic text NOT NULL, key text NOT NULL, payload jsonb NOT NULL);
"""

_pool: asyncpg.Pool | None = None


async def _send(send: Any, status: int, body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(raw)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": raw})


async def _body(receive: Any) -> dict[str, Any]:
    chunks = []
    while True:
        m = await receive()
        chunks.append(m.get("body", b""))
        if not m.get("more_body"):
            break
    return dict(json.loads(b"".join(chunks) or b"{}"))


def _key(scope: dict[str, Any]) -> str:
    for k, v in scope["headers"]:
        if k == b"idempotency-key":
            return str(v.decode())
    return str(uuid.uuid4())


async def redeem(pool: asyncpg.Pool, account: str, reward: str, key: str) -> tuple[int, str]:
    async with pool.acquire() as c, c.transaction():
        bal = await c.fetchval("SELECT balance FROM wallet WHERE account_id=$1 FOR UPDATE", account)
        row = await c.fetchrow("SELECT price, stock FROM reward WHERE id=$1 FOR UPDATE", reward)
        if bal is None or row is None:
            return 404, "unknown"
        price, stock = row
        if stock <= 0:
            return 409, "out_of_stock"
        if bal < price:
            return 409, "insufficient_points"
        await c.execute("UPDATE wallet SET balance=balance-$2 WHERE account_id=$1", account, price)
        await c.execute("UPDATE reward SET stock=stock-1 WHERE id=$1", reward)
        await c.execute(
            "INSERT INTO redemption (id, account_id, reward_id, points, idempotency_key)"
            " VALUES ($1, $2, $3, $4, $5)",
            uuid.uuid4(),
            account,
            reward,
            price,
            key,
        )
        return 201, ""


async def complete(pool: asyncpg.Pool, job: str, account: str, key: str) -> tuple[int, str]:
    async with pool.acquire() as c, c.transaction():
        row = await c.fetchrow(
            "SELECT id, completed FROM claim WHERE job_id=$1 AND account_id=$2 FOR UPDATE",
            job,
            account,
        )
        if row is None:
            return 404, "no_claim"
        if row["completed"]:
            return 409, "already_completed"
        cid = uuid.uuid4()
        await c.execute(
            "INSERT INTO completion (id, claim_id, idempotency_key) VALUES ($1, $2, $3)",
            cid,
            row["id"],
            key,
        )
        await c.execute(
            "INSERT INTO outbox (topic, key, payload) VALUES ('tasks.completions', $1, $2)",
            account,
            json.dumps({"completion_id": str(cid), "job_id": job, "account_id": account}),
        )
        await c.execute("UPDATE claim SET completed=true WHERE id=$1", row["id"])
        return 201, ""


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _pool
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            if m["type"] == "lifespan.startup":
                _pool = await asyncpg.create_pool(
                    os.environ["BENCH_REF_DSN"], min_size=10, max_size=10
                )
                await send({"type": "lifespan.startup.complete"})
            elif m["type"] == "lifespan.shutdown":
                if _pool is not None:
                    await _pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    assert _pool is not None
    path, method = scope["path"], scope["method"]
    if method == "GET" and path in ("/healthz", "/readyz"):
        await _send(send, 200, {"status": "ok"})
        return
    if method == "POST" and path == "/v1/redemptions":
        b = await _body(receive)
        code, reason = await redeem(_pool, b["account_id"], b["reward_id"], _key(scope))
        await _send(send, code, {"reason": reason} if reason else {"status": "placed"})
        return
    parts = path.split("/")
    if (
        method == "POST"
        and len(parts) == 5
        and parts[1:3] == ["v1", "jobs"]
        and parts[4] == "completions"
    ):
        b = await _body(receive)
        code, reason = await complete(_pool, parts[3], b["account_id"], _key(scope))
        await _send(send, code, {"reason": reason} if reason else {"status": "completed"})
        return
    await _send(send, 404, {"reason": "not_found"})
