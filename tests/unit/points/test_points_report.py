"""The points report's figures from the ledger's sums (issue 21, part 2)."""

from __future__ import annotations

from jifen.points.domain.reports import shape


def test_the_points_report_signs_what_was_taken_away_and_names_categories() -> None:
    rows = [
        {"category": "meal_delivery", "kind": "credit", "entries": 3, "amount": 60},
        {"category": "meal_delivery", "kind": "reversal", "entries": 1, "amount": -20},
        {"category": "flood_watch", "kind": "credit", "entries": 1, "amount": 15},
        {"category": None, "kind": "debit", "entries": 2, "amount": -30},
        {"category": None, "kind": "refund", "entries": 1, "amount": 10},
        {"category": None, "kind": "adjustment", "entries": 2, "amount": -5},
    ]
    report = shape(rows, opening=100, closing=130)
    assert report["total"] == {
        "issued": 75, "reversed": 20, "redeemed": 30, "refunded": 10, "adjusted": -5
    }  # fmt: skip
    t = report["total"]
    assert 100 + t["issued"] - t["reversed"] - t["redeemed"] + t["refunded"] + t["adjusted"] == 130
    meal, flood = sorted(report["categories"], key=lambda c: c["category"] != "meal_delivery")
    assert (meal["category_zh"], meal["issued"], meal["reversed"], meal["completions"]) == (
        "助老送餐", 60, 20, 3
    )  # fmt: skip
    assert (flood["category_zh"], flood["category_en"]) == ("flood_watch", "flood_watch")
    assert shape([], 0, 0)["total"]["issued"] == 0
