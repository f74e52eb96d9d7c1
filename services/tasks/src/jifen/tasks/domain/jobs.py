"""Jobs, claims and completions: the rules that decide, free of storage and HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class Category(StrEnum):
    MEAL_DELIVERY = "meal_delivery"
    ELDER_VISIT = "elder_visit"
    TRAFFIC_GUIDANCE = "traffic_guidance"
    CIVILITY_PERSUASION = "civility_persuasion"
    HAZARD_PATROL = "hazard_patrol"
    FREE_REPAIR_DAY = "free_repair_day"
    LOST_PERSON_SEARCH = "lost_person_search"
    EMERGENCY_RESPONSE = "emergency_response"
    OTHER = "other"


class CompletionStatus(StrEnum):
    SUBMITTED = "submitted"
    VERIFIED = "verified"
    REJECTED = "rejected"
    REVOKED = "revoked"


class TasksRefusal(Exception):
    """A refusal in the domain's words; ``reason`` is machine-readable."""

    reason = "refused"

    def __init__(self, detail: str, **facts: object) -> None:
        super().__init__(detail)
        self.detail = detail
        self.facts = facts


class JobFull(TasksRefusal):
    reason = "job_full"


class AlreadyClaimed(TasksRefusal):
    reason = "already_claimed"


class NoClaim(TasksRefusal):
    reason = "no_claim"


class OutsideWindow(TasksRefusal):
    reason = "outside_window"


class AlreadyCompleted(TasksRefusal):
    reason = "already_completed"


class SelfVerification(TasksRefusal):
    reason = "self_verification"


class NotVerifiable(TasksRefusal):
    reason = "not_verifiable"


class IdempotencyKeyReused(TasksRefusal):
    reason = "idempotency_key_reused"


@dataclass(frozen=True)
class Window:
    starts_at: datetime
    ends_at: datetime


def check_window(window: Window, at: datetime, grace: timedelta) -> None:
    """A completion counts only inside the job's window, with a grace period after it."""
    if at < window.starts_at:
        raise OutsideWindow(
            f"the job starts at {window.starts_at.isoformat()}; it cannot be completed before",
            starts_at=window.starts_at.isoformat(),
            ends_at=window.ends_at.isoformat(),
        )
    if at > window.ends_at + grace:
        raise OutsideWindow(
            f"the job ended at {window.ends_at.isoformat()} and its grace of {grace} is over",
            starts_at=window.starts_at.isoformat(),
            ends_at=window.ends_at.isoformat(),
        )


def check_verifier(verifier: str, volunteer: str, status: CompletionStatus) -> None:
    if verifier == volunteer:
        raise SelfVerification("an officer may not verify their own completion")
    if status is not CompletionStatus.SUBMITTED:
        raise NotVerifiable(f"the completion is {status.value}, not submitted", status=status.value)
