"""HTTP models of completions and their review, and of the auditors' listing."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from jifen.tasks.api.schemas.common import IdStr, Reason, Text
from jifen.tasks.domain import commands


class Evidence(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: Annotated[Text, Field(max_length=1000)] = ""
    reference: Annotated[Text, Field(max_length=500, description="e.g. a photo's storage key")] = ""


class CompletionIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "account_id": "vol-0001",
                    "evidence": {"note": "delivered 6 boxes", "reference": "photo/123.jpg"},
                }
            ]
        },
    )
    account_id: IdStr
    evidence: Evidence = Evidence()
    checkin_code: Annotated[str, Field(min_length=4, max_length=16)] | None = Field(
        default=None,
        description="Required for jobs in check-in mode: the rotating code shown at the site "
        "now (the previous one is still accepted). Too many wrong codes: 429.",
    )
    quantity: int | None = Field(
        default=None,
        ge=0,
        le=100_000,
        strict=True,
        description="数量 How many were done, in the unit of the job's category (GET "
        "/v1/categories: meals delivered, bikes repaired, people served…); a whole number. A "
        "category without a unit takes none (422 no_quantity).",
    )

    def to_command(self) -> commands.CompleteJob:
        return commands.CompleteJob(
            account_id=self.account_id,
            evidence=self.evidence.model_dump(),
            checkin_code=self.checkin_code,
            quantity=self.quantity,
        )


class CompletionOut(BaseModel):
    id: UUID
    job_id: UUID
    claim_id: UUID
    account_id: str
    org_id: str
    status: str
    evidence: dict[str, Any]
    submitted_at: datetime
    verified_by: str | None
    verified_at: datetime | None
    credited_at: datetime | None
    hold_level: str | None = None
    hold_reason: str | None = None
    rejected_by: str | None = None
    rejection_reason: str | None = None
    revoked_by: str | None = None
    revoked_at: datetime | None = None
    revocation_reason: str | None = None
    reversed_at: datetime | None = None
    quantity: int | None = None
    unit: str | None = Field(default=None, description="The unit of quantity, as recorded")


class ReasonIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "photo shows another street"}]}
    )
    reason: Reason


class ApproveIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"reason": "typhoon clean-up: extra hours agreed"}]},
    )
    reason: Reason


class AuditCompletion(BaseModel):
    completion_id: UUID
    account_id: str
    job_id: UUID
    points: int
    status: str
    verified_event_id: str
    revoked_event_id: str | None
    verified_at: datetime
    revoked_at: datetime | None


class AuditPage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {
                            "completion_id": "0b6f8a52-6a4f-4e55-9d8e-8f6f3c2b1a90",
                            "account_id": "vol-0001",
                            "job_id": "5d1c1f0e-0c4b-4d7a-9b57-3f0f1c3e2a11",
                            "points": 40,
                            "status": "verified",
                            "verified_event_id": "9f0e7c1a-2b3d-4e5f-8a9b-0c1d2e3f4a5b",
                            "revoked_event_id": None,
                            "verified_at": "2026-11-23T04:05:06Z",
                            "revoked_at": None,
                        }
                    ],
                    "next_cursor": "1",
                }
            ]
        }
    )
    items: list[AuditCompletion]
    next_cursor: str | None
