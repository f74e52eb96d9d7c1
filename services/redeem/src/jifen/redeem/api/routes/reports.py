"""/v1/reports/redemptions: what the organisation's members took home in a month, per
merchant and in all — the "goods worth ¥250,000 redeemed" of the seeds (issue 21)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from jifen.kernel.tables import XLSX, Format, table_response
from jifen.kernel.web import ParsedBodyRoute
from jifen.redeem.api.deps import Anyone, Conn, Q, ReportReader
from jifen.redeem.domain.settlement import MONTH, month_window

router = APIRouter(prefix="/v1/reports", tags=["reports"], route_class=ParsedBodyRoute)


class MerchantRedeemed(BaseModel):
    merchant_id: str
    name_zh: str | None
    name_en: str | None
    fulfilled: int = Field(description="Redemptions handed over")
    members: int = Field(description="Distinct members they were handed to")
    points: int
    value_fen: int = Field(description="Their money value, of the rewards with one (fen)")
    unvalued: int = Field(description="Of rewards with no money value stated")


class RedeemedTotal(BaseModel):
    fulfilled: int
    members: int = Field(description="Distinct members in all (one may redeem at several)")
    points: int
    value_fen: int
    unvalued: int


class RedemptionsReport(BaseModel):
    org_id: str
    month: str
    starts_at: datetime
    ends_at: datetime
    merchants: list[MerchantRedeemed]
    total: RedeemedTotal


CSV_HEADER = (
    "商户 merchant_id",
    "名称 name_zh",
    "name_en",
    "核销数 fulfilled",
    "会员数 members",
    "积分 points",
    "金额（分）value_fen",
    "未定价 unvalued",
)


@router.get(
    "/redemptions",
    response_model=RedemptionsReport,
    summary="What was redeemed in a month, per merchant and in all (points and money)",
    description="兑换报表 The redemptions handed over in the calendar month (UTC; the current "
    "one when not given), per merchant: how many, to how many members, their points and their "
    "money value in fen (rewards listed with one; `unvalued` counts the others). `?format=csv` "
    "or `xlsx`: the same as a download.",
    responses={200: {"content": {"text/csv": {}, XLSX: {}}}},
)
async def redemptions_report(
    conn: Conn,
    q: Q,
    who: ReportReader,
    month: Annotated[str | None, Query(pattern=MONTH.pattern, examples=["2026-11"])] = None,
    format: Annotated[Format, Query()] = "json",
) -> RedemptionsReport | Response:
    month = month or datetime.now(UTC).strftime("%Y-%m")
    starts_at, ends_at = month_window(month)
    rows = await conn.fetch(q["redemptions_report"], who.org, starts_at, ends_at)
    merchants = [MerchantRedeemed(**dict(r)) for r in rows]
    total = RedeemedTotal(
        fulfilled=sum(m.fulfilled for m in merchants),
        members=await conn.fetchval(q["redemptions_report_members"], who.org, starts_at, ends_at),
        points=sum(m.points for m in merchants),
        value_fen=sum(m.value_fen for m in merchants),
        unvalued=sum(m.unvalued for m in merchants),
    )
    if format != "json":
        table: list[tuple[object, ...]] = [CSV_HEADER]
        table += [
            (m.merchant_id, m.name_zh or "", m.name_en or "", m.fulfilled, m.members, m.points,
             m.value_fen, m.unvalued)
            for m in merchants
        ]  # fmt: skip
        table.append(
            ("合计 total", "", "", total.fulfilled, total.members, total.points,
             total.value_fen, total.unvalued)
        )  # fmt: skip
        return table_response(table, name=f"redemptions-{month}", format=format)
    return RedemptionsReport(
        org_id=who.org,
        month=month,
        starts_at=starts_at,
        ends_at=ends_at,
        merchants=merchants,
        total=total,
    )


class RedeemedFigure(BaseModel):
    """What the organisation's members took home in a month, as a public figure: totals only,
    nothing of any member or merchant."""

    org_id: str
    month: str
    starts_at: datetime
    ends_at: datetime
    fulfilled: int = Field(description="Redemptions handed over in the month")
    points: int = Field(description="The points they took")


@router.get(
    "/redemptions/figure",
    response_model=RedeemedFigure,
    summary="The month's points redeemed in all, as a public figure (any role, apps too)",
    description="兑换积分（公开数字）The redemptions handed over in the calendar month (UTC; "
    "the current one when not given) and their points, in all: what a community app shows "
    "beside the points issued. Points are spent anywhere in the organisation, so the figure "
    "is the organisation's, not a community's; nothing per member or merchant.",
)
async def redeemed_figure(
    conn: Conn,
    q: Q,
    who: Anyone,
    month: Annotated[str | None, Query(pattern=MONTH.pattern, examples=["2026-11"])] = None,
) -> RedeemedFigure:
    month = month or datetime.now(UTC).strftime("%Y-%m")
    starts_at, ends_at = month_window(month)
    row = await conn.fetchrow(q["redeemed_figure"], who.org, starts_at, ends_at)
    return RedeemedFigure(
        org_id=who.org,
        month=month,
        starts_at=starts_at,
        ends_at=ends_at,
        fulfilled=row["fulfilled"],
        points=row["points"],
    )
