"""HTTP models of the tasks API (not the event contracts)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from jifen.tasks.domain import commands
from jifen.tasks.domain.intake import HazardKind, NeedKind
from jifen.tasks.domain.jobs import Recurrence, VerificationMode
from jifen.tasks.domain.limits import DEFAULT_LIMITS

IdStr = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$", examples=["vol-0001"])]
CategoryCode = Annotated[
    str,
    Field(
        pattern=r"^[a-z][a-z0-9_]{0,39}$",
        examples=["meal_delivery"],
        description="A built-in category (meal_delivery, elder_visit, traffic_guidance, "
        "civility_persuasion, hazard_patrol, free_repair_day, lost_person_search, "
        "emergency_response, other) or one your organisation added (GET /v1/categories).",
    ),
]


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


class Place(BaseModel):
    model_config = ConfigDict(extra="forbid")
    address: Annotated[Text, Field(max_length=300)] = ""
    lat: float | None = Field(default=None, ge=-90, le=90)
    lng: float | None = Field(default=None, ge=-180, le=180)

    def to_place(self) -> commands.Place:
        return commands.Place(address=self.address, lat=self.lat, lng=self.lng)


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

    def to_command(self) -> commands.CompleteJob:
        return commands.CompleteJob(
            account_id=self.account_id,
            evidence=self.evidence.model_dump(),
            checkin_code=self.checkin_code,
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


Reason = Annotated[
    Text, Field(min_length=3, max_length=500, examples=["photo shows a different address"])
]


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


class ClaimOutFull(ClaimOut):
    withdrawn_at: datetime | None = None
    withdrawn_by: str | None = None


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
        json_schema_extra={"examples": [{"code": "flood_watch", "label": "防汛巡查 Flood watch"}]},
    )
    code: CategoryCode
    label: Annotated[Text, Field(min_length=1, max_length=100)]


class CategoryOut(BaseModel):
    code: str
    label: str
    built_in: bool


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
    month: Annotated[str, Field(pattern=r"^20[0-9]{2}-(0[1-9]|1[0-2])$", examples=["2026-12"])]
    jobs: list[MenuJob] = Field(min_length=1, max_length=500)

    def to_command(self) -> commands.PublishMenu:
        return commands.PublishMenu(
            community_id=self.community_id,
            month=self.month,
            jobs=tuple(job.to_spec() for job in self.jobs),
        )


class StatusChangeOut(BaseModel):
    status: str
    actor: str
    reason: str
    job_id: UUID | None
    at: datetime


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


class RollIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"community_id": "penglai-grid", "month": "2027-01"}]},
    )
    community_id: IdStr
    month: Annotated[str, Field(pattern=r"^20[0-9]{2}-(0[1-9]|1[0-2])$", examples=["2027-01"])]


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
    }
