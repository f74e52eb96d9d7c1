"""Commands: what a caller asks the tasks service to do, as plain frozen dataclasses.

The routes build them from the HTTP request models (``api/schemas``), so the handlers take
these and never import the API. A command is imperative (``PublishJob``); the event it may
lead to is past tense (``jifen.tasks.job.published.v1``). Who asks (organisation, actor) is
passed beside the command, as the handlers' keyword arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from jifen.tasks.domain.intake import HazardKind, NeedKind
from jifen.tasks.domain.jobs import Recurrence, VerificationMode


@dataclass(frozen=True, kw_only=True)
class Place:
    address: str = ""
    lat: float | None = None
    lng: float | None = None


@dataclass(frozen=True, kw_only=True)
class JobSpec:
    """One job to publish, wherever it comes from: alone, in a menu, a hazard report or a
    need turned into a job, or a month rolled from a recurring series."""

    title: str
    description: str = ""
    category: str
    points: int
    capacity: int
    starts_at: datetime
    ends_at: datetime
    verification: VerificationMode = VerificationMode.OFFICER
    place: Place | None = None
    recurrence: Recurrence | None = None
    open_to_all: bool = False
    service_minutes: int | None = None  # how long one completion serves (the service record)


@dataclass(frozen=True, kw_only=True)
class PublishJob(JobSpec):
    community_id: str


@dataclass(frozen=True, kw_only=True)
class PublishMenu:
    """A community's month of jobs, published all at once or not at all."""

    community_id: str
    month: str  # YYYY-MM
    jobs: tuple[JobSpec, ...]


@dataclass(frozen=True, kw_only=True)
class CompleteJob:
    """A volunteer's completion of a job they claimed (the job and the idempotency key are
    passed beside it)."""

    account_id: str
    evidence: Mapping[str, str] = field(default_factory=dict)
    checkin_code: str | None = None
    quantity: int | None = None  # in the unit of the job's category (meals, bikes…)


@dataclass(frozen=True, kw_only=True)
class FileAppeal:
    completion_id: UUID
    kind: str  # rejection | hold | missing_credit
    reason: str


@dataclass(frozen=True, kw_only=True)
class DecideAppeal:
    outcome: str  # upheld | dismissed
    reason: str


@dataclass(frozen=True, kw_only=True)
class ReportHazard:
    account_id: str
    community_id: str
    kind: HazardKind
    text: str
    place: Place = Place()
    evidence_ref: str = ""


@dataclass(frozen=True, kw_only=True)
class PostNeed:
    community_id: str
    kind: NeedKind
    title: str
    description: str = ""
    category: str | None = None  # a job category: what a resource can match
    place: str = ""
    wanted_from: datetime | None = None  # a need's window, a resource's availability
    wanted_until: datetime | None = None
    quantity: int | None = None  # how many (meals, people, hours…)
    source: str | None = None  # visit, officer, resident, partner (None: the poster's own)
    partner_id: str | None = None  # an offer's partner


@dataclass(frozen=True, kw_only=True)
class MenuItem:
    """One job of a menu made from the needs list: the need it serves and the resource (an
    offer) that serves it, if any."""

    need_id: UUID
    resource_id: UUID | None
    job: JobSpec


@dataclass(frozen=True, kw_only=True)
class MenuFromNeeds:
    community_id: str
    month: str
    items: tuple[MenuItem, ...]
