"""A merchant's monthly settlement statement (结算单, issue 21 part 1): the calendar month's
window, and the totals of its lines. Pure: the lines come from the database."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

MONTH = re.compile(r"^(20[0-9]{2})-(0[1-9]|1[0-2])$")


def month_window(month: str) -> tuple[datetime, datetime]:
    """[first instant, first instant of the next month) of ``YYYY-MM``, in UTC."""
    found = MONTH.match(month)
    if found is None:
        raise ValueError(f"month {month!r} is not YYYY-MM")
    year, m = int(found[1]), int(found[2])
    start = datetime(year, m, 1, tzinfo=UTC)
    end = datetime(year + (m == 12), m % 12 + 1, 1, tzinfo=UTC)
    return start, end


@dataclass(frozen=True)
class Totals:
    fulfilled: int
    points: int
    value_fen: int  # of the rewards with a money value
    unvalued: int  # redemptions of rewards with none


def totals(lines: Iterable[Mapping[str, Any]]) -> Totals:
    fulfilled = points = value = unvalued = 0
    for line in lines:
        fulfilled += line["fulfilled"]
        points += line["points"]
        if line["value_fen"] is None:
            unvalued += line["fulfilled"]
        else:
            value += line["value_fen"] * line["fulfilled"]
    return Totals(fulfilled, points, value, unvalued)


CSV_HEADER = (
    "奖品 reward_id",
    "名称 name_zh",
    "name_en",
    "单价（分）value_fen",
    "核销数 fulfilled",
    "积分 points",
    "金额（分）value_fen_total",
)


def csv_rows(lines: Iterable[Mapping[str, Any]]) -> list[tuple[object, ...]]:
    """The statement's lines as CSV rows (the header first, a total last)."""
    lines = list(lines)
    t = totals(lines)
    rows: list[tuple[object, ...]] = [CSV_HEADER]
    for line in lines:
        rows.append(
            (
                str(line["reward_id"]),
                line["name_zh"],
                line["name_en"],
                "" if line["value_fen"] is None else line["value_fen"],
                line["fulfilled"],
                line["points"],
                "" if line["value_fen"] is None else line["value_fen"] * line["fulfilled"],
            )
        )
    rows.append(("合计 total", "", "", "", t.fulfilled, t.points, t.value_fen))
    return rows
