"""Jobs, claims and completions: the rules that decide, free of storage and HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from jifen.kernel.errors import DomainRefusal, NotFound
from jifen.kernel.i18n import Said
from jifen.tasks.domain.clock import DEFAULT_TIMEZONE, local_clock


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


# what a person reads for each built-in category: Chinese first, English beside it
CATEGORY_LABELS: dict[Category, tuple[str, str]] = {
    Category.MEAL_DELIVERY: ("助老送餐", "Meal delivery"),
    Category.ELDER_VISIT: ("探访独居老人", "Elder visit"),
    Category.TRAFFIC_GUIDANCE: ("交通劝导", "Traffic guidance"),
    Category.CIVILITY_PERSUASION: ("文明劝导", "Civility persuasion"),
    Category.HAZARD_PATROL: ("隐患巡查", "Hazard patrol"),
    Category.FREE_REPAIR_DAY: ("义务维修日", "Free repair day"),
    Category.LOST_PERSON_SEARCH: ("寻找走失人员", "Lost person search"),
    Category.EMERGENCY_RESPONSE: ("应急响应", "Emergency response"),
    Category.OTHER: ("其他", "Other"),
}


class Unit(StrEnum):
    """What a category's completions are counted in (issue 21: meals delivered, bikes
    repaired, people served, hours on duty, items such as hazards found)."""

    MEALS = "meals"
    BIKES = "bikes"
    PEOPLE = "people"
    HOURS = "hours"
    ITEMS = "items"


UNIT_LABELS: dict[Unit, tuple[str, str]] = {
    Unit.MEALS: ("份", "meals"),
    Unit.BIKES: ("辆", "bikes"),
    Unit.PEOPLE: ("人", "people"),
    Unit.HOURS: ("小时", "hours"),
    Unit.ITEMS: ("件", "items"),
}

# the built-in categories' units; "other" counts activities only
CATEGORY_UNITS: dict[Category, Unit | None] = {
    Category.MEAL_DELIVERY: Unit.MEALS,
    Category.ELDER_VISIT: Unit.PEOPLE,
    Category.TRAFFIC_GUIDANCE: Unit.HOURS,
    Category.CIVILITY_PERSUASION: Unit.PEOPLE,
    Category.HAZARD_PATROL: Unit.ITEMS,
    Category.FREE_REPAIR_DAY: Unit.BIKES,
    Category.LOST_PERSON_SEARCH: Unit.HOURS,
    Category.EMERGENCY_RESPONSE: Unit.PEOPLE,
    Category.OTHER: None,
}


def unit_of(category: str, custom: dict[str, str | None]) -> Unit | None:
    """The unit of a built-in category, or of one the organisation added (``custom``: its
    code → unit), None when its completions count no quantity."""
    if category in CATEGORY_UNITS:
        return CATEGORY_UNITS[Category(category)]
    found = custom.get(category)
    return Unit(found) if found else None


class CompletionStatus(StrEnum):
    SUBMITTED = "submitted"
    HELD = "held"  # beyond an organisation limit: waits for an officer or the admin
    VERIFIED = "verified"
    REJECTED = "rejected"
    REVOKED = "revoked"


def no_job(job_id: object) -> NotFound:
    return NotFound(Said(f"没有岗位 {job_id}", f"no job {job_id}"))


def no_completion(completion_id: object) -> NotFound:
    return NotFound(Said(f"没有完成记录 {completion_id}", f"no completion {completion_id}"))


def already_claimed(account_id: str) -> Said:
    return Said(f"{account_id} 已领取这个岗位", f"{account_id} already holds a claim on this job")


def no_active_claim(account_id: str, job_id: object) -> Said:
    return Said(
        f"{account_id} 在岗位 {job_id} 上没有有效的领取",
        f"{account_id} has no active claim on job {job_id}",
    )


class TasksRefusal(DomainRefusal):
    """A refusal in the domain's words; ``reason`` is machine-readable."""


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


class NoQuantity(TasksRefusal):
    reason = "no_quantity"
    status = 422


def check_quantity(category: str, unit: Unit | None, quantity: int | None) -> Unit | None:
    """The unit a completion's ``quantity`` is recorded in; refused when the job's category
    counts none (a number in no unit would add up to nothing in a report)."""
    if quantity is None:
        return None
    if unit is None:
        raise NoQuantity(
            Said(
                f"类别 {category!r} 的完成记录不计数量，请不要提供 quantity",
                f"completions of category {category!r} count no quantity; leave quantity out",
            ),
            category=category,
        )
    return unit


class IdempotencyKeyReused(TasksRefusal):
    reason = "idempotency_key_reused"


@dataclass(frozen=True)
class Window:
    starts_at: datetime
    ends_at: datetime
    # the organisation's clock, on which a refusal states the window's times
    timezone: str = DEFAULT_TIMEZONE


def check_window(window: Window, at: datetime, grace: timedelta) -> None:
    """A completion counts only inside the job's window, with a grace period after it."""
    starts, ends = (local_clock(t, window.timezone) for t in (window.starts_at, window.ends_at))
    if at < window.starts_at:
        raise OutsideWindow(
            Said(
                f"岗位 {starts}（当地时间）才开始，开始前不能完成",
                f"the job starts at {starts} local time; it cannot be completed before",
            ),
            starts_at=window.starts_at.isoformat(),
            ends_at=window.ends_at.isoformat(),
        )
    if at > window.ends_at + grace:
        raise OutsideWindow(
            Said(
                f"岗位已于 {ends}（当地时间）结束，{grace} 的补报宽限也已过",
                f"the job ended at {ends} local time and its grace of {grace} is over",
            ),
            starts_at=window.starts_at.isoformat(),
            ends_at=window.ends_at.isoformat(),
        )


def identity(subject: str) -> str:
    """The normalised form in which two subjects are compared: ``ADM-A`` and `` adm-a`` are one
    person for every rule that says "somebody else"."""
    return subject.strip().casefold()


def same_person(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and identity(a) == identity(b)


class OwnJob(TasksRefusal):
    reason = "own_job"


class NotAMember(TasksRefusal):
    reason = "not_a_member"


class OwnDecision(TasksRefusal):
    reason = "own_decision"


class NotCheckin(TasksRefusal):
    reason = "not_checkin"


def check_not_creator(creator: str, volunteer: str) -> None:
    """Whoever published a job is never credited for it, whatever its verification mode."""
    if same_person(creator, volunteer):
        raise OwnJob(
            Said(
                f"岗位发布者（{creator}）不能领取或完成自己发布的岗位",
                f"the job's creator ({creator}) can never be its credited volunteer",
            ),
            created_by=creator,
        )


def check_verifier(verifier: str, volunteer: str, status: CompletionStatus) -> None:
    if same_person(verifier, volunteer):
        raise SelfVerification(
            Said("不能核验自己的完成记录", "an officer may not verify their own completion")
        )
    if status is not CompletionStatus.SUBMITTED:
        held = status is CompletionStatus.HELD
        raise NotVerifiable(
            Said(
                f"该完成记录的状态是 {status.value}，不是待核验（submitted）"
                + ("；暂扣（held）的记录请用批准或驳回来决定" if held else ""),
                f"the completion is {status.value}, not submitted"
                + ("; a held completion is decided with approve or reject" if held else ""),
            ),
            status=status.value,
        )


class VerificationMode(StrEnum):
    OFFICER = "officer"  # an officer of the organisation confirms
    CHECKIN = "checkin"  # the volunteer enters the code shown at the site
    AUTOMATIC = "automatic"  # the completion counts on submission (limits still apply)


class UnknownCategory(TasksRefusal):
    reason = "unknown_category"


class WrongCheckinCode(TasksRefusal):
    reason = "wrong_checkin_code"


class NotWithdrawable(TasksRefusal):
    reason = "not_withdrawable"


class NotRevocable(TasksRefusal):
    reason = "not_revocable"


class NotRejectable(TasksRefusal):
    reason = "not_rejectable"


class NeedsAdmin(TasksRefusal):
    reason = "needs_admin"


class UnknownCommunity(TasksRefusal):
    reason = "unknown_community"


class AlreadyDecided(TasksRefusal):
    reason = "already_decided"


class WrongState(TasksRefusal):
    reason = "wrong_state"


def check_category(code: str, custom: set[str]) -> None:
    """A job's category is a built-in one or one its organisation added."""
    if code not in {c.value for c in Category} and code not in custom:
        raise UnknownCategory(
            Said(
                f"类别 {code!r} 既不是内置类别，也不是本组织添加的类别",
                f"category {code!r} is neither built in nor added by your organisation",
            ),
            known=sorted({c.value for c in Category} | custom),
        )


def check_withdrawal(window: Window, at: datetime) -> None:
    """A claim can be given back only before the job starts (the place goes to someone else)."""
    if at >= window.starts_at:
        starts = local_clock(window.starts_at, window.timezone)
        raise NotWithdrawable(
            Said(
                f"岗位已于 {starts}（当地时间）开始；领取只能在岗位开始前撤回",
                f"the job started at {starts} local time; a claim can be withdrawn "
                "only before its window starts",
            ),
            starts_at=window.starts_at.isoformat(),
        )


def check_revocable(status: CompletionStatus, revoker: str, volunteer: str) -> None:
    if same_person(revoker, volunteer):
        raise SelfVerification(
            Said("不能撤销自己的完成记录", "an officer may not revoke their own completion")
        )
    if status is not CompletionStatus.VERIFIED:
        raise NotRevocable(
            Said(
                f"只有已核验的完成记录可以撤销；这条的状态是 {status.value}",
                f"only a verified completion can be revoked; this one is {status.value}",
            ),
            status=status.value,
        )


def check_rejectable(status: CompletionStatus, rejecter: str, volunteer: str) -> None:
    if same_person(rejecter, volunteer):
        raise SelfVerification(
            Said("不能决定自己的完成记录", "an officer may not decide on their own completion")
        )
    if status not in (CompletionStatus.SUBMITTED, CompletionStatus.HELD):
        raise NotRejectable(
            Said(
                f"只有待核验或暂扣的完成记录可以驳回；这条的状态是 {status.value}",
                f"only a submitted or held completion can be rejected; this one is {status.value}",
            ),
            status=status.value,
        )


class Recurrence(StrEnum):
    MONTHLY = "monthly"  # the same day of every month, same time, same length


def month_of(at: datetime) -> str:
    return f"{at.year:04d}-{at.month:02d}"


def month_window(month: str | None) -> tuple[datetime | None, datetime | None]:
    """[its first instant, the next month's) of "YYYY-MM" in UTC; (None, None) for no month
    (a filter not asked for)."""
    if month is None:
        return None, None
    year, mon = map(int, month.split("-"))
    start = datetime(year, mon, 1, tzinfo=UTC)
    return start, datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=UTC)


def months_from(at: datetime, ahead: int) -> list[str]:
    """``at``'s month and the ``ahead`` months after it, as "YYYY-MM", in order: the months
    the worker keeps rolled."""
    year, month = at.year, at.month
    out = []
    for _ in range(ahead + 1):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def occurrence_in(window: Window, month: str) -> Window:
    """The window of a monthly job's occurrence in ``month`` ("YYYY-MM"): same day of the
    month, same time of day, same length. Days above 28 are refused when the series is made,
    so every month has the day."""
    year, mon = map(int, month.split("-"))
    start = window.starts_at.replace(year=year, month=mon)
    return Window(start, start + (window.ends_at - window.starts_at), window.timezone)


def check_recurrence(recurrence: Recurrence | None, window: Window) -> None:
    if recurrence is Recurrence.MONTHLY and window.starts_at.day > 28:
        raise WrongState(
            Said(
                "每月重复的岗位必须在 1–28 日开始，这样每个月都有这一天",
                "a monthly job must start on day 1-28, so that every month has its day",
            ),
            day=window.starts_at.day,
        )
