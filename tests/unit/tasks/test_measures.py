"""What a completion counts (issue 21, part 1): a category's unit, and a quantity refused
where the category counts none."""

from __future__ import annotations

import pytest

from jifen.tasks.api.schemas.completions import CompletionIn
from jifen.tasks.api.schemas.jobs import JobIn
from jifen.tasks.domain.jobs import (
    CATEGORY_LABELS,
    CATEGORY_UNITS,
    UNIT_LABELS,
    Category,
    NoQuantity,
    Unit,
    check_quantity,
    unit_of,
)


def test_every_built_in_category_says_what_it_counts_and_every_unit_has_both_names() -> None:
    assert set(CATEGORY_UNITS) == set(Category) == set(CATEGORY_LABELS)
    assert set(UNIT_LABELS) == set(Unit)
    assert CATEGORY_UNITS[Category.MEAL_DELIVERY] is Unit.MEALS
    assert CATEGORY_UNITS[Category.FREE_REPAIR_DAY] is Unit.BIKES
    assert CATEGORY_UNITS[Category.OTHER] is None


def test_a_custom_category_counts_in_the_unit_the_organisation_gave_it() -> None:
    custom = {"flood_watch": "hours", "tea_party": None}
    assert unit_of("flood_watch", custom) is Unit.HOURS
    assert unit_of("tea_party", custom) is None
    assert unit_of("meal_delivery", custom) is Unit.MEALS
    assert unit_of("unknown", custom) is None


def test_a_quantity_is_recorded_in_its_categorys_unit_and_refused_where_none_counts() -> None:
    assert check_quantity("meal_delivery", Unit.MEALS, 6) is Unit.MEALS
    assert check_quantity("meal_delivery", Unit.MEALS, None) is None  # optional
    assert check_quantity("other", None, None) is None
    with pytest.raises(NoQuantity) as refused:
        check_quantity("other", None, 3)
    assert refused.value.status == 422 and refused.value.reason == "no_quantity"
    assert "不计数量" in (refused.value.zh or "") and "count no quantity" in (
        refused.value.en or ""
    )


def test_quantities_and_service_minutes_are_whole_numbers_within_bounds() -> None:
    CompletionIn(account_id="vol-1", quantity=0)
    for bad in (-1, 100_001, 2.5, "6"):
        with pytest.raises(ValueError):
            CompletionIn(account_id="vol-1", quantity=bad)
    job = {
        "community_id": "c1",
        "title": "送餐",
        "category": "meal_delivery",
        "points": 10,
        "capacity": 2,
        "starts_at": "2026-12-15T01:00:00Z",
        "ends_at": "2026-12-15T03:00:00Z",
    }
    assert JobIn.model_validate({**job, "service_minutes": 120}).to_command().service_minutes == 120
    assert JobIn.model_validate(job).to_command().service_minutes is None
    for bad in (0, 1441, 1.5):
        with pytest.raises(ValueError):
            JobIn.model_validate({**job, "service_minutes": bad})


def test_the_months_the_worker_keeps_rolled_cross_the_year() -> None:
    from datetime import UTC, datetime

    from jifen.tasks.domain.jobs import months_from

    assert months_from(datetime(2026, 11, 30, tzinfo=UTC), 2) == ["2026-11", "2026-12", "2027-01"]
    assert months_from(datetime(2026, 12, 1, tzinfo=UTC), 0) == ["2026-12"]
