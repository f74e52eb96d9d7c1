"""The reward catalogue: listing, browsing and changing rewards."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, HTTPException, Query

from jifen.kernel.auth import Role
from jifen.kernel.i18n import Said
from jifen.kernel.pages import Page, Paging
from jifen.kernel.web import ParsedBodyRoute
from jifen.redeem.api.deps import SMALL_BODY, Anyone, Conn, Lister, Q
from jifen.redeem.api.schemas import RewardIn, RewardOut, RewardPatch
from jifen.redeem.domain.wallet import no_reward

router = APIRouter(prefix="/v1/rewards", tags=["rewards"], route_class=ParsedBodyRoute)


@router.post(
    "", openapi_extra=SMALL_BODY, status_code=201, response_model=RewardOut, summary="List a reward"
)
async def add_reward(body: RewardIn, conn: Conn, q: Q, who: Lister) -> RewardOut:
    if who.role == Role.MERCHANT and body.merchant_id != who.subject:
        raise HTTPException(
            403, Said("商户只能以自己的名义上架奖品", "a merchant may list rewards only as itself")
        )
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
            body.value_fen,
        )
    return RewardOut(**dict(row))


@router.get("", response_model=Page[RewardOut], summary="Browse the catalogue, cheapest first")
async def list_rewards(
    conn: Conn,
    q: Q,
    who: Anyone,
    paging: Paging,
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
) -> Page[RewardOut]:
    rows = await conn.fetch(
        q["list_rewards"],
        who.org,
        active,
        max_points,
        merchant_id,
        community_id,
        kind,
        available,
        paging.fetch,
        *paging.after(int, UUID),
    )
    return paging.page(rows, lambda r: (r["points"], r["id"]), lambda r: RewardOut(**dict(r)))


@router.get("/{reward_id}", response_model=RewardOut, summary="One reward")
async def get_reward(reward_id: UUID, conn: Conn, q: Q, who: Anyone) -> RewardOut:
    row = await conn.fetchrow(q["get_reward"], reward_id, who.org)
    if row is None:
        raise no_reward(reward_id)
    return RewardOut(**dict(row))


@router.patch(
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
            raise no_reward(reward_id, of_yours=True)
        if body.valid_until and row["valid_from"] and body.valid_until <= row["valid_from"]:
            raise HTTPException(
                422,
                Said(
                    "valid_until 必须晚于奖品的 valid_from",
                    "valid_until must be after the reward's valid_from",
                ),
            )
        row = await conn.fetchrow(
            q["update_reward"], reward_id, who.org, body.active, body.stock, body.valid_until, False
        )
    return RewardOut(**dict(row))
