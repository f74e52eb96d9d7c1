"""Settings of the redeem service (``JIFEN_REDEEM_*``)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from jifen.kernel.settings import ServiceSettings


class RedeemSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="JIFEN_REDEEM_", extra="ignore", populate_by_name=True
    )

    port: int = 8003
    worker_port: int = 9003
    database_url: str = "postgresql://postgres@127.0.0.1:55432/jifen_redeem"
    consumer_group: str = "jifen-redeem-wallets"

    # an unfulfilled voucher expires this long after its confirmation, unless the reward
    # sets its own time (reward.voucher_ttl_seconds)
    voucher_ttl_seconds: int = 30 * 24 * 3600
    # how often the worker looks for expired vouchers
    expiry_poll_seconds: float = 1.0
    expiry_batch: int = 200
    # the auditors' feed can leave out redemptions younger than this, so that no row commits
    # behind a page already read (see the audit_redemptions query). 0 by default: a
    # reconciliation reads the ledger first and this feed right after, and must find every
    # redemption the ledger has debited; rows are stamped at insert, a moment before commit.
    audit_settle_seconds: float = 0.0
    # a placed event whose debit (or a cancelled event whose refund) has not come back from
    # the ledger in this long is sent again, same id (a broker that forgets loses nothing)
    resend_after_seconds: float = 60.0
    resend_batch: int = 500
    # wrong voucher codes at fulfilment: after this many on one redemption, or by one merchant
    # on any of its rewards' redemptions, within the window, fulfilment answers 429 (even for
    # the right code) until the oldest counted one leaves the window. 0 switches a limit off.
    voucher_attempts_per_redemption: int = 5
    voucher_attempts_per_merchant: int = 30
    voucher_attempt_window_seconds: int = 900
