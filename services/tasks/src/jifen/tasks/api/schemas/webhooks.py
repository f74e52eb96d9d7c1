"""HTTP models of webhooks and their delivery log (issue 21, part 5)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from jifen.tasks.domain.webhooks import EVENT_TYPES


class WebhookIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://app.example.cn/jifen/events",
                    "event_types": ["jifen.tasks.job.published.v1"],
                }
            ]
        },
    )
    url: Annotated[str, Field(min_length=8, max_length=500)] = Field(
        description="https, on a public address (hosts in JIFEN_TASKS_WEBHOOK_ALLOWED_HOSTS "
        "may take http or a private one)"
    )
    event_types: list[Annotated[str, Field(max_length=100)]] = Field(
        min_length=1, max_length=len(EVENT_TYPES), description="Any of: " + ", ".join(EVENT_TYPES)
    )


class WebhookOut(BaseModel):
    id: UUID
    org_id: str
    url: str
    event_types: list[str]
    created_by: str
    created_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(
        description="签名密钥 The HMAC key, shown this once: each delivery carries "
        "X-Jifen-Signature: sha256=HMAC-SHA256(secret, '<X-Jifen-Timestamp>.<body>')"
    )


class DeliveryOut(BaseModel):
    id: int
    event_id: UUID
    event_type: str
    status: str = Field(description="pending, delivered, or failed (no tries left)")
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    delivered_at: datetime | None
    log: list[dict[str, Any]] = Field(
        description="Every try: attempt, at, http_status, error, duration_ms"
    )
