"""The spending decision, free of storage: may this account take this reward now?

The wallet is what the ledger has recorded (``ledger_balance``, from the ledger's own
events) less what this service holds for redemptions the ledger has not debited yet, so a
point the ledger has not recorded can never be spent. Of what is left, credits younger than
the organisation's fraud window are *maturing*, not yet spendable. If a reversal takes the
ledger below what is already spent or held, the account is *frozen* for redemptions until it
is back above zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from jifen.kernel.errors import DomainRefusal, NotFound
from jifen.kernel.i18n import Said


def no_reward(reward_id: object, *, of_yours: bool = False) -> NotFound:
    if of_yours:
        return NotFound(Said(f"你没有奖品 {reward_id}", f"no reward {reward_id} of yours"))
    return NotFound(Said(f"没有奖品 {reward_id}", f"no reward {reward_id}"))


def no_redemption(redemption_id: object) -> NotFound:
    return NotFound(Said(f"没有兑换记录 {redemption_id}", f"no redemption {redemption_id}"))


def no_wallet(account_id: str, org: str | None = None) -> NotFound:
    """The 404 of a wallet the caller may not see: in ``org``, or (a volunteer's) at all."""
    if org is None:
        return NotFound(
            Said(f"你看不到钱包 {account_id}", f"no wallet {account_id} visible to you")
        )
    return NotFound(
        Said(f"组织 {org} 没有钱包 {account_id}", f"no wallet {account_id} in organisation {org}")
    )


class RedeemRefusal(DomainRefusal):
    """A redemption refused: 409 with the balance, stock or limit that refused it."""


class InsufficientPoints(RedeemRefusal):
    reason = "insufficient_points"


class OutOfStock(RedeemRefusal):
    reason = "out_of_stock"


class MemberLimit(RedeemRefusal):
    reason = "member_limit"


class RewardInactive(RedeemRefusal):
    reason = "reward_inactive"


class AccountFrozen(RedeemRefusal):
    reason = "account_frozen"


class CommunityRestricted(RedeemRefusal):
    reason = "community_restricted"


class IdempotencyKeyReused(RedeemRefusal):
    """The caller's Idempotency-Key already names another redemption (reward or account)."""

    reason = "idempotency_key_reused"


@dataclass(frozen=True)
class Wallet:
    account_id: str
    ledger_balance: int
    held: int
    # credits recorded within the fraud window and not reversed
    recent_credits: int = 0

    @property
    def available(self) -> int:
        """What the ledger holds beyond what is already spent or held."""
        return self.ledger_balance - self.held

    @property
    def maturing(self) -> int:
        # never more than what is available: a young credit already offset by a reversal
        # elsewhere is not "maturing" into anything
        return min(self.recent_credits, max(self.available, 0))

    @property
    def spendable(self) -> int:
        return self.available - self.maturing

    @property
    def frozen(self) -> bool:
        return self.available < 0


@dataclass(frozen=True)
class Reward:
    reward_id: str
    points: int
    stock: int | None  # None: unlimited
    active: bool
    daily_quota: int | None = None  # for unlimited rewards: redemptions per UTC day
    monthly_limit: int | None = None  # per member and calendar month (UTC)
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    community_id: str | None = None


@dataclass(frozen=True)
class Usage:
    """Live (not cancelled or expired) redemptions counted under the locks."""

    reward_today: int = 0
    member_this_month: int = 0


def decide(
    wallet: Wallet,
    reward: Reward,
    usage: Usage = Usage(),
    *,
    now: datetime | None = None,
    community_id: str | None = None,
) -> None:
    """Raise the refusal that applies, in the order a member would want to hear them."""
    if not reward.active:
        raise RewardInactive(Said("这件奖品未上架", "this reward is not on offer"))
    if now is not None and reward.valid_from is not None and now < reward.valid_from:
        raise RewardInactive(
            Said("这件奖品还未开始兑换", "this reward is not on offer yet"),
            valid_from=reward.valid_from.isoformat(),
        )
    if now is not None and reward.valid_until is not None and now >= reward.valid_until:
        raise RewardInactive(
            Said("这件奖品已停止兑换", "this reward is no longer on offer"),
            valid_until=reward.valid_until.isoformat(),
        )
    if reward.community_id is not None and community_id != reward.community_id:
        raise CommunityRestricted(
            Said(
                f"这件奖品只供社区 {reward.community_id} 的成员兑换",
                f"this reward is only for members of community {reward.community_id}",
            ),
            community_id=reward.community_id,
            given=community_id,
        )
    if wallet.frozen:
        raise AccountFrozen(
            Said(
                "一笔冲正使这个账户低于已花掉的积分；在回到零以上之前账户冻结",
                "a reversal took this account below what was already spent; it is frozen until "
                "it is back above zero",
            ),
            spendable=wallet.available,
            balance=wallet.ledger_balance,
            held=wallet.held,
        )
    if reward.stock is not None and reward.stock < 1:
        raise OutOfStock(Said("库存已空", "no stock left"), stock=reward.stock)
    if (
        reward.stock is None
        and reward.daily_quota is not None
        and usage.reward_today >= reward.daily_quota
    ):
        raise OutOfStock(
            Said("这件奖品今天的兑换名额已用完", "today's quota of this reward is used up"),
            stock=0,
            daily_quota=reward.daily_quota,
            redeemed_today=usage.reward_today,
        )
    if reward.monthly_limit is not None and usage.member_this_month >= reward.monthly_limit:
        raise MemberLimit(
            Said(
                f"每名成员每月最多兑换这件奖品 {reward.monthly_limit} 次",
                f"at most {reward.monthly_limit} of this reward per member per month",
            ),
            limit=reward.monthly_limit,
            redeemed_this_month=usage.member_this_month,
        )
    if wallet.spendable < reward.points:
        raise InsufficientPoints(
            Said(
                f"积分不足：需要 {reward.points}，可用 {wallet.spendable}",
                f"insufficient points: needs {reward.points}, {wallet.spendable} spendable",
            ),
            needed=reward.points,
            spendable=wallet.spendable,
            maturing=wallet.maturing,
            balance=wallet.ledger_balance,
            held=wallet.held,
        )
