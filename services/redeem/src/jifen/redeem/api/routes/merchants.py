"""Merchants: who may list rewards and fulfil their redemptions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from jifen.kernel.i18n import Said
from jifen.kernel.web import ParsedBodyRoute, Refusal
from jifen.redeem.api.deps import SMALL_BODY, Anyone, Conn, Officer, Q
from jifen.redeem.api.schemas import MerchantIn, MerchantOut

router = APIRouter(prefix="/v1/merchants", tags=["merchants"], route_class=ParsedBodyRoute)


@router.post(
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
        raise Refusal(
            "merchant_exists",
            Said(f"商户 {body.id} 已经登记过", f"merchant {body.id} is already registered"),
        )
    return MerchantOut(**dict(row))


@router.get("", response_model=list[MerchantOut], summary="Merchants of your organisation")
async def list_merchants(
    conn: Conn, q: Q, who: Anyone, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> list[MerchantOut]:
    return [MerchantOut(**dict(r)) for r in await conn.fetch(q["list_merchants"], who.org, limit)]
