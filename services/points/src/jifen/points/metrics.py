"""The points service's own metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from jifen.kernel.metrics import ORG_REGISTRY

ENTRIES_APPENDED = Counter(
    "jifen_points_ledger_entries_appended_total", "Ledger entries appended, by kind.", ["kind"]
)
POINTS_APPENDED = Counter(
    "jifen_points_ledger_points_total",
    "Points moved by appended entries (absolute value), by kind and organisation.",
    ["kind", "org"],
    registry=ORG_REGISTRY,
)
DUPLICATES = Counter(
    "jifen_points_duplicate_events_total", "Events delivered again and absorbed (already applied)."
)
REFUSED = Counter(
    "jifen_points_refused_events_total",
    "Schema-valid events the ledger refused (sent to the dead-letter topic), by event type.",
    ["type"],
)
BATCH_SIZE = Histogram(
    "jifen_points_append_batch_size",
    "Records per append batch.",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000),
)
BATCH_SECONDS = Histogram(
    "jifen_points_append_batch_duration_seconds",
    "Time to append one batch (database transaction).",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
EVENT_TO_COMMIT = Histogram(
    "jifen_points_event_to_commit_seconds",
    "Latency from an event's time to the commit of its ledger entry.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
ISSUED = Counter(
    "jifen_points_issued_points",
    "Points credited for verified completions, by organisation and job category.",
    ["org", "category"],
    registry=ORG_REGISTRY,
)
REDEEMED = Counter(
    "jifen_points_redeemed_points",
    "Points debited for redemptions, by organisation.",
    ["org"],
    registry=ORG_REGISTRY,
)
LIABILITY = Gauge(
    "jifen_points_outstanding_liability_points",
    "Points held in accounts (issued, less reversed and spent), by the organisation that "
    "issued or took them; refreshed from the ledger every few seconds.",
    ["org"],
    registry=ORG_REGISTRY,
)
