"""HTTP models of the organisation, its communities, members and categories."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from jifen.tasks.api.schemas.common import CategoryCode, IdStr, Text
from jifen.tasks.domain.jobs import Unit
from jifen.tasks.domain.limits import DEFAULT_LIMITS


class OrganisationIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "江门骑手工会 Jiangmen riders' union branch",
                    "timezone": "Asia/Shanghai",
                    "daily_points_officer": 100,
                    "daily_points_admin": 200,
                    "hourly_completions_officer": 3,
                    "hourly_completions_admin": 6,
                }
            ]
        },
    )
    name: Annotated[Text, Field(max_length=200)] = ""
    timezone: Annotated[str, Field(pattern=r"^[A-Za-z_]+(/[A-Za-z0-9_+-]+){0,2}$")] = (
        "Asia/Shanghai"
    )
    daily_points_officer: int = Field(
        default=DEFAULT_LIMITS.daily_points_officer,
        ge=1,
        le=1_000_000,
        strict=True,
        description="Per volunteer and local day: beyond it a completion waits for an officer",
    )
    daily_points_admin: int = Field(
        default=DEFAULT_LIMITS.daily_points_admin,
        ge=1,
        le=1_000_000,
        strict=True,
        description="Per volunteer and local day: beyond it a completion waits for the admin",
    )
    hourly_completions_officer: int | None = Field(default=None, ge=1, le=1_000, strict=True)
    hourly_completions_admin: int | None = Field(default=None, ge=1, le=1_000, strict=True)
    daily_points_per_officer: int = Field(
        default=DEFAULT_LIMITS.daily_points_per_officer,
        ge=1,
        le=10_000_000,
        strict=True,
        description="Points verified per local day on one officer's authority (their "
        "verifications and approvals, and what their check-in and automatic jobs paid): beyond "
        "it a completion waits for the admin",
    )
    automatic_job_points: int = Field(
        default=DEFAULT_LIMITS.automatic_job_points,
        ge=1,
        le=10_000_000,
        strict=True,
        description="Points one automatic job may pay in total without a person: beyond it a "
        "completion waits for an officer",
    )

    @model_validator(mode="after")
    def _ordered(self) -> OrganisationIn:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {self.timezone!r}") from None
        if (
            "daily_points_admin" not in self.model_fields_set
            and self.daily_points_admin < self.daily_points_officer
        ):
            # raising the first threshold alone raises the default second one with it
            self.daily_points_admin = self.daily_points_officer
        for first, second in (
            (self.daily_points_officer, self.daily_points_admin),
            (self.hourly_completions_officer, self.hourly_completions_admin),
        ):
            if first is not None and second is not None and second < first:
                raise ValueError("the admin threshold must not be below the officer threshold")
        return self


class OrganisationOut(BaseModel):
    id: str
    name: str
    timezone: str
    daily_points_officer: int
    daily_points_admin: int
    hourly_completions_officer: int | None
    hourly_completions_admin: int | None
    daily_points_per_officer: int
    automatic_job_points: int
    updated_by: str = Field(description="'default' until the admin sets them")
    updated_at: datetime | None


class CommunityIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"id": "penglai-grid", "name": "蓬莱路网格 Penglai grid"}]},
    )
    id: IdStr
    name: Annotated[Text, Field(min_length=1, max_length=200)]


class CommunityOut(BaseModel):
    org_id: str
    id: str
    name: str
    created_by: str
    created_at: datetime
    members: int = 0


class MemberIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"account_id": "vol-0001"}]}
    )
    account_id: IdStr


class MemberOut(BaseModel):
    org_id: str
    community_id: str
    account_id: str
    registered_by: str
    registered_at: datetime


class CategoryIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"code": "flood_watch", "label": "防汛巡查 Flood watch", "unit": "hours"}]
        },
    )
    code: CategoryCode
    label: Annotated[Text, Field(min_length=1, max_length=100)]
    unit: Unit | None = Field(
        default=None,
        description="计量单位 What its completions are counted in (meals, bikes, people, hours, "
        "items); none: activities only",
    )


class CategoryOut(BaseModel):
    code: str
    label: str = Field(description="Chinese first, English beside it (a built-in's both)")
    label_zh: str | None = Field(default=None, description="A built-in category's Chinese name")
    label_en: str | None = Field(default=None, description="A built-in category's English name")
    built_in: bool
    unit: str | None = Field(default=None, description="What a completion's quantity counts")
    unit_zh: str | None = Field(default=None, description="The unit in Chinese (份, 辆, 人…)")
    unit_en: str | None = Field(default=None, description="The unit in English")
