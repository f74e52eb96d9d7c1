"""Property-based tests (hypothesis) of domain rules that had only example tests: the tasks
service's organisation limits, completion window and verifier rules, and the redeem
service's voucher and cancellation rules. Pure functions, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jifen.redeem.domain.lifecycle import (
    AlreadyFulfilled,
    NotYourReward,
    RedeemRefusal,
    Status,
    WrongVoucher,
    check_fulfil,
    normalise_code,
    plan_cancel,
)
from jifen.tasks.domain.jobs import (
    CompletionStatus,
    NotVerifiable,
    OutsideWindow,
    SelfVerification,
    Window,
    check_verifier,
    check_window,
)
from jifen.tasks.domain.limits import HoldLevel, Limits, Usage, assess, may_approve

limit = st.one_of(st.none(), st.integers(min_value=0, max_value=10_000))
limits = st.builds(Limits, limit, limit, limit, limit)
usage = st.builds(
    Usage, st.integers(min_value=0, max_value=20_000), st.integers(min_value=0, max_value=500)
)
points = st.integers(min_value=1, max_value=10_000)


@given(limits, usage, points)
def test_a_completion_is_held_exactly_when_some_limit_is_crossed(
    lim: Limits, use: Usage, pts: int
) -> None:
    today, hour = use.points_today + pts, use.completions_last_hour + 1
    admin = (lim.daily_points_admin is not None and today > lim.daily_points_admin) or (
        lim.hourly_completions_admin is not None and hour > lim.hourly_completions_admin
    )
    officer = (lim.daily_points_officer is not None and today > lim.daily_points_officer) or (
        lim.hourly_completions_officer is not None and hour > lim.hourly_completions_officer
    )
    hold = assess(lim, use, pts)
    if admin:
        assert hold is not None and hold.level is HoldLevel.ADMIN
    elif officer:
        assert hold is not None and hold.level is HoldLevel.OFFICER
    else:
        assert hold is None


@given(limits, usage, points, st.integers(min_value=1, max_value=10_000))
def test_more_points_never_lower_the_hold_level(
    lim: Limits, use: Usage, pts: int, extra: int
) -> None:
    rank = {None: 0, HoldLevel.OFFICER: 1, HoldLevel.ADMIN: 2}
    small, big = assess(lim, use, pts), assess(lim, use, pts + extra)
    assert rank[small.level if small else None] <= rank[big.level if big else None]


@given(st.sampled_from(list(HoldLevel)), st.text(max_size=12))
def test_only_an_admin_decides_an_admin_hold(level: HoldLevel, role: str) -> None:
    if level is HoldLevel.ADMIN:
        assert may_approve(level, role) == (role == "admin")
    else:
        assert may_approve(level, role) == (role in ("admin", "officer"))


moments = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
)


@given(moments, st.integers(1, 10**6), st.integers(0, 10**6), st.integers(-(10**7), 10**7))
def test_a_completion_counts_only_inside_the_window_plus_grace(
    start: datetime, length_s: int, grace_s: int, offset_s: int
) -> None:
    window = Window(start, start + timedelta(seconds=length_s))
    grace = timedelta(seconds=grace_s)
    at = start + timedelta(seconds=offset_s)
    inside = window.starts_at <= at <= window.ends_at + grace
    if inside:
        check_window(window, at, grace)
    else:
        with pytest.raises(OutsideWindow):
            check_window(window, at, grace)


@given(
    st.text(min_size=1, max_size=20),
    st.text(min_size=1, max_size=20),
    st.sampled_from(list(CompletionStatus)),
)
def test_nobody_verifies_their_own_and_only_submitted_ones(
    verifier: str, volunteer: str, status: CompletionStatus
) -> None:
    if verifier == volunteer:
        with pytest.raises(SelfVerification):
            check_verifier(verifier, volunteer, status)
    elif status is not CompletionStatus.SUBMITTED:
        with pytest.raises(NotVerifiable):
            check_verifier(verifier, volunteer, status)
    else:
        check_verifier(verifier, volunteer, status)


codes = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ23456789", min_size=8, max_size=8)


@given(codes, st.sampled_from(["", " ", "-", "  -"]), st.booleans())
def test_a_voucher_code_read_aloud_still_matches(code: str, sep: str, lower: bool) -> None:
    typed = sep.join(code[i : i + 4] for i in (0, 4))
    typed = typed.lower() if lower else typed
    assert normalise_code(typed) == normalise_code(code)


NOW = datetime(2026, 11, 23, tzinfo=UTC)


@given(codes, codes, st.sampled_from(list(Status)), st.booleans())
def test_only_the_rewards_merchant_with_the_right_code_fulfils_a_confirmed_redemption(
    code: str, presented: str, status: Status, same_merchant: bool
) -> None:
    kwargs = dict(
        status=status.value,
        merchant_id="m-1",
        by_merchant="m-1" if same_merchant else "m-2",
        voucher_code=code,
        presented=presented,
        expires_at=NOW + timedelta(days=1),
        now=NOW,
    )
    ok = same_merchant and status is Status.CONFIRMED and code == presented
    if ok:
        check_fulfil(**kwargs)  # type: ignore[arg-type]
        return
    with pytest.raises(RedeemRefusal) as refused:
        check_fulfil(**kwargs)  # type: ignore[arg-type]
    if not same_merchant:
        assert isinstance(refused.value, NotYourReward)
    elif status is Status.CONFIRMED:
        assert isinstance(refused.value, WrongVoucher)


@given(st.sampled_from(list(Status)))
def test_cancelling_refunds_only_what_was_debited_and_never_a_fulfilled_one(s: Status) -> None:
    if s is Status.FULFILLED:
        with pytest.raises(AlreadyFulfilled):
            plan_cancel(s.value)
        return
    plan = plan_cancel(s.value)
    if s is Status.CONFIRMED:
        assert plan is not None and plan.refund_now and plan.new_status is Status.CANCELLED
    elif s is Status.PENDING:
        assert plan is not None and not plan.refund_now
    elif plan is not None:  # cancelling again is not a second refund
        assert not plan.refund_now
