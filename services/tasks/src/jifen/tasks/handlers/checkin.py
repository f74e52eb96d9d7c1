"""The check-in at a completion: the rotating code checked server-side, and the attempts
limited per (job, account)."""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from jifen.kernel.db import Queries
from jifen.kernel.i18n import Said
from jifen.tasks.domain.checkin import CheckinRules, TooManyAttempts, check_code
from jifen.tasks.domain.checkin import retry_after as checkin_retry_after
from jifen.tasks.domain.commands import CompleteJob
from jifen.tasks.domain.jobs import WrongCheckinCode


async def check_presence(
    conn: asyncpg.Connection,
    q: Queries,
    job: asyncpg.Record,
    body: CompleteJob,
    rules: CheckinRules,
    now: datetime,
) -> None:
    """At a check-in job the volunteer sends the code shown at the place now: refused while
    too many wrong codes were sent lately (429), and a wrong one says how many tries are left
    and whether it counts (``complete_job`` records it once the transaction rolled back)."""
    failures = [
        r["failed_at"]
        for r in await conn.fetch(
            q["checkin_failures"],
            job["id"],
            body.account_id,
            timedelta(seconds=rules.window_seconds),
        )
    ]
    wait = checkin_retry_after(
        failures, limit=rules.max_failures, window_seconds=rules.window_seconds, at=now
    )
    if wait:
        raise TooManyAttempts(
            Said(
                f"{body.account_id} 在这个岗位上签到码错误次数过多，请 {wait} 秒后再试",
                f"too many wrong check-in codes for {body.account_id} on this job: "
                f"retry in {wait} s",
            ),
            retry_after=wait,
            max_failures=rules.max_failures,
            window_seconds=rules.window_seconds,
        )
    try:
        check_code(
            job["checkin_secret"], str(job["id"]), body.checkin_code, now, rules.step_seconds
        )
    except WrongCheckinCode as wrong:
        # a code that was sent and is wrong counts against the limit; a missing one does not
        wrong.facts["counted"] = bool(body.checkin_code)
        left = rules.max_failures - len(failures) - int(bool(body.checkin_code))
        wrong.facts["attempts_left"] = max(0, left)
        raise
