"""Times as the organisation's people read them. Everything is stored and exchanged in UTC;
a sentence a person reads (a refusal, a text message) gives the time on the organisation's
clock (its ``timezone`` setting, Asia/Shanghai until its admin sets another), so that a rider
in Zhanjiang told "by 17:30" is not off by eight hours."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

DEFAULT_TIMEZONE = "Asia/Shanghai"


def local_clock(at: datetime, timezone: str | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """``at`` (aware) on the organisation's clock, formatted with ``fmt``."""
    return at.astimezone(ZoneInfo(timezone or DEFAULT_TIMEZONE)).strftime(fmt)
