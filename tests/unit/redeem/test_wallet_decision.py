"""The spending decision: refusals in the domain's words, in a sensible order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jifen.redeem.domain.wallet import (
    AccountFrozen,
    InsufficientPoints,
    OutOfStock,
    RedeemRefusal,
    Reward,
    RewardInactive,
    Wallet,
    decide,
)


def test_refusals_name_the_reason_and_the_numbers() -> None:
    with pytest.raises(InsufficientPoints) as exc:
        decide(Wallet("v", 60, 20), Reward("r", 50, 3, True))
    assert exc.value.reason == "insufficient_points"
    assert exc.value.facts["needed"] == 50 and exc.value.facts["spendable"] == 40
    with pytest.raises(OutOfStock):
        decide(Wallet("v", 100, 0), Reward("r", 50, 0, True))
    with pytest.raises(RewardInactive):
        decide(Wallet("v", 100, 0), Reward("r", 50, 3, False))
    with pytest.raises(AccountFrozen):
        decide(Wallet("v", 10, 30), Reward("r", 1, None, True))
    decide(Wallet("v", 50, 0), Reward("r", 50, None, True))  # exactly enough, unlimited stock


@given(
    st.integers(-1000, 1000),
    st.integers(0, 1000),
    st.integers(1, 1000),
    st.one_of(st.none(), st.integers(0, 5)),
)
def test_an_accepted_redemption_never_overdraws_or_oversells(
    balance: int, held: int, price: int, stock: int | None
) -> None:
    wallet = Wallet("v", balance, held)
    try:
        decide(wallet, Reward("r", price, stock, True))
    except RedeemRefusal:
        return
    assert wallet.spendable - price >= 0
    assert stock is None or stock - 1 >= 0
