"""Topic names: ``<service>.<stream>``, and ``<topic>.dlq`` for its dead letters."""

from __future__ import annotations

TASKS_JOBS = "tasks.jobs"
TASKS_COMPLETIONS = "tasks.completions"
REDEEM_REDEMPTIONS = "redeem.redemptions"
POINTS_LEDGER = "points.ledger"
POINTS_ADJUSTMENTS = "points.adjustments"

ALL = (TASKS_JOBS, TASKS_COMPLETIONS, REDEEM_REDEMPTIONS, POINTS_LEDGER, POINTS_ADJUSTMENTS)


def dlq(topic: str) -> str:
    return f"{topic}.dlq"


def with_dead_letters() -> list[str]:
    return [*ALL, *(dlq(t) for t in ALL)]
