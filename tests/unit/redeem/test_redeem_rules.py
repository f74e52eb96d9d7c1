"""The redeem service's pure rules: the spending decision, the wallet's arithmetic, what a
redemption may become next, and the auditors' cursor."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import HTTPException

from jifen.kernel.pages import decode, encode
from jifen.redeem.domain.lifecycle import (
    AlreadyFulfilled,
    AttemptLimit,
    NotConfirmed,
    NotYourReward,
    RedemptionCancelled,
    Status,
    VoucherAttemptsExceeded,
    VoucherExpired,
    WrongVoucher,
    attempts_left,
    check_fulfil,
    lockout,
    plan_cancel,
)
from jifen.redeem.domain.wallet import RedeemRefusal, Reward, Usage, Wallet, decide
from jifen.redeem.handlers import voucher_code

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def reason(wallet: Wallet, reward: Reward, usage: Usage = Usage(), **kw: object) -> str | None:
    try:
        decide(wallet, reward, usage, now=NOW, **kw)  # type: ignore[arg-type]
    except RedeemRefusal as exc:
        return exc.reason
    return None


def test_wallet_arithmetic() -> None:
    w = Wallet("a", ledger_balance=150, held=30, recent_credits=50)
    assert (w.available, w.maturing, w.spendable, w.frozen) == (120, 50, 70, False)
    # young credits never count for more than what is available
    w = Wallet("a", ledger_balance=40, held=0, recent_credits=50)
    assert (w.maturing, w.spendable) == (40, 0)
    # below what is spent: frozen, nothing maturing, spendable shows the shortfall
    w = Wallet("a", ledger_balance=-20, held=10, recent_credits=50)
    assert (w.maturing, w.spendable, w.frozen) == (0, -30, True)


def test_refusals_come_in_a_members_order_with_their_numbers() -> None:
    rich = Wallet("a", 1000, 0)
    item = Reward("r", points=10, stock=0, active=False)
    assert reason(rich, item) == "reward_inactive"
    assert reason(Wallet("a", -5, 0), Reward("r", 10, 0, True)) == "account_frozen"
    assert reason(rich, Reward("r", 10, 0, True)) == "out_of_stock"
    assert reason(Wallet("a", 5, 0), Reward("r", 10, 3, True)) == "insufficient_points"
    assert reason(rich, Reward("r", 10, 3, True)) is None

    with pytest.raises(RedeemRefusal) as info:
        decide(Wallet("a", 30, 5, recent_credits=10), Reward("r", 20, None, True))
    assert info.value.reason == "insufficient_points"
    assert info.value.facts == {
        "needed": 20,
        "spendable": 15,
        "maturing": 10,
        "balance": 30,
        "held": 5,
    }


def test_validity_window_community_quota_and_member_limit() -> None:
    rich = Wallet("a", 1000, 0)
    soon = Reward("r", 10, None, True, valid_from=NOW + timedelta(seconds=1))
    gone = Reward("r", 10, None, True, valid_until=NOW)
    assert reason(rich, soon) == reason(rich, gone) == "reward_inactive"
    assert reason(rich, Reward("r", 10, None, True, valid_until=NOW + timedelta(1))) is None

    local = Reward("r", 10, None, True, community_id="penglai")
    assert reason(rich, local) == "community_restricted"
    assert reason(rich, local, community_id="penglai") is None

    quota = Reward("r", 10, None, True, daily_quota=3)
    assert reason(rich, quota, Usage(reward_today=2)) is None
    assert reason(rich, quota, Usage(reward_today=3)) == "out_of_stock"

    limited = Reward("r", 10, 5, True, monthly_limit=1)
    assert reason(rich, limited, Usage(member_this_month=0)) is None
    assert reason(rich, limited, Usage(member_this_month=1)) == "member_limit"


def test_cancel_plans() -> None:
    pending = plan_cancel("pending")
    assert pending and pending.new_status == Status.CANCELLING and not pending.refund_now
    confirmed = plan_cancel("confirmed")
    assert confirmed and confirmed.new_status == Status.CANCELLED and confirmed.refund_now
    for done in ("cancelling", "cancelled", "expired"):
        assert plan_cancel(done) is None
    with pytest.raises(AlreadyFulfilled):
        plan_cancel("fulfilled")


def fulfil(**kw: object) -> None:
    args: dict[str, object] = {
        "status": "confirmed",
        "merchant_id": "shop",
        "by_merchant": "shop",
        "voucher_code": "ABCDE-12345-FGHIJ-67890",
        "presented": "ABCDE-12345-FGHIJ-67890",
        "expires_at": NOW + timedelta(hours=1),
        "now": NOW,
    }
    check_fulfil(**{**args, **kw})  # type: ignore[arg-type]


def test_fulfil_checks() -> None:
    fulfil()
    fulfil(presented="abcde 12345 fghij 67890")
    for kw, refusal in [
        ({"by_merchant": "other"}, NotYourReward),
        ({"status": "fulfilled"}, AlreadyFulfilled),
        ({"status": "cancelled"}, RedemptionCancelled),
        ({"status": "pending", "voucher_code": None}, NotConfirmed),
        ({"presented": "ABCDE-12345-FGHIJ-67891"}, WrongVoucher),
        ({"expires_at": NOW}, VoucherExpired),
    ]:
        with pytest.raises(refusal):
            fulfil(**kw)
    assert NotYourReward.status == 403 and WrongVoucher.status == 409


def test_a_lockout_refuses_even_the_right_code_and_says_for_how_long() -> None:
    with pytest.raises(VoucherAttemptsExceeded) as info:
        fulfil(locked_for=12.2, locked_by="merchant")
    assert info.value.status == 429
    assert info.value.facts == {"scope": "merchant", "retry_after_seconds": 13}
    assert info.value.retry_after_seconds == 13
    # the states that leave nothing to guess come first
    with pytest.raises(AlreadyFulfilled):
        fulfil(status="fulfilled", locked_for=5.0)
    with pytest.raises(NotYourReward):
        fulfil(by_merchant="other", locked_for=5.0)


def test_wrong_codes_within_the_window_count_towards_the_limit() -> None:
    rule = AttemptLimit(limit=3, window_seconds=60)
    ago = [NOW - timedelta(seconds=s) for s in (5, 20, 50)]  # newest first
    assert lockout(ago[:2], rule, NOW) is None and attempts_left(ago[:2], rule) == 0
    assert attempts_left([], rule) == 2
    # the third-newest failure leaves the window 60 s after it: 10 s from now
    assert lockout(ago, rule, NOW) == pytest.approx(10.0)
    assert lockout(ago, rule, NOW + timedelta(seconds=10)) is None
    off = AttemptLimit(limit=0, window_seconds=60)
    assert lockout(ago * 10, off, NOW) is None and attempts_left(ago, off) is None


def test_voucher_codes_are_long_and_distinct() -> None:
    codes = {voucher_code() for _ in range(1000)}
    assert len(codes) == 1000
    assert all(len(c.replace("-", "")) == 20 for c in codes)


def test_audit_cursor_round_trip_and_refusal() -> None:
    at, rid = datetime(2026, 11, 23, 11, 0, 0, 123456, tzinfo=UTC), uuid.uuid4()
    # the auditors' list pages by (created_at, id): its cursor is the kernel's, of that key
    assert decode(encode((at, rid)), (datetime, uuid.UUID)) == (at, rid)
    naive = encode((at.replace(tzinfo=None), rid))
    for bad in ("not-a-cursor", naive, encode((rid,))):
        with pytest.raises(HTTPException) as info:
            decode(bad, (datetime, uuid.UUID))
        assert info.value.status_code == 422, bad
