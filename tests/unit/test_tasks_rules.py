"""The tasks service's pure rules: limits and escalation, check-in codes, withdrawal, and the
status moves of hazard reports and needs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jifen.tasks.domain.intake import (
    HazardStatus,
    NeedStatus,
    move_hazard,
    move_need,
)
from jifen.tasks.domain.jobs import (
    CompletionStatus,
    NotRejectable,
    NotRevocable,
    NotWithdrawable,
    SelfVerification,
    UnknownCategory,
    Window,
    WrongCheckinCode,
    WrongState,
    check_category,
    check_checkin_code,
    check_rejectable,
    check_revocable,
    check_withdrawal,
)
from jifen.tasks.domain.limits import HoldLevel, Limits, Usage, assess, day_start, may_approve

LIMITS = Limits(
    daily_points_officer=100,
    daily_points_admin=200,
    hourly_completions_officer=3,
    hourly_completions_admin=6,
)


def test_within_every_limit_nothing_is_held() -> None:
    assert assess(LIMITS, Usage(points_today=80, completions_last_hour=2), 20) is None
    assert assess(Limits(), Usage(points_today=10**6, completions_last_hour=10**3), 50) is None


def test_beyond_the_daily_points_an_officer_must_approve() -> None:
    hold = assess(LIMITS, Usage(points_today=90, completions_last_hour=0), 20)
    assert hold is not None and hold.level is HoldLevel.OFFICER
    assert "110 points today" in hold.reason and "100" in hold.reason


def test_beyond_the_second_threshold_only_the_admin_may() -> None:
    hold = assess(LIMITS, Usage(points_today=190, completions_last_hour=0), 20)
    assert hold is not None and hold.level is HoldLevel.ADMIN
    hold = assess(LIMITS, Usage(points_today=0, completions_last_hour=6), 1)
    assert hold is not None and hold.level is HoldLevel.ADMIN and "7 completions" in hold.reason
    hold = assess(LIMITS, Usage(points_today=0, completions_last_hour=3), 1)
    assert hold is not None and hold.level is HoldLevel.OFFICER


def test_who_may_approve_which_hold() -> None:
    assert may_approve(HoldLevel.OFFICER, "officer") and may_approve(HoldLevel.OFFICER, "admin")
    assert may_approve(HoldLevel.ADMIN, "admin") and not may_approve(HoldLevel.ADMIN, "officer")


def test_the_day_is_the_organisations_local_day() -> None:
    # 17:30 UTC is 01:30 the next day in Shanghai: the day started at 16:00 UTC
    at = datetime(2026, 11, 23, 17, 30, tzinfo=UTC)
    assert day_start(at, "Asia/Shanghai") == datetime(2026, 11, 23, 16, 0, tzinfo=UTC)
    assert day_start(at, "UTC") == datetime(2026, 11, 23, 0, 0, tzinfo=UTC)


def test_checkin_code_is_required_and_must_match() -> None:
    check_checkin_code(None, None)  # officer-verified jobs have no code
    check_checkin_code("K7QX2M", "k7qx2m ")  # as typed off a poster
    with pytest.raises(WrongCheckinCode, match="send the code"):
        check_checkin_code("K7QX2M", None)
    with pytest.raises(WrongCheckinCode, match="does not match"):
        check_checkin_code("K7QX2M", "K7QX2N")


def test_categories_are_built_in_or_the_organisations() -> None:
    check_category("meal_delivery", set())
    check_category("flood_watch", {"flood_watch"})
    with pytest.raises(UnknownCategory) as exc:
        check_category("flood_watch", set())
    assert "flood_watch" in exc.value.detail and "meal_delivery" in exc.value.facts["known"]  # type: ignore[operator]


def test_a_claim_is_withdrawn_only_before_the_window() -> None:
    now = datetime(2026, 11, 23, 8, tzinfo=UTC)
    check_withdrawal(Window(now + timedelta(minutes=1), now + timedelta(hours=1)), now)
    with pytest.raises(NotWithdrawable):
        check_withdrawal(Window(now, now + timedelta(hours=1)), now)


def test_revocation_and_rejection_need_the_right_state_and_another_person() -> None:
    check_revocable(CompletionStatus.VERIFIED, "officer-li", "vol-1")
    with pytest.raises(NotRevocable):
        check_revocable(CompletionStatus.SUBMITTED, "officer-li", "vol-1")
    with pytest.raises(SelfVerification):
        check_revocable(CompletionStatus.VERIFIED, "vol-1", "vol-1")
    check_rejectable(CompletionStatus.HELD, "officer-li", "vol-1")
    with pytest.raises(NotRejectable):
        check_rejectable(CompletionStatus.VERIFIED, "officer-li", "vol-1")


def test_hazard_and_need_moves() -> None:
    assert move_hazard(HazardStatus.REPORTED, HazardStatus.IN_PROGRESS) is HazardStatus.IN_PROGRESS
    assert move_hazard(HazardStatus.IN_PROGRESS, HazardStatus.DONE) is HazardStatus.DONE
    for done in (HazardStatus.DUPLICATE, HazardStatus.CLOSED, HazardStatus.DONE):
        with pytest.raises(WrongState):
            move_hazard(done, HazardStatus.IN_PROGRESS)
    assert move_need(NeedStatus.OPEN, NeedStatus.CLAIMED) is NeedStatus.CLAIMED
    assert move_need(NeedStatus.CLAIMED, NeedStatus.IN_PROGRESS) is NeedStatus.IN_PROGRESS
    with pytest.raises(WrongState):
        move_need(NeedStatus.CLOSED, NeedStatus.CLAIMED)


def test_a_monthly_job_recurs_on_its_day_with_its_time_and_length() -> None:
    from jifen.tasks.domain.jobs import Recurrence, check_recurrence, occurrence_in

    repair = Window(
        datetime(2026, 11, 15, 1, 0, tzinfo=UTC), datetime(2026, 11, 15, 9, 30, tzinfo=UTC)
    )
    dec = occurrence_in(repair, "2026-12")
    assert dec == Window(
        datetime(2026, 12, 15, 1, 0, tzinfo=UTC), datetime(2026, 12, 15, 9, 30, tzinfo=UTC)
    )
    assert occurrence_in(repair, "2027-02").starts_at == datetime(2027, 2, 15, 1, tzinfo=UTC)
    check_recurrence(Recurrence.MONTHLY, repair)
    late = Window(datetime(2026, 1, 30, tzinfo=UTC), datetime(2026, 1, 30, 2, tzinfo=UTC))
    check_recurrence(None, late)
    with pytest.raises(WrongState, match="day 1-28"):
        check_recurrence(Recurrence.MONTHLY, late)
