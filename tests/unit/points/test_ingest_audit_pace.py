"""The audit sequencer passes less often while the ledger is busy, never less than that."""

from __future__ import annotations

from jifen.points.audit.loop import BUSY_PLACED, BUSY_SLOWDOWN, next_pass_in


def test_quiet_ledger_keeps_the_configured_pace() -> None:
    assert next_pass_in(0, 1.0) == 1.0
    assert next_pass_in(BUSY_PLACED - 1, 0.05) == 0.05


def test_busy_ledger_passes_less_often_but_boundedly() -> None:
    assert next_pass_in(BUSY_PLACED, 1.0) == BUSY_SLOWDOWN
    assert next_pass_in(50_000, 2.0) == 2.0 * BUSY_SLOWDOWN
    assert BUSY_SLOWDOWN <= 5  # the tree lags at most a few seconds more under a backlog
