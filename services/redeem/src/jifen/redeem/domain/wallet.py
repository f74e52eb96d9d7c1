"""The spending decision, free of storage: may this account take this reward now?

The wallet is what the ledger has recorded (``ledger_balance``, from the ledger's own
events) less what this service holds for redemptions the ledger has not debited yet, so a
point the ledger has not recorded can never be spent.
"""

from __future__ import annotations

from dataclasses import dataclass


class RedeemRefusal(Exception):
    reason = "refused"

    def __init__(self, detail: str, **facts: object) -> None:
        super().__init__(detail)
        self.detail = detail
        self.facts = facts


class InsufficientPoints(RedeemRefusal):
    reason = "insufficient_points"


class OutOfStock(RedeemRefusal):
    reason = "out_of_stock"


class RewardInactive(RedeemRefusal):
    reason = "reward_inactive"


class AccountFrozen(RedeemRefusal):
    reason = "account_frozen"


@dataclass(frozen=True)
class Wallet:
    account_id: str
    ledger_balance: int
    held: int

    @property
    def spendable(self) -> int:
        return self.ledger_balance - self.held


@dataclass(frozen=True)
class Reward:
    reward_id: str
    points: int
    stock: int | None  # None: unlimited
    active: bool


def decide(wallet: Wallet, reward: Reward) -> None:
    """Raise the refusal that applies, in the order a member would want to hear them."""
    if not reward.active:
        raise RewardInactive("this reward is not on offer")
    if wallet.spendable < 0:
        raise AccountFrozen(
            "a reversal took this account below what was already spent; it is frozen until "
            "it is back above zero",
            spendable=wallet.spendable,
        )
    if reward.stock is not None and reward.stock < 1:
        raise OutOfStock("no stock left", stock=reward.stock)
    if wallet.spendable < reward.points:
        raise InsufficientPoints(
            f"needs {reward.points} points, {wallet.spendable} spendable",
            needed=reward.points,
            spendable=wallet.spendable,
            balance=wallet.ledger_balance,
            held=wallet.held,
        )
