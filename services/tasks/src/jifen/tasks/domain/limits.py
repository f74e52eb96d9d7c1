"""Organisation limits: how much a volunteer may earn before a person must look again.

Beyond the first threshold a completion is held for an officer, beyond the second for the
organisation's admin (escalating approval). Nothing beyond a limit is ever dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo


class HoldLevel(StrEnum):
    OFFICER = "officer"
    ADMIN = "admin"


@dataclass(frozen=True)
class Limits:
    # per volunteer: points per local day, completions per hour (first and second threshold)
    daily_points_officer: int | None = None
    hourly_completions_officer: int | None = None
    daily_points_admin: int | None = None
    hourly_completions_admin: int | None = None
    # per officer: points one officer may have verified per local day (their own
    # verifications and approvals, and what check-in and automatic jobs they published paid
    # out) before the admin must look
    daily_points_per_officer: int | None = None
    # per automatic job: points its completions may pay in total without a person
    automatic_job_points: int | None = None


# What an organisation has until its admin says otherwise (docs/TASKS.md says why these).
DEFAULT_LIMITS = Limits(
    daily_points_officer=200,
    daily_points_admin=500,
    hourly_completions_officer=None,
    hourly_completions_admin=None,
    daily_points_per_officer=3000,
    automatic_job_points=300,
)


@dataclass(frozen=True)
class Usage:
    """What the volunteer already has today (points) and in the last hour (completions); what
    the responsible officer verified today; what the job paid without a person so far."""

    points_today: int
    completions_last_hour: int
    officer_points_today: int = 0
    job_automatic_points: int = 0


@dataclass(frozen=True)
class Hold:
    level: HoldLevel
    reason: str


def _beyond(limit: int | None, value: int) -> bool:
    return limit is not None and value > limit


def assess(limits: Limits, usage: Usage, points: int, *, automatic: bool = False) -> Hold | None:
    """None when the completion may count now; else who must approve it and why. The admin's
    thresholds are weighed first, so a completion beyond both waits for the admin."""
    today = usage.points_today + points
    hour = usage.completions_last_hour + 1
    officer_today = usage.officer_points_today + points
    job_total = usage.job_automatic_points + points
    if _beyond(limits.daily_points_admin, today):
        return Hold(
            HoldLevel.ADMIN,
            f"{today} points today exceeds the organisation's second limit of "
            f"{limits.daily_points_admin}",
        )
    if _beyond(limits.hourly_completions_admin, hour):
        return Hold(
            HoldLevel.ADMIN,
            f"{hour} completions within an hour exceeds the organisation's second limit of "
            f"{limits.hourly_completions_admin}",
        )
    if _beyond(limits.daily_points_per_officer, officer_today):
        return Hold(
            HoldLevel.ADMIN,
            f"{officer_today} points verified today on one officer's authority exceeds the "
            f"organisation's per-officer limit of {limits.daily_points_per_officer}",
        )
    if automatic and _beyond(limits.automatic_job_points, job_total):
        return Hold(
            HoldLevel.OFFICER,
            f"{job_total} points paid automatically by this job exceeds the organisation's "
            f"limit of {limits.automatic_job_points} per automatic job",
        )
    if _beyond(limits.daily_points_officer, today):
        return Hold(
            HoldLevel.OFFICER,
            f"{today} points today exceeds the organisation's daily limit of "
            f"{limits.daily_points_officer}",
        )
    if _beyond(limits.hourly_completions_officer, hour):
        return Hold(
            HoldLevel.OFFICER,
            f"{hour} completions within an hour exceeds the organisation's limit of "
            f"{limits.hourly_completions_officer}",
        )
    return None


def may_approve(level: HoldLevel, role: str) -> bool:
    """An officer decides officer-level holds; only the admin decides admin-level ones."""
    return role == "admin" or (level is HoldLevel.OFFICER and role == "officer")


def day_start(at: datetime, timezone: str) -> datetime:
    """Start of the organisation's local calendar day containing ``at`` (an aware time)."""
    local = at.astimezone(ZoneInfo(timezone))
    return datetime.combine(local.date(), time(0), tzinfo=local.tzinfo)


def hour_ago(at: datetime) -> datetime:
    return at - timedelta(hours=1)
