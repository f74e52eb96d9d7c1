"""What a redemption may become next: fulfil, cancel, expire, and the ledger's debit.

    pending ──debit──▶ confirmed ──fulfil──▶ fulfilled
       │                  │ └──expire──▶ expired     (refund asked for at once)
       │                  └──cancel──▶ cancelled     (refund asked for at once)
       └──cancel──▶ cancelling ──debit──▶ cancelled  (refund asked for when the debit is seen)

The ledger refunds only a redemption it has debited, and the debit may still be on its way
when a member cancels; so a pending cancellation gives the item back at once but asks for
the refund only after the debit arrives. Every path asks for exactly one refund.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from jifen.kernel.i18n import Said
from jifen.redeem.domain.wallet import RedeemRefusal


class Status(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    FULFILLED = "fulfilled"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


# states in which the item is no longer taken (stock and quotas count the others)
RELEASED = frozenset({Status.CANCELLING, Status.CANCELLED, Status.EXPIRED})


class AlreadyFulfilled(RedeemRefusal):
    reason = "already_fulfilled"


class NotConfirmed(RedeemRefusal):
    reason = "not_confirmed"


class RedemptionCancelled(RedeemRefusal):
    reason = "redemption_cancelled"


class VoucherExpired(RedeemRefusal):
    reason = "voucher_expired"


class WrongVoucher(RedeemRefusal):
    reason = "wrong_voucher"


class NotYourReward(RedeemRefusal):
    reason = "not_your_reward"
    status = 403


class VoucherAttemptsExceeded(RedeemRefusal):
    """Too many wrong codes: fulfilment is refused, even with the right code, until the
    window lets the oldest of them go (429 with Retry-After)."""

    reason = "voucher_attempts_exceeded"
    status = 429

    @property
    def retry_after_seconds(self) -> float:
        wait = self.facts.get("retry_after_seconds", 1)
        return float(wait) if isinstance(wait, int | float) else 1.0


@dataclass(frozen=True)
class AttemptLimit:
    """At most ``limit`` wrong codes within any ``window_seconds``; 0 switches it off."""

    limit: int
    window_seconds: int


def lockout(failures: Sequence[datetime], rule: AttemptLimit, now: datetime) -> float | None:
    """Seconds until another code may be tried, or None if one may be now.

    ``failures``: the wrong codes' times within the window, newest first. Once there are
    ``limit`` of them, the next try waits until the ``limit``-th newest leaves the window.
    """
    if rule.limit <= 0 or len(failures) < rule.limit:
        return None
    frees = failures[rule.limit - 1] + timedelta(seconds=rule.window_seconds)
    wait = (frees - now).total_seconds()
    return wait if wait > 0 else None


def attempts_left(failures: Sequence[datetime], rule: AttemptLimit) -> int | None:
    """Wrong codes still allowed in the window after one more failure; None: no limit."""
    if rule.limit <= 0:
        return None
    return max(0, rule.limit - len(failures) - 1)


def check_fulfil(
    *,
    status: str,
    merchant_id: str,
    by_merchant: str,
    voucher_code: str | None,
    presented: str,
    expires_at: datetime | None,
    now: datetime,
    locked_for: float | None = None,
    locked_by: str = "redemption",
) -> None:
    """Raise unless ``by_merchant`` may fulfil this redemption with the ``presented`` code.

    ``locked_for``: seconds left of a lockout after too many wrong codes (``locked_by`` says
    whose: this ``redemption``'s or the ``merchant``'s); no code, not even the right one, is
    compared meanwhile, so guessing gains nothing."""
    if merchant_id != by_merchant:
        raise NotYourReward(
            Said("这张券是其他商户的奖品", "this voucher is for another merchant's reward")
        )
    if status == Status.FULFILLED:
        raise AlreadyFulfilled(Said("这张券已经核销过", "this voucher was already fulfilled"))
    if status in RELEASED:
        raise RedemptionCancelled(
            Said(f"这次兑换已是 {status} 状态", f"this redemption is {status}"), status=status
        )
    if status == Status.PENDING or voucher_code is None:
        raise NotConfirmed(
            Said(
                "账本还没有扣除这次兑换的积分，尚未发券",
                "the ledger has not debited this redemption yet; no voucher issued",
            )
        )
    if locked_for is not None:
        raise VoucherAttemptsExceeded(
            Said(
                f"券码错误次数过多，请 {max(1, math.ceil(locked_for))} 秒后再试",
                f"too many wrong voucher codes for this {locked_by}; retry later",
            ),
            scope=locked_by,
            retry_after_seconds=max(1, math.ceil(locked_for)),
        )
    # compared in constant time: the code is the bearer's proof
    if not hmac.compare_digest(normalise_code(presented), normalise_code(voucher_code)):
        raise WrongVoucher(Said("券码不符", "the voucher code does not match this redemption"))
    if expires_at is not None and now >= expires_at:
        raise VoucherExpired(
            Said("这张券已过期", "this voucher has expired"), expires_at=expires_at.isoformat()
        )


def normalise_code(code: str) -> str:
    """Codes are read aloud and typed: ignore case, spaces and dashes."""
    return "".join(c for c in code.upper() if c.isalnum())


@dataclass(frozen=True)
class Cancellation:
    new_status: Status
    # ask the ledger for the refund now (the debit is known), or when the debit arrives
    refund_now: bool


def plan_cancel(status: str) -> Cancellation | None:
    """What cancelling does from ``status``; None when it is already cancelled or expired."""
    if status == Status.PENDING:
        return Cancellation(Status.CANCELLING, refund_now=False)
    if status == Status.CONFIRMED:
        return Cancellation(Status.CANCELLED, refund_now=True)
    if status == Status.FULFILLED:
        raise AlreadyFulfilled(
            Said("已核销的兑换不能取消", "a fulfilled redemption cannot be cancelled")
        )
    return None
