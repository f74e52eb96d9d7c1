"""Settings of the tasks service (``JIFEN_TASKS_*``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from jifen.kernel.settings import ServiceSettings


class TasksSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="JIFEN_TASKS_", extra="ignore", populate_by_name=True
    )

    port: int = 8001
    worker_port: int = 9001
    database_url: str = "postgresql://postgres@127.0.0.1:55432/jifen_tasks"
    consumer_group: str = "jifen-tasks-credits"
    # a completion may be posted this long after its job's window ends
    completion_grace_hours: int = 24
    # a verified completion not credited within this bound is published again
    credit_timeout_seconds: float = 30.0
    # recurring jobs roll on their own: the worker keeps this month and this many after it
    # published for every running series (0: only by hand, POST /v1/menus/roll), every
    # roll_every_seconds
    roll_ahead_months: int = Field(default=1, ge=0, le=12)
    roll_every_seconds: float = Field(default=3600.0, gt=0)
    # a volunteer holding a place is reminded through the sender this long before the job
    # starts (0: never), looked for every remind_every_seconds
    remind_before_minutes: int = Field(default=120, ge=0, le=7 * 24 * 60)
    remind_every_seconds: float = Field(default=60.0, gt=0)
    # webhooks: hosts that may take http or a private address (the embedded stack's receivers,
    # a gateway on the private network); the first retry after this many seconds, doubling;
    # a delivery fails after webhook_max_attempts tries; each try waits webhook_timeout_seconds
    webhook_allowed_hosts: str = ""  # comma-separated
    webhook_retry_seconds: float = Field(default=5.0, gt=0)
    webhook_max_attempts: int = Field(default=10, ge=1, le=50)
    webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # rotating check-in codes: one per step (the previous step's is still accepted), and at
    # most this many wrong codes per (job, account) within the window before a 429
    checkin_step_seconds: int = 180
    checkin_max_failures: int = 5
    checkin_failure_window_seconds: int = 900
    # where sign-in codes go (jifen.tasks.sender): "log" keeps them for the operator's page,
    # "http" posts them to an SMS gateway
    sms_sender: Literal["log", "http"] = "log"
    sms_gateway_url: str | None = None
    sms_gateway_token: str | None = None
