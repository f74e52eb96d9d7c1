"""HTTP models of hazard reports, micro-wishes and offers, and of turning them into jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from jifen.tasks.api.schemas.common import IdStr, Place, StatusChangeOut, Text
from jifen.tasks.api.schemas.jobs import MenuJob
from jifen.tasks.domain import commands
from jifen.tasks.domain.intake import HazardKind, NeedKind


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
                }
            ]
        },
    )
    community_id: IdStr
    kind: NeedKind
    title: Annotated[Text, Field(min_length=1, max_length=200)]
    description: Annotated[Text, Field(max_length=2000)] = ""

    def to_command(self) -> commands.PostNeed:
        return commands.PostNeed(
            community_id=self.community_id,
            kind=self.kind,
            title=self.title,
            description=self.description,
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
    job_id: UUID | None
    created_at: datetime
    history: list[StatusChangeOut] = []
