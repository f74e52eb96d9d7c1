"""HTTP models of calls to volunteers: mobilisations and help requests (issue 21, part 5)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from jifen.tasks.api.schemas.common import IdStr, Text
from jifen.tasks.domain.calls import Answer

Message = Annotated[Text, Field(min_length=2, max_length=300)]


class MobiliseIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "community_id": "penglai-grid",
                    "message": "台风过境，急需人手加固蓬莱路围挡 Typhoon: hands on Penglai Road",
                    "open_minutes": 90,
                }
            ]
        },
    )
    community_id: IdStr
    message: Message
    job_id: UUID | None = Field(default=None, description="The urgent job it calls to, if any")
    open_minutes: int = Field(default=120, ge=5, le=1440, strict=True)


class HelpIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "account_id": "vol-0001",
                    "message": "电池没电了，在蓬莱路口 Battery flat at Penglai Rd",
                }
            ]
        },
    )
    account_id: IdStr
    message: Message
    open_minutes: int = Field(default=30, ge=5, le=240, strict=True)


class AnswerIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"account_id": "vol-0002", "answer": "available"}]},
    )
    account_id: IdStr
    answer: Answer
    note: Annotated[Text, Field(max_length=200)] = ""


class RollEntry(BaseModel):
    account_id: str
    notified: bool = Field(description="A message went to a phone on record")
    answer: str | None
    answered_at: datetime | None
    note: str


class Counts(BaseModel):
    recipients: int
    notified: int
    available: int
    unavailable: int
    no_answer: int


class CallOut(BaseModel):
    id: UUID
    org_id: str
    kind: str = Field(description="mobilisation or help")
    community_id: str | None
    job_id: UUID | None
    message: str
    created_by: str
    created_at: datetime
    closes_at: datetime
    counts: Counts
    roll: list[RollEntry] = Field(description="Who answered first, then who has not")


class CallBrief(BaseModel):
    id: UUID
    kind: str
    community_id: str | None
    job_id: UUID | None
    message: str
    created_by: str
    closes_at: datetime
    answer: str | None = Field(description="This account's answer so far")


class AnswerOut(BaseModel):
    call_id: UUID
    account_id: str
    answer: str
    answered_at: datetime
    note: str
