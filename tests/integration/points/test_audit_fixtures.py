"""Shared pieces of the audit integration tests (helpers only, no tests here): a real
ledger built through the real LedgerWorker.append in a fresh database, the points API
in-process on that database, and exports fetched through the audit API."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from jifen.kernel.auth import issue_token
from jifen.kernel.contracts import Contracts
from jifen.kernel.db import create_pool
from jifen.points.api.app import build_app
from jifen.points.audit.client import fetch_export
from jifen.points.db import queries
from jifen.points.domain.ledger import Kind, Posting
from jifen.points.settings import PointsSettings
from jifen.points.worker import LedgerWorker

ORG = "jiangmen-riders"
OTHER_ORG = "zhanjiang-dev-zone"
T0 = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)


@dataclass
class Book:
    """Postings made so far, to build reversals and refunds that refer to them."""

    clock: datetime = T0
    credits: dict[str, tuple[str, int]] = field(default_factory=dict)  # completion -> acct, pts
    debits: dict[str, tuple[str, int]] = field(default_factory=dict)

    def _tick(self) -> datetime:
        self.clock += timedelta(hours=7)
        return self.clock

    def credit(self, account: str, points: int, org: str = ORG) -> Posting:
        completion = str(uuid.uuid4())
        self.credits[completion] = (account, points)
        return Posting(
            str(uuid.uuid4()),
            "jifen.tasks.completion.verified.v1",
            account,
            Kind.CREDIT,
            points,
            org,
            "meal_delivery",
            str(uuid.uuid4()),
            completion,
            None,
            self._tick(),
        )

    def reversal(self, completion: str, org: str = ORG) -> Posting:
        account, points = self.credits[completion]
        return Posting(
            str(uuid.uuid4()),
            "jifen.tasks.completion.revoked.v1",
            account,
            Kind.REVERSAL,
            -points,
            org,
            "meal_delivery",
            None,
            completion,
            None,
            self._tick(),
        )

    def debit(self, account: str, points: int, org: str = ORG) -> Posting:
        redemption = str(uuid.uuid4())
        self.debits[redemption] = (account, points)
        return Posting(
            str(uuid.uuid4()),
            "jifen.redeem.redemption.placed.v1",
            account,
            Kind.DEBIT,
            -points,
            org,
            None,
            None,
            None,
            redemption,
            self._tick(),
        )

    def refund(self, redemption: str, org: str = ORG) -> Posting:
        account, points = self.debits[redemption]
        return Posting(
            str(uuid.uuid4()),
            "jifen.redeem.redemption.cancelled.v1",
            account,
            Kind.REFUND,
            points,
            org,
            None,
            None,
            None,
            redemption,
            self._tick(),
        )


def sample_batches(book: Book) -> list[list[Posting]]:
    """A small but varied ledger: three volunteers of ORG, one of OTHER_ORG, every kind."""
    first = [
        book.credit("vol-a", 40),
        book.credit("vol-b", 25),
        book.credit("vol-x", 10, OTHER_ORG),
        book.credit("vol-a", 30),
    ]
    second = [
        book.credit("vol-c", 50),
        book.debit("vol-a", 20),
        book.credit("vol-a", 15),
        book.credit("vol-x", 5, OTHER_ORG),
    ]
    c = next(k for k, v in book.credits.items() if v == ("vol-b", 25))
    third = [book.reversal(c), book.credit("vol-b", 60), book.credit("vol-a", 5)]
    r = next(iter(book.debits))
    fourth = [book.refund(r), book.debit("vol-c", 45), book.credit("vol-a", 12)]
    return [first, second, third, fourth]


@dataclass
class Ledger:
    dsn: str
    keys_dir: Path
    worker: LedgerWorker
    pool: asyncpg.Pool
    app: Any
    http: httpx.AsyncClient
    book: Book

    def token(self, role: str = "auditor", org: str = ORG, subject: str = "union-auditor") -> str:
        return issue_token(self.keys_dir, subject=subject, role=role, org=org, ttl_seconds=3600)

    def auth(self, role: str = "auditor", org: str = ORG) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, org)}"}

    async def append(self, postings: list[Posting]) -> None:
        plan = await self.worker.append(postings)
        assert not plan.refused, plan.refused

    async def checkpoint(self) -> dict[str, Any]:
        r = await self.http.post("/v1/audit/checkpoints", headers=self.auth())
        assert r.status_code in (200, 201), r.text
        body: dict[str, Any] = r.json()
        return body

    async def export(self, path: Path, keys: Path | None = None) -> Path:
        await fetch_export(
            "http://points",
            self.token(),
            path,
            keys,
            transport=httpx.ASGITransport(app=self.app),
        )
        return path

    async def rows(self, account: str) -> list[asyncpg.Record]:
        async with self.pool.acquire() as conn:
            return list(
                await conn.fetch(
                    "SELECT * FROM ledger_entry WHERE account_id = $1 ORDER BY account_seq",
                    account,
                )
            )


@asynccontextmanager
async def ledger_in(dsn: str, keys_dir: Path) -> AsyncIterator[Ledger]:
    settings = PointsSettings(database_url=dsn, keys_dir=keys_dir)
    pool = await create_pool(dsn, max_size=4)
    worker = LedgerWorker(
        settings,
        Contracts(settings.schemas_dir),
        pool,
        None,  # type: ignore[arg-type]  # append() never produces; the relay does
        queries(),
    )
    issue_token(keys_dir, subject="warm-up", role="auditor", org=ORG)  # makes the token key
    app = build_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://points", timeout=30
        ) as http:
            try:
                yield Ledger(dsn, keys_dir, worker, pool, app, http, Book())
            finally:
                await pool.close()
