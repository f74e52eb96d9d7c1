"""The tasks service's pure rules: limits and escalation, rotating check-in codes and their
attempt limit, who may be credited, withdrawal, and the status moves of hazard reports and
needs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jifen.tasks.domain.checkin import (
    ALPHABET,
    check_code,
    code_for,
    current_code,
    retry_after,
    step_of,
)
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
    OwnJob,
    SelfVerification,
    UnknownCategory,
    Window,
    WrongCheckinCode,
    WrongState,
    check_category,
    check_not_creator,
    check_rejectable,
    check_revocable,
    check_verifier,
    check_withdrawal,
    same_person,
)
from jifen.tasks.domain.limits import (
    DEFAULT_LIMITS,
    HoldLevel,
    Limits,
    Usage,
    assess,
    day_start,
    may_approve,
)

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


SECRET = bytes(range(32))
JOB = "5d1c1f0e-0c4b-4d7a-9b57-3f0f1c3e2a11"
STEP = 180


def test_rotating_codes_are_per_job_and_step_and_accepted_for_two_steps() -> None:
    at = datetime(2026, 11, 23, 4, 4, 30, tzinfo=UTC)
    shown = current_code(SECRET, JOB, at, STEP)
    assert len(shown.code) == 6 and set(shown.code) <= set(ALPHABET)
    assert shown.valid_from <= at < shown.refresh_at == shown.valid_from + timedelta(seconds=STEP)
    assert shown.expires_at == shown.refresh_at + timedelta(seconds=STEP)
    s = step_of(at, STEP)
    assert code_for(SECRET, JOB, s) == shown.code
    assert code_for(SECRET, JOB, s + 1) != shown.code  # it rotates
    assert code_for(SECRET, "another-job", s) != shown.code  # per job
    assert code_for(bytes(32), JOB, s) != shown.code  # per secret
    check_code(SECRET, JOB, shown.code.lower() + " ", at, STEP)  # as typed off a screen
    # the next step still takes it (the volunteer typed it as it changed) ...
    check_code(SECRET, JOB, shown.code, at + timedelta(seconds=STEP), STEP)
    # ... but a photo of it, two steps later, is refused
    with pytest.raises(WrongCheckinCode, match="expired"):
        check_code(SECRET, JOB, shown.code, at + timedelta(seconds=2 * STEP), STEP)
    with pytest.raises(WrongCheckinCode, match="send the code"):
        check_code(SECRET, JOB, None, at, STEP)
    with pytest.raises(WrongCheckinCode):
        check_code(SECRET, JOB, "K7QX2N", at, STEP)


def test_wrong_codes_are_limited_per_window() -> None:
    at = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)
    fails = [at - timedelta(seconds=s) for s in (600, 300, 200, 100)]
    assert retry_after(fails, limit=5, window_seconds=900, at=at) == 0
    fails.append(at - timedelta(seconds=10))
    # five within the window: wait until the oldest (600 s ago) leaves it, 300 s from now
    assert retry_after(fails, limit=5, window_seconds=900, at=at) == 300
    assert retry_after(fails, limit=5, window_seconds=900, at=at + timedelta(seconds=301)) == 0


def test_the_creator_is_never_the_credited_volunteer_whatever_the_case() -> None:
    assert same_person("ADM-A", " adm-a") and not same_person("adm-a", "adm-b")
    assert not same_person(None, "x")
    check_not_creator("officer-li", "vol-1")
    for volunteer in ("officer-li", "OFFICER-LI", " Officer-Li "):
        with pytest.raises(OwnJob):
            check_not_creator("officer-li", volunteer)
    with pytest.raises(SelfVerification):
        check_verifier("Officer-Li", "officer-li", CompletionStatus.SUBMITTED)


def test_default_limits_are_set_and_ordered() -> None:
    d = DEFAULT_LIMITS
    assert None not in (d.daily_points_officer, d.daily_points_admin)
    assert None not in (d.daily_points_per_officer, d.automatic_job_points)
    assert d.daily_points_officer <= d.daily_points_admin  # type: ignore[operator]
    # the attack of the issue: a 10,000-point automatic job is never credited unseen
    hold = assess(d, Usage(0, 0), 10_000, automatic=True)
    assert hold is not None and hold.level is HoldLevel.ADMIN


def test_per_officer_and_per_automatic_job_limits() -> None:
    limits = Limits(daily_points_per_officer=100, automatic_job_points=50)
    assert assess(limits, Usage(0, 0, officer_points_today=80), 20) is None
    hold = assess(limits, Usage(0, 0, officer_points_today=90), 20)
    assert hold is not None and hold.level is HoldLevel.ADMIN and "per-officer" in hold.reason
    assert assess(limits, Usage(0, 0, job_automatic_points=40), 10, automatic=True) is None
    hold = assess(limits, Usage(0, 0, job_automatic_points=45), 10, automatic=True)
    assert hold is not None and hold.level is HoldLevel.OFFICER and "automatic job" in hold.reason
    # an officer-verified job is not an automatic one
    assert assess(limits, Usage(0, 0, job_automatic_points=45), 10) is None


def test_categories_are_built_in_or_the_organisations() -> None:
    check_category("meal_delivery", set())
    check_category("flood_watch", {"flood_watch"})
    with pytest.raises(UnknownCategory) as exc:
        check_category("flood_watch", set())
    assert "flood_watch" in exc.value.detail and "meal_delivery" in exc.value.facts["known"]  # type: ignore[operator]


def test_a_claim_is_withdrawn_only_before_the_window() -> None:
    now = datetime(2026, 11, 23, 8, tzinfo=UTC)
    check_withdrawal(Window(now + timedelta(minutes=1), now + timedelta(hours=1)), now)
    with pytest.raises(NotWithdrawable) as started:
        check_withdrawal(Window(now, now + timedelta(hours=1), "Asia/Shanghai"), now)
    assert "已于 2026-11-23 16:00（当地时间）开始" in started.value.zh  # 08:00 UTC


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


def test_every_built_in_category_has_a_chinese_and_an_english_name() -> None:
    from jifen.tasks.domain.jobs import CATEGORY_LABELS, Category

    assert set(CATEGORY_LABELS) == set(Category)
    for zh, en in CATEGORY_LABELS.values():
        assert zh and en and not zh.isascii() and en.isascii()
    assert len({zh for zh, _ in CATEGORY_LABELS.values()}) == len(Category)
