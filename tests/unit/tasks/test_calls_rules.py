"""Calls to volunteers (issue 21, part 5): how long a call stays open, how often one may ask
for help, what the message says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jifen.tasks.domain.calls import (
    CallClosed,
    HelpTooSoon,
    check_help_allowed,
    check_open,
    help_text,
    mobilisation_text,
    reminder_text,
)

NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def test_a_call_takes_answers_until_it_closes() -> None:
    check_open(NOW + timedelta(seconds=1), NOW, "Asia/Shanghai")
    with pytest.raises(CallClosed) as closed:
        check_open(NOW, NOW, "Asia/Shanghai")
    assert closed.value.reason == "call_closed"
    # when it closed, on the organisation's clock (08:00 UTC is 16:00 in Shanghai); the
    # machine-read fact stays UTC
    assert "2026-12-02 16:00（当地时间）" in closed.value.zh
    assert "16:00 local time" in closed.value.en
    assert closed.value.facts["closes_at"] == NOW.isoformat()


def test_a_volunteer_asks_for_help_once_in_ten_minutes() -> None:
    check_help_allowed(None, NOW)
    check_help_allowed(NOW - timedelta(minutes=10), NOW)
    with pytest.raises(HelpTooSoon) as soon:
        check_help_allowed(NOW - timedelta(minutes=9), NOW)
    assert soon.value.status == 429 and 59 <= soon.value.facts["retry_after"] <= 61


def test_the_messages_say_who_calls_what_and_by_when_in_both_languages() -> None:
    text = mobilisation_text("江门骑手", "台风过境", NOW + timedelta(hours=2), "Asia/Shanghai")
    assert (
        text.startswith("【江门骑手紧急召集】台风过境")
        and "（18:00 前）" in text  # 10:00 UTC on the organisation's clock
        and "Urgent call" in text
        and "by 18:00" in text
    )
    # an organisation that never set its timezone: the default clock (Asia/Shanghai)
    assert "18:00" in mobilisation_text("x", "y", NOW + timedelta(hours=2), None)
    assert "11:00" in mobilisation_text("x", "y", NOW + timedelta(hours=2), "Europe/Berlin")
    assert "vol-1 请求支援：电池没电了" in help_text("江门骑手", "vol-1", "电池没电了")


def test_a_reminder_says_what_when_and_where_in_both_languages() -> None:
    at = datetime(2026, 12, 15, 1, 30, tzinfo=UTC)
    text = reminder_text(
        "蓬莱社区", "免费维修电动车 Repair day", at, "蓬莱路 3 号", "Asia/Shanghai"
    )
    assert text.startswith(
        "【蓬莱社区】提醒：你报名的「免费维修电动车 Repair day」将于 12-15 09:30 开始"
    )
    assert "starts 12-15 09:30 at" in text
    assert "地点：蓬莱路 3 号" in text and "Reminder:" in text and "at 蓬莱路 3 号" in text
    bare = reminder_text("蓬莱社区", "x" * 300, at, None, "Asia/Shanghai")
    assert "地点" not in bare and " at " not in bare and "x" * 61 not in bare  # the title is cut
