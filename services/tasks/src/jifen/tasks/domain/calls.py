"""Calls to volunteers (issue 21, part 5): a mobilisation's and a help request's text, how
long each stays open, and how often a volunteer may ask for help. Pure."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from jifen.kernel.i18n import Said
from jifen.tasks.domain.clock import local_clock
from jifen.tasks.domain.jobs import TasksRefusal

HELP_EVERY = timedelta(minutes=10)  # one help request per volunteer in this time


class Answer(StrEnum):
    AVAILABLE = "available"
    UNAVAILABLE = "unavailable"


class CallClosed(TasksRefusal):
    reason = "call_closed"


class HelpTooSoon(TasksRefusal):
    reason = "help_too_soon"
    status = 429


def check_open(closes_at: datetime, now: datetime, timezone: str | None) -> None:
    if now >= closes_at:
        at = local_clock(closes_at, timezone)
        raise CallClosed(
            Said(f"召集已于 {at}（当地时间）截止", f"the call closed at {at} local time"),
            closes_at=closes_at.isoformat(),
        )


def check_help_allowed(last: datetime | None, now: datetime) -> None:
    """A volunteer asks for help at most once in ``HELP_EVERY``: a request reaches everyone of
    their communities, so a repeated one would be a flood."""
    if last is None or now - last >= HELP_EVERY:
        return
    wait = int((last + HELP_EVERY - now).total_seconds()) + 1
    raise HelpTooSoon(
        Said(
            f"求助过于频繁，请 {wait} 秒后再试", f"asked for help too recently: retry in {wait} s"
        ),
        retry_after=wait,
    )


def mobilisation_text(
    org_name: str, message: str, closes_at: datetime, timezone: str | None
) -> str:
    """The message each volunteer of the community gets (Chinese first, English beside), the
    time on the organisation's clock."""
    by = local_clock(closes_at, timezone, "%H:%M")
    return (
        f"【{org_name}紧急召集】{message} 请在应用中回复 可以/不行（{by} 前）"
        f" / Urgent call: answer available or not in the app by {by}"
    )


def reminder_text(
    org_name: str, title: str, starts_at: datetime, place: str | None, timezone: str | None
) -> str:
    """The reminder a volunteer gets before a job they hold a place in (the time on the
    organisation's clock)."""
    at = local_clock(starts_at, timezone, "%m-%d %H:%M")
    where_zh = f"，地点：{place}" if place else ""
    where_en = f" at {place}" if place else ""
    return (
        f"【{org_name}】提醒：你报名的「{title[:60]}」将于 {at} 开始{where_zh}。"
        f" / Reminder: {title[:60]} starts {at}{where_en}."
    )


def help_text(org_name: str, requester: str, message: str) -> str:
    return (
        f"【{org_name}互助】{requester} 请求支援：{message} 能去请在应用中回复"
        f" / {requester} asks for help: answer in the app if you can come"
    )
