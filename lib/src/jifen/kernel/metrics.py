"""Prometheus metrics shared by every service (``jifen_`` prefix, base units, bounded labels)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.errors import KafkaError
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
EVENTS_FAILED = Counter(
    "jifen_kafka_events_failed_total",
    "Attempts to apply consumed events that failed and were retried (database unavailable, "
    "a lock conflict), by service, topic and type; a refused or invalid event is dead-lettered "
    "instead (jifen_kafka_events_dead_lettered_total).",
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
CONSUMER_RESTARTS = Counter(
    "jifen_kafka_consumer_broker_forgot_total",
    "Times a consumer found the broker had forgotten its group's committed offsets (the "
    "embedded broker restarted) and re-read its partitions from the beginning; by group.",
    ["group"],
)
CONSUMER_LAG = Gauge(
    "jifen_kafka_consumer_lag_events",
    "Records behind the partition's high watermark, by consumer group, topic and partition. "
    "Computed from the high watermark carried by fetch responses and the consumer's own "
    "position, never from ListOffsets end offsets, which the embedded broker (Tansu) reports "
    "wrongly; on Tansu treat it as an estimate.",
    ["group", "topic", "partition"],
)


async def observe_lag(consumer: Any, group: str) -> None:
    """Set the lag gauge for the partitions ``consumer`` (an AIOKafkaConsumer) holds."""
    for tp in consumer.assignment():
        high = consumer.highwater(tp)
        if high is None:
            continue
        try:
            position = await asyncio.wait_for(consumer.position(tp), 0.5)
        except (TimeoutError, KafkaError):
            continue
        CONSUMER_LAG.labels(group, tp.topic, str(tp.partition)).set(max(0, high - position))
