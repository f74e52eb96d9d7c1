"""The points API: balances, entries, monthly statements, adjustments and the audit API."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

import asyncpg
from fastapi import APIRouter, FastAPI, Path, Response

from jifen.kernel.auth import Principal, Role, require
from jifen.kernel.db import Queries
from jifen.kernel.deps import Conn, Q, service_lifespan
from jifen.kernel.pages import Page, Paging
from jifen.kernel.web import create_app
from jifen.points.api.adjustments import router as adjustments_router
from jifen.points.api.reports import router as reports_router
from jifen.points.api.schemas import Balance, EntryOut, Statement
from jifen.points.api.signals import router as signals_router
from jifen.points.audit.api import router as audit_router
from jifen.points.db import queries
from jifen.points.domain.ledger import no_account
from jifen.points.metrics import LIABILITY
from jifen.points.settings import PointsSettings

ACCOUNT_ID = Path(
    pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$", description="A volunteer's account id."
)
Reader = Annotated[Principal, require(Role.VOLUNTEER, Role.OFFICER, Role.AUDITOR, Role.ADMIN)]


router = APIRouter(prefix="/v1/accounts", tags=["accounts"])


async def _may_read(
    conn: asyncpg.Connection, q: Queries, who: Principal, account_id: str, response: Response
) -> None:
    """A ledger account is (organisation, account): every read is of the caller's token's
    organisation's account, never another organisation's points of the same person.

    Volunteers read their own account in that organisation (zeros if they have none there);
    officers, auditors and admins an account that holds entries of their organisation. An
    account with entries only in other organisations is 404 to them, so neither its
    existence nor anything of those organisations leaks. Answers are never cached."""
    response.headers["Cache-Control"] = "no-store"
    if who.role == Role.VOLUNTEER:
        if who.subject != account_id:
            raise no_account(account_id)
        return
    if not await conn.fetchval(q["account_in_org"], account_id, who.org):
        raise no_account(account_id, who.org)


@router.get("/{account_id}/balance", response_model=Balance, summary="Current balance")
async def balance(
    conn: Conn, q: Q, who: Reader, response: Response, account_id: Annotated[str, ACCOUNT_ID]
) -> Balance:
    await _may_read(conn, q, who, account_id, response)
    row = await conn.fetchrow(q["balance"], who.org, account_id)
    if row is None:
        return Balance(account_id=account_id, balance=0, earned=0, spent=0, entries=0)
    return Balance(**dict(row))


INT4_MAX = 2**31 - 1  # account_seq is an integer column; a cursor beyond it starts the list


@router.get("/{account_id}/entries", response_model=Page[EntryOut], summary="Entries, newest first")
async def entries(
    conn: Conn,
    q: Q,
    who: Reader,
    response: Response,
    paging: Paging,
    account_id: Annotated[str, ACCOUNT_ID],
) -> Page[EntryOut]:
    await _may_read(conn, q, who, account_id, response)
    (before,) = paging.after(int)
    rows = await conn.fetch(
        q["entries_page"],
        account_id,
        INT4_MAX if before is None else min(before, INT4_MAX),
        paging.fetch,
        who.org,
    )
    return paging.page(
        rows,
        lambda r: (r["account_seq"],),
        lambda r: EntryOut(entry_id=r["id"], **{k: r[k] for k in r.keys() if k != "id"}),
    )


@router.get(
    "/{account_id}/statements/{month}",
    response_model=Statement,
    summary="Monthly statement: earned by category, spent by reward, closing balance",
)
async def statement(
    conn: Conn,
    q: Q,
    who: Reader,
    response: Response,
    account_id: Annotated[str, ACCOUNT_ID],
    month: Annotated[str, Path(pattern=r"^20[0-9]{2}-(0[1-9]|1[0-2])$", examples=["2026-11"])],
) -> Statement:
    """Entries count in the month the ledger recorded them (UTC)."""
    await _may_read(conn, q, who, account_id, response)
    year, mon = map(int, month.split("-"))
    start = datetime(year, mon, 1, tzinfo=UTC)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=UTC)
    opening = await conn.fetchval(q["balance_before"], account_id, start, who.org)
    earned: dict[str, int] = {}
    spent: dict[str, int] = {}
    adjustments = entries = moved = 0
    for r in await conn.fetch(q["statement_totals"], account_id, start, end, who.org):
        entries += r["entries"]
        moved += r["points"]
        if r["kind"] in ("credit", "reversal"):
            earned[r["category"] or "other"] = earned.get(r["category"] or "other", 0) + r["points"]
        elif r["kind"] in ("debit", "refund"):
            key = r["reward_id"] or "unknown"
            spent[key] = spent.get(key, 0) - r["points"]
        else:
            adjustments += r["points"]
    return Statement(
        org_id=who.org,
        account_id=account_id,
        month=month,
        opening_balance=opening,
        closing_balance=opening + moved,
        earned_by_category=earned,
        spent_by_reward=spent,
        adjustments=adjustments,
        entries=entries,
    )


# one router per resource; new resources (statements, audit) add theirs here
ROUTERS = [router, adjustments_router, signals_router, audit_router, reports_router]


async def _refresh_liability(pool: asyncpg.Pool, q: Queries, every: float = 10.0) -> None:
    """Outstanding points per organisation, from the ledger itself (a scan; fine at district
    scale, to become an incremental aggregate at city scale)."""
    while True:
        try:
            async with pool.acquire() as conn:
                for r in await conn.fetch(q["liability_by_org"]):
                    LIABILITY.labels(r["org_id"]).set(r["points"])
        except (
            OSError,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            asyncpg.InternalClientError,
        ):
            pass  # /readyz reports the database; the gauge keeps its last value
        await asyncio.sleep(every)


def build_app(settings: PointsSettings | None = None) -> FastAPI:
    settings = settings or PointsSettings()
    lifespan = service_lifespan(
        settings,
        queries,
        background={"liability": lambda app: _refresh_liability(app.state.pool, app.state.queries)},
    )
    app = create_app(
        service="points",
        title="Jifen points",
        description="The append-only points ledger: balances and entries of volunteers' accounts.",
        lifespan=lifespan,
    )
    for r in ROUTERS:
        app.include_router(r)
    return app
