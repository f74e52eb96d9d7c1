"""Settings shared by every Jifen process, read from the environment (pydantic-settings).

Shared knobs use a plain ``JIFEN_`` name (one broker, one key folder for the whole stack);
each service's own knobs carry its prefix, e.g. ``JIFEN_POINTS_DATABASE_URL``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[4]

# Kafka answers a waiting fetch as soon as a record arrives (fetch.min.bytes 1), so the wait is
# no latency floor, only how often an idle consumer asks again: Kafka's own default.
KAFKA_FETCH_MAX_WAIT_MS = 500
# How long the group coordinator waits for a silent member before its partitions move to the
# others: a SIGKILLed worker's share of the ledger waits this long (heartbeats every quarter of
# it). Kafka's client default is 45 s; 10 s keeps a dead worker's backlog short and is still far
# above any pause of a live one (the heartbeat runs beside the batch, not after it). The brokers'
# group.min.session.timeout.ms (6 s) is the floor.
KAFKA_SESSION_TIMEOUT_MS = 10_000


def _default_schemas_dir() -> Path:
    return REPO_ROOT / "schemas"


def _default_var_dir() -> Path:
    return REPO_ROOT / "var"


class ServiceSettings(BaseSettings):
    """Base for each service's settings; subclasses set ``env_prefix``."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    host: str = "127.0.0.1"
    port: int = 8000
    # the worker's own small HTTP server (metrics, health); 0 = pick a free one
    worker_port: int = 0
    database_url: str = "postgresql://postgres@127.0.0.1:55432/postgres"
    # migrations run as the schema's owner; the service itself may connect as a narrower role
    migrate_database_url: str | None = None

    kafka_bootstrap: str = Field("127.0.0.1:19092", validation_alias="JIFEN_KAFKA_BOOTSTRAP")
    keys_dir: Path = Field(
        default_factory=lambda: _default_var_dir() / "keys", validation_alias="JIFEN_KEYS_DIR"
    )
    schemas_dir: Path = Field(
        default_factory=_default_schemas_dir, validation_alias="JIFEN_SCHEMAS_DIR"
    )
    log_level: str = Field("INFO", validation_alias="JIFEN_LOG_LEVEL")

    kafka_fetch_max_wait_ms: int = Field(
        KAFKA_FETCH_MAX_WAIT_MS, validation_alias="JIFEN_KAFKA_FETCH_MAX_WAIT_MS"
    )
    kafka_session_timeout_ms: int = Field(
        KAFKA_SESSION_TIMEOUT_MS, validation_alias="JIFEN_KAFKA_SESSION_TIMEOUT_MS"
    )
    topic_partitions: int = Field(4, validation_alias="JIFEN_TOPIC_PARTITIONS")

    # clocks of different hosts drift: an event's `time` or a token's `iat`/`nbf` up to this
    # far ahead of this process's clock is accepted as sent; further ahead is refused
    # (dead-lettered, or 401), since no honest clock in the deployment is that far off
    max_clock_skew_seconds: float = Field(300.0, validation_alias="JIFEN_MAX_CLOCK_SKEW_SECONDS")

    outbox_batch: int = 500
    outbox_poll_seconds: float = 0.5
