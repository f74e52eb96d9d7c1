"""What the schemes count (issue 21, part 2): an organisation's verified work in a period, per
community and category, with the figures the seeds report (activities, attendances, distinct
volunteers, quantities in their units, service hours, points issued). Pure: the rows come from
the database's grouping sets (``activity_report``, ``activity_quantities``); this shapes them,
names categories and units in both languages, and writes the CSV."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from jifen.kernel.i18n import Said
from jifen.tasks.domain.jobs import CATEGORY_LABELS, UNIT_LABELS, Category, TasksRefusal, Unit

MONTH = re.compile(r"^(20[0-9]{2})-(0[1-9]|1[0-2])$")
MAX_DAYS = 3 * 366  # a report spans at most about three years


class BadPeriod(TasksRefusal):
    reason = "bad_period"
    status = 422


def period(
    month: str | None, start: date | None, end: date | None, *, today: date
) -> tuple[datetime, datetime]:
    """[from, until) in UTC: a calendar month (``YYYY-MM``), or two dates (``until``
    exclusive), or the current month when neither is given."""
    if month is not None and (start is not None or end is not None):
        raise BadPeriod(
            Said(
                "请给出 month，或 from 与 until，不要同时给",
                "give month, or from and until, not both",
            )
        )
    if month is not None:
        found = MONTH.match(month)
        if found is None:
            raise BadPeriod(
                Said(f"month {month!r} 应为 YYYY-MM", f"month {month!r} is not YYYY-MM")
            )
        y, m = int(found[1]), int(found[2])
        return _at(date(y, m, 1)), _at(date(y + (m == 12), m % 12 + 1, 1))
    if start is None and end is None:
        first = today.replace(day=1)
        y, m = first.year, first.month
        return _at(first), _at(date(y + (m == 12), m % 12 + 1, 1))
    if start is None or end is None:
        raise BadPeriod(Said("from 与 until 要一起给", "from and until go together"))
    if end <= start:
        raise BadPeriod(Said("until 必须晚于 from", "until must be after from"))
    if (end - start).days > MAX_DAYS:
        raise BadPeriod(
            Said(f"一份报表最多跨 {MAX_DAYS} 天", f"a report spans at most {MAX_DAYS} days")
        )
    return _at(start), _at(end)


def _at(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def category_names(code: str | None, custom: Mapping[str, str]) -> tuple[str, str]:
    """(Chinese, English) of a category: a built-in's both, an organisation's own label."""
    if code is None:
        return "", ""
    if code in CATEGORY_LABELS:
        return CATEGORY_LABELS[Category(code)]
    label = custom.get(code, code)
    return label, label


def unit_names(unit: str | None) -> tuple[str | None, str | None]:
    if unit is None:
        return None, None
    return UNIT_LABELS[Unit(unit)]


def _figures(r: Mapping[str, Any]) -> dict[str, Any]:
    minutes = int(r["service_minutes"])
    return {
        "activities": r["activities"],
        "attendances": r["attendances"],
        "volunteers": r["volunteers"],
        "service_minutes": minutes,
        "service_hours": round(minutes / 60, 1),
        "points": int(r["points"] or 0),
    }


def _quantities(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        zh, en = unit_names(r["unit"])
        out.append(
            {"unit": r["unit"], "unit_zh": zh, "unit_en": en, "quantity": int(r["quantity"])}
        )
    return out


def shape(
    rows: Iterable[Mapping[str, Any]],
    quantities: Iterable[Mapping[str, Any]],
    custom: Mapping[str, str],
) -> dict[str, Any]:
    """The report's ``rows`` (a category in a community), ``communities`` and ``total``."""
    by_level: dict[int, list[Mapping[str, Any]]] = {0: [], 1: [], 3: []}
    for r in rows:
        by_level[int(r["level"])].append(r)
    q_by_community: dict[str, list[Mapping[str, Any]]] = {}
    q_total: list[Mapping[str, Any]] = []
    for r in quantities:
        if int(r["level"]) == 0:
            q_by_community.setdefault(r["community_id"], []).append(r)
        else:
            q_total.append(r)
    leaf = []
    for r in by_level[0]:
        zh, en = category_names(r["category"], custom)
        uzh, uen = unit_names(r["unit"])
        leaf.append(
            {
                "community_id": r["community_id"],
                "category": r["category"],
                "category_zh": zh,
                "category_en": en,
                **_figures(r),
                "quantity": None if r["quantity"] is None else int(r["quantity"]),
                "unit": r["unit"],
                "unit_zh": uzh,
                "unit_en": uen,
            }
        )
    communities = [
        {
            "community_id": r["community_id"],
            **_figures(r),
            "quantities": _quantities(q_by_community.get(r["community_id"], [])),
        }
        for r in by_level[1]
    ]
    empty = {"activities": 0, "attendances": 0, "volunteers": 0, "service_minutes": 0, "points": 0}
    total = by_level[3][0] if by_level[3] else empty
    return {
        "rows": leaf,
        "communities": communities,
        "total": {**_figures(total), "quantities": _quantities(q_total)},
    }


CSV_HEADER = (
    "社区 community_id",
    "类别 category",
    "类别名称 category_zh",
    "category_en",
    "活动数 activities",
    "参与人次 attendances",
    "志愿者人数 volunteers",
    "服务时长（小时）service_hours",
    "发放积分 points",
    "数量 quantity",
    "单位 unit",
)


def csv_rows(report: Mapping[str, Any]) -> list[tuple[object, ...]]:
    """The report as CSV: the header, each category of each community, each community's
    subtotal (类别 = 小计 subtotal), and the total last."""
    rows: list[tuple[object, ...]] = [CSV_HEADER]
    for r in report["rows"]:
        rows.append(
            (
                r["community_id"], r["category"], r["category_zh"], r["category_en"],
                r["activities"], r["attendances"], r["volunteers"], r["service_hours"],
                r["points"], "" if r["quantity"] is None else r["quantity"],
                "" if r["unit"] is None else f"{r['unit_zh']} {r['unit']}",
            )
        )  # fmt: skip
    for c in report["communities"]:
        rows.append(_sum_row(c["community_id"], "小计 subtotal", c))
    rows.append(_sum_row("合计 total", "", report["total"]))
    return rows


def _sum_row(first: str, second: str, f: Mapping[str, Any]) -> tuple[object, ...]:
    quantities = "; ".join(f"{q['quantity']} {q['unit_zh']} {q['unit']}" for q in f["quantities"])
    return (
        first, second, "", "", f["activities"], f["attendances"], f["volunteers"],
        f["service_hours"], f["points"], quantities, "",
    )  # fmt: skip
