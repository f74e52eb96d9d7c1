"""Merchants: who may list rewards and fulfil their redemptions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response
from fastapi import Path as PathParam

from jifen.kernel.auth import ID_PATTERN, Role
from jifen.kernel.errors import NotFound
from jifen.kernel.i18n import Said
from jifen.kernel.pages import Page, Paging
from jifen.kernel.tables import XLSX, Format, table_response
from jifen.kernel.web import ParsedBodyRoute, Refusal
from jifen.redeem.api.deps import SMALL_BODY, Anyone, Conn, Lister, Officer, Q
from jifen.redeem.api.schemas import MerchantIn, MerchantOut, SettlementLine, SettlementOut
from jifen.redeem.domain.settlement import MONTH, csv_rows, month_window, totals

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


@router.get("", response_model=Page[MerchantOut], summary="Merchants of your organisation")
async def list_merchants(conn: Conn, q: Q, who: Anyone, paging: Paging) -> Page[MerchantOut]:
    rows = await conn.fetch(q["list_merchants"], who.org, paging.fetch, *paging.after(str))
    return paging.page(rows, lambda r: (r["id"],), lambda r: MerchantOut(**dict(r)))


@router.get(
    "/{merchant_id}/settlements/{month}",
    response_model=SettlementOut,
    summary="A merchant's monthly settlement statement (结算单)",
    description="What the merchant handed over in the calendar month (UTC): per reward, the "
    "redemptions fulfilled, the points they took and their money value (fen). The merchant "
    "reads its own; officers and the admin any of the organisation's. `?format=csv` or `xlsx`: "
    "the same as a CSV (UTF-8 with a byte-order mark) or Excel download.",
    responses={
        200: {"content": {"text/csv": {}, XLSX: {}}},
        403: {"description": "A merchant asking for another merchant's statement"},
        404: {"description": "No such merchant in your organisation"},
    },
)
async def settlement(
    merchant_id: Annotated[str, PathParam(pattern=f"^{ID_PATTERN.pattern}$")],
    month: Annotated[str, PathParam(pattern=MONTH.pattern, examples=["2026-11"])],
    conn: Conn,
    q: Q,
    who: Lister,
    format: Annotated[Format, Query()] = "json",
) -> SettlementOut | Response:
    if who.role == Role.MERCHANT and who.subject != merchant_id:
        raise HTTPException(
            403,
            Said("商户只能查看自己的结算单", "a merchant may read only its own settlement"),
        )
    merchant = await conn.fetchrow(q["get_merchant"], who.org, merchant_id)
    if merchant is None:
        raise NotFound(
            Said(f"本组织没有商户 {merchant_id}", f"no merchant {merchant_id} in your organisation")
        )
    starts_at, ends_at = month_window(month)
    lines = await conn.fetch(q["merchant_settlement"], who.org, merchant_id, starts_at, ends_at)
    if format != "json":
        name = f"settlement-{merchant_id}-{month}"
        return table_response(csv_rows(lines), name=name, format=format)
    t = totals(lines)
    return SettlementOut(
        merchant_id=merchant_id,
        merchant_name_zh=merchant["name_zh"],
        merchant_name_en=merchant["name_en"],
        month=month,
        starts_at=starts_at,
        ends_at=ends_at,
        lines=[SettlementLine(**dict(r)) for r in lines],
        fulfilled=t.fulfilled,
        points=t.points,
        value_fen=t.value_fen,
        unvalued=t.unvalued,
    )
