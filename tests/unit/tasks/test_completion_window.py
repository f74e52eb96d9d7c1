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


def test_only_another_person_verifies_and_only_once() -> None:
    check_verifier("officer-li", "vol-1", CompletionStatus.SUBMITTED)
    with pytest.raises(SelfVerification):
        check_verifier("vol-1", "vol-1", CompletionStatus.SUBMITTED)
    with pytest.raises(NotVerifiable):
        check_verifier("officer-li", "vol-1", CompletionStatus.VERIFIED)
