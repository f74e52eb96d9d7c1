"""HTTP models of appeals and their decisions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from jifen.tasks.api.schemas.common import Reason
from jifen.tasks.domain import commands


class AppealIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "completion_id": "0b6f8a52-6a4f-4e55-9d8e-8f6f3c2b1a90",
                    "kind": "rejection",
                    "reason": "I was there: the officer saw me at the canteen",
                }
            ]
        },
    )
    completion_id: UUID
    kind: Annotated[str, Field(pattern=r"^(rejection|hold|missing_credit)$")]
    reason: Reason

    def to_command(self) -> commands.FileAppeal:
        return commands.FileAppeal(
            completion_id=self.completion_id, kind=self.kind, reason=self.reason
        )


class DecisionIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"outcome": "upheld", "reason": "the canteen log shows the delivery"}]
        },
    )
    outcome: Annotated[str, Field(pattern=r"^(upheld|dismissed)$")]
    reason: Reason

    def to_command(self) -> commands.DecideAppeal:
        return commands.DecideAppeal(outcome=self.outcome, reason=self.reason)


class DecisionOut(BaseModel):
    outcome: str
    decided_by: str
    decided_role: str
    reason: str
    decided_at: datetime


class AppealOut(BaseModel):
    id: UUID
    org_id: str
    completion_id: UUID
    account_id: str
    kind: str
    reason: str
    filed_by: str
    status: str
    created_at: datetime
    decisions: list[DecisionOut] = []
