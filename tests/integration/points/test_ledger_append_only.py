"""The ledger is append-only by the database itself: the service's role has no grant to
change entries, and a trigger refuses it even for the owner."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from jifen.kernel.contracts import Contracts
from jifen.kernel.settings import REPO_ROOT
from jifen.points.db import MIGRATIONS, queries
from jifen.points.domain.ledger import Kind, Posting
from jifen.points.handlers.ledger import append_postings

MakeDb = Callable[[Path], Awaitable[str]]


def credit(account: str, points: int) -> Posting:
    return Posting(
        event_id=str(uuid.uuid4()),
        event_type="jifen.tasks.completion.verified.v1",
        account_id=account,
        kind=Kind.CREDIT,
        amount=points,
        org_id="jiangmen-riders",
        category="meal_delivery",
        job_id=str(uuid.uuid4()),
        completion_id=str(uuid.uuid4()),
        redemption_id=None,
        occurred_at=datetime.now(UTC),
    )


async def _seeded(make_db: MakeDb) -> str:
    dsn = await make_db(MIGRATIONS)
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await append_postings(
                conn,
                queries(),
                Contracts(REPO_ROOT / "schemas"),
                [credit("vol-1", 10), credit("vol-1", 5)],
            )
    finally:
        await conn.close()
    return dsn


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_entry SET amount = 1000",
        "DELETE FROM ledger_entry",
        "TRUNCATE ledger_entry",
    ],
)
async def test_entries_cannot_be_changed_by_the_service_role_nor_the_owner(
    fresh_db: MakeDb, statement: str
) -> None:
    owner_dsn = await _seeded(fresh_db)
    service_dsn = owner_dsn.replace("postgres@", "jifen_points_app@", 1)
    for dsn, expected in [(service_dsn, "permission denied"), (owner_dsn, "append-only")]:
        conn = await asyncpg.connect(dsn)
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match=expected):
                await conn.execute(statement)
            assert await conn.fetchval("SELECT count(*) FROM ledger_entry") == 2
            assert await conn.fetchval("SELECT sum(amount) FROM ledger_entry") == 15
        finally:
            await conn.close()


async def test_the_service_role_can_append(fresh_db: MakeDb) -> None:
    owner_dsn = await _seeded(fresh_db)
    conn = await asyncpg.connect(owner_dsn.replace("postgres@", "jifen_points_app@", 1))
    try:
        async with conn.transaction():
            plan, ids = await append_postings(
                conn, queries(), Contracts(REPO_ROOT / "schemas"), [credit("vol-1", 7)]
            )
        assert len(ids) == 1 and plan.entries[0].balance_after == 22
        assert await conn.fetchval("SELECT balance FROM account WHERE account_id = 'vol-1'") == 22
    finally:
        await conn.close()
