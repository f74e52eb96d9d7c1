"""A community's public figures for a month, counted from what the portal's app credential may
read: the community's verified completions (tasks ``GET /v1/completions``) and the jobs they
were for (``GET /v1/jobs``). Counted the way the officers' activity report
(``GET /v1/reports/activity``, which an app may not read) counts: a completion counts in the UTC
month it was verified; a revoked one no longer counts; an activity is a job with at least one
verified completion; points are the jobs' whole points. Nothing is estimated: a figure no API
gives an app (points redeemed in a community) is not shown as a number."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

MONTH = re.compile(r"^(20[0-9]{2})-(0[1-9]|1[0-2])$")  # the APIs' own month pattern


def is_month(value: str | None) -> bool:
    return value is not None and MONTH.fullmatch(value) is not None


def this_month() -> str:
    """The UTC month now: the APIs' month filters are by UTC month (the times shown are
    local)."""
    return datetime.now(UTC).strftime("%Y-%m")


def shift_month(month: str, by: int) -> str:
    """``month`` (YYYY-MM) moved by ``by`` months."""
    y, m = map(int, month.split("-"))
    m += by
    y, m = y + (m - 1) // 12, (m - 1) % 12 + 1
    return f"{y:04d}-{m:02d}"


def month_or(value: str | None, default: str) -> str:
    """``value`` when it is a month the APIs take, else ``default``."""
    return value if value is not None and MONTH.fullmatch(value) else default


def month_window(month: str) -> tuple[datetime, datetime]:
    """The UTC month ``YYYY-MM`` as [start, end)."""
    y, m = map(int, month.split("-"))
    return datetime(y, m, 1, tzinfo=UTC), datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Figures:
    month: str
    activities: int  # jobs with at least one completion verified in the month
    attendances: int  # completions verified in the month
    volunteers: int  # distinct volunteers among them
    points_issued: int  # the whole points of those completions
    jobs_on_menu: int  # jobs of the month's menu (published, starting in the month)
    places_claimed: int  # places taken on them
    complete: bool  # False: the walk stopped at its bound, the counts are of what was read
    # the organisation's, not the community's (points are spent anywhere in it): the redeem
    # service's public figure for the month (None: not read)
    redeemed_points: int | None = None
    redemptions: int | None = None


def count(
    month: str,
    verified: list[dict[str, Any]],
    points_of: dict[str, int],
    menu: list[dict[str, Any]],
    *,
    complete: bool = True,
) -> Figures:
    """The month's figures from the community's verified completions (any month: those
    verified outside it are left out), each job's points and the month's menu."""
    since, until = month_window(month)
    counted = [
        c
        for c in verified
        if c.get("status") == "verified"
        and c.get("verified_at")
        and since <= datetime.fromisoformat(c["verified_at"]) < until
    ]
    return Figures(
        month=month,
        activities=len({c["job_id"] for c in counted}),
        attendances=len(counted),
        volunteers=len({c["account_id"] for c in counted}),
        points_issued=sum(int(points_of[c["job_id"]]) for c in counted),
        jobs_on_menu=len(menu),
        places_claimed=sum(int(j["claimed"]) for j in menu),
        complete=complete,
    )
