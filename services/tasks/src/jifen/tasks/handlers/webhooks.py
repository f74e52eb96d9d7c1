"""Delivering webhooks (issue 21, part 5): the worker's pass over the due deliveries.

The outbox trigger (migration 0010) made one delivery per subscription and event in the
event's own transaction; here each due one is POSTed, signed, and its try logged: a 2xx is
delivered, anything else (an error status, a refused or timed-out connection) is tried again
after a growing wait, until the tries run out and it is marked failed. The batch is locked
(FOR UPDATE SKIP LOCKED), so several workers share the work and none posts one twice; its
posts go out together, each bounded by the client's timeout."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx
from prometheus_client import Counter

from jifen.kernel.db import Queries
from jifen.tasks.domain.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, retry_in, sign

WEBHOOK_TRIES = Counter(
    "jifen_tasks_webhook_tries_total",
    "Webhook delivery tries, by outcome (delivered, retry, failed).",
    ["outcome"],
)


async def _post(http: httpx.AsyncClient, d: asyncpg.Record) -> tuple[int | None, str | None, int]:
    body = bytes(d["payload"])
    stamp = int(time.time())
    headers = {
        "Content-Type": "application/cloudevents+json; charset=utf-8",
        "User-Agent": "jifen-webhooks/1",
        "X-Jifen-Event-Id": str(d["event_id"]),
        "X-Jifen-Event-Type": d["event_type"],
        "X-Jifen-Delivery": str(d["id"]),
        TIMESTAMP_HEADER: str(stamp),
        SIGNATURE_HEADER: sign(d["secret"], stamp, body),
    }
    started = time.monotonic()
    try:
        r = await http.post(d["url"], content=body, headers=headers)
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500], int((time.monotonic() - started) * 1000)
    ms = int((time.monotonic() - started) * 1000)
    return r.status_code, None if r.is_success else r.text[:500], ms


async def deliver_due(
    pool: asyncpg.Pool,
    q: Queries,
    http: httpx.AsyncClient,
    *,
    retry_seconds: float,
    max_attempts: int,
    batch: int = 50,
) -> int:
    """Post one batch of due deliveries; how many were tried."""
    async with pool.acquire() as conn, conn.transaction():
        due = await conn.fetch(q["due_deliveries"], batch)
        if not due:
            return 0
        results = await asyncio.gather(*[_post(http, d) for d in due])
        for d, (status, error, ms) in zip(due, results, strict=True):
            attempt = d["attempts"] + 1
            await conn.execute(q["record_attempt"], d["id"], attempt, status, error, ms)
            if status is not None and 200 <= status < 300:
                await conn.execute(q["delivery_done"], d["id"], attempt)
                WEBHOOK_TRIES.labels("delivered").inc()
                continue
            wait = retry_in(attempt, base=retry_seconds, max_attempts=max_attempts)
            await conn.execute(q["delivery_retry"], d["id"], attempt, wait)
            WEBHOOK_TRIES.labels("retry" if wait is not None else "failed").inc()
    return len(due)
