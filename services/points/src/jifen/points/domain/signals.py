"""Integrity signals over verified completions: what to count, and when a count is a flag.

Counted per fixed window (tumbling, aligned to UTC): completions and points per volunteer per
hour and per day, completions per (officer, volunteer) pair per day, completions per
community per five minutes. Flags compare recent windows against thresholds and against the
volunteer's community (points in a day far above the community's median). Pure: the stream
feeds tallies in, the API feeds stored tallies back for evaluation.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

HOUR, DAY, BURST = 3600, 86400, 300

VOLUNTEER_HOUR = "volunteer_completions_per_hour"
VOLUNTEER_DAY = "volunteer_points_per_day"
OFFICER_PAIR = "officer_volunteer_completions_per_day"
COMMUNITY_BURST = "community_completions_per_5min"
SIGNALS = (VOLUNTEER_HOUR, VOLUNTEER_DAY, OFFICER_PAIR, COMMUNITY_BURST)


@dataclass(frozen=True, slots=True)
class Tally:
    signal: str
    org_id: str
    community_id: str
    subject: str  # a volunteer, an "officer|volunteer" pair, or a community
    window_start: datetime
    window_seconds: int
    count: int
    points: int


@dataclass(frozen=True)
class Thresholds:
    completions_per_hour: int = 6
    day_points_over_median: float = 3.0
    min_peers_for_median: int = 3
    officer_share: float = 0.8
    officer_share_min_completions: int = 5
    burst_completions: int = 20


@dataclass(frozen=True, slots=True)
class Flag:
    signal: str
    org_id: str
    community_id: str
    subject: str
    window_start: datetime
    value: float
    threshold: float
    detail: str


def window_start(at: datetime, seconds: int) -> datetime:
    epoch = int(at.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


def tallies(events: Iterable[dict[str, Any]], at_of: Any) -> list[Tally]:
    """The tallies one batch of verified-completion events adds (merged per key)."""
    merged: dict[tuple[str, str, str, datetime], list[Any]] = {}
    for e in events:
        d = e["data"]
        at: datetime = at_of(d["verified_at"])
        org, community, account, points = (
            d["org_id"],
            d["community_id"],
            d["account_id"],
            d["points"],
        )
        for signal, subject, seconds in (
            (VOLUNTEER_HOUR, account, HOUR),
            (VOLUNTEER_DAY, account, DAY),
            (OFFICER_PAIR, f"{d['verified_by']}|{account}", DAY),
            (COMMUNITY_BURST, community, BURST),
        ):
            key = (signal, org, subject, window_start(at, seconds))
            slot = merged.setdefault(key, [community, seconds, 0, 0])
            slot[2] += 1
            slot[3] += points
    return [
        Tally(sig, org, c, subject, start, seconds, n, p)
        for (sig, org, subject, start), (c, seconds, n, p) in merged.items()
    ]


def evaluate(rows: Iterable[Tally], t: Thresholds) -> list[Flag]:
    """Flags among the given tallies (the caller passes the windows it wants judged)."""
    rows = list(rows)
    flags: list[Flag] = []
    by_signal: dict[str, list[Tally]] = defaultdict(list)
    for r in rows:
        by_signal[r.signal].append(r)
    for r in by_signal[VOLUNTEER_HOUR]:
        if r.count > t.completions_per_hour:
            flags.append(
                Flag(
                    r.signal,
                    r.org_id,
                    r.community_id,
                    r.subject,
                    r.window_start,
                    r.count,
                    t.completions_per_hour,
                    f"{r.count} completions in one hour",
                )
            )
    day_groups: dict[tuple[str, str, datetime], list[Tally]] = defaultdict(list)
    for r in by_signal[VOLUNTEER_DAY]:
        day_groups[(r.org_id, r.community_id, r.window_start)].append(r)
    for group in day_groups.values():
        if len(group) < t.min_peers_for_median:
            continue
        median = statistics.median(r.points for r in group)
        for r in group:
            if median > 0 and r.points > t.day_points_over_median * median:
                flags.append(
                    Flag(
                        r.signal,
                        r.org_id,
                        r.community_id,
                        r.subject,
                        r.window_start,
                        r.points,
                        t.day_points_over_median * median,
                        f"{r.points} points in a day; community median {median:g}",
                    )
                )
    per_volunteer: dict[tuple[str, str], int] = defaultdict(int)
    for r in by_signal[OFFICER_PAIR]:
        per_volunteer[(r.org_id, r.subject.split("|", 1)[1])] += r.count
    per_pair: dict[tuple[str, str], list[Tally]] = defaultdict(list)
    for r in by_signal[OFFICER_PAIR]:
        per_pair[(r.org_id, r.subject)].append(r)
    for (org, pair), group in per_pair.items():
        officer, volunteer = pair.split("|", 1)
        total = per_volunteer[(org, volunteer)]
        mine = sum(r.count for r in group)
        if total >= t.officer_share_min_completions and mine / total >= t.officer_share:
            latest = max(group, key=lambda r: r.window_start)
            flags.append(
                Flag(
                    OFFICER_PAIR,
                    org,
                    latest.community_id,
                    pair,
                    latest.window_start,
                    round(mine / total, 3),
                    t.officer_share,
                    f"{officer} verified {mine} of {volunteer}'s {total} completions",
                )
            )
    for r in by_signal[COMMUNITY_BURST]:
        if r.count >= t.burst_completions:
            flags.append(
                Flag(
                    r.signal,
                    r.org_id,
                    r.community_id,
                    r.subject,
                    r.window_start,
                    r.count,
                    t.burst_completions,
                    f"{r.count} completions within five minutes",
                )
            )
    return flags
