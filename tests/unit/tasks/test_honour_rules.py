"""Honour roll rules without a database: equal points share a rank, and nobody is listed
without a name on the records."""

from __future__ import annotations

import pytest

from jifen.tasks.domain import honour


def test_equal_points_share_a_rank_and_the_next_rank_skips() -> None:
    rows = [
        {"display_name": n, "services": s, "points": p}
        for n, s, p in [("甲", 3, 90), ("乙", 2, 40), ("丙", 1, 40), ("丁", 1, 10)]
    ]
    assert [(r["rank"], r["display_name"]) for r in honour.ranked(rows)] == [
        (1, "甲"),
        (2, "乙"),
        (2, "丙"),
        (4, "丁"),
    ]
    assert honour.ranked([]) == []


def test_only_a_named_volunteer_on_record_may_be_listed() -> None:
    honour.check_listable("李师傅")
    with pytest.raises(honour.NotListable) as none:
        honour.check_listable(None)
    assert none.value.reason == "not_on_record"
    with pytest.raises(honour.NotListable) as blank:
        honour.check_listable("  ")
    assert blank.value.reason == "no_name_on_record"
