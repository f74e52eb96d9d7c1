"""The monthly settlement's window and totals (issue 21, part 1)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jifen.redeem.domain.settlement import csv_rows, month_window, totals


def test_a_month_is_its_calendar_month_in_utc_december_included() -> None:
    assert month_window("2026-11") == (
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2026, 12, 1, tzinfo=UTC),
    )
    assert month_window("2026-12")[1] == datetime(2027, 1, 1, tzinfo=UTC)
    for bad in ("2026-13", "2026-1", "26-01", ""):
        with pytest.raises(ValueError):
            month_window(bad)


def test_totals_count_money_only_where_a_value_was_stated() -> None:
    lines = [
        {"reward_id": "r1", "name_zh": "大米", "name_en": "Rice", "value_fen": 2500,
         "fulfilled": 2, "points": 20},
        {"reward_id": "r2", "name_zh": "肥皂", "name_en": "Soap", "value_fen": None,
         "fulfilled": 1, "points": 5},
    ]  # fmt: skip
    t = totals(lines)
    assert (t.fulfilled, t.points, t.value_fen, t.unvalued) == (3, 25, 5000, 1)
    rows = csv_rows(lines)
    assert rows[1][-1] == 5000 and rows[2][-1] == ""
    assert rows[-1] == ("合计 total", "", "", "", 3, 25, 5000)
    assert totals([]).fulfilled == 0
