"""HTTP models of hazard reports, micro-wishes and offers, and of turning them into jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from jifen.tasks.api.schemas.common import (
    MONTH_PATTERN,
    CategoryCode,
    IdStr,
    Place,
    StatusChangeOut,
    Text,
    When,
)
from jifen.tasks.api.schemas.jobs import MenuJob
from jifen.tasks.domain import commands
from jifen.tasks.domain.intake import HazardKind, NeedKind
from jifen.tasks.domain.partners import NeedSource, PartnerKind


class HazardIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "account_id": "vol-0001",
                    "community_id": "penglai-grid",
                    "kind": "stairwell_clutter",
                    "text": "楼道堆放杂物 boxes block the stairwell of building 3",
                    "place": {"address": "蓬莱路 3 号", "lat": 22.58, "lng": 113.08},
                    "evidence_ref": "photo/stair-3.jpg",
                }
            ]
        },
    )
    account_id: IdStr
    community_id: IdStr
    kind: HazardKind
    text: Annotated[Text, Field(min_length=1, max_length=2000)]
    place: Place = Place()
    evidence_ref: Annotated[Text, Field(max_length=500)] = ""

    def to_command(self) -> commands.ReportHazard:
        return commands.ReportHazard(
            account_id=self.account_id,
            community_id=self.community_id,
            kind=self.kind,
            text=self.text,
            place=self.place.to_place(),
            evidence_ref=self.evidence_ref,
        )


class HazardOut(BaseModel):
    id: UUID
    org_id: str
    community_id: str
    kind: str
    text: str
    place_address: str
    place_lat: float | None
    place_lng: float | None
    evidence_ref: str
    reported_by: str
    account_id: str
    status: str
    job_id: UUID | None
    duplicate_of: UUID | None
    created_at: datetime
    history: list[StatusChangeOut] = []


class TriageIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "job": {
                        "title": "清理楼道杂物 Clear the stairwell of building 3",
                        "category": "hazard_patrol",
                        "points": 15,
                        "capacity": 2,
                        "starts_at": "2026-11-24T01:00:00Z",
                        "ends_at": "2026-11-24T05:00:00Z",
                    },
                    "reason": "fire exit blocked: this week",
                }
            ]
        },
    )
    job: MenuJob
    reason: Annotated[Text, Field(max_length=500)] = ""


class MergeIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "duplicate_of": "3f1d2c4b-5a69-4e7f-8a1b-2c3d4e5f6a7b",
                    "reason": "same corner, reported the same morning",
                }
            ]
        },
    )
    duplicate_of: UUID
    reason: Annotated[Text, Field(max_length=500)] = ""


class NeedIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "community_id": "penglai-grid",
                    "kind": "wish",
                    "title": "修好楼道灯 Fix the stairwell light",
                    "description": "Building 5, third floor, dark for a week",
                    "category": "other",
                    "place": "蓬莱路 5 号 Building 5",
                    "wanted_from": "2026-12-01T00:00:00Z",
                    "wanted_until": "2026-12-20T00:00:00Z",
                    "source": "visit",
                }
            ]
        },
    )
    community_id: IdStr
    kind: NeedKind = Field(description="wish: a need (需求); offer: a resource (资源)")
    title: Annotated[Text, Field(min_length=1, max_length=200)]
    description: Annotated[Text, Field(max_length=2000)] = ""
    category: CategoryCode | None = Field(
        default=None, description="A job category: what a resource of the same one can serve"
    )
    place: Annotated[Text, Field(max_length=200)] = ""
    wanted_from: When | None = Field(
        default=None, description="A need: from when; a resource: available from"
    )
    wanted_until: When | None = None
    quantity: int | None = Field(
        default=None, ge=1, le=100_000, strict=True, description="How many (meals, people…)"
    )
    source: NeedSource | None = Field(
        default=None,
        description="visit (a door-to-door visit), officer, resident (a resident or gig worker, "
        "or their app), partner; the poster's own when not given",
    )
    partner_id: IdStr | None = Field(
        default=None, description="An offer's partner (a merchant's own offers: itself)"
    )

    @model_validator(mode="after")
    def _window(self) -> NeedIn:
        if self.wanted_from and self.wanted_until and self.wanted_until <= self.wanted_from:
            raise ValueError("wanted_until must be after wanted_from")
        return self

    def to_command(self, *, source: NeedSource, partner_id: str | None) -> commands.PostNeed:
        return commands.PostNeed(
            community_id=self.community_id,
            kind=self.kind,
            title=self.title,
            description=self.description,
            category=self.category,
            place=self.place,
            wanted_from=self.wanted_from,
            wanted_until=self.wanted_until,
            quantity=self.quantity,
            source=source.value,
            partner_id=partner_id,
        )


class NeedClaimIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"claimed_by": "partner-hardware"}]}
    )
    claimed_by: IdStr


class NeedOut(BaseModel):
    id: UUID
    org_id: str
    community_id: str
    kind: str
    title: str
    description: str
    posted_by: str
    status: str
    claimed_by: str | None
    job_id: UUID | None = Field(description="The first job it became")
    created_at: datetime
    category: str | None = None
    place: str = ""
    wanted_from: datetime | None = None
    wanted_until: datetime | None = None
    quantity: int | None = None
    source: str = "officer"
    partner_id: str | None = None
    job_ids: list[UUID] = Field(default=[], description="Every job it became or serves")
    history: list[StatusChangeOut] = []


class MatchSide(BaseModel):
    id: UUID
    community_id: str
    title: str
    category: str | None
    place: str
    wanted_from: datetime | None
    wanted_until: datetime | None
    quantity: int | None
    partner_id: str | None = None


class MatchReason(BaseModel):
    code: str
    zh: str
    en: str


class MatchOut(BaseModel):
    need: MatchSide
    resource: MatchSide
    score: int = Field(description="Higher is a better match")
    reasons: list[MatchReason]


class MenuFromNeedsItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    need_id: UUID
    resource_id: UUID | None = Field(default=None, description="The offer that serves it")
    job: MenuJob


class MenuFromNeedsIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "community_id": "penglai-grid",
                    "month": "2026-12",
                    "items": [
                        {
                            "need_id": "0b6f8a52-6a4f-4e55-9d8e-8f6f3c2b1a90",
                            "resource_id": "5d1c1f0e-0c4b-4d7a-9b57-3f0f1c3e2a11",
                            "job": {
                                "title": "理发进社区 Haircuts for elders",
                                "category": "other",
                                "points": 20,
                                "capacity": 2,
                                "starts_at": "2026-12-12T01:00:00Z",
                                "ends_at": "2026-12-12T04:00:00Z",
                            },
                        }
                    ],
                }
            ]
        },
    )
    community_id: IdStr
    month: Annotated[str, Field(pattern=MONTH_PATTERN, examples=["2026-12"])]
    items: list[MenuFromNeedsItem] = Field(min_length=1, max_length=500)

    def to_command(self) -> commands.MenuFromNeeds:
        return commands.MenuFromNeeds(
            community_id=self.community_id,
            month=self.month,
            items=tuple(
                commands.MenuItem(need_id=i.need_id, resource_id=i.resource_id, job=i.job.to_spec())
                for i in self.items
            ),
        )


class PartnerIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "partner-barbers",
                    "kind": "team",
                    "name": "蓬莱路理发志愿队 Penglai Road barbers",
                    "contact": "13800000009",
                }
            ]
        },
    )
    id: IdStr
    kind: PartnerKind
    name: Annotated[Text, Field(min_length=1, max_length=200)]
    contact: Annotated[Text, Field(max_length=200)] = ""


class PartnerOut(BaseModel):
    org_id: str
    id: str
    kind: str
    name: str
    contact: str
    created_by: str
    created_at: datetime
    members: int = 0


class PartnerMemberIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"account_id": "vol-0001"}]}
    )
    account_id: IdStr


class PartnerMemberOut(BaseModel):
    org_id: str
    partner_id: str
    account_id: str
    added_by: str
    added_at: datetime


class TakeJobIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"partner_id": "partner-barbers"}]}
    )
    partner_id: IdStr
