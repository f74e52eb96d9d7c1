"""The redeem API: the reward catalogue, redemptions and wallets."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Literal
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jifen.kernel.auth import Principal, Role, TokenVerifier, require
from jifen.kernel.contracts import Contracts
from jifen.kernel.db import Queries, create_pool
from jifen.kernel.ratelimit import retry_after_header
from jifen.kernel.web import Refusal, create_app, db_connection, max_body, pool_check, problem
from jifen.redeem import handlers
from jifen.redeem.api.schemas import (
    AuditPage,
    AuditRedemption,
    CancelIn,
    FrozenWallet,
    FulfilIn,
    MerchantIn,
    MerchantOut,
    OrgSettingsIn,
    OrgSettingsOut,
    RedemptionIn,
    RedemptionOut,
    RewardIn,
    RewardOut,
    RewardPatch,
    WalletOut,
)
from jifen.redeem.domain.lifecycle import AttemptLimit, VoucherAttemptsExceeded
from jifen.redeem.settings import RedeemSettings

# the kernel's: a connection lost after the answer never drops the client's connection
_conn = db_connection


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
        "member_limit, reward_inactive, account_frozen, community_restricted or "
        "idempotency_key_reused, with the numbers involved"
    },
    404: {"description": "No such reward or redemption in your organisation"},
}

# every write here takes a small JSON document: bounded well below the global 256 KiB
SMALL_BODY = max_body(16 * 1024)

rewards = APIRouter(prefix="/v1/rewards", tags=["rewards"])
merchants = APIRouter(prefix="/v1/merchants", tags=["merchants"])
redemptions = APIRouter(prefix="/v1/redemptions", tags=["redemptions"])
wallets = APIRouter(prefix="/v1/wallets", tags=["wallets"])
org_settings = APIRouter(prefix="/v1/settings", tags=["settings"])
audit = APIRouter(prefix="/v1/audit", tags=["audit"])

Officer = Annotated[Principal, require(Role.OFFICER, Role.ADMIN)]
Merchant = Annotated[Principal, require(Role.MERCHANT)]
Canceller = Annotated[
    Principal, require(Role.VOLUNTEER, Role.APP, Role.MERCHANT, Role.OFFICER, Role.ADMIN)
]
Auditor = Annotated[Principal, require(Role.AUDITOR)]


@merchants.post(
    "",
    openapi_extra=SMALL_BODY,
    status_code=201,
    response_model=MerchantOut,
    summary="Register a merchant",
)
async def add_merchant(body: MerchantIn, conn: Conn, q: Q, who: Officer) -> MerchantOut:
    row = await conn.fetchrow(
        q["insert_merchant"], who.org, body.id, body.name_zh, body.name_en, body.kind
    )
    if row is None:
        raise Refusal("merchant_exists", f"merchant {body.id} is already registered")
    return MerchantOut(**dict(row))


@merchants.get("", response_model=list[MerchantOut], summary="Merchants of your organisation")
async def list_merchants(
    conn: Conn, q: Q, who: Anyone, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> list[MerchantOut]:
    return [MerchantOut(**dict(r)) for r in await conn.fetch(q["list_merchants"], who.org, limit)]


@rewards.post(
    "", openapi_extra=SMALL_BODY, status_code=201, response_model=RewardOut, summary="List a reward"
)
async def add_reward(body: RewardIn, conn: Conn, q: Q, who: Lister) -> RewardOut:
    if who.role == Role.MERCHANT and body.merchant_id != who.subject:
        raise HTTPException(403, "a merchant may list rewards only as itself")
    async with conn.transaction():
        await conn.execute(q["ensure_merchant"], who.org, body.merchant_id)
        row = await conn.fetchrow(
            q["insert_reward"],
            uuid.uuid4(),
            who.org,
            body.merchant_id,
            body.name_zh,
            body.name_en,
            body.points,
            body.stock,
            body.kind,
            body.daily_quota,
            body.monthly_limit,
            body.valid_from,
            body.valid_until,
            body.community_id,
            body.voucher_ttl_seconds,
        )
    return RewardOut(**dict(row))


@rewards.get("", response_model=list[RewardOut], summary="Browse the catalogue")
async def list_rewards(
    conn: Conn,
    q: Q,
    who: Anyone,
    active: bool | None = True,
    max_points: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
    merchant_id: Annotated[str | None, Query(max_length=64)] = None,
    community_id: Annotated[
        str | None,
        Query(max_length=64, description="Open rewards plus those only for this community."),
    ] = None,
    kind: Literal["goods", "service", "voucher"] | None = None,
    available: Annotated[
        bool | None,
        Query(description="true: on offer now, inside its window, with stock left."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[RewardOut]:
    rows = await conn.fetch(
        q["list_rewards"],
        who.org,
        active,
        max_points,
        merchant_id,
        community_id,
        kind,
        available,
        limit,
    )
    return [RewardOut(**dict(r)) for r in rows]


@rewards.get("/{reward_id}", response_model=RewardOut, summary="One reward")
async def get_reward(reward_id: UUID, conn: Conn, q: Q, who: Anyone) -> RewardOut:
    row = await conn.fetchrow(q["get_reward"], reward_id, who.org)
    if row is None:
        raise HTTPException(404, f"no reward {reward_id}")
    return RewardOut(**dict(row))


@rewards.patch(
    "/{reward_id}",
    openapi_extra=SMALL_BODY,
    response_model=RewardOut,
    summary="Change stock, window or offer",
)
async def update_reward(
    reward_id: UUID, body: RewardPatch, conn: Conn, q: Q, who: Lister
) -> RewardOut:
    async with conn.transaction():
        row = await conn.fetchrow(q["lock_reward"], reward_id, who.org)
        if row is None or (who.role == Role.MERCHANT and row["merchant_id"] != who.subject):
            raise HTTPException(404, f"no reward {reward_id} of yours")
        if body.valid_until and row["valid_from"] and body.valid_until <= row["valid_from"]:
            raise HTTPException(422, "valid_until must be after the reward's valid_from")
        row = await conn.fetchrow(
            q["update_reward"], reward_id, who.org, body.active, body.stock, body.valid_until, False
        )
    return RewardOut(**dict(row))


def _out(row: asyncpg.Record, who: Principal) -> RedemptionOut:
    """The voucher code is the member's proof at the counter: only they (and their app) see
    it, never the merchant, who must be shown it."""
    body = {k: row[k] for k in RedemptionOut.model_fields if k in row.keys()}
    if who.role not in (Role.VOLUNTEER, Role.APP):
        body["voucher_code"] = None
    return RedemptionOut(**body)


@redemptions.post(
    "",
    openapi_extra=SMALL_BODY,
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
        community_id=body.community_id,
    )
    if not created:
        response.status_code = 200
    return _out(row, who)


@redemptions.get("", response_model=list[RedemptionOut], summary="Redemptions, newest first")
async def list_redemptions(
    conn: Conn,
    q: Q,
    who: Canceller,
    account_id: Annotated[str | None, Query(max_length=64)] = None,
    status: Literal["pending", "confirmed", "fulfilled", "cancelling", "cancelled", "expired"]
    | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[RedemptionOut]:
    """A volunteer sees their own, a merchant those of its rewards, officers all."""
    merchant = who.subject if who.role == Role.MERCHANT else None
    if who.role == Role.VOLUNTEER:
        account_id = who.subject
    rows = await conn.fetch(q["list_redemptions"], who.org, account_id, merchant, status, limit)
    return [_out(r, who) for r in rows]


@redemptions.get("/{redemption_id}", response_model=RedemptionOut, summary="One redemption")
async def get_redemption(redemption_id: UUID, conn: Conn, q: Q, who: Anyone) -> RedemptionOut:
    row = await conn.fetchrow(q["get_redemption"], redemption_id, who.org)
    if (
        row is None
        or (who.role == Role.VOLUNTEER and row["account_id"] != who.subject)
        or (who.role == Role.MERCHANT and row["merchant_id"] != who.subject)
    ):
        raise HTTPException(404, f"no redemption {redemption_id}")
    return _out(row, who)


@redemptions.post(
    "/{redemption_id}/fulfil",
    openapi_extra=SMALL_BODY,
    response_model=RedemptionOut,
    summary="Hand over the item against the voucher code (the reward's merchant, once)",
    responses={
        403: {"description": "`not_your_reward`: another merchant's voucher"},
        409: {
            "description": "`reason`: wrong_voucher (with `attempts_left`), already_fulfilled, "
            "not_confirmed, redemption_cancelled or voucher_expired"
        },
        429: {
            "description": "`voucher_attempts_exceeded`: too many wrong codes on this "
            "redemption or by this merchant within the window; refused even with the right "
            "code until Retry-After (`scope`, `retry_after_seconds`)"
        },
    },
)
async def fulfil(
    request: Request, redemption_id: UUID, body: FulfilIn, conn: Conn, q: Q, who: Merchant
) -> RedemptionOut:
    s: RedeemSettings = request.app.state.settings
    window = s.voucher_attempt_window_seconds
    row = await handlers.fulfil(
        conn,
        q,
        org=who.org,
        redemption_id=redemption_id,
        merchant=who.subject,
        voucher_code=body.voucher_code,
        per_redemption=AttemptLimit(s.voucher_attempts_per_redemption, window),
        per_merchant=AttemptLimit(s.voucher_attempts_per_merchant, window),
    )
    return _out(row, who)


@redemptions.post(
    "/{redemption_id}/cancel",
    openapi_extra=SMALL_BODY,
    response_model=RedemptionOut,
    summary="Cancel before fulfilment: the item goes back, the points are refunded",
    responses={409: {"description": "`already_fulfilled`"}},
)
async def cancel(
    redemption_id: UUID,
    conn: Conn,
    q: Q,
    contracts: Events,
    who: Canceller,
    body: CancelIn | None = None,
) -> RedemptionOut:
    """Cancelling again returns the redemption as it is; exactly one refund is asked for."""
    row, _ = await handlers.cancel(
        conn,
        q,
        contracts,
        org=who.org,
        redemption_id=redemption_id,
        by=f"{who.role.value}:{who.subject}",
        reason=(body or CancelIn()).reason,
        account_id=who.subject if who.role == Role.VOLUNTEER else None,
        merchant_id=who.subject if who.role == Role.MERCHANT else None,
    )
    return _out(row, who)


@wallets.get("/{account_id}", response_model=WalletOut, summary="Spendable points of an account")
async def get_wallet(
    conn: Conn,
    q: Q,
    who: Annotated[Principal, require(Role.VOLUNTEER, Role.APP, Role.OFFICER, Role.ADMIN)],
    account_id: str,
) -> WalletOut:
    if who.role == Role.VOLUNTEER and who.subject != account_id:
        raise HTTPException(404, f"no wallet {account_id} visible to you")
    # the wallet of the caller's own organisation only: what the account holds in another
    # scheme is neither shown nor counted
    if who.role != Role.VOLUNTEER and not await conn.fetchval(
        q["wallet_in_org"], who.org, account_id
    ):
        raise HTTPException(404, f"no wallet {account_id} in organisation {who.org}")
    w, window = await handlers.wallet_view(conn, q, account_id, who.org)
    return WalletOut(
        account_id=account_id,
        ledger_balance=w.ledger_balance,
        held=w.held,
        maturing=w.maturing,
        spendable=w.spendable,
        frozen=w.frozen,
        fraud_window_seconds=window,
    )


@org_settings.get("", response_model=OrgSettingsOut, summary="Your organisation's settings")
async def get_settings(conn: Conn, q: Q, who: Anyone) -> OrgSettingsOut:
    row = await conn.fetchrow(q["get_org_setting"], who.org)
    if row is None:
        return OrgSettingsOut(org_id=who.org, fraud_window_seconds=0, updated_at=None)
    return OrgSettingsOut(**dict(row))


@org_settings.put(
    "", openapi_extra=SMALL_BODY, response_model=OrgSettingsOut, summary="Set the fraud window"
)
async def put_settings(body: OrgSettingsIn, conn: Conn, q: Q, who: Officer) -> OrgSettingsOut:
    row = await conn.fetchrow(q["put_org_setting"], who.org, body.fraud_window_seconds)
    return OrgSettingsOut(**dict(row))


def encode_cursor(created_at: datetime, redemption_id: UUID) -> str:
    raw = f"{created_at.astimezone(UTC).isoformat()}|{redemption_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, rid = raw.split("|")
        at = datetime.fromisoformat(stamp)
        if at.tzinfo is None:
            raise ValueError("naive time")
        return at, UUID(rid)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPException(422, f"malformed cursor {cursor!r}: {exc}") from None


@audit.get(
    "/redemptions",
    response_model=AuditPage,
    summary="Every redemption of your organisation, oldest first, for reconciliation",
)
async def audit_redemptions(
    request: Request,
    conn: Conn,
    q: Q,
    who: Auditor,
    after: Annotated[
        str | None, Query(max_length=200, description="next_cursor of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> AuditPage:
    """Each redemption with the ids of the events that asked the ledger for its debit
    (``placed_event_id``) and refund (``cancelled_event_id``; null until asked — a
    ``cancelling`` one asks once its debit arrives). Those ids are the ledger entries'
    ``cause_event_id``. ``next_cursor`` is null on the last page."""
    at, rid = decode_cursor(after) if after else (datetime(1970, 1, 1, tzinfo=UTC), UUID(int=0))
    settle = request.app.state.settings.audit_settle_seconds
    rows = await conn.fetch(q["audit_redemptions"], who.org, at, rid, limit, float(settle))
    items = [
        AuditRedemption(redemption_id=r["id"], **{k: r[k] for k in r.keys() if k != "id"})
        for r in rows
    ]
    cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if len(rows) == limit else None
    return AuditPage(items=items, next_cursor=cursor)


@audit.get(
    "/frozen-wallets",
    response_model=list[FrozenWallet],
    summary="Accounts frozen for redemptions: a reversal took them below what was spent",
)
async def frozen_wallets(
    conn: Conn, q: Q, who: Auditor, limit: Annotated[int, Query(ge=1, le=1000)] = 500
) -> list[FrozenWallet]:
    rows = await conn.fetch(q["frozen_wallets"], who.org, limit)
    return [
        FrozenWallet(
            account_id=r["account_id"],
            ledger_balance=r["ledger_balance"],
            held=r["held"],
            shortfall=r["held"] - r["ledger_balance"],
            since=r["updated_at"],
        )
        for r in rows
    ]


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

    for router in (merchants, rewards, redemptions, wallets, org_settings, audit):
        app.include_router(router)

    @app.exception_handler(VoucherAttemptsExceeded)
    async def _too_many(_: Request, exc: VoucherAttemptsExceeded) -> JSONResponse:
        response = problem(
            exc.status, "Too Many Requests", exc.detail, reason=exc.reason, **exc.facts
        )
        response.headers["Retry-After"] = retry_after_header(exc.retry_after_seconds)
        return response

    app.add_middleware(NoStore)
    return app


# balances, held points and voucher codes: never kept by a browser, a proxy or a CDN
PRIVATE_PREFIXES = ("/v1/wallets", "/v1/redemptions", "/v1/audit")


class NoStore:
    """``Cache-Control: no-store`` on every response under :data:`PRIVATE_PREFIXES`,
    refusals included (an ``insufficient_points`` problem names the balance)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PRIVATE_PREFIXES):
            await self.app(scope, receive, send)
            return

        async def send_no_store(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"
                ]
                headers += [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_no_store)
