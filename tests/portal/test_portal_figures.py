"""The public figures' counting (no stack): a completion counts in the UTC month it was
verified, once; activities are the distinct jobs, volunteers the distinct accounts; points are
the jobs' whole points; only verified completions count."""

from __future__ import annotations

from jifen.portal.figures import count, is_month, month_or, month_window


def _c(
    job: str, account: str, verified_at: str | None, status: str = "verified"
) -> dict[str, object]:
    return {"job_id": job, "account_id": account, "status": status, "verified_at": verified_at}


def test_a_month_counts_what_was_verified_in_it_by_utc_time() -> None:
    verified = [
        _c("j1", "a", "2026-11-30T23:59:59+00:00"),  # November in UTC (December in Shanghai)
        _c("j1", "a", "2026-12-01T00:00:00+00:00"),
        _c("j1", "b", "2026-12-15T08:00:00+08:00"),
        _c("j2", "b", "2026-12-31T23:59:59+00:00"),
        _c("j2", "c", "2027-01-01T00:00:00+00:00"),  # January
        _c("j2", "d", "2026-12-10T00:00:00+00:00", status="revoked"),
        _c("j2", "e", None, status="submitted"),
    ]
    menu = [{"claimed": 3}, {"claimed": 2}]
    f = count("2026-12", verified, {"j1": 20, "j2": 35}, menu)
    assert (f.attendances, f.activities, f.volunteers, f.points_issued) == (3, 2, 2, 75)
    assert (f.jobs_on_menu, f.places_claimed, f.complete) == (2, 5, True)
    assert count("2026-11", verified, {"j1": 20, "j2": 35}, []).points_issued == 20
    assert count("2026-10", verified, {"j1": 20, "j2": 35}, []).attendances == 0


def test_months_are_the_apis_own_and_end_where_the_next_begins() -> None:
    assert is_month("2026-12") and not is_month("2026-13") and not is_month("1-1")
    assert not is_month(None) and not is_month("2026-1")
    assert month_or("2026-02", "2026-12") == "2026-02"
    assert month_or("0001-01", "2026-12") == month_or(None, "2026-12") == "2026-12"
    start, end = month_window("2026-12")
    assert (start.isoformat(), end.isoformat()) == (
        "2026-12-01T00:00:00+00:00",
        "2027-01-01T00:00:00+00:00",
    )
