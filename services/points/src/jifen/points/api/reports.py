"""/v1/reports/points: what the ledger moved for the organisation in a period (issue 21)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from jifen.kernel.auth import Principal, Role, require
from jifen.kernel.deps import Conn, Q
from jifen.kernel.i18n import Said
from jifen.kernel.web import Refusal
from jifen.points.domain.reports import shape

Reader = Annotated[Principal, require(Role.OFFICER, Role.AUDITOR, Role.ADMIN)]
router = APIRouter(prefix="/v1/reports", tags=["reports"])
MONTH = re.compile(r"^(20[0-9]{2})-(0[1-9]|1[0-2])$")


class CategoryPoints(BaseModel):
    category: str | None
    category_zh: str
    category_en: str
    completions: int = Field(description="Credits of completions of this category")
    issued: int
    reversed: int


class PointsTotal(BaseModel):
    issued: int = Field(description="发放 Credited for verified completions")
    reversed: int = Field(description="冲正 Taken back for revoked completions")
    redeemed: int = Field(description="兑换 Debited for redemptions")
    refunded: int = Field(description="退回 Refunded for cancelled redemptions")
    adjusted: int = Field(description="调整 Adjustments, with their sign")


class PointsReport(BaseModel):
    org_id: str
    since: datetime = Field(serialization_alias="from")
    until: datetime
    opening_outstanding: int = Field(description="What the accounts held at the start")
    closing_outstanding: int = Field(description="What they held at the end (未兑付积分)")
    categories: list[CategoryPoints]
    total: PointsTotal


@router.get(
    "/points",
    response_model=PointsReport,
    summary="Points issued, reversed, redeemed and outstanding in a month",
    description="积分报表 What the ledger recorded for your organisation in the month (UTC), or "
    "the current month: per category the points issued and reversed, and in all the points "
    "issued, reversed, redeemed, refunded and adjusted, with what the accounts held at the "
    "start and the end.",
)
async def points_report(
    conn: Conn,
    q: Q,
    who: Reader,
    month: Annotated[str | None, Query(pattern=MONTH.pattern, examples=["2026-11"])] = None,
) -> Any:
    since, until = _month(month, datetime.now(UTC).date())
    rows = await conn.fetch(q["points_report"], who.org, since, until)
    opening = await conn.fetchval(q["points_outstanding"], who.org, since)
    closing = await conn.fetchval(q["points_outstanding"], who.org, until)
    return {
        "org_id": who.org,
        "since": since,
        "until": until,
        **shape(rows, int(opening), int(closing)),
    }


def _month(month: str | None, today: date) -> tuple[datetime, datetime]:
    if month is None:
        y, m = today.year, today.month
    else:
        found = MONTH.match(month)
        if found is None:  # the query's pattern already refuses it; kept for direct callers
            raise Refusal(
                "bad_period", Said("month 应为 YYYY-MM", "month is not YYYY-MM"), status=422
            )
        y, m = int(found[1]), int(found[2])
    start = datetime(y, m, 1, tzinfo=UTC)
    return start, datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=UTC)
