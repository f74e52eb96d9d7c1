"""HTTP models of the reports (issue 21)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class Quantity(BaseModel):
    unit: str
    unit_zh: str
    unit_en: str
    quantity: int


class Figures(BaseModel):
    activities: int = Field(description="活动数 Jobs with at least one verified completion")
    attendances: int = Field(description="参与人次 Verified completions")
    volunteers: int = Field(description="志愿者人数 Distinct volunteers")
    service_minutes: int = Field(description="服务时长（分钟）Sum of the jobs' service_minutes")
    service_hours: float = Field(description="The same in hours, to one decimal")
    points: int = Field(description="发放积分 Points of the verified completions")


class CategoryRow(Figures):
    community_id: str
    category: str
    category_zh: str
    category_en: str
    quantity: int | None = Field(description="In unit; null: none recorded")
    unit: str | None
    unit_zh: str | None
    unit_en: str | None


class CommunityFigures(Figures):
    community_id: str
    quantities: list[Quantity]


class TotalFigures(Figures):
    quantities: list[Quantity]


class ActivityReport(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    org_id: str
    since: datetime = Field(alias="from", serialization_alias="from")
    until: datetime
    community_id: str | None = None
    rows: list[CategoryRow]
    communities: list[CommunityFigures]
    total: TotalFigures
