"""Settings of the points service (``JIFEN_POINTS_*``)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from jifen.kernel.settings import ServiceSettings


class PointsSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="JIFEN_POINTS_", extra="ignore", populate_by_name=True
    )

    port: int = 8002
    worker_port: int = 9002
    database_url: str = "postgresql://postgres@127.0.0.1:55432/jifen_points"
    consumer_group: str = "jifen-points-ledger"
    # records per append batch: one transaction, one COPY (4000: +11 % ingest against 2000
    # in the bench, the per-batch round trips and offset commit paid half as often; a batch
    # fills only under a backlog, so it adds no latency at a steady rate)
    batch_max: int = 4000
    # the faust signals worker's web port (health, readiness, metrics)
    signals_port: int = 9012
    # the relay process (ledger relay and audit sequencer): its web port, entries per
    # published batch, and the pause after a pass that found less than a batch
    relay_port: int = 9022
    ledger_relay_batch: int = 2000
    ledger_relay_poll_seconds: float = 0.1
