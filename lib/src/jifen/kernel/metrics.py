"""Prometheus metrics shared by every service (``jifen_`` prefix, base units, bounded labels)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "jifen_http_requests_total",
    "HTTP requests by route template, method and status.",
    ["service", "route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "jifen_http_request_duration_seconds",
    "HTTP request latency by route template and method.",
    ["service", "route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENTS_CONSUMED = Counter(
    "jifen_kafka_events_consumed_total",
    "Events consumed and applied (or found already applied), by topic and type.",
    ["service", "topic", "type"],
)
EVENTS_PRODUCED = Counter(
    "jifen_kafka_events_produced_total",
    "Events published to the broker by the outbox relay, by topic and type.",
    ["service", "topic", "type"],
)
DEAD_LETTERED = Counter(
    "jifen_kafka_events_dead_lettered_total",
    "Records sent to a dead-letter topic, by source topic and reason class.",
    ["topic", "reason"],
)
OUTBOX_PENDING = Gauge(
    "jifen_outbox_pending_events",
    "Events committed to the outbox and not yet published.",
    ["service"],
)
OUTBOX_OLDEST_AGE = Gauge(
    "jifen_outbox_oldest_pending_age_seconds",
    "Age of the oldest unpublished outbox event (0 when empty).",
    ["service"],
)
