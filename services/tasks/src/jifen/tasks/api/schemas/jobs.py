"""HTTP models of jobs, menus, claims and check-in codes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from jifen.tasks.api.schemas.common import MONTH_PATTERN, CategoryCode, IdStr, Place, Text, When
from jifen.tasks.domain import commands
from jifen.tasks.domain.jobs import Recurrence, VerificationMode

ServiceMinutes = Annotated[int, Field(ge=1, le=1440, strict=True)]
SERVICE_MINUTES_DOC = (
    "服务时长（分钟）How long one completion of this job serves, in whole minutes: what the "
    "volunteer's service record and the reports count as service hours. Leave it out for a "
    "job that counts no hours."
)


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
    category: CategoryCode
    points: int = Field(
        ge=1,
        le=10_000,
        strict=True,
        description="Whole points credited per verified completion (a JSON integer).",
    )
    capacity: int = Field(
        ge=1, le=1_000, strict=True, description="How many volunteers may claim the job."
    )
    starts_at: When
    ends_at: When
    verification: VerificationMode = Field(
        default=VerificationMode.OFFICER,
        description="officer: an officer confirms; checkin: the volunteer sends the rotating "
        "code an officer shows at the site (GET /v1/jobs/{id}/checkin-code; checked "
        "server-side); automatic: counts on submission. Organisation limits apply in every "
        "mode, and the job's creator is never its credited volunteer.",
    )
    open_to_all: bool = Field(
        default=False,
        strict=True,
        description="false: only accounts registered with the job's community may claim and "
        "complete it; true: any account registered with a community of the organisation.",
    )
    place: Place | None = None
    recurrence: Recurrence | None = Field(
        default=None,
        description="monthly: the job repeats on the same day of each month (day 1-28); "
        "POST /v1/menus/roll publishes the next months.",
    )
    service_minutes: ServiceMinutes | None = Field(default=None, description=SERVICE_MINUTES_DOC)

    @model_validator(mode="after")
    def _window(self) -> JobIn:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self

    def to_command(self) -> commands.PublishJob:
        return commands.PublishJob(community_id=self.community_id, **_job_fields(self))


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
    place_address: str | None = None
    place_lat: float | None = None
    place_lng: float | None = None
    open_to_all: bool = False
    recurrence: str | None = None
    series_id: UUID | None = None
    service_minutes: int | None = None
    partner_id: str | None = Field(
        default=None, description="The partner that took this job: only its members claim it"
    )


class CheckinCodeOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "job_id": "5d1c1f0e-0c4b-4d7a-9b57-3f0f1c3e2a11",
                    "code": "K7QX2M",
                    "step_seconds": 180,
                    "valid_from": "2026-11-23T04:03:00Z",
                    "refresh_at": "2026-11-23T04:06:00Z",
                    "expires_at": "2026-11-23T04:09:00Z",
                    "qr_payload": "jifen:checkin?job=5d1c1f0e-0c4b-4d7a-9b57-3f0f1c3e2a11"
                    "&code=K7QX2M",
                }
            ]
        }
    )
    job_id: UUID
    code: str = Field(description="Show it at the place; it changes every step")
    step_seconds: int
    valid_from: datetime
    refresh_at: datetime = Field(description="Fetch the next code from here on")
    expires_at: datetime = Field(description="Accepted until here (this step and the next)")
    qr_payload: str = Field(description="The text to render as a QR code for the app to scan")


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


class ClaimOutFull(ClaimOut):
    withdrawn_at: datetime | None = None
    withdrawn_by: str | None = None


class MenuJob(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: Annotated[Text, Field(min_length=1, max_length=200)]
    description: Annotated[Text, Field(max_length=4000)] = ""
    category: CategoryCode
    points: int = Field(ge=1, le=10_000, strict=True)
    capacity: int = Field(ge=1, le=1_000, strict=True)
    starts_at: When
    ends_at: When
    verification: VerificationMode = VerificationMode.OFFICER
    place: Place | None = None
    recurrence: Recurrence | None = None
    open_to_all: bool = Field(default=False, strict=True)
    service_minutes: ServiceMinutes | None = Field(default=None, description=SERVICE_MINUTES_DOC)

    def to_spec(self) -> commands.JobSpec:
        return commands.JobSpec(**_job_fields(self))


class MenuIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "community_id": "penglai-grid",
                    "month": "2026-12",
                    "jobs": [
                        {
                            "title": "免费维修电动车 Free e-bike repair day",
                            "category": "free_repair_day",
                            "points": 30,
                            "capacity": 4,
                            "starts_at": "2026-12-15T01:00:00Z",
                            "ends_at": "2026-12-15T09:00:00Z",
                            "verification": "checkin",
                        }
                    ],
                }
            ]
        },
    )
    community_id: IdStr
    month: Annotated[str, Field(pattern=MONTH_PATTERN, examples=["2026-12"])]
    jobs: list[MenuJob] = Field(min_length=1, max_length=500)

    def to_command(self) -> commands.PublishMenu:
        return commands.PublishMenu(
            community_id=self.community_id,
            month=self.month,
            jobs=tuple(job.to_spec() for job in self.jobs),
        )


class RollIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"community_id": "penglai-grid", "month": "2027-01"}]},
    )
    community_id: IdStr
    month: Annotated[str, Field(pattern=MONTH_PATTERN, examples=["2027-01"])]


def _job_fields(job: JobIn | MenuJob) -> dict[str, Any]:
    """What a job is, from either request model: the fields of ``commands.JobSpec``."""
    return {
        "title": job.title,
        "description": job.description,
        "category": job.category,
        "points": job.points,
        "capacity": job.capacity,
        "starts_at": job.starts_at,
        "ends_at": job.ends_at,
        "verification": job.verification,
        "place": job.place.to_place() if job.place else None,
        "recurrence": job.recurrence,
        "open_to_all": job.open_to_all,
        "service_minutes": job.service_minutes,
    }


class SeriesEndOut(BaseModel):
    series_id: UUID
    org_id: str
    ended_by: str
    ended_at: datetime
    reason: str
