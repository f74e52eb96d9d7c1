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
