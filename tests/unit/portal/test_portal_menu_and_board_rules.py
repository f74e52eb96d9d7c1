"""The officer's menu form and board pages, without the stack: local times typed in the
organisation's zone become the UTC instants the tasks API takes (a day boundary, a DST gap),
the form's rows are read with each bad field named in the person's language, the forms each
status offers follow the tasks domain's moves, a kept photo's reference becomes its path, and
the longest pages stay within the page budget."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from jifen.portal.app import templates
from jifen.portal.board import HAZARD_ACTIONS, NEED_ACTIONS, offered, photo_path
from jifen.portal.publish import (
    CATEGORIES_SHOWN,
    CATEGORY_LABEL_CHARS,
    COMMUNITY_NAME_CHARS,
    PLACE_CHARS,
    ROWS,
    VERIFICATIONS,
    BadTime,
    local_input,
    month_opens,
    read_rows,
    to_utc,
)
from jifen.portal.texts import Lang, text

from jifen.tasks.domain.intake import (
    _HAZARD_MOVES,
    _NEED_MOVES,
    HazardStatus,
    NeedStatus,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
PAGE_BUDGET_BYTES = 30_000  # tests/portal/test_portal_journey.py's


def test_a_shanghai_time_is_eight_hours_ahead_of_utc() -> None:
    assert to_utc("2026-12-05T09:30", SHANGHAI) == datetime(2026, 12, 5, 1, 30, tzinfo=UTC)
    assert to_utc("2026-12-05 09:30", SHANGHAI) == datetime(2026, 12, 5, 1, 30, tzinfo=UTC)
    assert local_input("2026-12-05T01:30:00+00:00", SHANGHAI) == "2026-12-05T09:30"


def test_early_morning_local_is_the_day_before_in_utc() -> None:
    # 07:00 on 1 December in Shanghai is 23:00 on 30 November UTC: the day (and month) before
    assert to_utc("2026-12-01T07:00", SHANGHAI) == datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    assert to_utc("2027-01-01T00:00", SHANGHAI) == datetime(2026, 12, 31, 16, 0, tzinfo=UTC)
    assert month_opens("2026-12", SHANGHAI) == "2026-12-01 08:00"


def test_a_time_a_dst_change_skips_is_refused_and_a_repeated_one_is_the_first() -> None:
    york = ZoneInfo("America/New_York")
    with pytest.raises(BadTime):
        to_utc("2026-03-08T02:30", york)  # clocks go 02:00 -> 03:00
    assert to_utc("2026-11-01T01:30", york) == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    for bad in ("", "tomorrow", "2026-13-01T09:00", "2026-12-05"):
        with pytest.raises(BadTime):
            to_utc(bad, SHANGHAI)


def _row(i: int, **values: str) -> dict[str, str]:
    return {f"{k}-{i}": v for k, v in values.items()}


GOOD = {
    "title": "免费维修电动车",
    "category": "free_repair_day",
    "place": "骑手驿站",
    "starts": "2026-12-15T09:00",
    "ends": "2026-12-15T17:00",
    "points": "30",
    "capacity": "4",
    "verification": "checkin",
}


def test_rows_become_the_apis_jobs_in_utc_and_empty_rows_are_left_out() -> None:
    form = {
        **_row(0, **GOOD),
        **_row(1, category="other", verification="officer"),  # untouched: empty
        **_row(3, title="送餐", starts="2026-12-02 11:00", ends="2026-12-02 12:30", points="20"),
    }
    read = read_rows(form, "2026-12", SHANGHAI, "zh")
    assert read.errors == []
    assert read.jobs == [
        {
            "title": "免费维修电动车",
            "category": "free_repair_day",
            "points": 30,
            "capacity": 4,
            "starts_at": "2026-12-15T01:00:00+00:00",
            "ends_at": "2026-12-15T09:00:00+00:00",
            "verification": "checkin",
            "place": {"address": "骑手驿站"},
        },
        {
            "title": "送餐",
            "category": "other",
            "points": 20,
            "capacity": 1,
            "starts_at": "2026-12-02T03:00:00+00:00",
            "ends_at": "2026-12-02T04:30:00+00:00",
            "verification": "officer",
        },
    ]


@pytest.mark.parametrize(
    ("lang", "changed", "said", "field"),
    [
        ("zh", {"title": " "}, "第 1 项 · 名称：请填写", "title-0"),
        ("en", {"title": ""}, "job 1 · Title: please fill it in", "title-0"),
        ("zh", {"points": "2.5"}, "第 1 项 · 积分：请填写大于 0 的整数", "points-0"),
        ("en", {"points": "ten"}, "job 1 · Points: please give a whole number", "points-0"),
        ("en", {"capacity": "0"}, "job 1 · Places: please give a whole number", "capacity-0"),
        ("zh", {"ends": "2026-12-15T08:00"}, "第 1 项 · 结束时间：必须晚于开始时间", "ends-0"),
        ("en", {"ends": "2026-12-15T09:00"}, "job 1 · Ends: must be after the start", "ends-0"),
        ("en", {"starts": "15/12/2026"}, "job 1 · Starts: please give a local date", "starts-0"),
        # the first hours of the local month are the month before in UTC (the API's month)
        ("zh", {"starts": "2026-12-01T07:00"}, "第 1 项 · 开始时间：不在 2026-12", "starts-0"),
        ("en", {"starts": "2027-01-01T08:00", "ends": "2027-01-01T09:00"}, "outside", "starts-0"),
    ],
)
def test_a_bad_field_is_named_in_the_persons_language(
    lang: Lang, changed: dict[str, str], said: str, field: str
) -> None:
    read = read_rows({**_row(0, **{**GOOD, **changed})}, "2026-12", SHANGHAI, lang)
    assert read.jobs == []
    assert len(read.errors) == 1 and said in read.errors[0], read.errors
    assert read.bad == {field}


def test_the_month_window_is_said_in_local_time_and_one_good_row_does_not_hide_a_bad_one() -> None:
    form = {
        **_row(0, **GOOD),
        **_row(2, **{**GOOD, "starts": "2026-12-01T07:59", "ends": "2026-12-01T09:00"}),
    }
    read = read_rows(form, "2026-12", SHANGHAI, "en")
    assert read.errors == [
        "job 3 · Starts: outside the menu of 2026-12 (counted in UTC: 2026-12-01 08:00 to "
        "2027-01-01 08:00 local time)"
    ]
    assert read.bad == {"starts-2"}
    assert to_utc("2026-12-01T08:00", SHANGHAI) == datetime(2026, 12, 1, tzinfo=UTC)


def test_no_row_or_no_month_is_refused() -> None:
    assert read_rows({}, "2026-12", SHANGHAI, "zh").errors == ["请至少填写一项服务。"]
    assert read_rows(_row(0, **GOOD), "2026-13", SHANGHAI, "en").errors == [
        "Month: please fill it in"
    ]


def test_the_forms_offered_are_the_tasks_domains_moves() -> None:
    # what each form moves an item to (the tasks API's transitions)
    hazard_to = {"triage": "in_progress", "merge": "duplicate", "close": "closed"}
    need_to = {"claim": "claimed", "job": "in_progress", "close": "closed"}
    for status in HazardStatus:
        allowed = {m.value for m in _HAZARD_MOVES.get(status, set())} - {"done"}
        assert {hazard_to[a] for a in HAZARD_ACTIONS.get(status.value, ())} == allowed, status
    for status in NeedStatus:
        allowed = {m.value for m in _NEED_MOVES.get(status, set())} - {"done"}
        assert {need_to[a] for a in NEED_ACTIONS.get(status.value, ())} == allowed, status
    # a refused form stays on the page (with what was typed), whatever the new status
    assert offered(HAZARD_ACTIONS, "closed", "close") == ["close"]
    assert offered(HAZARD_ACTIONS, "closed", None) == []
    assert offered(NEED_ACTIONS, "open", "job") == ["claim", "job", "close"]


def test_only_a_photo_the_portal_kept_is_shown() -> None:
    digest = "ab" * 32
    assert photo_path(f"portal-photo/{digest}.jpg") == f"/photos/{digest}.jpg"
    for other in (
        "",
        None,
        "photo/stair-3.jpg",
        f"portal-photo/{digest}.png",
        f"portal-photo/{digest}.jpg/../x",
        f"portal-photo/{digest.upper()}.jpg",
        f"https://evil.example/portal-photo/{digest}.jpg",
    ):
        assert photo_path(other) == ""


# -- the longest pages within the budget ---------------------------------------------------

AT = "2026-12-02T23:00:00+00:00"


class _Me:
    role = "officer"
    subject = "o" * 64


class _Session:
    name = "甲" * 50
    roles = {"officer": _Me()}


def _render(name: str, lang: Lang, **ctx: Any) -> str:
    def t(key: str, **values: object) -> str:
        return text(lang, key, **values)

    return templates.env.get_template(name).render(
        lang=lang,
        t=t,
        s=_Session(),
        me=_Me(),
        csrf="x" * 32,
        here="/officer/x",
        role_label=lambda r: t(f"role_{r}"),
        **ctx,
    )


# as many as a row lists, each as long as it is shown (jifen.portal.publish)
CATEGORIES = [
    {"code": "c" * 40, "label": "类" * CATEGORY_LABEL_CHARS} for _ in range(CATEGORIES_SHOWN)
]


def _history(n: int, status: str = "reported") -> list[dict[str, Any]]:
    return [
        {"status": status, "actor": "a" * 64, "reason": "理" * 500, "job_id": None, "at": AT}
        for _ in range(n)
    ]


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_longest_board_and_menu_pages_are_within_the_budget(lang: Lang) -> None:
    long_typed = {"title": "题" * 200, "place": "地" * PLACE_CHARS, "reason": "理" * 500}
    hazard = {
        "id": str(uuid.uuid4()),
        "community_id": "c" * 64,
        "kind": "fire_risk",
        "text": "字" * 2000,
        "place_address": "地" * 300,
        "evidence_ref": f"portal-photo/{'ab' * 32}.jpg",
        "account_id": "v" * 64,
        "status": "reported",
        "job_id": str(uuid.uuid4()),
        "duplicate_of": None,
        "created_at": AT,
        "history": _history(4),
    }
    others = [{**hazard, "id": str(uuid.uuid4())} for _ in range(20)]
    common = {
        "categories": CATEGORIES,
        "verifications": VERIFICATIONS,
        "tz": "Asia/Shanghai",
        "notice": None,
        "bad": set(),
        "typed": long_typed,
    }
    html = _render(
        "officer_hazard.html",
        lang,
        item=hazard,
        photo=photo_path(hazard["evidence_ref"]),
        forms=["triage", "merge", "close"],
        others=others,
        refused=("triage", "错" * 500),
        **common,
    )
    assert len(html.encode()) <= PAGE_BUDGET_BYTES, ("hazard", lang, len(html.encode()))
    assert f'<img src="/photos/{"ab" * 32}.jpg"' in html
    need = {
        "id": str(uuid.uuid4()),
        "community_id": "c" * 64,
        "kind": "wish",
        "title": "题" * 200,
        "description": "说" * 2000,
        "place": "地" * 200,
        "posted_by": "p" * 64,
        "status": "open",
        "claimed_by": "c" * 64,
        "created_at": AT,
        "wanted_from": AT,
        "wanted_until": AT,
        "quantity": 100000,
        "job_ids": [str(uuid.uuid4()) for _ in range(5)],
        "history": _history(4, "open"),
    }
    html = _render(
        "officer_need.html",
        lang,
        item=need,
        photo="",
        forms=["claim", "job", "close"],
        others=[],
        refused=("job", "错" * 500),
        **common,
    )
    assert len(html.encode()) <= PAGE_BUDGET_BYTES, ("need", lang, len(html.encode()))
    # every row as long as it may be typed, and wrong in every field it can be
    typed = {"month": "2026-12", "community": "c" * 64}
    for i in range(ROWS):
        typed.update(
            _row(
                i,
                title="题" * 200,
                place="地" * (PLACE_CHARS + 1),
                starts="2026-12-15T09:00" + "x" * 40,
                ends="2026-12-15T09:00" + "x" * 40,
                points="p" * 40,
                capacity="c" * 40,
                verification="v" * 40,
                category="C" * 40,
            )
        )
    read = read_rows(typed, "2026-12", SHANGHAI, lang)
    assert read.jobs == [] and len(read.errors) == ROWS * 7
    html = _render(
        "officer_menu.html",
        lang,
        communities=[{"id": "c" * 64, "name": "社" * COMMUNITY_NAME_CHARS} for _ in range(30)],
        categories=CATEGORIES,
        verifications=VERIFICATIONS,
        rows=range(ROWS),
        typed=typed,
        tz="Asia/Shanghai",
        opens="2026-12-01 08:00",
        notice="published",
        published=ROWS,
        errors=read.errors,
        bad=read.bad,
    )
    assert len(html.encode()) <= PAGE_BUDGET_BYTES, ("menu", lang, len(html.encode()))
    assert html.count('class="job-row"') == ROWS
