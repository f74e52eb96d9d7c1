"""Redemptions: placing one (idempotent by key), reading them, fulfilment and cancellation.

Each write calls one command in :mod:`jifen.redeem.handlers`, which owns its transaction;
the route only decides whose account or merchant the caller acts as."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import asyncpg
from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import ValidationError
from starlette.responses import Response as StarletteResponse

from jifen.kernel.auth import Principal, Role, admit, bearer_token
from jifen.kernel.i18n import Said
from jifen.kernel.lane import answer, idempotency_key, json_body
from jifen.kernel.pages import Page, Paging
from jifen.kernel.web import ParsedBodyRoute, pooled
from jifen.redeem import handlers
from jifen.redeem.api.deps import (
    MEMBER_ROLES,
    SMALL_BODY,
    Anyone,
    Canceller,
    Conn,
    Events,
    IdempotencyKey,
    Member,
    Merchant,
    Q,
    Settings,
    contracts_of,
    queries_of,
)
from jifen.redeem.api.schemas import CancelIn, FulfilIn, RedemptionIn, RedemptionOut
from jifen.redeem.domain.lifecycle import AttemptLimit
from jifen.redeem.domain.wallet import no_redemption

router = APIRouter(prefix="/v1/redemptions", tags=["redemptions"], route_class=ParsedBodyRoute)

REFUSALS = {
    409: {
        "description": "Refused: `reason` is insufficient_points, out_of_stock, "
        "member_limit, reward_inactive, account_frozen, community_restricted or "
        "idempotency_key_reused, with the numbers involved"
    },
    404: {"description": "No such reward or redemption in your organisation"},
}


def _out(row: asyncpg.Record, who: Principal) -> RedemptionOut:
    """The voucher code is the member's proof at the counter: only they (and their app) see
    it, never the merchant, who must be shown it."""
    body = {k: row[k] for k in RedemptionOut.model_fields if k in row.keys()}
    if who.role not in (Role.VOLUNTEER, Role.APP):
        body["voucher_code"] = None
    return RedemptionOut(**body)


@router.post(
    "",
    openapi_extra=SMALL_BODY,
    status_code=201,
    response_model=RedemptionOut,
    summary="Redeem a reward (idempotent by Idempotency-Key)",
    responses={**REFUSALS, 200: {"description": "Same key as before: the original"}},
)
async def redeem(
    body: RedemptionIn,
    who: Member,
    key: IdempotencyKey,
    request: Request,
    response: Response,
) -> RedemptionOut:
    # the hot path: answered by redeem_lane below; this route is the OpenAPI document's and
    # the answer to every request the lane leaves to it (a bad header or body)
    out, created = await _place(request, who, body, key)
    if not created:
        response.status_code = 200
    return out


async def redeem_lane(request: Request) -> StarletteResponse | None:
    """``POST /v1/redemptions`` in the fast lane (jifen.kernel.lane): what :func:`redeem`
    does, without FastAPI's dependency solving; None (the declared route answers) for a
    request whose Idempotency-Key or body the declared route would refuse."""
    key = idempotency_key(request)
    parsed = json_body(request)
    if key is None or not isinstance(parsed, dict):
        return None
    try:
        body = RedemptionIn.model_validate(parsed)
    except ValidationError:
        return None
    who = admit(request, bearer_token(request), MEMBER_ROLES)
    out, created = await _place(request, who, body, key)
    return answer(out, 201 if created else 200)


async def _place(
    request: Request, who: Principal, body: RedemptionIn, key: str
) -> tuple[RedemptionOut, bool]:
    # queries and contracts read from the app, not solved as dependencies
    if who.role == Role.VOLUNTEER:
        if body.account_id not in (None, who.subject):
            raise HTTPException(
                403,
                Said(
                    "志愿者只能从自己的账户兑换",
                    "a volunteer may redeem only from their own account",
                ),
            )
        account = who.subject
    elif body.account_id is None:
        raise HTTPException(
            422,
            Said(
                "应用为志愿者兑换时必须提供 account_id",
                "account_id is required when an app redeems for a volunteer",
            ),
        )
    else:
        account = body.account_id
    # the connection only for the one statement: held while this request's answer is built
    # and sent, it would keep the next request waiting for the pool
    async with pooled(request.app.state.pool) as conn:
        row, created = await handlers.redeem(
            conn,
            queries_of(request),
            contracts_of(request),
            org=who.org,
            account_id=account,
            reward_id=body.reward_id,
            by=who.subject,
            idempotency_key=key,
            community_id=body.community_id,
        )
    return _out(row, who), created


@router.get("", response_model=Page[RedemptionOut], summary="Redemptions, newest first")
async def list_redemptions(
    conn: Conn,
    q: Q,
    who: Canceller,
    paging: Paging,
    account_id: Annotated[str | None, Query(max_length=64)] = None,
    status: Literal["pending", "confirmed", "fulfilled", "cancelling", "cancelled", "expired"]
    | None = None,
) -> Page[RedemptionOut]:
    """A volunteer sees their own, a merchant those of its rewards, officers all."""
    merchant = who.subject if who.role == Role.MERCHANT else None
    if who.role == Role.VOLUNTEER:
        account_id = who.subject
    rows = await conn.fetch(
        q["list_redemptions"],
        who.org,
        account_id,
        merchant,
        status,
        paging.fetch,
        *paging.after(datetime, UUID),
    )
    return paging.page(rows, lambda r: (r["created_at"], r["id"]), lambda r: _out(r, who))


@router.get("/{redemption_id}", response_model=RedemptionOut, summary="One redemption")
async def get_redemption(redemption_id: UUID, conn: Conn, q: Q, who: Anyone) -> RedemptionOut:
    row = await conn.fetchrow(q["get_redemption"], redemption_id, who.org)
    if (
        row is None
        or (who.role == Role.VOLUNTEER and row["account_id"] != who.subject)
        or (who.role == Role.MERCHANT and row["merchant_id"] != who.subject)
    ):
        raise no_redemption(redemption_id)
    return _out(row, who)


@router.post(
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
    redemption_id: UUID, body: FulfilIn, conn: Conn, q: Q, who: Merchant, s: Settings
) -> RedemptionOut:
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


@router.post(
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
