"""The activity report's period and shape (issue 21, part 2)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from jifen.tasks.domain.reports import BadPeriod, csv_rows, period, shape

TODAY = date(2026, 12, 2)


def test_a_period_is_a_month_two_dates_or_this_month() -> None:
    assert period("2026-11", None, None, today=TODAY) == (
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2026, 12, 1, tzinfo=UTC),
    )
    assert period("2026-12", None, None, today=TODAY)[1] == datetime(2027, 1, 1, tzinfo=UTC)
    assert period(None, None, None, today=TODAY)[0] == datetime(2026, 12, 1, tzinfo=UTC)
    assert period(None, date(2024, 1, 1), date(2025, 1, 1), today=TODAY) == (
        datetime(2024, 1, 1, tzinfo=UTC),
        datetime(2025, 1, 1, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    ("month", "start", "end", "said"),
    [
        ("2026-11", date(2026, 1, 1), None, "not both"),
        (None, date(2026, 1, 1), None, "go together"),
        (None, date(2026, 2, 1), date(2026, 1, 1), "after from"),
        (None, date(2020, 1, 1), date(2026, 1, 1), "at most"),
        ("2026-13", None, None, "YYYY-MM"),
    ],
)
def test_a_bad_period_is_refused_in_both_languages(
    month: str | None, start: date | None, end: date | None, said: str
) -> None:
    with pytest.raises(BadPeriod) as refused:
        period(month, start, end, today=TODAY)
    assert refused.value.status == 422 and said in (refused.value.en or "")
    assert refused.value.zh


def _row(level: int, community: str | None, category: str | None, **f: object) -> dict[str, object]:
    base = {"activities": 1, "attendances": 2, "volunteers": 2, "service_minutes": 90,
            "points": 20, "quantity": None, "unit": None}  # fmt: skip
    return {"level": level, "community_id": community, "category": category, **base, **f}


def test_the_report_names_categories_and_units_in_both_languages_and_totals_last() -> None:
    rows = [
        _row(0, "a", "meal_delivery", quantity=6, unit="meals"),
        _row(0, "a", "flood_watch"),
        _row(1, "a", None, activities=2, attendances=4, volunteers=3, service_minutes=180),
        _row(3, None, None, activities=2, attendances=4, volunteers=3, service_minutes=180),
    ]
    quantities = [
        {"level": 0, "community_id": "a", "unit": "meals", "quantity": 6},
        {"level": 1, "community_id": None, "unit": "meals", "quantity": 6},
    ]
    report = shape(rows, quantities, {"flood_watch": "防汛巡查 Flood watch"})
    meal, flood = report["rows"]
    assert (meal["category_zh"], meal["category_en"], meal["unit_zh"]) == (
        "助老送餐",
        "Meal delivery",
        "份",
    )
    assert flood["category_zh"] == "防汛巡查 Flood watch" and flood["quantity"] is None
    assert report["communities"][0]["quantities"][0]["quantity"] == 6
    assert (report["total"]["volunteers"], report["total"]["service_hours"]) == (3, 3.0)
    csv = csv_rows(report)
    assert csv[0][0] == "社区 community_id" and csv[-1][0] == "合计 total"
    assert csv[-2][1] == "小计 subtotal" and csv[-1][9] == "6 份 meals"


def test_an_empty_period_reports_zeros_not_nothing() -> None:
    report = shape([], [], {})
    assert report["rows"] == [] and report["communities"] == []
    assert report["total"]["attendances"] == 0 and report["total"]["quantities"] == []
