"""Reconciliation rules: tasks' completions and redeem's redemptions against ledger entries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from jifen.points.audit.domain.reconcile import reconcile

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def completion(cid: str, points: int = 10, revoked: bool = False, **kw: Any) -> dict[str, Any]:
    return {
        "completion_id": cid,
        "account_id": "vol-a",
        "job_id": "job-1",
        "points": points,
        "status": "revoked" if revoked else "verified",
        "verified_event_id": f"ev-v-{cid}",
        "revoked_event_id": f"ev-r-{cid}" if revoked else None,
        "verified_at": "2026-11-01T08:00:00Z",
        "revoked_at": "2026-11-02T08:00:00Z" if revoked else None,
        **kw,
    }


def redemption(rid: str, points: int = 30, cancelled: bool = False) -> dict[str, Any]:
    return {
        "redemption_id": rid,
        "account_id": "vol-a",
        "reward_id": "reward-1",
        "points": points,
        "status": "cancelled" if cancelled else "confirmed",
        "placed_event_id": f"ev-p-{rid}",
        "cancelled_event_id": f"ev-c-{rid}" if cancelled else None,
        "created_at": "2026-11-03T08:00:00Z",
        "cancelled_at": "2026-11-04T08:00:00Z" if cancelled else None,
    }


_ids = iter(range(1, 10_000))


def entry(kind: str, ref: str, amount: int, cause: str, account: str = "vol-a") -> dict[str, Any]:
    return {
        "entry_id": next(_ids),
        "account_id": account,
        "kind": kind,
        "amount": amount,
        "cause_event_id": cause,
        "completion_id": ref if kind in ("credit", "reversal") else None,
        "redemption_id": ref if kind in ("debit", "refund") else None,
    }


def codes(ms: list[Any]) -> list[tuple[str, str]]:
    return sorted((m.code, m.reference) for m in ms)


def test_everything_matched_gives_no_mismatch() -> None:
    entries = [
        entry("credit", "c1", 10, "ev-v-c1"),
        entry("credit", "c2", 10, "ev-v-c2"),
        entry("reversal", "c2", -10, "ev-r-c2"),
        entry("debit", "r1", -30, "ev-p-r1"),
        entry("debit", "r2", -30, "ev-p-r2"),
        entry("refund", "r2", 30, "ev-c-r2"),
    ]
    comps = [completion("c1"), completion("c2", revoked=True)]
    reds = [redemption("r1"), redemption("r2", cancelled=True)]
    assert reconcile(comps, reds, entries) == []


def test_a_verified_completion_never_credited_is_found() -> None:
    ms = reconcile([completion("c1"), completion("c2")], [], [entry("credit", "c1", 10, "ev-v-c1")])
    assert codes(ms) == [("credit_missing", "c2")]
    assert "verified completion has no credit" in str(ms[0]) and "vol-a" in str(ms[0])


def test_every_kind_of_mismatch_is_listed() -> None:
    comps = [
        completion("c1", revoked=True),  # reversal missing
        completion("c2"),  # credited twice
        completion("c3", points=10),  # credited 100
        completion("c4"),  # credited to someone else, by another event
    ]
    reds = [redemption("r1"), redemption("r2", cancelled=True), redemption("r3")]
    entries = [
        entry("credit", "c1", 10, "ev-v-c1"),
        entry("credit", "c2", 10, "ev-v-c2"),
        entry("credit", "c2", 10, "ev-v-c2-again"),
        entry("credit", "c3", 100, "ev-v-c3"),
        entry("credit", "c4", 10, "ev-other", account="vol-z"),
        entry("credit", "c9", 500, "ev-nowhere"),  # points from nowhere
        entry("debit", "r1", -30, "ev-p-r1"),
        entry("refund", "r1", 30, "ev-c-r1"),  # refunded but never cancelled
        entry("debit", "r2", -30, "ev-p-r2"),  # cancelled, never refunded
        # r3 placed, never debited
    ]
    assert codes(reconcile(comps, reds, entries)) == [
        ("account_mismatch", "c4"),
        ("amount_mismatch", "c3"),
        ("cause_mismatch", "c4"),
        ("credit_duplicated", "c2"),
        ("credit_without_source", "c9"),
        ("debit_missing", "r3"),
        ("refund_missing", "r2"),
        ("refund_unexpected", "r1"),
        ("reversal_missing", "c1"),
    ]


def test_entries_still_in_flight_are_not_missing() -> None:
    fresh = completion("c1", verified_at=(NOW - timedelta(seconds=5)).isoformat())
    old = completion("c2")
    ms = reconcile([fresh, old], [], [], now=NOW, settle=timedelta(seconds=60))
    assert codes(ms) == [("credit_missing", "c2")]
    assert codes(reconcile([fresh], [], [], now=NOW)) == [("credit_missing", "c1")]


def test_points_moved_in_another_organisation_are_a_mismatch() -> None:
    credited = {**entry("credit", "c1", 10, "ev-v-c1"), "org_id": "org-b"}
    ms = reconcile([completion("c1", org_id="org-a")], [], [credited])
    assert codes(ms) == [("org_mismatch", "c1")]
    assert "organisation org-b, not org-a" in str(ms[0])
    same = {**entry("credit", "c2", 10, "ev-v-c2"), "org_id": "org-a"}
    assert reconcile([completion("c2", org_id="org-a")], [], [same]) == []
