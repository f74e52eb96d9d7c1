"""HTTP models of the tasks API (not the event contracts)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from jifen.tasks.domain.jobs import Category

IdStr = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$", examples=["vol-0001"])]


def _no_control(value: str) -> str:
    if any(ord(c) < 32 and c not in "\n\t" for c in value):
        raise ValueError("control characters are not allowed")
    return value


Text = Annotated[str, AfterValidator(_no_control)]


def _plausible(ts: datetime) -> datetime:
    if not 2000 <= ts.year <= 2200:
        raise ValueError("timestamp out of range (years 2000-2200)")
    return ts


When = Annotated[AwareDatetime, AfterValidator(_plausible)]


class JobIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "community_id": "penglai-grid",
                    "title": "为独居老人送餐 Meal delivery to isolated elders",
                    "description": "Lunch boxes from the canteen to six elders on Penglai Road.",
                    "category": "meal_delivery",
                    "points": 20,
                    "capacity": 5,
                    "starts_at": "2026-11-23T03:00:00Z",
                    "ends_at": "2026-11-23T06:00:00Z",
                }
            ]
        },
    )

    community_id: IdStr
    title: Annotated[Text, Field(min_length=1, max_length=200)]
    description: Annotated[Text, Field(max_length=4000)] = ""
    category: Category
    points: int = Field(
        ge=1, le=10_000, description="Whole points credited per verified completion."
    )
    capacity: int = Field(ge=1, le=1_000, description="How many volunteers may claim the job.")
    starts_at: When
    ends_at: When

    @model_validator(mode="after")
    def _window(self) -> JobIn:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class JobOut(BaseModel):
    id: UUID
    org_id: str
    community_id: str
    title: str
    description: str
    category: str
    points: int
    capacity: int
    claimed: int
    starts_at: datetime
    ends_at: datetime
    verification: str
    created_by: str
    created_at: datetime


class ClaimIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"account_id": "vol-0001"}]}
    )
    account_id: IdStr


class ClaimOut(BaseModel):
    id: UUID
    job_id: UUID
    account_id: str
    claimed_by: str
    created_at: datetime


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
