"""Integrity signal rules: tallies per window, and which tallies are flags."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jifen.kernel.contracts import parse_time
from jifen.points.domain.signals import (
    COMMUNITY_BURST,
    OFFICER_PAIR,
    VOLUNTEER_DAY,
    VOLUNTEER_HOUR,
    Tally,
    Thresholds,
    evaluate,
    tallies,
    window_start,
)

T = datetime(2026, 11, 23, 10, 17, 3, tzinfo=UTC)


def verified(
    account: str,
    at: datetime,
    points: int = 10,
    officer: str = "officer-li",
    community: str = "grid",
) -> dict[str, object]:
    return {
        "data": {
            "account_id": account,
            "org_id": "o",
            "community_id": community,
            "points": points,
            "verified_by": officer,
            "verified_at": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
    }


def test_windows_are_aligned_to_utc() -> None:
    assert window_start(T, 3600) == datetime(2026, 11, 23, 10, tzinfo=UTC)
    assert window_start(T, 300) == datetime(2026, 11, 23, 10, 15, tzinfo=UTC)


def test_a_batch_adds_one_tally_per_signal_and_window() -> None:
    rows = tallies(
        [verified("v1", T), verified("v1", T + timedelta(minutes=1), points=5)], parse_time
    )
    by_signal = {r.signal: r for r in rows}
    assert set(by_signal) == {VOLUNTEER_HOUR, VOLUNTEER_DAY, OFFICER_PAIR, COMMUNITY_BURST}
    assert (by_signal[VOLUNTEER_HOUR].count, by_signal[VOLUNTEER_HOUR].points) == (2, 15)
    assert by_signal[OFFICER_PAIR].subject == "officer-li|v1"


def _t(signal: str, subject: str, count: int, points: int, community: str = "grid") -> Tally:
    return Tally(signal, "o", community, subject, window_start(T, 3600), 3600, count, points)


def test_flags() -> None:
    t = Thresholds()
    rows = [
        _t(VOLUNTEER_HOUR, "v1", 7, 70),
        _t(VOLUNTEER_HOUR, "v2", 6, 60),
        _t(VOLUNTEER_DAY, "v1", 9, 400),
        _t(VOLUNTEER_DAY, "v2", 2, 40),
        _t(VOLUNTEER_DAY, "v3", 2, 50),
        _t(VOLUNTEER_DAY, "v4", 1, 30),
        _t(OFFICER_PAIR, "officer-li|v1", 5, 50),
        _t(OFFICER_PAIR, "officer-wu|v1", 1, 10),
        _t(OFFICER_PAIR, "officer-li|v2", 2, 20),
        _t(OFFICER_PAIR, "officer-wu|v2", 2, 20),
        _t(COMMUNITY_BURST, "grid", 20, 200),
        _t(COMMUNITY_BURST, "other", 19, 190, "other"),
    ]
    flags = {(f.signal, f.subject) for f in evaluate(rows, t)}
    assert flags == {
        (VOLUNTEER_HOUR, "v1"),  # 7 > 6; exactly 6 is not a flag
        (VOLUNTEER_DAY, "v1"),  # 400 > 3 × median 45
        (OFFICER_PAIR, "officer-li|v1"),  # 5 of 6 ≥ 80 %; v2's 4 completions are too few
        (COMMUNITY_BURST, "grid"),
    }


def test_no_median_judgement_with_too_few_peers() -> None:
    rows = [_t(VOLUNTEER_DAY, "v1", 9, 900), _t(VOLUNTEER_DAY, "v2", 1, 10)]
    assert evaluate(rows, Thresholds()) == []
