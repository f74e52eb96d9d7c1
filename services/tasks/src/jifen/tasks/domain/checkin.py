"""Presence: rotating check-in codes that a photo of the poster cannot reuse.

Each check-in job has a secret of its own, kept server-side. The code for a time step is an
HMAC of the job and the step under that secret (TOTP-like), written in an alphabet without
0/O/1/I so that a code read off a screen is typed right. An officer's screen (or QR code) at
the place shows the current step's code; a completion is accepted with the current or the
previous step's code, so a code is good for between one and two steps, and never again.
Wrong codes are counted per (job, account): after too many, the account waits (429).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from jifen.kernel.i18n import Said
from jifen.tasks.domain.jobs import TasksRefusal, WrongCheckinCode

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 6


@dataclass(frozen=True)
class CheckinRules:
    """A code per ``step_seconds`` (the current and the previous one are accepted); at most
    ``max_failures`` wrong codes per (job, account) within ``window_seconds``."""

    step_seconds: int = 180
    max_failures: int = 5
    window_seconds: int = 900


class TooManyAttempts(TasksRefusal):
    reason = "too_many_attempts"
    status = 429


def new_secret() -> bytes:
    return secrets.token_bytes(32)


def step_of(at: datetime, step_seconds: int) -> int:
    return int(at.timestamp()) // step_seconds


def code_for(secret: bytes, job_id: str, step: int) -> str:
    digest = hmac.new(secret, f"{job_id}:{step}".encode(), hashlib.sha256).digest()
    n = int.from_bytes(digest[:8], "big")
    out = []
    for _ in range(CODE_LENGTH):
        n, i = divmod(n, len(ALPHABET))
        out.append(ALPHABET[i])
    return "".join(out)


@dataclass(frozen=True)
class ShownCode:
    code: str
    valid_from: datetime
    refresh_at: datetime  # the screen shows the next code from here
    expires_at: datetime  # accepted until here (the current and the previous step)


def current_code(secret: bytes, job_id: str, at: datetime, step_seconds: int) -> ShownCode:
    step = step_of(at, step_seconds)
    start = datetime.fromtimestamp(step * step_seconds, UTC)
    return ShownCode(
        code=code_for(secret, job_id, step),
        valid_from=start,
        refresh_at=start + timedelta(seconds=step_seconds),
        expires_at=start + timedelta(seconds=2 * step_seconds),
    )


def check_code(
    secret: bytes, job_id: str, given: str | None, at: datetime, step_seconds: int
) -> None:
    """Accept the code of the current step or of the one before; refuse anything else."""
    if not given:
        raise WrongCheckinCode(
            Said(
                "此岗位需现场签到码：请发送现场显示的签到码",
                "this job is verified by check-in: send the code shown at the site",
            )
        )
    typed = given.strip().upper().encode()
    step = step_of(at, step_seconds)
    ok = False
    for s in (step, step - 1):  # no short-circuit: same work whichever matches
        ok |= hmac.compare_digest(code_for(secret, job_id, s).encode(), typed)
    if not ok:
        raise WrongCheckinCode(
            Said(
                "签到码错误或已过期：请使用现场此刻显示的签到码",
                "the check-in code is wrong or has expired: use the code shown at the site now",
            )
        )


def retry_after(failures: list[datetime], *, limit: int, window_seconds: int, at: datetime) -> int:
    """Seconds until another attempt is allowed, 0 if allowed now: at most ``limit`` wrong
    codes within any ``window_seconds``."""
    recent = sorted(f for f in failures if f > at - timedelta(seconds=window_seconds))
    if len(recent) < limit:
        return 0
    frees = recent[len(recent) - limit] + timedelta(seconds=window_seconds)
    return max(1, int((frees - at).total_seconds() + 0.999))
