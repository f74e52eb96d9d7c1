"""/v1/reports: what the scheme counts, per community, category and period (issue 21)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response

from jifen.kernel.tables import XLSX, Format, table_response
from jifen.kernel.web import ParsedBodyRoute
from jifen.tasks.api.deps import Conn, IdFilter, Q, ReportReader
from jifen.tasks.api.schemas.reports import ActivityReport
from jifen.tasks.domain.reports import MONTH, csv_rows, period, shape

router = APIRouter(prefix="/v1/reports", tags=["reports"], route_class=ParsedBodyRoute)


@router.get(
    "/activity",
    response_model=ActivityReport,
    summary="Verified work in a period: per community and category (officer, admin, auditor)",
    description="活动报表 The organisation's verified completions in the period (by the time "
    "they were verified, UTC): activities (jobs with at least one), attendances (completions), "
    "distinct volunteers, service hours (the jobs' service_minutes), points issued, and the "
    "quantities in each category's unit (meals, bikes, people…) — per category of each "
    "community, per community, and in all (distinct volunteers counted in each, not summed). "
    "A revoked completion no longer counts. Period: `month` (YYYY-MM), or `from` and `until` "
    "(dates, `until` exclusive, at most three years), or the current month. `format=csv` or "
    "`xlsx`: the same as a CSV (UTF-8 with a byte-order mark) or Excel download.",
    responses={
        200: {"content": {"text/csv": {}, XLSX: {}}},
        422: {"description": "A bad period"},
    },
)
async def activity(
    conn: Conn,
    q: Q,
    who: ReportReader,
    month: Annotated[str | None, Query(pattern=MONTH.pattern, examples=["2026-11"])] = None,
    start: Annotated[date | None, Query(alias="from", description="First day (UTC)")] = None,
    end: Annotated[date | None, Query(alias="until", description="Day after the last")] = None,
    community_id: IdFilter = None,
    format: Annotated[Format, Query()] = "json",
) -> ActivityReport | Response:
    since, until = period(month, start, end, today=datetime.now(UTC).date())
    args = (who.org, since, until, community_id)
    rows = await conn.fetch(q["activity_report"], *args)
    quantities = await conn.fetch(q["activity_quantities"], *args)
    custom = {r["code"]: r["label"] for r in await conn.fetch(q["list_categories"], who.org)}
    report = {
        "org_id": who.org,
        "from": since,
        "until": until,
        "community_id": community_id,
        **shape(rows, quantities, custom),
    }
    if format != "json":
        name = f"activity-{who.org}-{since.date()}-{until.date()}"
        return table_response(csv_rows(report), name=name, format=format)
    return ActivityReport.model_validate(report)
