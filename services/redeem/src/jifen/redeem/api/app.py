"""The redeem API: the reward catalogue, redemptions and wallets."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request, Response

from jifen.kernel.auth import Principal, Role, TokenVerifier, require
from jifen.kernel.contracts import Contracts
from jifen.kernel.db import Queries, create_pool
from jifen.kernel.web import Refusal, create_app, pool_check
from jifen.redeem import handlers
from jifen.redeem.api.schemas import RedemptionIn, RedemptionOut, RewardIn, RewardOut, WalletOut
from jifen.redeem.domain.wallet import RedeemRefusal
from jifen.redeem.settings import RedeemSettings


async def _conn(request: Request) -> AsyncIterator[asyncpg.Connection]:
    async with request.app.state.pool.acquire() as conn:
        yield conn


def _q(request: Request) -> Queries:
    q: Queries = request.app.state.queries
    return q


def _contracts(request: Request) -> Contracts:
    c: Contracts = request.app.state.contracts
    return c


Conn = Annotated[asyncpg.Connection, Depends(_conn)]
Q = Annotated[Queries, Depends(_q)]
Events = Annotated[Contracts, Depends(_contracts)]
Lister = Annotated[Principal, require(Role.MERCHANT, Role.OFFICER, Role.ADMIN)]
Member = Annotated[Principal, require(Role.VOLUNTEER, Role.APP)]
Anyone = Annotated[
    Principal,
    require(Role.VOLUNTEER, Role.APP, Role.MERCHANT, Role.OFFICER, Role.ADMIN, Role.AUDITOR),
]
IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=8,
        max_length=128,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="Unique per redemption attempt; repeating it returns the original.",
    ),
]
REFUSALS = {
    409: {
        "description": "Refused: `reason` is insufficient_points, out_of_stock, "
        "reward_inactive, account_frozen or idempotency_key_reused"
    },
    404: {"description": "No such reward or redemption in your organisation"},
}

rewards = APIRouter(prefix="/v1/rewards", tags=["rewards"])
redemptions = APIRouter(prefix="/v1/redemptions", tags=["redemptions"])
wallets = APIRouter(prefix="/v1/wallets", tags=["wallets"])


@rewards.post("", status_code=201, response_model=RewardOut, summary="List a reward")
async def add_reward(body: RewardIn, conn: Conn, q: Q, who: Lister) -> RewardOut:
    if who.role == Role.MERCHANT and body.merchant_id != who.subject:
        raise HTTPException(403, "a merchant may list rewards only as itself")
    row = await conn.fetchrow(
        q["insert_reward"],
        uuid.uuid4(),
        who.org,
        body.merchant_id,
        body.name_zh,
        body.name_en,
        body.points,
        body.stock,
    )
    return RewardOut(**dict(row))


@rewards.get("", response_model=list[RewardOut], summary="Browse the catalogue")
async def list_rewards(
    conn: Conn,
    q: Q,
    who: Anyone,
    active: bool | None = True,
    max_points: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[RewardOut]:
    rows = await conn.fetch(q["list_rewards"], who.org, active, max_points, limit)
    return [RewardOut(**dict(r)) for r in rows]


@redemptions.post(
    "",
    status_code=201,
    response_model=RedemptionOut,
    summary="Redeem a reward (idempotent by Idempotency-Key)",
    responses={**REFUSALS, 200: {"description": "Same key as before: the original"}},
)
async def redeem(
    body: RedemptionIn,
    conn: Conn,
    q: Q,
    contracts: Events,
    who: Member,
    key: IdempotencyKey,
    response: Response,
) -> RedemptionOut:
    if who.role == Role.VOLUNTEER:
        if body.account_id not in (None, who.subject):
            raise HTTPException(403, "a volunteer may redeem only from their own account")
        account = who.subject
    elif body.account_id is None:
        raise HTTPException(422, "account_id is required when an app redeems for a volunteer")
    else:
        account = body.account_id
    row, created = await handlers.redeem(
        conn,
        q,
        contracts,
        org=who.org,
        account_id=account,
        reward_id=body.reward_id,
        by=who.subject,
        idempotency_key=key,
    )
    if not created:
        response.status_code = 200
    return RedemptionOut(**dict(row))


@redemptions.get("/{redemption_id}", response_model=RedemptionOut, summary="One redemption")
async def get_redemption(redemption_id: UUID, conn: Conn, q: Q, who: Anyone) -> RedemptionOut:
    row = await conn.fetchrow(q["get_redemption"], redemption_id, who.org)
    if row is None or (who.role == Role.VOLUNTEER and row["account_id"] != who.subject):
        raise HTTPException(404, f"no redemption {redemption_id}")
    return RedemptionOut(**dict(row))


@wallets.get("/{account_id}", response_model=WalletOut, summary="Spendable points of an account")
async def get_wallet(
    conn: Conn,
    q: Q,
    who: Annotated[Principal, require(Role.VOLUNTEER, Role.APP, Role.OFFICER, Role.ADMIN)],
    account_id: str,
) -> WalletOut:
    if who.role == Role.VOLUNTEER and who.subject != account_id:
        raise HTTPException(404, f"no wallet {account_id} visible to you")
    row = await conn.fetchrow(q["get_wallet"], account_id)
    balance, held = (row["ledger_balance"], row["held"]) if row else (0, 0)
    return WalletOut(
        account_id=account_id, ledger_balance=balance, held=held, spendable=balance - held
    )


def build_app(settings: RedeemSettings | None = None) -> FastAPI:
    settings = settings or RedeemSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from jifen.redeem.db import queries

        app.state.settings = settings
        app.state.verifier = TokenVerifier(settings.keys_dir)
        app.state.queries = queries()
        app.state.contracts = Contracts(settings.schemas_dir)
        app.state.pool = await create_pool(settings.database_url, max_size=20)
        app.state.ready_checks["database"] = lambda: pool_check(app.state.pool)
        try:
            yield
        finally:
            await app.state.pool.close()

    app = create_app(
        service="redeem",
        title="Jifen redeem",
        description="The points supermarket: rewards with stock, and redemptions that never "
        "overdraw a balance or oversell an item.",
        lifespan=lifespan,
    )

    @app.exception_handler(RedeemRefusal)
    async def _refused(request: Request, exc: RedeemRefusal) -> Response:
        handler = app.exception_handlers[Refusal]
        return await handler(request, Refusal(exc.reason, exc.detail, **exc.facts))  # type: ignore[no-any-return]

    @app.exception_handler(handlers.NotFound)
    async def _missing(request: Request, exc: handlers.NotFound) -> Response:
        handler = app.exception_handlers[HTTPException]
        return await handler(request, HTTPException(404, str(exc)))  # type: ignore[no-any-return]

    app.include_router(rewards)
    app.include_router(redemptions)
    app.include_router(wallets)
    return app
