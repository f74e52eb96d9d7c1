"""Tasks rules: the completion window and who may verify."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jifen.tasks.domain.jobs import (
    CompletionStatus,
    NotVerifiable,
    OutsideWindow,
    SelfVerification,
    Window,
    check_verifier,
    check_window,
)

W = Window(datetime(2026, 11, 15, 1, tzinfo=UTC), datetime(2026, 11, 15, 9, tzinfo=UTC))
GRACE = timedelta(hours=24)


def test_completion_counts_inside_the_window_and_its_grace_only() -> None:
    check_window(W, W.starts_at, GRACE)
    check_window(W, W.ends_at + GRACE, GRACE)
    with pytest.raises(OutsideWindow, match="starts at"):
        check_window(W, W.starts_at - timedelta(seconds=1), GRACE)
    with pytest.raises(OutsideWindow, match="grace"):
        check_window(W, W.ends_at + GRACE + timedelta(seconds=1), GRACE)


def test_a_refused_completion_states_the_window_on_the_organisations_clock() -> None:
    """01:00-09:00 UTC is 09:00-17:00 in Zhanjiang: the refusal a person reads says so; the
    facts an app reads stay UTC."""
    local = Window(W.starts_at, W.ends_at, "Asia/Shanghai")
    with pytest.raises(OutsideWindow) as early:
        check_window(local, W.starts_at - timedelta(minutes=1), GRACE)
    assert "2026-11-15 09:00（当地时间）才开始" in early.value.zh
    assert "starts at 2026-11-15 09:00 local time" in early.value.en
    assert early.value.facts["starts_at"] == W.starts_at.isoformat()
    with pytest.raises(OutsideWindow) as late:
        check_window(local, W.ends_at + GRACE + timedelta(minutes=1), GRACE)
    assert "2026-11-15 17:00（当地时间）结束" in late.value.zh
    # another organisation's clock: 01:00 UTC is 02:00 in Berlin in November
    berlin = Window(W.starts_at, W.ends_at, "Europe/Berlin")
    with pytest.raises(OutsideWindow, match="02:00 local time"):
        check_window(berlin, W.starts_at - timedelta(minutes=1), GRACE)


def test_only_another_person_verifies_and_only_once() -> None:
    check_verifier("officer-li", "vol-1", CompletionStatus.SUBMITTED)
    with pytest.raises(SelfVerification):
        check_verifier("vol-1", "vol-1", CompletionStatus.SUBMITTED)
    with pytest.raises(NotVerifiable):
        check_verifier("officer-li", "vol-1", CompletionStatus.VERIFIED)
